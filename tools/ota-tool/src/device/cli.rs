//! `ota device`: run the simulated device against a broker.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use ota_core::wire::version::AppVersion;

use super::boot::BootDecision;
use super::image::Behavior;
use super::runtime::Board;
use super::{run, DeviceEvent, DeviceOptions};

/// Arguments of `ota device`.
#[derive(Args, Debug)]
pub struct DeviceArgs {
    /// Thing name (also the MQTT client id).
    #[arg(long, value_name = "THING")]
    pub thing: String,
    /// State directory: the device's flash (flash.bin) and boot state (boot.json).
    #[arg(long, value_name = "DIR")]
    pub state: PathBuf,
    /// Version of the factory image installed when the state directory is new.
    #[arg(long, default_value = "1.0.0", value_name = "X.Y.Z")]
    pub version: AppVersion,
    /// Public key (SPKI PEM) that image signatures are checked with.
    #[arg(long, value_name = "PUB.pem")]
    pub verify_key: PathBuf,
    /// OTA signing key (PKCS#8 PEM) that signs the factory image on a new state directory,
    /// for boards whose bootloader trusts the OTA signer (same54).
    #[arg(long, value_name = "KEY.pem")]
    pub factory_key: Option<PathBuf>,
    /// MQTT broker.
    #[arg(long, default_value = "127.0.0.1:1883", value_name = "HOST:PORT")]
    pub broker: String,
    /// The simulated board.
    #[arg(long, value_enum, default_value = "generic")]
    pub board: Board,
    /// Keep running after no job is pending.
    #[arg(long)]
    pub follow: bool,
    /// How a new image behaves after its trial boot (default: as its header says).
    #[arg(long, value_enum, value_name = "BEHAVIOUR")]
    pub self_test: Option<Behavior>,
    /// Download over HTTP (presigned URLs) when a job offers it.
    #[arg(long)]
    pub http: bool,
    /// Blocks asked per GetStream request (default: the agent's).
    #[arg(long, value_name = "N")]
    pub blocks_per_request: Option<u32>,
}

/// Split `HOST:PORT`.
pub fn host_port(s: &str) -> Result<(String, u16)> {
    let (h, p) = s
        .rsplit_once(':')
        .with_context(|| format!("{s:?} is not HOST:PORT"))?;
    Ok((
        h.to_string(),
        p.parse().with_context(|| format!("port in {s:?}"))?,
    ))
}

/// One line for an event (`None` for per-block events).
pub fn describe(e: &DeviceEvent) -> Option<String> {
    Some(match e {
        DeviceEvent::Provisioned(v) => format!("factory image v{v} installed"),
        DeviceEvent::Booted {
            version,
            slot,
            decision,
        } => match decision {
            BootDecision::Normal => format!("boot: v{version} (slot {slot})"),
            BootDecision::Trial => format!("boot: v{version} on trial (slot {slot})"),
            BootDecision::RolledBack => {
                format!("boot: unconfirmed image rolled back, v{version} (slot {slot})")
            }
        },
        DeviceEvent::Connected => "mqtt: connected".into(),
        DeviceEvent::Disconnected(why) => format!("mqtt: disconnected ({why})"),
        DeviceEvent::Job {
            job_id,
            file_size,
            blocks,
        } => format!("job {job_id}: {file_size} bytes, {blocks} blocks"),
        DeviceEvent::Block { .. } => return None,
        DeviceEvent::Status { job_id, payload } => format!("status {job_id}: {payload}"),
        DeviceEvent::UrlExpired => "http: the presigned URL expired".into(),
        DeviceEvent::CannotConnect => "the new image cannot connect: watchdog reset".into(),
        DeviceEvent::Crashed => "the new image crashed in its self test".into(),
        DeviceEvent::Reset => "reset".into(),
        DeviceEvent::Idle => "no job pending".into(),
    })
}

/// Run `ota device`.
pub fn main(a: DeviceArgs) -> Result<()> {
    let (host, port) = host_port(&a.broker)?;
    let key = std::fs::read(&a.verify_key)
        .with_context(|| format!("reading {}", a.verify_key.display()))?;
    let mut opts = DeviceOptions::new(&a.thing, a.state.clone(), &host, port, key);
    opts.version = a.version;
    opts.follow = a.follow;
    opts.self_test = a.self_test;
    opts.blocks_per_request = a.blocks_per_request;
    opts.http = a.http;
    opts.board = a.board;
    if let Some(k) = &a.factory_key {
        opts.factory_key = Some(crate::keys::read_signing_key(k)?);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let report = rt.block_on(async move {
        let printer = async move {
            let mut total = 0u32;
            while let Some(e) = rx.recv().await {
                if let DeviceEvent::Job { blocks, .. } = &e {
                    total = *blocks;
                }
                if let DeviceEvent::Block { received, .. } = &e {
                    if *received == 1 || *received % 16 == 0 || *received == total {
                        println!("download: {received}/{total} blocks");
                    }
                }
                if let Some(line) = describe(&e) {
                    println!("{line}");
                }
            }
        };
        let (r, ()) = tokio::join!(run(opts, Some(tx)), printer);
        r
    })?;
    println!(
        "running v{} (was v{}), {} boot(s), {} blocks received",
        report.version, report.initial_version, report.boots, report.blocks
    );
    Ok(())
}

/// Arguments of `ota image`.
#[derive(Args, Debug)]
pub struct ImageArgs {
    /// Version written in the header.
    #[arg(long, value_name = "X.Y.Z")]
    pub version: AppVersion,
    /// Output file.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Payload size in KiB.
    #[arg(long, default_value_t = 256, value_name = "KIB")]
    pub payload_kib: u32,
    /// How the image behaves after its trial boot (generic board).
    #[arg(long, value_enum, default_value = "normal", value_name = "BEHAVIOUR")]
    pub behaviour: Behavior,
    /// The board the image is for (psoc6, tfm: an MCUboot image around it; traveo: a signed
    /// CM0+ image around it; same54: the image itself).
    #[arg(long, value_enum, default_value = "generic")]
    pub board: Board,
}

/// Run `ota image`.
pub fn make_image(a: ImageArgs) -> Result<()> {
    let payload = a.payload_kib.saturating_mul(1024);
    let img = match a.board {
        Board::Generic => super::image::build(a.version, payload, a.behaviour),
        Board::Psoc6 => super::psoc6_image(a.version, payload, a.behaviour)?,
        Board::Same54 => super::same54::same54_image(a.version, payload, a.behaviour),
        Board::Traveo => super::traveo::traveo_image(a.version, payload, a.behaviour)?,
        Board::Tfm => super::tfm::tfm_image(a.version, payload, a.behaviour)?,
    };
    std::fs::write(&a.out, &img).with_context(|| format!("writing {}", a.out.display()))?;
    println!("{} ({} bytes, v{})", a.out.display(), img.len(), a.version);
    Ok(())
}
