//! The device's boot loop.

use std::cell::Cell;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use ota_core::agent::{Agent, Config, Instant};
use ota_core::driver::{Application, Clock, Driver, Exit, MqttClient, MqttMessage};
use ota_core::wire::topic::Qos;
use ota_core::wire::version::AppVersion;
use ota_pal_traits::{FlashJournal, NorFlashImageStorage, Sha256EcdsaP256Verifier};
use serde_json::Value as Json;
use tokio::sync::{mpsc, Notify};

use super::boot::{BootDecision, GenericBoot, SimReset};
use super::flash::{PersistentChip, ERASE, WRITE};
use super::http_client::{Fetched, HostHttp};
use super::image::{self, Behavior, HEADER_LEN};
use super::mqtt::{MqttError, Session};
use ota_pal_traits::sim::SimConfig;

/// Size of an image slot.
pub const SLOT: u32 = 1 << 20;
/// Size of the download journal.
pub const JOURNAL: u32 = 16 * 1024;
/// Size of the whole chip: two slots and the journal.
pub const CHIP: u32 = 2 * SLOT + JOURNAL;
/// Payload of the image installed on a fresh device.
pub const FACTORY_PAYLOAD: u32 = 64 * 1024;

/// Network faults injected between the broker and the agent (tests).
#[derive(Clone, Default)]
pub struct Faults {
    /// Drop the connection once, after this many data blocks arrived.
    pub disconnect_after_blocks: Option<u32>,
    /// After that disconnect, wait for this before reconnecting.
    pub reconnect_gate: Option<Arc<Notify>>,
    /// Drop every n-th data block.
    pub drop_every: Option<u32>,
    /// Deliver every n-th data block twice.
    pub duplicate_every: Option<u32>,
    /// Hold every n-th data block back and deliver it after the next one.
    pub reorder_every: Option<u32>,
}

/// How to run a device.
#[derive(Clone)]
pub struct DeviceOptions {
    /// Thing name (also the MQTT client id).
    pub thing: String,
    /// State directory (flash.bin, boot.json).
    pub state: PathBuf,
    /// Version of the factory image installed on a fresh state directory.
    pub version: AppVersion,
    /// The factory image itself (default: a 64 KiB image of `version`).
    pub factory_image: Option<Vec<u8>>,
    /// The OTA signing key, for boards whose bootloader checks the factory image with the OTA
    /// signer's key (same54): it signs the factory image's descriptor on a fresh state.
    pub factory_key: Option<p256::ecdsa::SigningKey>,
    /// PEM public key (or certificate) the signatures are checked with.
    pub verify_key_pem: Vec<u8>,
    /// Broker host.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// Keep running when no job is pending.
    pub follow: bool,
    /// Override the running image's behaviour on trial boots.
    pub self_test: Option<Behavior>,
    /// Blocks asked per request (`None`: the agent's default).
    pub blocks_per_request: Option<u32>,
    /// How long the agent waits for a block or a reply (`None`: the agent's 10 s).
    pub request_timeout_ms: Option<u32>,
    /// How long a trial image that cannot connect runs before its watchdog resets it.
    pub watchdog: Duration,
    /// How long the broker may stay unreachable before the device gives up.
    pub connect_within: Duration,
    /// Use the HTTP data path when a job offers it.
    pub http: bool,
    /// The simulated board.
    pub board: Board,
    /// Faults to inject.
    pub faults: Faults,
    /// Size of each image slot of the generic board (default [`SLOT`]; the chip is two slots
    /// and the journal). Only a fresh state directory takes a new size.
    pub slot_size: u32,
}

impl DeviceOptions {
    /// Defaults for `thing` in `state`, connecting to `host:port`.
    pub fn new(thing: &str, state: PathBuf, host: &str, port: u16, key_pem: Vec<u8>) -> Self {
        Self {
            thing: thing.into(),
            state,
            version: AppVersion::new(1, 0, 0),
            factory_image: None,
            factory_key: None,
            verify_key_pem: key_pem,
            host: host.into(),
            port,
            follow: false,
            self_test: None,
            blocks_per_request: None,
            request_timeout_ms: None,
            watchdog: Duration::from_secs(1),
            connect_within: Duration::from_secs(30),
            http: false,
            board: Board::Generic,
            faults: Faults::default(),
            slot_size: SLOT,
        }
    }
}

