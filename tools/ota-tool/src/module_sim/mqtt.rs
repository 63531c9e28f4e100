//! [`ModuleCloud`] over MQTT (rumqttc) against `ota serve` (or AWS IoT): a minimal Jobs +
//! Streams client for the module's own thing name. It asks `$next`, listens to
//! `notify-next`, proposes jobs of file type 101 / 202 to the emulator, downloads the accepted
//! file over MQTT Streams (JSON encoding, 4 KiB blocks, missing blocks asked again after a
//! quiet second) and reports IN_PROGRESS on accept, SUCCEEDED or FAILED at the end.
//!
//! The emulator side is synchronous; the MQTT session runs in a tokio task and talks to it
//! through channels. The session starts on the first `AT+CONNECT` and is kept across emulated
//! module reboots (the module's cloud state is what matters to the host here).

use std::collections::BTreeSet;
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use anyhow::{Context, Result};
use base64::Engine as _;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::{json, Value as Json};
use tokio::sync::mpsc;

use super::cloud::{CloudEvent, JobKind, JobOutcome, ModuleCloud, Proposal};

/// Stream block size asked for.
pub const BLOCK: u64 = 4096;
/// Blocks asked per stream request.
pub const BLOCKS_PER_REQUEST: u64 = 16;

enum Cmd {
    Connect,
    Accept(String),
    Report(String, JobOutcome),
    Publish(String, Vec<u8>),
    Subscribe(String),
}

/// The MQTT cloud of one module.
pub struct MqttCloud {
    tx: mpsc::UnboundedSender<Cmd>,
    rx: std_mpsc::Receiver<CloudEvent>,
    started: bool,
}

impl MqttCloud {
    /// Prepare a session to `broker` (HOST:PORT) as `thing`; it starts on the first
    /// `connect`. Must be called inside a tokio runtime.
    pub fn start(broker: &str, thing: &str) -> Result<Self> {
        let (host, port) = broker
            .rsplit_once(':')
            .with_context(|| format!("--broker {broker}: expected HOST:PORT"))?;
        let port: u16 = port
            .parse()
            .with_context(|| format!("--broker {broker}: bad port"))?;
        let (tx, cmd_rx) = mpsc::unbounded_channel();
        let (ev_tx, rx) = std_mpsc::channel();
        let session = Session {
            thing: thing.to_string(),
            host: host.to_string(),
            port,
            events: ev_tx,
            job: None,
            done: BTreeSet::new(),
            token: 0,
        };
        tokio::spawn(session.run(cmd_rx));
        Ok(Self {
            tx,
            rx,
            started: false,
        })
    }
}

impl ModuleCloud for MqttCloud {
    fn connect(&mut self, _thing: &str) -> Result<(), String> {
        if !self.started {
            self.tx
                .send(Cmd::Connect)
                .map_err(|_| "MQTT session task ended".to_string())?;
            self.started = true;
        }
        Ok(())
    }

    fn poll(&mut self) -> Vec<CloudEvent> {
        self.rx.try_iter().collect()
    }

    fn accept(&mut self, job_id: &str) {
        let _ = self.tx.send(Cmd::Accept(job_id.to_string()));
    }

    fn report(&mut self, job_id: &str, outcome: JobOutcome) {
        let _ = self.tx.send(Cmd::Report(job_id.to_string(), outcome));
    }

    fn publish(&mut self, topic: &str, payload: &[u8]) -> Result<(), String> {
        self.tx
            .send(Cmd::Publish(topic.to_string(), payload.to_vec()))
            .map_err(|_| "MQTT session task ended".to_string())
    }

    fn subscribe(&mut self, topic: &str) {
        let _ = self.tx.send(Cmd::Subscribe(topic.to_string()));
    }
}

/// The job being handled.
struct Job {
    id: String,
    stream: String,
    file_id: u64,
    size: u64,
    data: Vec<u8>,
    have: Vec<bool>,
    downloading: bool,
    requested_until: u64,
}

impl Job {
    fn blocks(&self) -> u64 {
        self.size.div_ceil(BLOCK)
    }
    fn complete(&self) -> bool {
        self.have.iter().all(|h| *h)
    }
}

struct Session {
    thing: String,
    host: String,
    port: u16,
    events: std_mpsc::Sender<CloudEvent>,
    job: Option<Job>,
    done: BTreeSet<String>,
    token: u64,
}

