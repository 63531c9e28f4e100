//! `ota bench`: OTA download throughput through mosquitto behind a loopback delay proxy, and
//! the raw publish throughput of the same broker through the same proxy.
//!
//! Layout of one cell: mosquitto on a free loopback port; the Jobs + Streams stand-in
//! ([`crate::serve::Server`], external broker mode) connects to mosquitto directly; the
//! simulated device ([`crate::device::run`], the real agent) connects through a
//! [`DelayProxy`] that holds every chunk for `rtt / 2` in each direction.
//!
//! What is timed: from the moment the device receives the job document
//! ([`DeviceEvent::Job`]) to the moment it publishes `self_test: "ready"` (every block written
//! to flash, the image's SHA-256 + ECDSA signature verified, the trial boot requested), before
//! the reboot. Connecting and the job fetch are not timed.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use ota_core::wire::version::AppVersion;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::cloud::{OtaFile, OtaUpdate, Protocol};
use crate::device::image::{self, Behavior, HEADER_LEN};
use crate::device::{run, DeviceEvent, DeviceOptions};
use crate::keys;
use crate::serve::{MqttMode, ServeConfig, Server};

const THING: &str = "bench-thing";
const MIB: u32 = 1 << 20;
/// Chunks a proxy direction holds (each at most [`CHUNK`] bytes): the bound on its buffer.
pub const QUEUE: usize = 256;
/// Largest chunk the proxy reads at once.
pub const CHUNK: usize = 64 * 1024;
/// Raw publish test: message size in bytes.
pub const RAW_MSG: usize = 4096;
/// Raw publish test: messages sent.
pub const RAW_COUNT: usize = 8192;

/// `ota bench` options.
#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// Image sizes in MiB (the whole image, header included; 16 MiB is 4096 blocks, the
    /// agent's bitmap limit).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1,4,16",
        value_name = "MIB"
    )]
    pub sizes: Vec<u32>,
    /// Round-trip times in ms added by the proxy between the device and mosquitto.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "0,20,100",
        value_name = "MS"
    )]
    pub rtt: Vec<u64>,
    /// Blocks per request: a number, or `default` (the agent's `Config::new` default).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1,default",
        value_name = "N|default"
    )]
    pub blocks_per_request: Vec<String>,
    /// Print the results as a Markdown table.
    #[arg(long)]
    pub markdown: bool,
    /// Skip the raw publish throughput measurement.
    #[arg(long)]
    pub no_raw: bool,
}

/// Run `ota bench`.
pub fn main(a: BenchArgs) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(bench(a))
}

fn parse_n(s: &str) -> Result<Option<u32>> {
    if s.eq_ignore_ascii_case("default") {
        return Ok(None);
    }
    let n: u32 = s
        .parse()
        .with_context(|| format!("--blocks-per-request {s}: a number or `default`"))?;
    if n == 0 {
        bail!("--blocks-per-request must be at least 1");
    }
    Ok(Some(n))
}

/// One download measurement.
#[derive(Debug, Clone)]
pub struct Cell {
    /// Image size in bytes.
    pub bytes: u64,
    /// Round trip added by the proxy.
    pub rtt_ms: u64,
    /// Blocks per request asked (`None`: the agent's default).
    pub n: Option<u32>,
    /// Effective blocks per request.
    pub effective: u32,
    /// Timed seconds.
    pub secs: f64,
}

/// One raw publish measurement.
#[derive(Debug, Clone)]
pub struct Raw {
    /// Round trip added by the proxy.
    pub rtt_ms: u64,
    /// Messages received by the subscriber.
    pub received: usize,
    /// Messages published.
    pub sent: usize,
    /// Seconds from the first publish to the last message received.
    pub secs: f64,
}