/// What the device reports while it runs.
#[derive(Debug, Clone, PartialEq)]
pub enum DeviceEvent {
    /// Booted.
    Booted {
        /// Version of the running image.
        version: AppVersion,
        /// Its slot.
        slot: u8,
        /// On trial, rolled back or normal.
        decision: BootDecision,
    },
    /// The running image was installed now (fresh state directory).
    Provisioned(AppVersion),
    /// MQTT connected.
    Connected,
    /// MQTT dropped.
    Disconnected(String),
    /// A job document arrived.
    Job {
        /// Job id.
        job_id: String,
        /// Size of the first file.
        file_size: u32,
        /// Its number of blocks.
        blocks: u32,
    },
    /// A data block arrived.
    Block {
        /// Data blocks received so far in this job (duplicates included).
        received: u32,
        /// Payload bytes received so far.
        bytes: u64,
    },
    /// The device published a job status.
    Status {
        /// Job id.
        job_id: String,
        /// The JSON payload.
        payload: String,
    },
    /// A presigned HTTP URL expired (HTTP 403).
    UrlExpired,
    /// The trial image cannot connect: its watchdog resets it.
    CannotConnect,
    /// The trial image crashed in its self test.
    Crashed,
    /// Reset (a reboot follows).
    Reset,
    /// No job pending.
    Idle,
}

/// The end of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceReport {
    /// Version of the running image at the end.
    pub version: AppVersion,
    /// Version at the start.
    pub initial_version: AppVersion,
    /// Boots in this run.
    pub boots: u32,
    /// Data blocks received.
    pub blocks: u32,
    /// Data bytes received (block payloads).
    pub bytes: u64,
}

/// The driver's [`Clock`] on tokio time, counting from the instant it holds.
pub(crate) struct TokioClock(pub(crate) tokio::time::Instant);

impl TokioClock {
    /// A clock whose epoch is now.
    pub(crate) fn new() -> Self {
        Self(tokio::time::Instant::now())
    }
}

impl Clock for TokioClock {
    fn now(&mut self) -> Instant {
        Instant(u64::try_from(self.0.elapsed().as_millis()).unwrap_or(u64::MAX))
    }

    async fn sleep_until(&mut self, at: Instant) {
        tokio::time::sleep_until(self.0 + Duration::from_millis(at.0)).await;
    }
}

struct App {
    behavior: Behavior,
    crashed: Rc<Notify>,
}

impl Application for App {
    async fn self_test(&mut self) -> bool {
        match self.behavior {
            Behavior::FailSelfTest => false,
            Behavior::Crash => {
                self.crashed.notify_one();
                std::future::pending::<()>().await;
                false
            }
            _ => true,
        }
    }
}

pub(super) type Events = Option<mpsc::UnboundedSender<DeviceEvent>>;

pub(super) fn emit(events: &Events, e: DeviceEvent) {
    if let Some(tx) = events {
        let _ = tx.send(e);
    }
}

/// Counters shared by the observing client and the runtime.
#[derive(Default)]
struct Counters {
    blocks: Cell<u32>,
    bytes: Cell<u64>,
    job_blocks: Cell<u32>,
    job_bytes: Cell<u64>,
    seen: Cell<u32>,
}

/// The session, watched (events, idle detection) and with faults injected.
struct Observed {
    session: Session,
    events: Events,
    counters: Rc<Counters>,
    idle: Rc<Notify>,
    faults: Faults,
    pending_disconnect: Option<u32>,
    held: Option<(String, Vec<u8>)>,
    queue: std::collections::VecDeque<(String, Vec<u8>)>,
    block_size: u32,
}

impl Observed {
    fn observe_in(&self, topic: &str, payload: &[u8]) {
        if topic.ends_with("/jobs/$next/get/accepted") || topic.ends_with("/jobs/notify-next") {
            let doc: Json = serde_json::from_slice(payload).unwrap_or(Json::Null);
            let exec = &doc["execution"];
            if exec.is_null() {
                emit(&self.events, DeviceEvent::Idle);
                self.idle.notify_one();
            } else if let Some(job_id) = exec["jobId"].as_str() {
                let size = exec["jobDocument"]["afr_ota"]["files"][0]["filesize"]
                    .as_u64()
                    .unwrap_or(0);
                let size = u32::try_from(size).unwrap_or(u32::MAX);
                emit(
                    &self.events,
                    DeviceEvent::Job {
                        job_id: job_id.into(),
                        file_size: size,
                        blocks: size.div_ceil(self.block_size.max(1)),
                    },
                );
            }
        }
    }

