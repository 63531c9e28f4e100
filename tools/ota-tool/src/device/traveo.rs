//! `--board traveo`: `pal-traveo` (TRAVEO T2G CYT4BF, the ROM's Dual Bank Manager) over the
//! simulated device of `pal_traveo::sim` in `<state>/flash.bin` (both code-flash banks, then
//! the work flash with the DBM's flash marker and the PAL's trial record), the journal in
//! `<state>/journal.bin`.
//!
//! The OTA file is a signed CM0+ image ([`traveo_image`]): the 24-byte application header
//! (`appId` = the version), the [`super::image`] image at [`VT_OFFSET`], and the RSA-2048
//! PKCS#1 v1.5 / SHA-256 signature the DBM checks (made with the DBM's key: here the
//! pal-traveo test key, a throwaway; the agent checks the OTA signature). Jobs must use file
//! type 141 (`pal_traveo::FIRMWARE_FILE_TYPE`). At each reset `SimBoard::boot` plays the DBM
//! (marker, RSA check, fallback), then `TraveoBootControl::startup` runs once, as the
//! firmware's first step, before the agent starts with the version of the header.

use anyhow::{bail, Context, Result};
use ota_core::wire::version::AppVersion;
use ota_pal_traits::sim::{block_on, SimConfig, SimDevice};
use ota_pal_traits::FlashJournal;
use ota_pal_traits::PlatformImageState;
use pal_traveo::layout::{
    BANK_SIZE, CODE_ROW_SIZE, CODE_SECTOR_SIZE, WORK_FLASH_BASE, WORK_FLASH_LARGE_SIZE,
    WORK_PROGRAM_SIZE, WORK_SECTOR_SIZE,
};
use pal_traveo::sim::{
    bank_offset, sim_config, BootOutcome, RunningImage, SimBoard, SIM_DEVICE_SIZE, SIM_WORK_OFFSET,
};
use pal_traveo::{AppHeader, AppVerifier, Bank, Config, FixedMapping};
use pal_traveo::{TraveoBootControl, TraveoImageStorage};
use rsa::pkcs1v15::{Signature, SigningKey, VerifyingKey};
use rsa::pkcs8::DecodePrivateKey;
use rsa::signature::{SignatureEncoding, Signer, Verifier};
use sha2::Sha256;

use super::boot::BootDecision;
use super::flash::{PersistentChip, ERASE, WRITE};
use super::image::{self, Behavior, HEADER_LEN};
use super::runtime::{
    behavior_of, emit, run_agent, watchdog, Ctx, Tally, FACTORY_PAYLOAD, JOURNAL,
};
use super::DeviceEvent;

/// The board configuration simulated.
pub const CONFIG: Config = Config::CYT4BF;
/// Where the firmware (our image header) starts in the CM0+ image (as `tools/qemu-boot`).
pub const VT_OFFSET: u32 = 0x100;
const ROW: usize = CODE_ROW_SIZE as usize;
const SECTOR: usize = CODE_SECTOR_SIZE as usize;
const WP: usize = WORK_PROGRAM_SIZE as usize;
const WS: usize = WORK_SECTOR_SIZE as usize;

/// The DBM's RSA key: the pal-traveo test key (a throwaway, public in the repository).
const DBM_KEY_PEM: &str = include_str!("../../../../pal-traveo/tests/data/dbm-test-key.pem");

fn dbm_key() -> Result<rsa::RsaPrivateKey> {
    rsa::RsaPrivateKey::from_pkcs8_pem(DBM_KEY_PEM).context("the DBM test key")
}

/// The ROM's `Cy_FB_VerifyApplication`: RSA-2048 PKCS#1 v1.5 over SHA-256 (as
/// `tools/qemu-boot`'s `RsaAppVerifier`).
pub struct RsaAppVerifier(VerifyingKey<Sha256>);

impl RsaAppVerifier {
    /// The verifier of the DBM key.
    pub fn new() -> Result<Self> {
        Ok(Self(VerifyingKey::new(
            rsa::RsaPublicKey::from(&dbm_key()?),
        )))
    }
}

impl AppVerifier for RsaAppVerifier {
    fn verify_application(&mut self, app: &[u8], signature: &[u8]) -> bool {
        Signature::try_from(signature).is_ok_and(|s| self.0.verify(app, &s).is_ok())
    }
}

/// An OTA file for `--board traveo`: the signed CM0+ image around an image of `version`.
pub fn traveo_image(version: AppVersion, payload_len: u32, behavior: Behavior) -> Result<Vec<u8>> {
    let fw = image::build(version, payload_len, behavior);
    let obj_size = VT_OFFSET as usize + fw.len();
    if obj_size > CONFIG.cm0_signature_limit as usize {
        bail!(
            "traveo: an image of {} bytes does not fit the CM0+ region",
            fw.len()
        );
    }
    let v = pal_traveo::AppVersion {
        major: version.major,
        minor: version.minor,
        build: version.build,
    };
    let mut img = vec![0u8; VT_OFFSET as usize];
    img[..24].copy_from_slice(&AppHeader::cm0p(obj_size as u32, v, VT_OFFSET).encode());
    img.extend_from_slice(&fw);
    let sig = SigningKey::<Sha256>::new(dbm_key()?).sign(&img).to_bytes();
    img.extend_from_slice(&sig);
    Ok(img)
}

