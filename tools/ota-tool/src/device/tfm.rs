//! `--board tfm`: `pal-tfm` (TF-M's PSA Firmware Update API on Arm Corstone-300/310) over
//! `pal_tfm::sim::SimTfm`, which plays TF-M's FWU partition (the `PsaFwu` calls of
//! `TfmStorage`, `TfmBootControl` and `CandidateDigestVerifier`) and BL2 (MCUboot swap using
//! scratch, revert of an unaccepted trial) over the Corstone flash in `<state>/flash.bin`
//! (7.5 MB, 64 KB sectors); the journal in `<state>/journal.bin`.
//!
//! The OTA file is the non-secure image as TF-M's `wrapper.py -H 0x400 --pad-header` signs it
//! for BL2 ([`tfm_image`], `pal_tfm::sim::build_image`), around an image of the
//! [`super::image`] format; BL2's key is a throwaway (the agent checks the OTA signature, over
//! the candidate digest the FWU partition computes). Any job path goes to the non-secure image
//! (`Config::PAL_PSA_DEFAULT_NONSECURE`). The secure slot holds a signed placeholder.
//!
//! The FWU partition's component states live in `SimTfm` (RAM, re-derived by BL2 at each
//! boot: a WRITING candidate is discarded at a reboot) and its flash writes reach `flash.bin`
//! when the agent's run ends (at each reset and at the end). So a download cannot resume
//! across a reboot: the journal is cleared at each boot and a device killed mid-download
//! downloads the file again (the agent's resume would otherwise fail the job).

use anyhow::{bail, Context, Result};
use ota_core::wire::version::AppVersion;
use ota_pal_traits::sim::{SimConfig, SimDevice};
use ota_pal_traits::{DownloadJournal, FlashJournal};
use p256::ecdsa::{SigningKey, VerifyingKey};
use p256::pkcs8::DecodePublicKey;
use pal_tfm::sim::{build_image, BootOutcome, SimTfm};
use pal_tfm::{
    Algorithm, CandidateDigestVerifier, ComponentId, Config, ImageVersion, Layout, P256Crypto,
    TfmBootControl, TfmStorage,
};

use super::boot::BootDecision;
use super::flash::{PersistentChip, ERASE, WRITE};
use super::image::{self, Behavior, HEADER_LEN};
use super::runtime::{
    behavior_of, emit, run_agent_with, watchdog, Ctx, Tally, FACTORY_PAYLOAD, JOURNAL,
};
use super::DeviceEvent;

/// The flash layout simulated.
pub const LAYOUT: Layout = Layout::CORSTONE3XX;
/// The PAL's path table: any job path updates the non-secure image.
pub const CONFIG: Config = Config::PAL_PSA_DEFAULT_NONSECURE;
const SECTOR: usize = 64 * 1024;
/// The MCUboot header size of TF-M's images (our header follows it).
const HEADER: u32 = pal_tfm::mcuboot::TFM_HEADER_SIZE as u32;
const SECURE_PLACEHOLDER: &[u8] =
    b"ota-rs ota device: secure image placeholder (TF-M runs on the host)";

/// BL2's signing key: a throwaway (BL2 checks it; the agent checks the OTA signature).
fn bl2_key() -> Result<SigningKey> {
    Ok(SigningKey::from_slice(&[0x3C; 32])?)
}

fn signed(payload: &[u8], version: AppVersion) -> Result<Vec<u8>> {
    let mut out = vec![0u8; payload.len() + HEADER as usize + 1024];
    let v = ImageVersion {
        major: version.major,
        minor: version.minor,
        patch: version.build,
        build: 0,
    };
    let n = build_image(&mut out, payload, v, &bl2_key()?).context("building the MCUboot image")?;
    out.truncate(n);
    Ok(out)
}

/// An OTA file for `--board tfm`: the signed non-secure MCUboot image around an image of
/// `version`.
pub fn tfm_image(version: AppVersion, payload_len: u32, behavior: Behavior) -> Result<Vec<u8>> {
    signed(&image::build(version, payload_len, behavior), version)
}

fn ns_primary() -> Result<u32> {
    Ok(LAYOUT
        .image(ComponentId::NONSECURE)
        .context("the layout has no non-secure image")?
        .primary)
}