    fn is_block(topic: &str) -> bool {
        topic.contains("/streams/") && topic.ends_with("/data/cbor")
    }

    async fn next(&mut self) -> Result<(String, Vec<u8>), MqttError> {
        if let Some(m) = self.queue.pop_front() {
            return Ok(m);
        }
        loop {
            let (t, p) = self.session.recv_owned().await?;
            if !Self::is_block(&t) {
                return Ok((t, p));
            }
            let k = self.counters.seen.get() + 1;
            self.counters.seen.set(k);
            let every = |n: Option<u32>| n.is_some_and(|n| n > 0 && k % n == 0);
            if every(self.faults.drop_every) {
                continue;
            }
            if every(self.faults.duplicate_every) {
                self.queue.push_back((t.clone(), p.clone()));
            }
            if every(self.faults.reorder_every) && self.held.is_none() {
                self.held = Some((t, p));
                continue;
            }
            if let Some(h) = self.held.take() {
                self.queue.push_back(h);
            }
            return Ok((t, p));
        }
    }
}

impl MqttClient for Observed {
    type Error = MqttError;

    async fn subscribe(&mut self, topic: &str, qos: Qos) -> Result<(), MqttError> {
        self.session.subscribe(topic, qos).await
    }

    async fn unsubscribe(&mut self, topic: &str) -> Result<(), MqttError> {
        self.session.unsubscribe(topic).await
    }

    async fn publish(&mut self, topic: &str, payload: &[u8], qos: Qos) -> Result<(), MqttError> {
        if let Some(rest) = topic.strip_suffix("/update") {
            if let Some(job_id) = rest.rsplit('/').next() {
                emit(
                    &self.events,
                    DeviceEvent::Status {
                        job_id: job_id.into(),
                        payload: String::from_utf8_lossy(payload).into_owned(),
                    },
                );
            }
        }
        self.session.publish(topic, payload, qos).await
    }

    async fn receive<'b>(&mut self, buf: &'b mut [u8]) -> Result<MqttMessage<'b>, MqttError> {
        if let Some(n) = self.pending_disconnect {
            if self.counters.job_blocks.get() >= n {
                self.pending_disconnect = None;
                return Err(MqttError::Disconnected);
            }
        }
        // Cancel safety: a message taken from the session is kept in `queue` until returned.
        let (t, p) = self.next().await?;
        let total = t.len() + p.len();
        if total > buf.len() {
            return Err(MqttError::TooLarge);
        }
        self.observe_in(&t, &p);
        if Self::is_block(&t) {
            let c = &self.counters;
            c.blocks.set(c.blocks.get() + 1);
            c.job_blocks.set(c.job_blocks.get() + 1);
            let data = ota_core::wire::cbor::DataBlock::decode(&p)
                .map(|b| b.payload.len() as u64)
                .unwrap_or(0);
            c.bytes.set(c.bytes.get() + data);
            c.job_bytes.set(c.job_bytes.get() + data);
            emit(
                &self.events,
                DeviceEvent::Block {
                    received: c.job_blocks.get(),
                    bytes: c.job_bytes.get(),
                },
            );
        }
        let (tb, rest) = buf.split_at_mut(t.len());
        tb.copy_from_slice(t.as_bytes());
        let pb = rest.get_mut(..p.len()).ok_or(MqttError::TooLarge)?;
        pb.copy_from_slice(&p);
        let topic = std::str::from_utf8(tb).map_err(|_| MqttError::TooLarge)?;
        Ok(MqttMessage { topic, payload: pb })
    }
}

fn slot_offset(slot: u8, slot_size: u32) -> u32 {
    u32::from(slot.min(1)) * slot_size
}

