//! `ota serve`: the stand-in over a broker (embedded or external), the HTTP download server and
//! the admin API, wired together.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::broker::{Broker, Hook};
use crate::cloud::presign::Presigner;
use crate::cloud::{Cloud, Outgoing, REQUEST_FILTERS};
use crate::http::{self, parse_range, Request, Response};

/// Unix time in seconds; injectable so tests can move time.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    })
}

/// Where MQTT comes from.
#[derive(Clone, Debug)]
pub enum MqttMode {
    /// The embedded broker listening on this address.
    Embedded {
        /// Listen address (port 0: any free port).
        bind: SocketAddr,
        /// Deliver Jobs replies to the requester without a subscription, as AWS IoT does.
        aws_reply_delivery: bool,
    },
    /// An external broker, reached with an MQTT client.
    External {
        /// Broker host.
        host: String,
        /// Broker port.
        port: u16,
    },
}

/// Configuration of a server.
#[derive(Clone)]
pub struct ServeConfig {
    /// The broker.
    pub mqtt: MqttMode,
    /// HTTP download server address.
    pub http_bind: SocketAddr,
    /// Admin API address.
    pub admin_bind: SocketAddr,
    /// Thing groups.
    pub groups: Vec<(String, Vec<String>)>,
    /// Lifetime of presigned URLs.
    pub url_ttl_secs: u64,
    /// Where `server.json` is written.
    pub state_dir: Option<PathBuf>,
    /// The clock.
    pub clock: Clock,
    /// Print one line per device request on stderr.
    pub log: bool,
}

impl ServeConfig {
    /// Everything on loopback with free ports, embedded broker with AWS reply delivery.
    pub fn loopback() -> Self {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        Self {
            mqtt: MqttMode::Embedded {
                bind: any,
                aws_reply_delivery: true,
            },
            http_bind: any,
            admin_bind: any,
            groups: Vec::new(),
            url_ttl_secs: 3600,
            state_dir: None,
            clock: system_clock(),
            log: false,
        }
    }
}

/// What `ota serve` records in `<state>/server.json` for the `ota job` commands.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ServerInfo {
    /// Admin API `host:port`.
    pub admin: String,
    /// Bearer token of the admin API.
    pub admin_token: String,
    /// MQTT broker `host:port`.
    pub mqtt: String,
    /// HTTP download base URL.
    pub http: String,
    /// Whether the broker is the embedded one.
    pub embedded_broker: bool,
}

/// File name of the server record inside the state directory.
pub const SERVER_FILE: &str = "server.json";

/// Publishes what the service says, on whichever broker.
#[derive(Clone)]
pub struct Publisher(mpsc::UnboundedSender<Outgoing>);

impl Publisher {
    /// Queues messages for publication, in order.
    pub fn send(&self, out: Vec<Outgoing>) {
        for o in out {
            let _ = self.0.send(o);
        }
    }
}

