//! [`ModuleCloud`] over MQTT against `ota serve` (or AWS IoT): the module's cloud side is an
//! ota-core device. The real [`Agent`] and [`Driver`] run, with the thing name of the module,
//! over the rumqttc session `ota device` uses ([`Session`]) and the PAL parts of
//! [`super::agent`]; the agent asks `$next`, downloads the file over MQTT Streams (CBOR, 4 KiB
//! blocks, [`BLOCKS_PER_REQUEST`] per request) and reports every status itself.
//!
//! # Threads
//!
//! The emulator is synchronous. The agent runs on a thread of its own (a current-thread tokio
//! runtime); the two share a [`Link`] (the host's decisions, `HOTAcertificate` /
//! `OTAcertificate`) and an event channel ([`CloudEvent`]s to [`ModuleCloud::poll`]). The
//! session starts on the first `AT+CONNECT` and lives as long as the [`MqttCloud`]: the
//! module's emulated resets keep it, and the agent with it (a reset mid-download does not
//! restart the download; there is no journal, [`NoJournal`], because the agent never restarts
//! mid-download). A dropped MQTT connection is reconnected and the same agent goes on.
//!
//! # One agent per job kind
//!
//! The agent hands a trial boot only to files of [`Config::firmware_file_type`]; both kinds of
//! job need one (101: the module runs the new firmware on trial until the host's
//! `AT+CONNECT`; 202: the job stays open until the host's `CLOSE`). So the agent runs with the
//! file type of the job at hand: when a job document of the other kind (101 / 202) arrives
//! while nothing is on trial, the driver run is ended ([`LinkError::Retype`]) and a new agent
//! of that kind starts, which asks `$next` again. Module agents keep the anti-rollback version
//! check (the new version is the job's `filepath`, as before); host agents run with
//! [`Config::allow_downgrade`], since a host image leaves the module's version as it is.
//!
//! # Host messaging
//!
//! Publishes on the module's Jobs and Streams topics go to the agent; everything else goes to
//! the emulator as [`CloudEvent::Message`] (a [`Tap`] on the session). The host's
//! `SEND`/`SUBSCRIBE` use the session's client directly, QoS 1, not waited for; their
//! acknowledgements share the session's queue with the agent's, which can make an agent's
//! subscribe return on the host's SUBACK (harmless on one connection: the broker handles its
//! packets in order).

use std::rc::Rc;
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use ota_core::agent::{Agent, Config};
use ota_core::driver::{Driver, Exit, MqttClient, MqttMessage, NoHttp};
use ota_core::wire::topic::Qos;
use ota_core::wire::version::AppVersion;
use ota_pal_traits::NoJournal;
use rumqttc::QoS;
use serde_json::Value as Json;

use super::agent::{
    parse_version, Link, Local, ModuleApp, ModuleBoot, ModuleReset, ModuleStorage, ModuleVerifier,
};
use super::cloud::{CloudEvent, JobKind, JobOutcome, ModuleCloud};
use crate::device::mqtt::{MqttError, Session, Tap};
use crate::device::runtime::TokioClock;

/// Stream block size the agent asks for.
pub const BLOCK: u32 = 4096;
/// Blocks the agent asks per stream request.
pub const BLOCKS_PER_REQUEST: u32 = 16;
/// The agent's receive buffer (the largest message: a job document or one block).
const RX_BUFFER: usize = 64 * 1024;

/// The MQTT cloud of one module.
pub struct MqttCloud {
    link: Arc<Link>,
    rx: std_mpsc::Receiver<CloudEvent>,
}

impl MqttCloud {
    /// Prepare a session to `broker` (HOST:PORT) as `thing`, for a module running firmware
    /// `version` at power-on (the agent's running version; `[v]A.B.C`, 0.0.0 when it is not a
    /// version). The MQTT session starts on the first `connect`; the agent runs on a thread of
    /// its own, which ends when this value is dropped.
    pub fn start(broker: &str, thing: &str, version: &str) -> Result<Self> {
        let (host, port) = broker
            .rsplit_once(':')
            .with_context(|| format!("--broker {broker}: expected HOST:PORT"))?;
        let port: u16 = port
            .parse()
            .with_context(|| format!("--broker {broker}: bad port"))?;
        if ota_core::wire::topic::validate_thing_name(thing).is_err() {
            bail!("thing name '{thing}': 1-128 of [a-zA-Z0-9:_-] for the OTA agent");
        }
        let (ev_tx, rx) = std_mpsc::channel();
        let link = Arc::new(Link::new(ev_tx));
        let version = parse_version(version).unwrap_or_default();
        let (thing, host) = (thing.to_string(), host.to_string());
        let l = link.clone();
        std::thread::Builder::new()
            .name(format!("modsim-agent-{thing}"))
            .spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                rt.block_on(run(Local::new(l, version), thing, host, port));
            })
            .context("starting the agent's thread")?;
        Ok(Self { link, rx })
    }
}

impl Drop for MqttCloud {
    fn drop(&mut self) {
        self.link.update(|s| s.shutdown = true);
    }
}

