//! `--board same54`: `pal-same54` (SAME54 Xplained Pro, amazon-freertos `aws_bootloader`) over
//! the 1 MB NVM in `<state>/flash.bin` (the CPU's view, after any bank swap), the journal in
//! `<state>/journal.bin`.
//!
//! The OTA file is the raw application (an image of the [`super::image`] format, whose header
//! carries the version): `Same54Storage` writes it to the staging area at 0x90000, the
//! verifier is the OTA code-signing verifier wrapped in `SignatureCapture`, whose
//! `SignatureSlot` hands the verified job signature to `Same54Boot` for the staged
//! descriptor. At each reset `pal_same54::sim::Bootloader` verifies the descriptors with the
//! same key (the bootloader's code-signer key is the OTA signer's), swaps the banks when the
//! upper image wins, and launches 0x10000; the agent starts with the version of the header
//! there.
//!
//! The factory descriptor must be signed by that signer too: a fresh state directory needs
//! `DeviceOptions::factory_key` (`ota device --factory-key`).

use anyhow::{bail, Context, Result};
use ota_core::wire::version::AppVersion;
use ota_pal_traits::FlashJournal;
use p256::ecdsa::signature::Signer;
use pal_same54::sim::{sim_config, write_factory_image, BootOutcome, Bootloader, Same54Board};
use pal_same54::{Config, Layout, Same54Boot, Same54Storage, SignatureCapture, SignatureSlot};

use super::boot::BootDecision;
use super::flash::{PersistentChip, ERASE, WRITE};
use super::image::{self, Behavior, HEADER_LEN};
use super::runtime::{
    behavior_of, emit, ota_verifier, run_agent_with, watchdog, Ctx, Tally, FACTORY_PAYLOAD, JOURNAL,
};
use super::DeviceEvent;
use ota_pal_traits::sim::SimConfig;

/// The bootloader build simulated (the vendor descriptors; see `pal_same54::SequencePolicy`).
pub const CONFIG: Config = Config::POWER_SAFE;
const LAYOUT: Layout = Layout::SAME54_XPRO;
const W: usize = pal_same54::sim::SIM_WRITE;
const E: usize = pal_same54::sim::SIM_ERASE;

/// Where the running application (and its header) is.
pub fn app_addr() -> u32 {
    LAYOUT.app_addr()
}

/// What sits where the bootloader is (and its bank-B copy): a placeholder, the bootloader runs
/// on the host.
fn bootloader_placeholder() -> Vec<u8> {
    let mut b = b"ota-rs ota device: SAME54 aws_bootloader placeholder (runs on the host)".to_vec();
    b.resize(LAYOUT.bootloader_size as usize, 0xFF);
    b
}

/// An OTA file for `--board same54`: the raw application.
pub fn same54_image(version: AppVersion, payload_len: u32, behavior: Behavior) -> Vec<u8> {
    image::build(version, payload_len, behavior)
}

fn board_of(chip: &PersistentChip) -> Result<Same54Board<Vec<u8>>> {
    Same54Board::new(chip.read(0, LAYOUT.flash_size()), LAYOUT)
        .map_err(|e| anyhow::anyhow!("same54 sim board: {e:?}"))
}

/// Copy the board's NVM back to the chip (and its file).
fn write_back(chip: &PersistentChip, b: &Same54Board<Vec<u8>>) -> Result<()> {
    let mem = b
        .device()
        .inspect(|m| m.to_vec())
        .map_err(|e| anyhow::anyhow!("same54 sim board: {e:?}"))?;
    chip.install(0, &mem)
}

pub(super) async fn run(ctx: &Ctx) -> Result<super::DeviceReport> {
    let (opts, events) = (&ctx.opts, &ctx.events);
    let (chip, fresh) = PersistentChip::open(
        &opts.state.join("flash.bin"),
        LAYOUT.flash_size(),
        sim_config(),
        pal_same54::layout::ERASE_VALUE,
    )?;
    let (jchip, _) = PersistentChip::open(
        &opts.state.join("journal.bin"),
        JOURNAL,
        SimConfig::new(WRITE, ERASE),
        0xFF,
    )?;
    let key = ota_verifier(opts)?;
    if fresh {
        let img = opts
            .factory_image
            .clone()
            .unwrap_or_else(|| same54_image(opts.version, FACTORY_PAYLOAD, Behavior::Normal));
        let Some(signer) = opts.factory_key.as_ref() else {
            let _ = std::fs::remove_file(opts.state.join("flash.bin"));
            bail!(
                "same54: the factory descriptor is signed by the OTA signer (the bootloader \
                 trusts that key): give the signing key (--factory-key) for a new device"
            );
        };
        let sig: p256::ecdsa::Signature = signer.sign(&img);
        let b = board_of(&chip)?;
        write_factory_image(&b, &bootloader_placeholder(), &img, sig.to_der().as_bytes())
            .map_err(|e| anyhow::anyhow!("same54 factory image: {e:?}"))?;
        write_back(&chip, &b)?;
        super::runtime::mark_board(&opts.state, "same54")?;
        let version = image::parse(&img).map_or(opts.version, |h| h.version);
        emit(events, DeviceEvent::Provisioned(version));
    }
    let mut tally = Tally {
        initial: None,
        boots: 0,
    };
    loop {
        let mut b = board_of(&chip)?;
        let report = Bootloader::new(&key)
            .boot(&mut b)
            .map_err(|e| anyhow::anyhow!("same54 bootloader: {e:?}"))?;
        write_back(&chip, &b)?;
        drop(b);
        let BootOutcome::Verified { flags_at_boot, .. } = report.outcome else {
            bail!(
                "the simulated aws_bootloader found no verified image: {:?}",
                report.outcome
            );
        };
        let decision = if flags_at_boot == pal_same54::ImageFlags::NEW {
            BootDecision::Trial
        } else if report.swaps > 0 {
            BootDecision::RolledBack
        } else {
            BootDecision::Normal
        };
        let header = image::parse(&chip.read(app_addr(), HEADER_LEN as u32))
            .context("same54: no image header at 0x10000")?;
        let version = header.version;
        tally.booted(version)?;
        emit(
            events,
            DeviceEvent::Booted {
                version,
                slot: 0,
                decision,
            },
        );
        let behavior = behavior_of(ctx, decision == BootDecision::Trial, header.behavior);
        if behavior == Behavior::CannotConnect {
            watchdog(ctx).await;
            continue;
        }
        let whole = LAYOUT.flash_size();
        let slot = SignatureSlot::new();
        let storage = Same54Storage::new(chip.window::<W, E>(0, whole)?, LAYOUT)
            .map_err(|e| anyhow::anyhow!("same54 storage: {e:?}"))?;
        let boot = Same54Boot::new(chip.window::<W, E>(0, whole)?, CONFIG, version.to_u32())
            .map_err(|e| anyhow::anyhow!("same54 boot control: {e:?}"))?
            .with_signature_slot(&slot);
        let verifier = SignatureCapture::new(ota_verifier(opts)?, &slot);
        let journal =
            FlashJournal::new(jchip.window::<WRITE, ERASE>(0, JOURNAL)?, 0, JOURNAL, 0xFF)
                .map_err(|e| anyhow::anyhow!("journal: {e:?}"))?;
        let reset =
            run_agent_with(ctx, version, behavior, storage, verifier, boot, journal).await?;
        if !reset {
            return Ok(tally.report(ctx, version));
        }
    }
}