/// A running server. Dropping it stops every task.
pub struct Server {
    /// MQTT broker address (embedded or external).
    pub mqtt_addr: String,
    /// HTTP download server address.
    pub http_addr: SocketAddr,
    /// Admin API address.
    pub admin_addr: SocketAddr,
    /// Admin API bearer token.
    pub admin_token: String,
    /// The service state.
    pub cloud: Arc<Mutex<Cloud>>,
    /// Publishes on the broker.
    pub publisher: Publisher,
    /// The embedded broker, if any.
    pub broker: Option<Broker>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn lock(cloud: &Mutex<Cloud>) -> std::sync::MutexGuard<'_, Cloud> {
    cloud
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One stderr line per device request the service answered: what was asked and what went back
/// (for streams, the block range rather than every block).
pub fn log_request(topic: &str, out: &[Outgoing]) {
    let Some(first) = out.first() else { return };
    let short = topic.strip_prefix("$aws/things/").unwrap_or(topic);
    let answer = first.topic.rsplit('/').next().unwrap_or_default();
    if first.topic.contains("/data/") {
        let n = out.len();
        eprintln!("{short} -> {n} block message(s)");
        return;
    }
    let detail = serde_json::from_slice::<serde_json::Value>(&first.payload)
        .ok()
        .map(|v| {
            if let Some(code) = v["code"].as_str().or(v["o"].as_str()) {
                code.to_string()
            } else if let Some(st) = v["executionState"]["status"].as_str() {
                st.to_string()
            } else if let Some(id) = v["execution"]["jobId"].as_str() {
                id.to_string()
            } else {
                "no pending job".to_string()
            }
        })
        .unwrap_or_default();
    eprintln!("{short} -> {answer} {detail}");
}

/// Answers a download request: 403 for a bad or expired URL, 206 for a range, 200 otherwise.
pub fn download(cloud: &Mutex<Cloud>, req: &Request, now: u64) -> Response {
    if req.method != "GET" && req.method != "HEAD" {
        return Response::text(405, "only GET\n");
    }
    let (presigner, file) = {
        let c = lock(cloud);
        let Some(p) = c.presigner.clone() else {
            return Response::text(404, "no HTTP data path\n");
        };
        match p.check(&req.target, now) {
            Ok((stream, id)) => (p, c.http_file(&stream, id)),
            Err(e) => {
                return Response::new(
                    403,
                    "application/xml",
                    format!(
                        "<Error><Code>AccessDenied</Code><Message>{}</Message></Error>",
                        match e {
                            crate::cloud::presign::UrlError::Expired => "Request has expired",
                            _ => "Request signature does not match",
                        }
                    )
                    .into_bytes(),
                )
            }
        }
    };
    let _ = presigner;
    let Some(file) = file else {
        return Response::text(404, "no such file\n");
    };
    let len = file.len() as u64;
    let mut resp = match parse_range(req.header("range"), len) {
        Ok(None) => Response::new(200, "application/octet-stream", file.to_vec()),
        Ok(Some((a, b))) => {
            let mut r = Response::new(
                206,
                "application/octet-stream",
                file.get(a as usize..=b as usize)
                    .unwrap_or_default()
                    .to_vec(),
            );
            r.headers
                .push(("Content-Range".into(), format!("bytes {a}-{b}/{len}")));
            r
        }
        Err(()) => {
            let mut r = Response::text(416, "range not satisfiable\n");
            r.headers
                .push(("Content-Range".into(), format!("bytes */{len}")));
            r
        }
    };
    resp.headers.push(("Accept-Ranges".into(), "bytes".into()));
    if req.method == "HEAD" {
        resp.body.clear();
    }
    resp
}

impl Server {
    /// Starts every part and returns once they listen (and, on an external broker, once the
    /// stand-in is subscribed).
    pub async fn start(cfg: ServeConfig) -> Result<Server> {
        let http_listener = TcpListener::bind(cfg.http_bind)
            .await
            .with_context(|| format!("binding HTTP on {}", cfg.http_bind))?;
        let http_addr = http_listener.local_addr()?;
        let admin_listener = TcpListener::bind(cfg.admin_bind)
            .await
            .with_context(|| format!("binding the admin API on {}", cfg.admin_bind))?;
        let admin_addr = admin_listener.local_addr()?;
        let mut secret = [0u8; 32];
        OsRng.fill_bytes(&mut secret);
        let presigner = Presigner {
            base: format!("http://{http_addr}"),
            secret,
            ttl_secs: cfg.url_ttl_secs,
        };
        let mut cloud = Cloud::new(Some(presigner));
        for (g, things) in &cfg.groups {
            cloud.groups.insert(g.clone(), things.clone());
        }
        let cloud = Arc::new(Mutex::new(cloud));
        let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Outgoing>();
        let publisher = Publisher(out_tx);
        let mut tasks = Vec::new();
        let clock = cfg.clock.clone();

        let (mqtt_addr, broker) = match &cfg.mqtt {
            MqttMode::Embedded {
                bind,
                aws_reply_delivery,
            } => {
                let l = TcpListener::bind(bind)
                    .await
                    .with_context(|| format!("binding MQTT on {bind}"))?;
                let addr = l.local_addr()?;
                let c = cloud.clone();
                let clk = clock.clone();
                let log = cfg.log;
                let hook: Hook = Arc::new(move |topic: &str, payload: &[u8]| {
                    let out = lock(&c).handle_publish(topic, payload, clk());
                    if log {
                        log_request(topic, &out);
                    }
                    out
                });
                let broker = Broker::new(Some(hook), *aws_reply_delivery);
                let b = broker.clone();
                tasks.push(tokio::spawn(async move {
                    let _ = b.run(l).await;
                }));
                let b = broker.clone();
                tasks.push(tokio::spawn(async move {
                    while let Some(o) = out_rx.recv().await {
                        b.publish(&o.topic, &o.payload, o.qos, None);
                    }
                }));
                (addr.to_string(), Some(broker))
            }
            MqttMode::External { host, port } => {
                let task =
                    external(host, *port, cloud.clone(), clock.clone(), out_rx, cfg.log).await?;
                tasks.extend(task);
                (format!("{host}:{port}"), None)
            }
        };

        let c = cloud.clone();
        let clk = clock.clone();
        let handler: http::Handler = Arc::new(move |req| {
            let resp = download(&c, &req, clk());
            Box::pin(async move { resp })
        });
        tasks.push(tokio::spawn(async move {
            let _ = http::serve(http_listener, handler).await;
        }));

        let mut tok = [0u8; 16];
        OsRng.fill_bytes(&mut tok);
        let admin_token: String = tok.iter().map(|b| format!("{b:02x}")).collect();
        let handler = crate::admin::handler(
            cloud.clone(),
            publisher.clone(),
            clock.clone(),
            admin_token.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let _ = http::serve(admin_listener, handler).await;
        }));