async fn bench(a: BenchArgs) -> Result<()> {
    let ns = a
        .blocks_per_request
        .iter()
        .map(|s| parse_n(s))
        .collect::<Result<Vec<_>>>()?;
    let default_n = ota_core::agent::Config::new(THING, AppVersion::new(1, 0, 0))
        .effective_blocks_per_request();
    // `default` is skipped when it is one of the numbers given (the same measurement).
    let ns: Vec<Option<u32>> = if ns.contains(&None) && ns.contains(&Some(default_n)) {
        eprintln!("the agent's default is {default_n} block(s) per request: `default` is measured once, as {default_n}");
        ns.into_iter().filter(Option::is_some).collect()
    } else {
        ns
    };
    let mosq = Mosquitto::start().await?;
    eprintln!(
        "mosquitto on 127.0.0.1:{} ({}); agent default blocks per request: {default_n}",
        mosq.port,
        mosq.bin.display()
    );
    let mut raws = Vec::new();
    if !a.no_raw {
        for &rtt in &a.rtt {
            let r = raw_publish(mosq.port, rtt).await?;
            eprintln!(
                "raw publish rtt {rtt} ms: {}/{} x 4 KiB in {:.2} s, {:.0} msg/s, {:.0} KiB/s",
                r.received,
                r.sent,
                r.secs,
                r.received as f64 / r.secs,
                (r.received * RAW_MSG) as f64 / 1024.0 / r.secs
            );
            raws.push(r);
        }
    }
    let mut cells = Vec::new();
    for &size in &a.sizes {
        for &rtt in &a.rtt {
            for &n in &ns {
                let c = download(mosq.port, size, rtt, n).await?;
                eprintln!(
                    "download {size} MiB rtt {rtt} ms n {} (effective {}): {:.2} s, {:.0} KiB/s",
                    n.map_or("default".to_string(), |n| n.to_string()),
                    c.effective,
                    c.secs,
                    c.bytes as f64 / 1024.0 / c.secs
                );
                cells.push(c);
            }
        }
    }
    print_results(&cells, &raws, a.markdown, default_n);
    Ok(())
}