/// Our header in the non-secure primary slot (what runs after BL2).
pub fn running_header(flash: &[u8]) -> Result<image::Header> {
    let at = (ns_primary()? + HEADER) as usize;
    image::parse(flash.get(at..at + HEADER_LEN).unwrap_or_default())
        .context("tfm: no image header in the non-secure primary slot")
}

fn sim(dev: &SimDevice<Vec<u8>>) -> Result<SimTfm<'_, Vec<u8>, SECTOR>> {
    SimTfm::new(dev, LAYOUT, *bl2_key()?.verifying_key())
        .map_err(|e| anyhow::anyhow!("SimTfm: {e:?}"))
}

pub(super) async fn run(ctx: &Ctx) -> Result<super::DeviceReport> {
    let (opts, events) = (&ctx.opts, &ctx.events);
    let ota_key = std::str::from_utf8(&opts.verify_key_pem)
        .ok()
        .and_then(|pem| VerifyingKey::from_public_key_pem(pem).ok())
        .context("tfm: the verify key must be a P-256 public key (SPKI PEM)")?;
    let (chip, fresh) = PersistentChip::open(
        &opts.state.join("flash.bin"),
        LAYOUT.flash_size,
        SimConfig::new(1, SECTOR),
        pal_tfm::sim::ERASED,
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
            None => tfm_image(opts.version, FACTORY_PAYLOAD, Behavior::Normal)?,
        };
        {
            let s = sim(&chip.dev)?;
            s.factory_program(
                ComponentId::SECURE,
                &signed(SECURE_PLACEHOLDER, opts.version)?,
            )
            .map_err(|e| anyhow::anyhow!("tfm: programming the secure slot: {e:?}"))?;
            s.factory_program(ComponentId::NONSECURE, &img)
                .map_err(|e| anyhow::anyhow!("tfm: programming the non-secure slot: {e:?}"))?;
        }
        chip.sync_all()?;
        super::runtime::mark_board(&opts.state, "tfm")?;
        emit(events, DeviceEvent::Provisioned(opts.version));
    }
    let mut tally = Tally {
        initial: None,
        boots: 0,
    };
    let mut last_trial: Option<AppVersion> = None;
    loop {
        // The FWU partition and BL2 of this boot (TF-M restarts with the device).
        let tfm = sim(&chip.dev)?;
        let outcome = tfm
            .boot()
            .map_err(|e| anyhow::anyhow!("tfm: BL2 flash error: {e:?}"))?;
        chip.sync_all()?;
        let BootOutcome::Booted(_) = outcome else {
            bail!("tfm: BL2 found no bootable image ({outcome:?})");
        };
        let ns = outcome
            .image(ComponentId::NONSECURE)
            .context("tfm: BL2 booted without a non-secure image")?;
        let header = running_header(&chip.read(0, LAYOUT.flash_size))?;
        let version = header.version;
        let decision = if ns.trial {
            BootDecision::Trial
        } else if last_trial.is_some_and(|t| t != version) {
            BootDecision::RolledBack
        } else {
            BootDecision::Normal
        };
        last_trial = ns.trial.then_some(version);
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
        let storage = TfmStorage::new(&tfm, CONFIG);
        let boot = TfmBootControl::new(&tfm, CONFIG);
        let verifier = CandidateDigestVerifier::new(
            &tfm,
            P256Crypto::new(ota_key),
            0,
            Algorithm::EcdsaSha256,
            CONFIG.components,
        );
        let mut journal =
            FlashJournal::new(jchip.window::<WRITE, ERASE>(0, JOURNAL)?, 0, JOURNAL, 0xFF)
                .map_err(|e| anyhow::anyhow!("journal: {e:?}"))?;
        // The FWU partition discards a WRITING candidate at a reboot (every component is
        // READY after BL2), so no download can resume: forget the journal, or the agent's
        // resume would fail the job instead of downloading again.
        journal
            .clear()
            .await
            .map_err(|e| anyhow::anyhow!("journal: {e:?}"))?;
        let reset = run_agent_with(ctx, version, behavior, storage, verifier, boot, journal).await;
        chip.sync_all()?;
        if !reset? {
            return Ok(tally.report(ctx, version));
        }
    }
}