        let c = cloud.clone();
        let p = publisher.clone();
        let clk = clock.clone();
        tasks.push(tokio::spawn(async move {
            let mut iv = tokio::time::interval(Duration::from_secs(1));
            loop {
                iv.tick().await;
                let out = lock(&c).tick(clk());
                p.send(out);
            }
        }));

        let server = Server {
            mqtt_addr,
            http_addr,
            admin_addr,
            admin_token,
            cloud,
            publisher,
            broker,
            tasks,
        };
        if let Some(dir) = &cfg.state_dir {
            server.write_info(dir)?;
        }
        Ok(server)
    }

    /// What goes into `server.json`.
    pub fn info(&self) -> ServerInfo {
        ServerInfo {
            admin: self.admin_addr.to_string(),
            admin_token: self.admin_token.clone(),
            mqtt: self.mqtt_addr.clone(),
            http: format!("http://{}", self.http_addr),
            embedded_broker: self.broker.is_some(),
        }
    }

    fn write_info(&self, dir: &std::path::Path) -> Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(SERVER_FILE);
        let text = serde_json::to_string_pretty(&self.info())?;
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        }
        Ok(())
    }
}

/// Runs the stand-in as a client of an external broker: subscribes to the request topics,
/// answers them, and publishes admin-caused messages. Replies reach subscribers only.
async fn external(
    host: &str,
    port: u16,
    cloud: Arc<Mutex<Cloud>>,
    clock: Clock,
    mut out_rx: mpsc::UnboundedReceiver<Outgoing>,
    log: bool,
) -> Result<Vec<JoinHandle<()>>> {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    let mut id = [0u8; 6];
    OsRng.fill_bytes(&mut id);
    let id: String = id.iter().map(|b| format!("{b:02x}")).collect();
    let mut opts = MqttOptions::new(format!("ota-cloud-{id}"), host, port);
    opts.set_keep_alive(Duration::from_secs(30));
    opts.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut eventloop) = AsyncClient::new(opts, 256);
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<Result<(), String>>();
    let (fwd_tx, mut fwd_rx) = mpsc::unbounded_channel::<Outgoing>();
    let sub_client = client.clone();
    let poll = tokio::spawn(async move {
        let mut ready = Some(ready_tx);
        let mut subacks = 0usize;
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    for f in REQUEST_FILTERS {
                        let _ = sub_client.try_subscribe(f, QoS::AtLeastOnce);
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    subacks += 1;
                    if subacks >= REQUEST_FILTERS.len() {
                        if let Some(r) = ready.take() {
                            let _ = r.send(Ok(()));
                        }
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let out = lock(&cloud).handle_publish(&p.topic, &p.payload, clock());
                    if log {
                        log_request(&p.topic, &out);
                    }
                    for o in out {
                        let _ = fwd_tx.send(o);
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    if let Some(r) = ready.take() {
                        let _ = r.send(Err(e.to_string()));
                        return;
                    }
                    eprintln!("ota serve: broker connection: {e}; reconnecting");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    });
    let pub_task = tokio::spawn(async move {
        loop {
            let o = tokio::select! {
                Some(o) = fwd_rx.recv() => o,
                Some(o) = out_rx.recv() => o,
                else => break,
            };
            let qos = if o.qos == 0 {
                QoS::AtMostOnce
            } else {
                QoS::AtLeastOnce
            };
            if client
                .publish(o.topic, qos, false, o.payload)
                .await
                .is_err()
            {
                break;
            }
        }
    });
    match tokio::time::timeout(Duration::from_secs(10), ready_rx).await {
        Ok(Ok(Ok(()))) => Ok(vec![poll, pub_task]),
        Ok(Ok(Err(e))) => {
            poll.abort();
            pub_task.abort();
            bail!("cannot connect to the MQTT broker at {host}:{port}: {e}")
        }
        _ => {
            poll.abort();
            pub_task.abort();
            Err(anyhow!(
                "the MQTT broker at {host}:{port} did not accept the stand-in's subscriptions in 10 s"
            ))
        }
    }
}