/// The version of the image that runs now on the device kept in `state` (without booting it).
pub fn running_version(state: &std::path::Path) -> Result<AppVersion> {
    let flash = state.join("flash.bin");
    if !flash.exists() {
        bail!("no device in {}", state.display());
    }
    let bytes = std::fs::read(&flash)?;
    let board = std::fs::read_to_string(state.join("board")).unwrap_or_default();
    if board.trim() == "traveo" {
        return super::traveo::running_version(bytes);
    }
    if board.trim() == "tfm" {
        return Ok(super::tfm::running_header(&bytes)?.version);
    }
    let at = if board.trim() == "same54" {
        super::same54::app_addr() as usize
    } else if state.join("boot.json").exists() {
        let boot = GenericBoot::load(state)?;
        // The slot size follows from the chip: two slots and the journal.
        let slot = u32::try_from(bytes.len().saturating_sub(JOURNAL as usize) / 2).unwrap_or(SLOT);
        slot_offset(boot.get().running(), slot) as usize
    } else {
        // psoc6: the primary slot runs; our header follows the 0x400-byte MCUboot header.
        pal_psoc6::Config::V1_8_SWAP.primary.offset() as usize + 0x400
    };
    let h = image::parse(bytes.get(at..).unwrap_or_default())
        .with_context(|| format!("no image at {at:#x}"))?;
    Ok(h.version)
}

/// Record which board a state directory holds (`<state>/board`), for [`running_version`].
pub(super) fn mark_board(state: &std::path::Path, board: &str) -> Result<()> {
    let path = state.join("board");
    std::fs::write(&path, format!("{board}\n"))
        .with_context(|| format!("writing {}", path.display()))
}

/// The boards the device can simulate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Board {
    /// `NorFlashImageStorage` + `FlashJournal` + the generic A/B bootloader of [`super::boot`].
    #[default]
    Generic,
    /// `pal-psoc6` (MCUboot v1.8 swap layout) over its simulated MCUboot; images are MCUboot
    /// images ([`psoc6_image`]).
    Psoc6,
    /// `pal-same54` (aws_bootloader layout, bank swap) over its simulated bootloader; images
    /// are raw applications ([`super::image`] format), the descriptor carries the OTA
    /// signature ([`super::same54`]).
    Same54,
    /// `pal-traveo` (CYT4BF dual bank) over its simulated DBM; images are signed CM0+ images
    /// ([`super::traveo`]), jobs use file type 141.
    Traveo,
    /// `pal-tfm` (PSA Firmware Update on Corstone-300/310) over its simulated FWU partition
    /// and BL2; images are TF-M non-secure MCUboot images ([`super::tfm`]).
    Tfm,
}

/// An MCUboot image for `--board psoc6` (its own signature TLV made with a throwaway key: the
/// simulated MCUboot checks the hash TLV; the agent checks the OTA signature).
pub fn psoc6_image(version: AppVersion, payload_len: u32, behavior: Behavior) -> Result<Vec<u8>> {
    let payload = image::build(version, payload_len, behavior);
    let throwaway = p256::ecdsa::SigningKey::from_slice(&[0x5A; 32])?;
    let mut out = vec![0u8; payload.len() + 0x400 + 1024];
    let v = pal_psoc6::ImageVersion::new(version.major, version.minor, version.build, 0);
    let n = pal_psoc6::image::build_signed_image(&payload, v, 0x400, &throwaway, &mut out)
        .map_err(|e| anyhow::anyhow!("building the MCUboot image: {e:?}"))?;
    out.truncate(n);
    Ok(out)
}

pub(super) struct Ctx {
    pub(super) opts: DeviceOptions,
    pub(super) events: Events,
    counters: Rc<Counters>,
    disconnect_fault: Cell<Option<u32>>,
    /// The job file type of the board's firmware (`Config::firmware_file_type`).
    pub(super) firmware_file_type: Cell<u32>,
}

const BLOCK_SIZE: u32 = 4096;

/// One boot's agent run: connect, run the driver (reconnecting when MQTT drops) until a
/// reset (`Ok(true)`) or no job is pending (`Ok(false)`).
pub(super) async fn run_agent<S, B, J>(
    ctx: &Ctx,
    version: AppVersion,
    behavior: Behavior,
    storage: S,
    boot: B,
    journal: J,
) -> Result<bool>
where
    S: ota_pal_traits::ImageStorage,
    B: ota_pal_traits::BootControl,
    J: ota_pal_traits::DownloadJournal,
{
    let verifier = ota_verifier(&ctx.opts)?;
    run_agent_with(ctx, version, behavior, storage, verifier, boot, journal).await
}

