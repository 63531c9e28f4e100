//! Shared fixtures: a simulated PSoC 6, signed MCUboot images, and the agent's side of the
//! flows (download, close, hand-over) written the way `ota-core`'s driver calls the PAL.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use ota_pal_traits::sim::{block_on, test_keys::TestKey, SimDevice};
use ota_pal_traits::{
    verify_stored_image, BootControl, FileInfo, ImageStorage, ImageVerifier, PalError,
    PalErrorKind, PlatformImageState, Sha256EcdsaP256Verifier,
};

use p256::ecdsa::SigningKey;
use pal_psoc6::image::{build_signed_image, check_image, StoredImage};
use pal_psoc6::layout::CYPRESS_HEADER_SIZE;
use pal_psoc6::sim::{
    flash_view, program_area, sim_config, BootOutcome, Psoc6SimFlash, SimBootloader,
    SIM_FLASH_BYTES,
};
use pal_psoc6::{Config, ImageVersion, Psoc6BootControl, Psoc6ImageStorage};

pub type Dev = SimDevice<Vec<u8>>;
pub type Storage<'d> = Psoc6ImageStorage<Psoc6SimFlash<'d, Vec<u8>>>;
pub type Boot<'d> = Psoc6BootControl<Psoc6SimFlash<'d, Vec<u8>>>;

pub const OLD: ImageVersion = ImageVersion::new(1, 0, 0, 0);
pub const NEW: ImageVersion = ImageVersion::new(1, 2, 3, 0);
pub const BLOCK: usize = 1024;

/// The MCUboot signing key (stands in for `cypress-test-ec-p256.pem`).
pub fn mcuboot_key() -> SigningKey {
    TestKey::from_seed(0x11).unwrap().signing_key().clone()
}
/// The AWS code-signing key (job-document signature).
pub fn aws_key() -> TestKey {
    TestKey::from_seed(0x22).unwrap()
}
pub fn mcuboot_verifier() -> Sha256EcdsaP256Verifier {
    TestKey::from_seed(0x11).unwrap().verifier()
}
pub fn aws_verifier() -> Sha256EcdsaP256Verifier {
    aws_key().verifier()
}

/// A signed image of `version` with a payload of `len` bytes.
pub fn image(version: ImageVersion, len: usize) -> Vec<u8> {
    let payload: Vec<u8> = (0..len)
        .map(|i| (i * 7 + version.minor as usize) as u8)
        .collect();
    let mut out = vec![0u8; len + 0x400 + 256];
    let n = build_signed_image(
        &payload,
        version,
        CYPRESS_HEADER_SIZE,
        &mcuboot_key(),
        &mut out,
    )
    .unwrap();
    out.truncate(n);
    out
}

/// The job document's signature of `file`.
pub fn aws_sig(file: &[u8]) -> Vec<u8> {
    aws_key().sign(file).as_bytes().to_vec()
}

pub fn file_of(size: usize) -> FileInfo<'static> {
    FileInfo::new("", size as u32)
}

/// A blank 2 MB PSoC 6 with the factory image `OLD` in the primary slot.
pub fn device(config: &Config) -> Dev {
    let dev = SimDevice::new(vec![0u8; SIM_FLASH_BYTES], sim_config()).unwrap();
    program_area(&dev, &config.primary, &image(OLD, 3000)).unwrap();
    dev
}

pub fn pal<'d>(dev: &'d Dev, config: Config) -> (Storage<'d>, Boot<'d>) {
    (
        Psoc6ImageStorage::new(flash_view(dev).unwrap(), config).unwrap(),
        Psoc6BootControl::new(flash_view(dev).unwrap(), config).unwrap(),
    )
}

pub fn bootloader(dev: &Dev, config: Config) -> SimBootloader<'_, Vec<u8>> {
    SimBootloader::new(dev, config, Some(mcuboot_verifier()))
}

/// Power on (after a cut) and reset until the bootloader finishes.
pub fn reboot(dev: &Dev, config: Config) -> BootOutcome {
    loop {
        dev.power_on().unwrap();
        match bootloader(dev, config).boot() {
            BootOutcome::PowerLost => continue,
            o => return o,
        }
    }
}

pub fn running(o: BootOutcome) -> ImageVersion {
    match o {
        BootOutcome::Booted { version, .. } => version,
        o => panic!("nothing bootable: {o:?}"),
    }
}

/// Prepare and write `file` block by block, in a scrambled order.
pub fn download(storage: &mut Storage<'_>, file: &[u8]) -> Result<(), PalError> {
    block_on(async {
        storage.prepare(&file_of(file.len())).await?;
        let n = file.len().div_ceil(BLOCK);
        let mut order: Vec<usize> = (0..n).rev().collect();
        order.rotate_left(n / 2);
        for i in order {
            let end = ((i + 1) * BLOCK).min(file.len());
            storage
                .write((i * BLOCK) as u32, &file[i * BLOCK..end])
                .await?;
        }
        Ok(())
    })
}

/// The agent's close: job-document signature over the stored file, plus the MCUboot header /
/// TLV check the board runs at close; a failure rejects so the state reads Invalid.
pub fn close(
    storage: &mut Storage<'_>,
    boot: &mut Boot<'_>,
    size: usize,
    sig: &[u8],
) -> Result<(), PalError> {
    close_with(storage, boot, size, sig, &mcuboot_verifier())
}

/// [`close`] with another MCUboot key.
pub fn close_with(
    storage: &mut Storage<'_>,
    boot: &mut Boot<'_>,
    size: usize,
    sig: &[u8],
    key: &Sha256EcdsaP256Verifier,
) -> Result<(), PalError> {
    block_on(async {
        let file = file_of(size);
        let mut v = aws_verifier();
        v.begin(&file);
        let mut scratch = [0u8; 512];
        let mut r = verify_stored_image(storage, &mut v, &file, 0, sig, &mut scratch).await;
        if r.is_ok() {
            let c = check_image(
                &mut StoredImage {
                    storage: &mut *storage,
                    len: size as u32,
                },
                Some(key),
                &mut scratch,
            )
            .await?;
            if !c.is_valid_signed() {
                r = Err(PalError::with_sub(
                    PalErrorKind::SignatureCheckFailed,
                    0x700,
                ));
            }
        }
        if let Err(e) = r {
            if e.kind() == PalErrorKind::SignatureCheckFailed {
                boot.reject().await?;
            }
        }
        r
    })
}

/// Download, verify and hand over `file` (what the agent does before it resets).
pub fn stage(storage: &mut Storage<'_>, boot: &mut Boot<'_>, file: &[u8]) -> Result<(), PalError> {
    stage_with(storage, boot, file, &mcuboot_verifier())
}

/// [`stage`] with another MCUboot key.
pub fn stage_with(
    storage: &mut Storage<'_>,
    boot: &mut Boot<'_>,
    file: &[u8],
    key: &Sha256EcdsaP256Verifier,
) -> Result<(), PalError> {
    download(storage, file)?;
    close_with(storage, boot, file.len(), &aws_sig(file), key)?;
    block_on(boot.request_trial_boot(&file_of(file.len())))?;
    storage.release();
    Ok(())
}

pub fn state(boot: &mut Boot<'_>) -> PlatformImageState {
    block_on(boot.platform_state()).unwrap()
}

/// Raw bytes of a device range.
pub fn bytes(dev: &Dev, off: u32, len: usize) -> Vec<u8> {
    dev.inspect(|m| m[off as usize..off as usize + len].to_vec())
        .unwrap()
}