impl Session {
    fn topic(&self, rest: &str) -> String {
        format!("$aws/things/{}/{rest}", self.thing)
    }

    fn token(&mut self) -> String {
        self.token += 1;
        format!("modsim-{}", self.token)
    }

    async fn run(mut self, mut cmds: mpsc::UnboundedReceiver<Cmd>) {
        // Wait for the first AT+CONNECT.
        loop {
            match cmds.recv().await {
                None => return,
                Some(Cmd::Connect) => break,
                Some(_) => {}
            }
        }
        let mut opts = MqttOptions::new(self.thing.clone(), self.host.clone(), self.port);
        opts.set_keep_alive(Duration::from_secs(30));
        opts.set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut eventloop) = AsyncClient::new(opts, 256);
        let subs = [
            self.topic("jobs/notify-next"),
            self.topic("jobs/$next/get/accepted"),
            self.topic("jobs/$next/get/rejected"),
            self.topic("jobs/+/update/accepted"),
            self.topic("jobs/+/update/rejected"),
            self.topic("streams/+/data/json"),
            self.topic("streams/+/rejected/json"),
        ];
        let mut quiet = tokio::time::interval(Duration::from_millis(1000));
        let mut progressed = false;
        loop {
            tokio::select! {
                ev = eventloop.poll() => match ev {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        for s in &subs {
                            let _ = client.subscribe(s.clone(), QoS::AtLeastOnce).await;
                        }
                        self.get_next(&client).await;
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        if self.incoming(&client, &p.topic, &p.payload).await {
                            progressed = true;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                },
                cmd = cmds.recv() => match cmd {
                    None => return,
                    Some(c) => self.command(&client, c).await,
                },
                _ = quiet.tick() => {
                    // No data for a second: ask for the missing blocks again.
                    if !std::mem::take(&mut progressed) {
                        self.request_blocks(&client).await;
                    }
                }
            }
        }
    }

    async fn get_next(&mut self, client: &AsyncClient) {
        let t = self.token();
        let _ = client
            .publish(
                self.topic("jobs/$next/get"),
                QoS::AtLeastOnce,
                false,
                json!({ "clientToken": t }).to_string(),
            )
            .await;
    }

    async fn update(&mut self, client: &AsyncClient, job_id: &str, status: &str, reason: &str) {
        let body = json!({ "status": status, "statusDetails": { "reason": reason } });
        let _ = client
            .publish(
                self.topic(&format!("jobs/{job_id}/update")),
                QoS::AtLeastOnce,
                false,
                body.to_string(),
            )
            .await;
    }

    async fn command(&mut self, client: &AsyncClient, c: Cmd) {
        match c {
            Cmd::Connect => {}
            Cmd::Accept(id) => {
                if let Some(j) = self.job.as_mut().filter(|j| j.id == id) {
                    j.downloading = true;
                    self.update(client, &id, "IN_PROGRESS", "accepted by the host")
                        .await;
                    self.request_blocks(client).await;
                }
            }
            Cmd::Report(id, outcome) => {
                let (status, reason) = match &outcome {
                    JobOutcome::Succeeded => ("SUCCEEDED", "accepted".to_string()),
                    JobOutcome::Failed(r) => ("FAILED", r.clone()),
                };
                self.update(client, &id, status, &reason).await;
                self.done.insert(id.clone());
                if self.job.as_ref().is_some_and(|j| j.id == id) {
                    self.job = None;
                }
                self.get_next(client).await;
            }
            Cmd::Publish(t, p) => {
                let _ = client.publish(t, QoS::AtLeastOnce, false, p).await;
            }
            Cmd::Subscribe(t) => {
                let _ = client.subscribe(t, QoS::AtLeastOnce).await;
            }
        }
    }

    async fn request_blocks(&mut self, client: &AsyncClient) {
        let Some(j) = self.job.as_mut().filter(|j| j.downloading && !j.complete()) else {
            return;
        };
        let Some(first) = j.have.iter().position(|h| !*h) else {
            return;
        };
        let n = (j.blocks() - first as u64).min(BLOCKS_PER_REQUEST);
        j.requested_until = first as u64 + n;
        let topic = format!("$aws/things/{}/streams/{}/get/json", self.thing, j.stream);
        let body = json!({ "f": j.file_id, "l": BLOCK, "o": first, "n": n });
        let _ = client
            .publish(topic, QoS::AtMostOnce, false, body.to_string())
            .await;
    }