fn print_results(cells: &[Cell], raws: &[Raw], markdown: bool, default_n: u32) {
    let label = |n: Option<u32>| match n {
        Some(n) => n.to_string(),
        None => format!("default ({default_n})"),
    };
    if markdown {
        println!("| image | RTT | blocks per request | time | throughput |");
        println!("|---:|---:|---|---:|---:|");
        for c in cells {
            println!(
                "| {} MiB | {} ms | {} | {:.2} s | {:.0} KiB/s |",
                c.bytes / u64::from(MIB),
                c.rtt_ms,
                label(c.n),
                c.secs,
                c.bytes as f64 / 1024.0 / c.secs
            );
        }
        if !raws.is_empty() {
            println!();
            println!(
                "| raw publish (4 KiB, QoS 0) | RTT | received | time | messages/s | throughput |"
            );
            println!("|---|---:|---:|---:|---:|---:|");
            for r in raws {
                println!(
                    "| rumqttc → mosquitto → rumqttc | {} ms | {}/{} | {:.2} s | {:.0} | {:.0} KiB/s |",
                    r.rtt_ms,
                    r.received,
                    r.sent,
                    r.secs,
                    r.received as f64 / r.secs,
                    (r.received * RAW_MSG) as f64 / 1024.0 / r.secs
                );
            }
        }
    } else {
        println!(
            "{:>6} {:>6} {:>12} {:>9} {:>11}",
            "MiB", "RTT ms", "blocks/req", "seconds", "KiB/s"
        );
        for c in cells {
            println!(
                "{:>6} {:>6} {:>12} {:>9.2} {:>11.0}",
                c.bytes / u64::from(MIB),
                c.rtt_ms,
                label(c.n),
                c.secs,
                c.bytes as f64 / 1024.0 / c.secs
            );
        }
        for r in raws {
            println!(
                "raw publish rtt {} ms: {}/{} msgs in {:.2} s, {:.0} msg/s, {:.0} KiB/s",
                r.rtt_ms,
                r.received,
                r.sent,
                r.secs,
                r.received as f64 / r.secs,
                (r.received * RAW_MSG) as f64 / 1024.0 / r.secs
            );
        }
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// One cell: a fresh stand-in, device state and job; the device through a fresh proxy.
async fn download(broker_port: u16, size_mib: u32, rtt_ms: u64, n: Option<u32>) -> Result<Cell> {
    let total = size_mib.checked_mul(MIB).context("image size too large")?;
    let payload = total
        .checked_sub(HEADER_LEN as u32)
        .context("image size too small")?;
    let mut cfg = ServeConfig::loopback();
    cfg.mqtt = MqttMode::External {
        host: "127.0.0.1".into(),
        port: broker_port,
    };
    let server = Server::start(cfg).await?;
    let proxy = DelayProxy::start(
        ("127.0.0.1", broker_port),
        Duration::from_millis(rtt_ms) / 2,
    )
    .await?;
    let dir = tempfile::Builder::new().prefix("ota-bench-").tempdir()?;
    let (sk, pk) = keys::keygen(&dir.path().join("keys"))?;
    let key = keys::read_signing_key(&sk)?;
    let img = image::build(AppVersion::new(1, 1, 0), payload, Behavior::Normal);
    let signature = keys::sign(&key, &img);
    let mut opts = DeviceOptions::new(
        THING,
        dir.path().join("device"),
        "127.0.0.1",
        proxy.addr.port(),
        std::fs::read(&pk)?,
    );
    opts.slot_size = total.max(crate::device::runtime::SLOT);
    opts.blocks_per_request = n;
    // A lost block is asked again after this; generous against the added delay.
    opts.request_timeout_ms = Some(10_000);
    let effective = {
        let mut c = ota_core::agent::Config::new(THING, AppVersion::new(1, 0, 0));
        if let Some(n) = n {
            c.blocks_per_request = n;
            c.rx_buffer_len = n * (4096 + 64);
        }
        c.effective_blocks_per_request()
    };
    let update = OtaUpdate {
        id: Some(format!("bench-{size_mib}-{rtt_ms}-{}", n.unwrap_or(0))),
        things: vec![THING.into()],
        groups: Vec::new(),
        protocols: vec![Protocol::Mqtt],
        files: vec![OtaFile {
            data: img,
            filepath: Some("/firmware/app.bin".into()),
            file_type: Some(0),
            cert_file: Some("ota-signing-pub.pem".into()),
            signature: Some(signature),
        }],
    };
    let (_job, out) = server
        .cloud
        .lock()
        .map_err(|_| anyhow::anyhow!("cloud lock poisoned"))?
        .create_ota_update(update, unix_now())?;
    server.publisher.send(out);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut dev = Box::pin(run(opts, Some(tx)));
    let mut start = None;
    let mut received_bytes = 0u64;
    // Bound: 3× the 1-block time at this RTT, plus a minute.
    let blocks = u64::from(total.div_ceil(4096));
    let bound = Duration::from_secs(60) + Duration::from_millis(3 * blocks * rtt_ms.max(1));
    let deadline = tokio::time::Instant::now() + bound;
    let secs = loop {
        tokio::select! {
            r = &mut dev => {
                r?;
                bail!("the device ended before the download completed");
            }
            e = rx.recv() => match e {
                Some(DeviceEvent::Job { .. }) if start.is_none() => start = Some(Instant::now()),
                Some(DeviceEvent::Block { bytes, .. }) => received_bytes = bytes,
                Some(DeviceEvent::Status { payload, .. }) => {
                    if payload.contains("\"ready\"") {
                        let t0 = start.context("status before the job document")?;
                        break t0.elapsed().as_secs_f64();
                    }
                    if payload.contains("FAILED") {
                        bail!("the job failed: {payload}");
                    }
                }
                Some(_) => {}
                None => bail!("the device's event channel closed"),
            },
            () = tokio::time::sleep_until(deadline) => {
                bail!("{size_mib} MiB at {rtt_ms} ms: not done within {bound:?} \
                       ({received_bytes} bytes received)");
            }
        }
    };
    drop(dev);
    drop(proxy);
    drop(server);
    Ok(Cell {
        bytes: u64::from(total),
        rtt_ms,
        n,
        effective,
        secs,
    })
}

/// Raw publish throughput: a rumqttc publisher and subscriber, both through a fresh proxy,
/// [`RAW_COUNT`] messages of [`RAW_MSG`] bytes at QoS 0. Timed from the first publish to the
/// last message received (or 30 s + 20 RTTs after the last publish, counting what arrived).
pub async fn raw_publish(broker_port: u16, rtt_ms: u64) -> Result<Raw> {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    let proxy = DelayProxy::start(
        ("127.0.0.1", broker_port),
        Duration::from_millis(rtt_ms) / 2,
    )
    .await?;
    let port = proxy.addr.port();
    let topic = format!("bench/raw/{}", std::process::id());
    let mut so = MqttOptions::new("bench-sub", "127.0.0.1", port);
    so.set_keep_alive(Duration::from_secs(30));
    so.set_max_packet_size(64 * 1024, 64 * 1024);
    let (sub, mut sub_loop) = AsyncClient::new(so, 64);
    sub.subscribe(&topic, QoS::AtMostOnce).await?;
    // Wait for the SUBACK.
    let t = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match tokio::time::timeout_at(t, sub_loop.poll()).await {
            Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => break,
            Ok(Ok(_)) => {}
            Ok(Err(e)) => bail!("raw subscriber: {e}"),
            Err(_) => bail!("raw subscriber: no SUBACK"),
        }
    }
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Instant>();
    let sub_task: JoinHandle<usize> = tokio::spawn(async move {
        let mut got = 0usize;
        while let Ok(ev) = sub_loop.poll().await {
            if let Event::Incoming(Packet::Publish(_)) = ev {
                got += 1;
                let _ = done_tx.send(Instant::now());
                if got == RAW_COUNT {
                    break;
                }
            }
        }
        got
    });
    let mut po = MqttOptions::new("bench-pub", "127.0.0.1", port);
    po.set_keep_alive(Duration::from_secs(30));
    po.set_max_packet_size(64 * 1024, 64 * 1024);
    let (publ, mut pub_loop) = AsyncClient::new(po, 256);
    let pub_task = tokio::spawn(async move {
        loop {
            if pub_loop.poll().await.is_err() {
                break;
            }
        }
    });
    // The publisher's CONNACK before the clock starts.
    tokio::time::sleep(Duration::from_millis(200 + rtt_ms * 2)).await;
    let payload = vec![0xA5u8; RAW_MSG];
    let t0 = Instant::now();
    for _ in 0..RAW_COUNT {
        publ.publish(&topic, QoS::AtMostOnce, false, payload.clone())
            .await?;
    }
    let mut last = t0;
    let mut received = 0usize;
    let quiet = Duration::from_secs(30) + Duration::from_millis(20 * rtt_ms);
    while received < RAW_COUNT {
        match tokio::time::timeout(quiet, done_rx.recv()).await {
            Ok(Some(t)) => {
                last = t;
                received += 1;
            }
            _ => break,
        }
    }
    sub_task.abort();
    pub_task.abort();
    drop(proxy);
    if received == 0 {
        bail!("raw publish at {rtt_ms} ms: the subscriber received nothing");
    }
    Ok(Raw {
        rtt_ms,
        received,
        sent: RAW_COUNT,
        secs: (last - t0).as_secs_f64(),
    })
}

/// A loopback TCP proxy that delays every chunk by `one_way` in each direction, keeping the
/// byte order, with at most [`QUEUE`] chunks of up to [`CHUNK`] bytes held per direction.
/// The listener and its connections stop when it is dropped.
pub struct DelayProxy {
    /// The address clients connect to.
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl DelayProxy {
    /// Listen on a free loopback port; each connection is forwarded to `upstream`.
    pub async fn start(
        upstream: impl tokio::net::ToSocketAddrs + Send + Clone + 'static,
        one_way: Duration,
    ) -> Result<DelayProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            // Dropped with this task: its connections' tasks are aborted.
            let mut conns = Vec::new();
            while let Ok((down, _)) = listener.accept().await {
                let Ok(up) = TcpStream::connect(upstream.clone()).await else {
                    continue;
                };
                let _ = down.set_nodelay(true);
                let _ = up.set_nodelay(true);
                let (dr, dw) = down.into_split();
                let (ur, uw) = up.into_split();
                conns.push(Conns::new(dr, uw, ur, dw, one_way));
            }
        });
        Ok(DelayProxy { addr, task })
    }
}

