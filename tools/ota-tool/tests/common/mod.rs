//! Test helpers: a device played with a plain MQTT client (rumqttc), a mosquitto process on a
//! free loopback port, a controllable clock.

#![allow(dead_code)]

pub mod uart;

use std::collections::VecDeque;
use std::net::TcpListener as StdListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use ota_tool::serve::Clock;

/// How long any single expected message may take (a bound, not a speed assertion).
pub const WAIT: Duration = Duration::from_secs(20);

/// A clock the test moves by hand.
#[derive(Clone)]
pub struct TestClock(pub Arc<AtomicU64>);

impl TestClock {
    pub fn new(start: u64) -> Self {
        Self(Arc::new(AtomicU64::new(start)))
    }
    pub fn clock(&self) -> Clock {
        let t = self.0.clone();
        Arc::new(move || t.load(Ordering::SeqCst))
    }
    pub fn advance(&self, secs: u64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }
}

enum Msg {
    Publish(String, Vec<u8>),
    SubAck,
    ConnAck,
}

/// A device: an MQTT client with a buffer of received messages.
pub struct Device {
    pub client: AsyncClient,
    rx: mpsc::UnboundedReceiver<Msg>,
    buf: VecDeque<(String, Vec<u8>)>,
    task: JoinHandle<()>,
}

impl Drop for Device {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Device {
    pub async fn connect(addr: &str, id: &str) -> Device {
        let (host, port) = addr.rsplit_once(':').unwrap();
        let mut opts = MqttOptions::new(id, host, port.parse().unwrap());
        opts.set_keep_alive(Duration::from_secs(30));
        opts.set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut eventloop) = AsyncClient::new(opts, 64);
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let _ = tx.send(Msg::Publish(p.topic.clone(), p.payload.to_vec()));
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        let _ = tx.send(Msg::SubAck);
                    }
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        let _ = tx.send(Msg::ConnAck);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        eprintln!("device eventloop: {e}");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        });
        let mut d = Device {
            client,
            rx,
            buf: VecDeque::new(),
            task,
        };
        d.wait_for(|m| matches!(m, Msg::ConnAck), "CONNACK").await;
        d
    }

    async fn wait_for(&mut self, want: impl Fn(&Msg) -> bool, what: &str) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let m = tokio::time::timeout_at(deadline, self.rx.recv())
                .await
                .unwrap_or_else(|_| panic!("no {what} within {WAIT:?}"))
                .expect("device eventloop ended");
            if want(&m) {
                return;
            }
            if let Msg::Publish(t, p) = m {
                self.buf.push_back((t, p));
            }
        }
    }

    pub async fn subscribe(&mut self, filter: &str, qos: QoS) {
        self.client.subscribe(filter, qos).await.unwrap();
        self.wait_for(
            |m| matches!(m, Msg::SubAck),
            &format!("SUBACK for {filter}"),
        )
        .await;
    }

    pub async fn unsubscribe(&mut self, filter: &str) {
        self.client.unsubscribe(filter).await.unwrap();
    }

    pub async fn publish(&self, topic: &str, qos: QoS, payload: impl Into<Vec<u8>>) {
        self.client
            .publish(topic, qos, false, payload.into())
            .await
            .unwrap();
    }

    /// The next message on exactly `topic` (others are kept for later).
    pub async fn expect(&mut self, topic: &str) -> Vec<u8> {
        if let Some(i) = self.buf.iter().position(|(t, _)| t == topic) {
            return self.buf.remove(i).unwrap().1;
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let m = tokio::time::timeout_at(deadline, self.rx.recv()).await;
            match m {
                Ok(Some(Msg::Publish(t, p))) if t == topic => return p,
                Ok(Some(Msg::Publish(t, p))) => self.buf.push_back((t, p)),
                Ok(Some(_)) => {}
                Ok(None) => panic!("device eventloop ended"),
                Err(_) => {
                    let seen: Vec<_> = self.buf.iter().map(|(t, _)| t.clone()).collect();
                    panic!("nothing on {topic} within {WAIT:?}; buffered: {seen:?}")
                }
            }
        }
    }

    /// The next message on any topic, however long it takes (`None`: the event loop ended).
    pub async fn next(&mut self) -> Option<(String, Vec<u8>)> {
        if let Some(m) = self.buf.pop_front() {
            return Some(m);
        }
        loop {
            if let Msg::Publish(t, p) = self.rx.recv().await? {
                return Some((t, p));
            }
        }
    }

    /// The next message on `topic` parsed as JSON.
    pub async fn expect_json(&mut self, topic: &str) -> serde_json::Value {
        let p = self.expect(topic).await;
        serde_json::from_slice(&p)
            .unwrap_or_else(|e| panic!("{topic}: not JSON ({e}): {}", String::from_utf8_lossy(&p)))
    }

    /// Checks that nothing arrives on `topic` for `d` (used only where a message must NOT be
    /// delivered; the wait is a bound, never a speed assertion).
    pub async fn expect_nothing(&mut self, topic: &str, d: Duration) {
        assert!(
            !self.buf.iter().any(|(t, _)| t == topic),
            "unexpected message on {topic}"
        );
        let deadline = tokio::time::Instant::now() + d;
        while let Ok(m) = tokio::time::timeout_at(deadline, self.rx.recv()).await {
            match m {
                Some(Msg::Publish(t, p)) => {
                    assert_ne!(t, topic, "unexpected message on {topic}");
                    self.buf.push_back((t, p));
                }
                Some(_) => {}
                None => break,
            }
        }
    }
}

/// Finds mosquitto, or fails the test saying how to install it.
pub fn mosquitto_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("mosquitto"))
            .find(|p| p.is_file())
    }) {
        return p;
    }
    for p in ["/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"] {
        if std::path::Path::new(p).is_file() {
            return p.into();
        }
    }
    panic!(
        "mosquitto is not installed: these integration tests need a real MQTT broker. \
         Run scripts/setup.sh (as root it runs `apt-get install -y mosquitto`)."
    );
}

/// A mosquitto process on a free loopback port, killed on drop.
pub struct Mosquitto {
    pub child: Child,
    pub port: u16,
    _dir: PathBuf,
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self._dir);
    }
}

pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Mosquitto {
    pub async fn start() -> Mosquitto {
        let bin = mosquitto_binary();
        let dir = std::env::temp_dir().join(format!(
            "ota-tool-mosquitto-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        for _attempt in 0..5 {
            let port = free_port();
            let conf = dir.join("mosquitto.conf");
            std::fs::write(
                &conf,
                format!(
                    "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
                     log_dest stderr\nlog_type error\nlog_type warning\n"
                ),
            )
            .unwrap();
            let mut child = Command::new(&bin)
                .arg("-c")
                .arg(&conf)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
            // Bounded wait until it accepts connections.
            for _ in 0..100 {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Mosquitto {
                        child,
                        port,
                        _dir: dir,
                    };
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("mosquitto did not start listening on a loopback port");
    }
}