/// The OTA code-signing verifier (`--verify-key`).
pub(super) fn ota_verifier(opts: &DeviceOptions) -> Result<Sha256EcdsaP256Verifier> {
    Sha256EcdsaP256Verifier::from_pem(&opts.verify_key_pem)
        .map_err(|e| anyhow::anyhow!("verify key: {e:?}"))
}

/// [`run_agent`] with a given verifier (a board may wrap the OTA verifier).
pub(super) async fn run_agent_with<S, V, B, J>(
    ctx: &Ctx,
    version: AppVersion,
    behavior: Behavior,
    storage: S,
    verifier: V,
    boot: B,
    journal: J,
) -> Result<bool>
where
    S: ota_pal_traits::ImageStorage,
    V: ota_pal_traits::ImageVerifier,
    B: ota_pal_traits::BootControl,
    J: ota_pal_traits::DownloadJournal,
{
    let (opts, events, counters) = (&ctx.opts, &ctx.events, &ctx.counters);
    let mut cfg = Config::new(&opts.thing, version);
    cfg.block_size = BLOCK_SIZE;
    cfg.firmware_file_type = ctx.firmware_file_type.get();
    if let Some(n) = opts.blocks_per_request {
        cfg.blocks_per_request = n;
        cfg.rx_buffer_len = n * (BLOCK_SIZE + 64);
    }
    cfg.http_enabled = opts.http;
    if let Some(ms) = opts.request_timeout_ms {
        cfg.request_timeout_ms = ms;
    }
    let mut agent: Box<Agent> =
        Box::new(Agent::new(cfg).map_err(|e| anyhow::anyhow!("agent configuration: {e:?}"))?);
    let session =
        Session::connect_retrying(&opts.thing, &opts.host, opts.port, opts.connect_within).await?;
    emit(events, DeviceEvent::Connected);
    let idle = Rc::new(Notify::new());
    let crashed = Rc::new(Notify::new());
    counters.job_blocks.set(0);
    counters.job_bytes.set(0);
    let mqtt = Observed {
        session,
        events: events.clone(),
        counters: counters.clone(),
        idle: idle.clone(),
        faults: opts.faults.clone(),
        pending_disconnect: ctx.disconnect_fault.take(),
        held: None,
        queue: Default::default(),
        block_size: BLOCK_SIZE,
    };
    let app = App {
        behavior,
        crashed: crashed.clone(),
    };
    let http_events = events.clone();
    let http_counters = counters.clone();
    let http = HostHttp {
        observe: move |r: &Fetched| match r {
            Fetched::Body(body) => {
                let c = &http_counters;
                let n = body.len() as u64;
                c.blocks.set(c.blocks.get() + 1);
                c.job_blocks.set(c.job_blocks.get() + 1);
                c.bytes.set(c.bytes.get() + n);
                c.job_bytes.set(c.job_bytes.get() + n);
                emit(
                    &http_events,
                    DeviceEvent::Block {
                        received: c.job_blocks.get(),
                        bytes: c.job_bytes.get(),
                    },
                );
            }
            Fetched::Expired => emit(&http_events, DeviceEvent::UrlExpired),
            Fetched::Failed => {}
        },
    };
    let mut driver = Driver::new(
        mqtt,
        TokioClock(tokio::time::Instant::now()),
        app,
        http,
        storage,
        verifier,
        boot,
        SimReset,
        journal,
    );
    let mut rx = vec![0u8; 1 << 20];
    let reset = loop {
        let exit = tokio::select! {
            exit = driver.run(&mut agent, &mut rx) => Some(exit),
            () = idle.notified(), if !opts.follow => None,
            () = crashed.notified() => {
                emit(events, DeviceEvent::Crashed);
                Some(Exit::Reset)
            }
        };
        match exit {
            None => break false,
            Some(Exit::Reset) => break true,
            Some(Exit::Mqtt(e)) => {
                emit(events, DeviceEvent::Disconnected(format!("{e:?}")));
                driver.mqtt.session.disconnect().await;
                if let Some(gate) = opts.faults.reconnect_gate.as_ref() {
                    gate.notified().await;
                }
                driver.mqtt.session = Session::connect_retrying(
                    &opts.thing,
                    &opts.host,
                    opts.port,
                    opts.connect_within,
                )
                .await?;
                emit(events, DeviceEvent::Connected);
            }
        }
    };
    driver.mqtt.session.disconnect().await;
    if reset {
        emit(events, DeviceEvent::Reset);
    }
    Ok(reset)
}