impl ModuleCloud for MqttCloud {
    fn connect(&mut self, _thing: &str) -> Result<(), String> {
        self.link.update(|s| s.connect = true);
        Ok(())
    }

    fn poll(&mut self) -> Vec<CloudEvent> {
        self.rx.try_iter().collect()
    }

    fn accept(&mut self, job_id: &str) {
        self.link.update(|s| {
            s.accepted.insert(job_id.to_string());
        });
    }

    fn report(&mut self, job_id: &str, outcome: JobOutcome) {
        self.link.update(|s| {
            s.outcomes.insert(job_id.to_string(), outcome);
        });
    }

    fn publish(&mut self, topic: &str, payload: &[u8]) -> Result<(), String> {
        let client = {
            let mut s = self.link.lock();
            if s.client.is_none() {
                // The session is still coming up: sent once it is.
                s.unsent.push((topic.to_string(), payload.to_vec()));
                return Ok(());
            }
            s.client.clone()
        };
        client
            .ok_or("not connected to the broker")?
            .try_publish(topic, QoS::AtLeastOnce, false, payload.to_vec())
            .map_err(|e| e.to_string())
    }

    fn subscribe(&mut self, topic: &str) {
        let client = {
            let mut s = self.link.lock();
            if !s.subscriptions.iter().any(|t| t == topic) {
                s.subscriptions.push(topic.to_string());
            }
            s.client.clone()
        };
        if let Some(c) = client {
            let _ = c.try_subscribe(topic, QoS::AtLeastOnce);
        }
    }

    fn configure(&mut self, key: &str, value: &str) {
        self.link.update(|s| match key {
            "HOTAcertificate" => s.hota_cert = value.to_string(),
            "OTAcertificate" => s.ota_cert = value.to_string(),
            _ => {}
        });
    }
}

/// Why a driver run's MQTT client stopped it.
#[derive(Debug)]
pub enum LinkError {
    /// The session failed: reconnect and run the same agent again.
    Mqtt(MqttError),
    /// A job of this file type arrived and the agent runs another kind: start an agent of
    /// this kind.
    Retype(u32),
}

/// The agent's MQTT client: the session, with the Jobs documents peeked at (for the PAL's
/// proposal and the agent's kind) and the status updates watched (failures before the image
/// reached the emulator become [`CloudEvent::DownloadFailed`]).
struct ModuleMqtt {
    session: Session,
    local: Rc<Local>,
    thing: String,
    firmware_type: u32,
}

impl ModuleMqtt {
    fn jobs_topic(&self, rest: &str) -> String {
        format!("$aws/things/{}/jobs/{rest}", self.thing)
    }

    /// A job document: record it; `Some(type)` when an agent of another kind must take it.
    fn peek(&self, topic: &str, payload: &[u8]) -> Option<u32> {
        if topic != self.jobs_topic("notify-next") && topic != self.jobs_topic("$next/get/accepted")
        {
            return None;
        }
        let file_type = self.local.observe_job(payload)?;
        let idle = {
            let b = self.local.boot.borrow();
            b.trial.is_none() && b.staged.is_none()
        };
        let kind = JobKind::from_file_type(file_type)?;
        (idle && kind.file_type() != self.firmware_type).then_some(file_type)
    }

    fn watch_status(&self, topic: &str, payload: &[u8]) {
        let Some(job_id) = topic
            .strip_prefix(&self.jobs_topic(""))
            .and_then(|r| r.strip_suffix("/update"))
        else {
            return;
        };
        let v: Json = serde_json::from_slice(payload).unwrap_or(Json::Null);
        if v["status"] != "FAILED" || self.local.delivered.borrow().contains(job_id) {
            return;
        }
        let reason = v["statusDetails"]["reason"].as_str().unwrap_or("").trim();
        self.local.link.emit(CloudEvent::DownloadFailed {
            job_id: job_id.to_string(),
            reason: format!("the agent reported FAILED ({reason})"),
        });
    }
}

impl MqttClient for ModuleMqtt {
    type Error = LinkError;

    async fn subscribe(&mut self, topic: &str, qos: Qos) -> Result<(), LinkError> {
        self.session
            .subscribe(topic, qos)
            .await
            .map_err(LinkError::Mqtt)
    }

    async fn unsubscribe(&mut self, topic: &str) -> Result<(), LinkError> {
        self.session
            .unsubscribe(topic)
            .await
            .map_err(LinkError::Mqtt)
    }

    async fn publish(&mut self, topic: &str, payload: &[u8], qos: Qos) -> Result<(), LinkError> {
        self.watch_status(topic, payload);
        self.session
            .publish(topic, payload, qos)
            .await
            .map_err(LinkError::Mqtt)
    }