/// The four tasks of one proxied connection, aborted on drop.
struct Conns(Vec<JoinHandle<()>>);

impl Drop for Conns {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

impl Conns {
    fn new(
        dr: tokio::net::tcp::OwnedReadHalf,
        uw: tokio::net::tcp::OwnedWriteHalf,
        ur: tokio::net::tcp::OwnedReadHalf,
        dw: tokio::net::tcp::OwnedWriteHalf,
        one_way: Duration,
    ) -> Conns {
        let mut v = Vec::new();
        v.extend(pipe(dr, uw, one_way));
        v.extend(pipe(ur, dw, one_way));
        Conns(v)
    }
}

/// Forward `r` to `w`, each chunk written `delay` after it was read.
fn pipe(
    mut r: tokio::net::tcp::OwnedReadHalf,
    mut w: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
) -> [JoinHandle<()>; 2] {
    let (tx, mut rx) = mpsc::channel::<(tokio::time::Instant, Vec<u8>)>(QUEUE);
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; CHUNK];
        loop {
            match r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(k) => {
                    let due = tokio::time::Instant::now() + delay;
                    let chunk = buf.get(..k).map(<[u8]>::to_vec).unwrap_or_default();
                    if tx.send((due, chunk)).await.is_err() {
                        break;
                    }
                }
            }
        }
    });
    let writer = tokio::spawn(async move {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if w.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = w.shutdown().await;
    });
    [reader, writer]
}