/// Run the device until no job is pending (or forever with `follow`), reporting `events`.
pub async fn run(
    opts: DeviceOptions,
    events: Option<mpsc::UnboundedSender<DeviceEvent>>,
) -> Result<DeviceReport> {
    std::fs::create_dir_all(&opts.state)
        .with_context(|| format!("creating {}", opts.state.display()))?;
    let ctx = Ctx {
        disconnect_fault: Cell::new(opts.faults.disconnect_after_blocks),
        firmware_file_type: Cell::new(0),
        opts,
        events,
        counters: Rc::new(Counters::default()),
    };
    match ctx.opts.board {
        Board::Generic => run_generic(&ctx).await,
        Board::Psoc6 => run_psoc6(&ctx).await,
        Board::Same54 => super::same54::run(&ctx).await,
        Board::Traveo => super::traveo::run(&ctx).await,
        Board::Tfm => super::tfm::run(&ctx).await,
    }
}

/// What a boot loop saw.
pub(super) struct Tally {
    pub(super) initial: Option<AppVersion>,
    pub(super) boots: u32,
}

impl Tally {
    pub(super) fn booted(&mut self, v: AppVersion) -> Result<()> {
        self.boots += 1;
        self.initial.get_or_insert(v);
        if self.boots > 64 {
            bail!("more than 64 boots in one run: a reset loop");
        }
        Ok(())
    }

    pub(super) fn report(&self, ctx: &Ctx, version: AppVersion) -> DeviceReport {
        DeviceReport {
            version,
            initial_version: self.initial.unwrap_or(version),
            boots: self.boots,
            blocks: ctx.counters.blocks.get(),
            bytes: ctx.counters.bytes.get(),
        }
    }
}

/// The behaviour of the running image: its own on a trial boot (or the override), else normal.
pub(super) fn behavior_of(ctx: &Ctx, trial: bool, own: Behavior) -> Behavior {
    if trial {
        ctx.opts.self_test.unwrap_or(own)
    } else {
        Behavior::Normal
    }
}

/// A trial image that cannot connect: the watchdog resets it.
pub(super) async fn watchdog(ctx: &Ctx) {
    emit(&ctx.events, DeviceEvent::CannotConnect);
    tokio::time::sleep(ctx.opts.watchdog).await;
    emit(&ctx.events, DeviceEvent::Reset);
}

async fn run_generic(ctx: &Ctx) -> Result<DeviceReport> {
    let (opts, events) = (&ctx.opts, &ctx.events);
    let (chip, fresh) = PersistentChip::open(
        &opts.state.join("flash.bin"),
        2 * opts.slot_size + JOURNAL,
        SimConfig::new(WRITE, ERASE),
        0xFF,
    )?;
    let boot = GenericBoot::load(&opts.state)?;
    if fresh {
        let img = opts
            .factory_image
            .clone()
            .unwrap_or_else(|| image::build(opts.version, FACTORY_PAYLOAD, Behavior::Normal));
        let header = image::parse(&img).context("the factory image has no header")?;
        let slot = opts.slot_size;
        if img.len() > slot as usize {
            bail!("the factory image is larger than a slot ({slot} bytes)");
        }
        chip.install(slot_offset(boot.get().running(), slot), &img)?;
        emit(events, DeviceEvent::Provisioned(header.version));
    }
    let mut tally = Tally {
        initial: None,
        boots: 0,
    };
    loop {
        let decision = boot.boot()?;
        let state = boot.get();
        let running = state.running();
        let header =
            image::parse(&chip.read(slot_offset(running, opts.slot_size), HEADER_LEN as u32))
                .with_context(|| format!("no image in slot {running}"))?;
        tally.booted(header.version)?;
        emit(
            events,
            DeviceEvent::Booted {
                version: header.version,
                slot: running,
                decision,
            },
        );
        let behavior = behavior_of(ctx, decision == BootDecision::Trial, header.behavior);
        if behavior == Behavior::CannotConnect {
            watchdog(ctx).await;
            continue;
        }
        let spare = state.spare();
        let storage = NorFlashImageStorage::new(
            chip.window::<WRITE, ERASE>(slot_offset(spare, opts.slot_size), opts.slot_size)?,
            0,
            opts.slot_size,
            0xFF,
        )
        .map_err(|e| anyhow::anyhow!("image storage: {e:?}"))?;
        let journal = FlashJournal::new(
            chip.window::<WRITE, ERASE>(2 * opts.slot_size, JOURNAL)?,
            0,
            JOURNAL,
            0xFF,
        )
        .map_err(|e| anyhow::anyhow!("journal: {e:?}"))?;
        let reset = run_agent(
            ctx,
            header.version,
            behavior,
            storage,
            boot.clone(),
            journal,
        )
        .await?;
        if !reset {
            return Ok(tally.report(ctx, header.version));
        }
    }
}