    async fn receive<'b>(&mut self, buf: &'b mut [u8]) -> Result<MqttMessage<'b>, LinkError> {
        let (topic, payload) = self.session.recv_owned().await.map_err(LinkError::Mqtt)?;
        if let Some(t) = self.peek(&topic, &payload) {
            return Err(LinkError::Retype(t));
        }
        let too_large = || LinkError::Mqtt(MqttError::TooLarge);
        if topic.len() + payload.len() > buf.len() {
            return Err(too_large());
        }
        let (tb, rest) = buf.split_at_mut(topic.len());
        tb.copy_from_slice(topic.as_bytes());
        let pb = rest.get_mut(..payload.len()).ok_or_else(too_large)?;
        pb.copy_from_slice(&payload);
        let topic = std::str::from_utf8(tb).map_err(|_| too_large())?;
        Ok(MqttMessage { topic, payload: pb })
    }
}

/// Connect (retrying every 500 ms until it works or the link shuts down), hand the client to
/// the host side, subscribe the host's topics again and send its publishes made meanwhile.
async fn connect(local: &Local, thing: &str, host: &str, port: u16) -> Option<Session> {
    let jobs = format!("$aws/things/{thing}/jobs/");
    let streams = format!("$aws/things/{thing}/streams/");
    let events = local.link.events();
    let tap: Tap = Arc::new(move |topic: &str, payload: &[u8]| {
        if topic.starts_with(&jobs) || topic.starts_with(&streams) {
            return false;
        }
        let _ = events.send(CloudEvent::Message {
            topic: topic.to_string(),
            payload: payload.to_vec(),
        });
        true
    });
    loop {
        let attempt = tokio::select! {
            s = Session::connect_tapped(thing, host, port, Some(tap.clone())) => s,
            () = local.link.closed() => return None,
        };
        match attempt {
            Ok(session) => {
                let client = session.client();
                let (topics, unsent) = {
                    let mut s = local.link.lock();
                    s.client = Some(client.clone());
                    (s.subscriptions.clone(), std::mem::take(&mut s.unsent))
                };
                for t in topics {
                    let _ = client.try_subscribe(t, QoS::AtLeastOnce);
                }
                for (t, p) in unsent {
                    let _ = client.try_publish(t, QoS::AtLeastOnce, false, p);
                }
                return Some(session);
            }
            Err(_) => {
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(500)) => {}
                    () = local.link.closed() => return None,
                }
            }
        }
    }
}

/// The agent's thread: wait for the first `AT+CONNECT`, then run one agent per (emulated)
/// boot and job kind until the link shuts down.
async fn run(local: Rc<Local>, thing: String, host: String, port: u16) {
    let link = local.link.clone();
    if link.wait_for(|s| s.connect.then_some(())).await.is_none() {
        return;
    }
    let Some(mut session) = connect(&local, &thing, &host, port).await else {
        return;
    };
    let mut firmware_type = JobKind::Module.file_type();
    let mut rx = vec![0u8; RX_BUFFER];
    loop {
        let (version, trial) = {
            let b = local.boot.borrow();
            (b.app_version(), b.trial.as_ref().map(|t| t.kind))
        };
        if let Some(kind) = trial {
            firmware_type = kind.file_type();
        }
        let Some(mut agent) = new_agent(&thing, version, firmware_type) else {
            return;
        };
        let mut driver = Driver::new(
            ModuleMqtt {
                session,
                local: local.clone(),
                thing: thing.clone(),
                firmware_type,
            },
            TokioClock::new(),
            ModuleApp {
                local: local.clone(),
            },
            NoHttp,
            ModuleStorage {
                local: local.clone(),
                firmware_type,
            },
            ModuleVerifier {
                local: local.clone(),
                kind: None,
            },
            ModuleBoot {
                local: local.clone(),
            },
            ModuleReset {
                local: local.clone(),
            },
            NoJournal,
        );
        loop {
            let exit = tokio::select! {
                exit = driver.run(&mut agent, &mut rx) => exit,
                () = link.closed() => return,
            };
            match exit {
                // A reboot: the next agent runs what the emulated bootloader chose.
                Exit::Reset => break,
                Exit::Mqtt(LinkError::Retype(t)) => {
                    firmware_type = t;
                    break;
                }
                Exit::Mqtt(LinkError::Mqtt(_)) => {
                    // The host's publishes wait for the new session.
                    link.update(|s| s.client = None);
                    driver.mqtt.session.disconnect().await;
                    match connect(&local, &thing, &host, port).await {
                        Some(s) => driver.mqtt.session = s,
                        None => return,
                    }
                }
            }
        }
        session = driver.mqtt.session;
    }
}

/// The module's agent: 4 KiB blocks, [`BLOCKS_PER_REQUEST`] per request; module agents check
/// versions, host agents do not (a host image does not change the module's version).
fn new_agent(thing: &str, version: AppVersion, firmware_type: u32) -> Option<Box<Agent>> {
    let mut cfg = Config::new(thing, version);
    cfg.block_size = BLOCK;
    cfg.blocks_per_request = BLOCKS_PER_REQUEST;
    cfg.rx_buffer_len = BLOCKS_PER_REQUEST * (BLOCK + 64);
    cfg.firmware_file_type = firmware_type;
    cfg.allow_downgrade = firmware_type == JobKind::Host.file_type();
    Agent::new(cfg).ok().map(Box::new)
}