    /// Handle a message; `true` when a stream block arrived.
    async fn incoming(&mut self, client: &AsyncClient, topic: &str, payload: &[u8]) -> bool {
        let prefix = self.topic("");
        let Some(rest) = topic.strip_prefix(&prefix) else {
            let _ = self.events.send(CloudEvent::Message {
                topic: topic.to_string(),
                payload: payload.to_vec(),
            });
            return false;
        };
        let v: Json = serde_json::from_slice(payload).unwrap_or(Json::Null);
        if rest == "jobs/notify-next" || rest == "jobs/$next/get/accepted" {
            self.job_document(&v["execution"]);
            return false;
        }
        if rest.starts_with("streams/") && rest.ends_with("/data/json") {
            return self.block(client, &v).await;
        }
        if rest.starts_with("streams/") && rest.ends_with("/rejected/json") {
            if let Some(j) = self.job.as_mut().filter(|j| j.downloading) {
                j.downloading = false;
                let _ = self.events.send(CloudEvent::DownloadFailed {
                    job_id: j.id.clone(),
                    reason: format!("stream rejected: {v}"),
                });
            }
        }
        if !rest.starts_with("streams/") && !rest.starts_with("jobs/") {
            let _ = self.events.send(CloudEvent::Message {
                topic: topic.to_string(),
                payload: payload.to_vec(),
            });
        }
        false
    }

    fn job_document(&mut self, exec: &Json) {
        let Some(id) = exec["jobId"].as_str() else {
            return;
        };
        if self.done.contains(id) || self.job.is_some() {
            return;
        }
        let ota = &exec["jobDocument"]["afr_ota"];
        let Some(f) = ota["files"].get(0) else {
            return;
        };
        let file_type = f["fileType"].as_u64().unwrap_or(0);
        let Some(kind) = u32::try_from(file_type)
            .ok()
            .and_then(JobKind::from_file_type)
        else {
            // Not for this module (types 101 / 202 only); leave it to others.
            self.done.insert(id.to_string());
            return;
        };
        let size = f["filesize"].as_u64().unwrap_or(0);
        let filepath = f["filepath"].as_str().unwrap_or("").to_string();
        let signature = f["sig-sha256-ecdsa"]
            .as_str()
            .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok());
        let blocks = size.div_ceil(BLOCK) as usize;
        self.job = Some(Job {
            id: id.to_string(),
            stream: ota["streamname"].as_str().unwrap_or("").to_string(),
            file_id: f["fileid"].as_u64().unwrap_or(0),
            size,
            data: vec![0; size as usize],
            have: vec![false; blocks],
            downloading: false,
            requested_until: 0,
        });
        let _ = self.events.send(CloudEvent::Proposed(Proposal {
            job_id: id.to_string(),
            kind,
            // A module job names its version by its file path (like the CCM image name).
            version: filepath.clone(),
            metadata: f.to_string(),
            signature,
        }));
    }

    async fn block(&mut self, client: &AsyncClient, v: &Json) -> bool {
        let Some(j) = self.job.as_mut().filter(|j| j.downloading) else {
            return false;
        };
        let (Some(i), Some(p)) = (v["i"].as_u64(), v["p"].as_str()) else {
            return false;
        };
        let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(p) else {
            return false;
        };
        let start = (i * BLOCK) as usize;
        let end = start + bytes.len();
        if v["f"].as_u64() != Some(j.file_id) || end > j.data.len() {
            return false;
        }
        if let Some(dst) = j.data.get_mut(start..end) {
            dst.copy_from_slice(&bytes);
        }
        if let Some(h) = j.have.get_mut(i as usize) {
            *h = true;
        }
        if j.complete() {
            j.downloading = false;
            let _ = self.events.send(CloudEvent::Downloaded {
                job_id: j.id.clone(),
                image: j.data.clone(),
            });
        } else {
            // Ask for the next batch once this one is in.
            let first_missing = j.have.iter().position(|h| !*h).unwrap_or(0) as u64;
            if first_missing >= j.requested_until {
                self.request_blocks(client).await;
            }
        }
        true
    }
}