/// Run the DBM over `dev`.
fn dbm(dev: &SimDevice<Vec<u8>>) -> Result<RunningImage> {
    let mut board = SimBoard::new(dev, CONFIG).map_err(|e| anyhow::anyhow!("traveo: {e:?}"))?;
    match board.boot(&mut RsaAppVerifier::new()?) {
        Ok(BootOutcome::Runs(r)) => Ok(r),
        Ok(BootOutcome::Hang) => bail!("traveo: the DBM found no bootable image (it hangs)"),
        Err(e) => bail!("traveo: flash error in the DBM: {e:?}"),
    }
}

fn header_at(flash: &[u8], bank: Bank) -> Option<image::Header> {
    let at = (bank_offset(bank) + VT_OFFSET) as usize;
    image::parse(flash.get(at..at + HEADER_LEN)?)
}

/// The version the DBM would start from `flash` (a copy; the DBM writes nothing).
pub fn running_version(flash: Vec<u8>) -> Result<AppVersion> {
    let dev =
        SimDevice::new(flash, sim_config(&CONFIG)).map_err(|e| anyhow::anyhow!("traveo: {e:?}"))?;
    let r = dbm(&dev)?;
    let mem = dev.into_inner();
    Ok(header_at(&mem, r.bank)
        .context("traveo: no image header in the running bank")?
        .version)
}

pub(super) async fn run(ctx: &Ctx) -> Result<super::DeviceReport> {
    let (opts, events) = (&ctx.opts, &ctx.events);
    ctx.firmware_file_type.set(pal_traveo::FIRMWARE_FILE_TYPE);
    let (chip, fresh) = PersistentChip::open(
        &opts.state.join("flash.bin"),
        SIM_DEVICE_SIZE as u32,
        sim_config(&CONFIG),
        CONFIG.work_erase_value,
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
            // The CM0+ region holds less than 64 KiB (`cm0_signature_limit`).
            None => traveo_image(opts.version, FACTORY_PAYLOAD / 4, Behavior::Normal)?,
        };
        chip.install(bank_offset(Bank::Lower), &img)?;
        super::runtime::mark_board(&opts.state, "traveo")?;
        emit(events, DeviceEvent::Provisioned(opts.version));
    }
    let mut tally = Tally {
        initial: None,
        boots: 0,
    };
    loop {
        let running = dbm(&chip.dev)?;
        chip.sync_all()?;
        let mapping = running.mapping;
        let mut boot = TraveoBootControl::new(
            chip.window::<WP, WS>(SIM_WORK_OFFSET, WORK_FLASH_LARGE_SIZE)?,
            WORK_FLASH_BASE,
            FixedMapping(mapping),
            &CONFIG,
        )
        .map_err(|e| anyhow::anyhow!("traveo boot control: {e:?}"))?;
        // The firmware's first step at every boot.
        let report =
            block_on(boot.startup()).map_err(|e| anyhow::anyhow!("traveo startup: {e:?}"))?;
        let header = header_at(&chip.read(0, SIM_DEVICE_SIZE as u32), running.bank)
            .context("traveo: no image header in the running bank")?;
        let version = header.version;
        let decision = if report.reset_required || report.rollback_repaired {
            BootDecision::RolledBack
        } else if report.state == PlatformImageState::PendingCommit {
            BootDecision::Trial
        } else if report.state == PlatformImageState::Invalid {
            BootDecision::RolledBack
        } else {
            BootDecision::Normal
        };
        tally.booted(version)?;
        emit(
            events,
            DeviceEvent::Booted {
                version,
                slot: running.bank as u8,
                decision,
            },
        );
        if report.reset_required {
            // A second boot of an unconfirmed trial: the marker now prefers the old bank.
            emit(events, DeviceEvent::Reset);
            continue;
        }
        let behavior = behavior_of(ctx, decision == BootDecision::Trial, header.behavior);
        if behavior == Behavior::CannotConnect {
            watchdog(ctx).await;
            continue;
        }
        let inactive = mapping.inactive_bank();
        let storage = TraveoImageStorage::new(
            chip.window::<ROW, SECTOR>(bank_offset(inactive), BANK_SIZE)?,
            CONFIG.inactive_bank,
            &CONFIG,
        )
        .map_err(|e| anyhow::anyhow!("traveo storage: {e:?}"))?;
        let journal =
            FlashJournal::new(jchip.window::<WRITE, ERASE>(0, JOURNAL)?, 0, JOURNAL, 0xFF)
                .map_err(|e| anyhow::anyhow!("journal: {e:?}"))?;
        let reset = run_agent(ctx, version, behavior, storage, boot, journal).await?;
        if !reset {
            return Ok(tally.report(ctx, version));
        }
    }
}