/// Finds mosquitto, or says how to install it.
pub fn mosquitto_binary() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("mosquitto"))
            .find(|p| p.is_file())
    }) {
        return Ok(p);
    }
    for p in ["/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"] {
        if std::path::Path::new(p).is_file() {
            return Ok(p.into());
        }
    }
    bail!(
        "mosquitto is not installed: `ota bench` needs a real MQTT broker. \
         Run scripts/setup.sh (as root it runs `apt-get install -y mosquitto`)."
    )
}

/// A mosquitto process on a free loopback port, killed on drop.
struct Mosquitto {
    child: Child,
    port: u16,
    bin: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl Mosquitto {
    async fn start() -> Result<Mosquitto> {
        let bin = mosquitto_binary()?;
        let dir = tempfile::Builder::new()
            .prefix("ota-bench-mosquitto-")
            .tempdir()?;
        for _attempt in 0..5 {
            let port = free_port()?;
            let conf = dir.path().join("mosquitto.conf");
            std::fs::write(
                &conf,
                format!(
                    "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
                     log_dest stderr\nlog_type error\nlog_type warning\n"
                ),
            )?;
            let mut child = Command::new(&bin)
                .arg("-c")
                .arg(&conf)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .with_context(|| format!("starting {}", bin.display()))?;
            for _ in 0..100 {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Ok(Mosquitto {
                        child,
                        port,
                        bin,
                        _dir: dir,
                    });
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        bail!("mosquitto did not start listening on a loopback port")
    }
}
