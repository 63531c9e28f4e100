//! `ota demo`: a whole update on this machine, nothing to install. The embedded broker and the
//! Jobs/Streams stand-in run in-process on free loopback ports; a simulated device (the
//! `device` module, the real agent) goes from v1.0.0 to v1.1.0 through download, signature
//! check, reboot, self test and confirm.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use ota_core::wire::version::AppVersion;

use crate::cloud::{OtaFile, OtaUpdate, Protocol};
use crate::device::cli::describe;
use crate::device::image::{self, Behavior};
use crate::device::{run, DeviceEvent, DeviceOptions};
use crate::keys;
use crate::serve::{ServeConfig, Server};

/// Arguments of `ota demo`.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Size of the images' payload, in KiB.
    #[arg(long, default_value_t = 384, value_name = "KIB")]
    pub image_kib: u32,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 120, value_name = "SECS")]
    pub timeout: u64,
}

const THING: &str = "demo-device";

fn lock(
    c: &std::sync::Mutex<crate::cloud::Cloud>,
) -> std::sync::MutexGuard<'_, crate::cloud::Cloud> {
    c.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The progress display: a bar on a terminal, a line every 10 % otherwise.
struct Progress {
    tty: bool,
    total: u32,
    last_decile: u32,
    started: Instant,
    drawn: bool,
}

impl Progress {
    fn block(&mut self, received: u32, bytes: u64) {
        let total = self.total.max(1);
        let pct = (u64::from(received.min(total)) * 100 / u64::from(total)) as u32;
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        let rate = bytes as f64 / 1024.0 / secs;
        if self.tty {
            let width = 32usize;
            let filled = (pct as usize * width) / 100;
            print!(
                "\r  [{}{}] {pct:3}%  {received}/{total} blocks  {:.0} KiB/s ",
                "#".repeat(filled),
                "-".repeat(width - filled),
                rate
            );
            let _ = std::io::stdout().flush();
            self.drawn = true;
        } else if pct / 10 > self.last_decile || received == 1 {
            self.last_decile = pct / 10;
            println!("  download {pct:3}%  {received}/{total} blocks");
        }
    }

    fn line(&mut self, text: &str) {
        if self.drawn {
            println!();
            self.drawn = false;
        }
        println!("{text}");
    }
}

/// Run the demo; `Ok` only when the job ends SUCCEEDED and the device runs v1.1.0.
pub fn main(a: DemoArgs) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(demo(a))
}

async fn demo(a: DemoArgs) -> Result<()> {
    let t0 = Instant::now();
    let dir = tempfile::Builder::new().prefix("ota-demo-").tempdir()?;
    let server = Server::start(ServeConfig::loopback()).await?;
    println!("ota demo: a device updates from v1.0.0 to v1.1.0 over MQTT, all on this machine");
    println!(
        "  broker + Jobs/Streams stand-in  mqtt://{}",
        server.mqtt_addr
    );
    let (sk_path, pk_path) = keys::keygen(&dir.path().join("keys"))?;
    let sk = keys::read_signing_key(&sk_path)?;
    println!("  signing key                     {}", pk_path.display());
    let v1 = AppVersion::new(1, 0, 0);
    let v2 = AppVersion::new(1, 1, 0);
    let payload = a.image_kib.saturating_mul(1024);
    let img1 = image::build(v1, payload, Behavior::Normal);
    let img2 = image::build(v2, payload, Behavior::Normal);
    let signature = keys::sign(&sk, &img2);
    println!(
        "  images                          v{v1} and v{v2}, {} bytes each; v{v2} signed (ECDSA P-256)",
        img2.len()
    );
    let (host, port) = crate::device::cli::host_port(&server.mqtt_addr)?;
    let mut opts = DeviceOptions::new(
        THING,
        dir.path().join("device"),
        &host,
        port,
        std::fs::read(&pk_path)?,
    );
    opts.version = v1;
    opts.factory_image = Some(img1);
    let update = OtaUpdate {
        id: Some("demo-1".into()),
        things: vec![THING.into()],
        groups: Vec::new(),
        protocols: vec![Protocol::Mqtt],
        files: vec![OtaFile {
            data: img2.clone(),
            filepath: Some("/firmware/app.bin".into()),
            file_type: Some(0),
            cert_file: Some("ota-signing-pub.pem".into()),
            signature: Some(signature),
        }],
    };
    let (job_id, out) = lock(&server.cloud)
        .create_ota_update(update, now_secs())
        .map_err(|e| anyhow::anyhow!("creating the job: {e:?}"))?;
    server.publisher.send(out);
    println!("  job                             {job_id} for thing {THING}");
    println!();

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut progress = Progress {
        tty: std::io::stdout().is_terminal(),
        total: 0,
        last_decile: 0,
        started: Instant::now(),
        drawn: false,
    };
    let mut download = (None::<Instant>, None::<Instant>, 0u32);
    let printer = async {
        while let Some(e) = rx.recv().await {
            match &e {
                DeviceEvent::Job { blocks, .. } => {
                    progress.total = *blocks;
                    progress.started = Instant::now();
                }
                DeviceEvent::Block { received, bytes } => {
                    if download.0.is_none() {
                        download.0 = Some(Instant::now());
                    }
                    download.1 = Some(Instant::now());
                    download.2 = *received;
                    progress.block(*received, *bytes);
                }
                _ => {}
            }
            if let Some(line) = describe(&e) {
                progress.line(&format!("  device: {line}"));
            }
        }
    };
    let device = async { tokio::join!(run(opts, Some(tx)), printer).0 };
    let report = tokio::time::timeout(Duration::from_secs(a.timeout), device)
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "timed out after {} s: the update did not finish (see the device lines above)",
                a.timeout
            )
        })?
        .context("device")?;
    let (status, details) = {
        let cloud = lock(&server.cloud);
        let e = cloud
            .jobs
            .execution(THING, &job_id)
            .context("the job execution is gone")?;
        (
            e.status.as_str().to_string(),
            format!("{:?}", e.status_details),
        )
    };
    let secs = match download {
        (Some(a), Some(b), _) => (b - a).as_secs_f64(),
        _ => 0.0,
    };
    println!();
    println!("summary");
    println!("  job              {job_id}: {status} {details}");
    println!(
        "  running version  v{} -> v{}",
        report.initial_version, report.version
    );
    println!(
        "  downloaded       {} bytes in {} blocks of 4096 in {secs:.2} s ({:.0} KiB/s)",
        report.bytes,
        report.blocks,
        report.bytes as f64 / 1024.0 / secs.max(1e-3)
    );
    println!("  boots            {}", report.boots);
    println!("  total time       {:.2} s", t0.elapsed().as_secs_f64());
    if status != "SUCCEEDED" || report.version != v2 {
        bail!(
            "the update did not succeed: job {status}, device runs v{}",
            report.version
        );
    }
    Ok(())
}