async fn run_psoc6(ctx: &Ctx) -> Result<DeviceReport> {
    use pal_psoc6::sim::{sim_config, BootOutcome, SimBootloader, SIM_FLASH_BYTES};
    use pal_psoc6::trailer::SwapType;
    let (opts, events) = (&ctx.opts, &ctx.events);
    let cfg = pal_psoc6::Config::V1_8_SWAP;
    let (chip, fresh) = PersistentChip::open(
        &opts.state.join("flash.bin"),
        SIM_FLASH_BYTES as u32,
        sim_config(),
        pal_psoc6::layout::ERASE_VALUE,
    )?;
    let (jchip, _) = PersistentChip::open(
        &opts.state.join("journal.bin"),
        JOURNAL,
        SimConfig::new(WRITE, ERASE),
        0xFF,
    )?;
    if fresh {
        let img = match opts.factory_image.clone() {
            Some(i) => i,
            None => psoc6_image(opts.version, FACTORY_PAYLOAD, Behavior::Normal)?,
        };
        chip.install(cfg.primary.offset(), &img)?;
        emit(events, DeviceEvent::Provisioned(opts.version));
    }
    let mut tally = Tally {
        initial: None,
        boots: 0,
    };
    loop {
        let outcome = SimBootloader::new(&chip.dev, cfg, None).boot();
        chip.sync_all()?;
        let BootOutcome::Booted { version, swap, .. } = outcome else {
            bail!("the simulated MCUboot found no bootable image: {outcome:?}");
        };
        let version = AppVersion::new(version.major, version.minor, version.revision);
        let decision = match swap {
            SwapType::Test => BootDecision::Trial,
            SwapType::Revert => BootDecision::RolledBack,
            _ => BootDecision::Normal,
        };
        tally.booted(version)?;
        emit(
            events,
            DeviceEvent::Booted {
                version,
                slot: 0,
                decision,
            },
        );
        // The payload of an MCUboot image built by `psoc6_image` starts after the 0x400 header.
        let own = image::parse(&chip.read(cfg.primary.offset() + 0x400, HEADER_LEN as u32))
            .map_or(Behavior::Normal, |h| h.behavior);
        let behavior = behavior_of(ctx, decision == BootDecision::Trial, own);
        if behavior == Behavior::CannotConnect {
            watchdog(ctx).await;
            continue;
        }
        let whole = pal_psoc6::layout::FLASH_SIZE;
        let storage = pal_psoc6::Psoc6ImageStorage::new(chip.window::<512, 512>(0, whole)?, cfg)
            .map_err(|e| anyhow::anyhow!("psoc6 storage: {e:?}"))?;
        let boot = pal_psoc6::Psoc6BootControl::new(chip.window::<512, 512>(0, whole)?, cfg)
            .map_err(|e| anyhow::anyhow!("psoc6 boot control: {e:?}"))?;
        let journal =
            FlashJournal::new(jchip.window::<WRITE, ERASE>(0, JOURNAL)?, 0, JOURNAL, 0xFF)
                .map_err(|e| anyhow::anyhow!("journal: {e:?}"))?;
        let reset = run_agent(ctx, version, behavior, storage, boot, journal).await?;
        if !reset {
            return Ok(tally.report(ctx, version));
        }
    }
}
