//! PSoC 6 with the Cypress MCUboot v1.8 port (swap using status partition): the flash file is
//! the 2 MB internal flash from 0x1000_0000, erased to 0x00, laid out as
//! [`Config::V1_8_SWAP`]. The bootloader is [`pal_psoc6::sim::SimBootloader`].

use ota_pal_traits::sim::{block_on, SimDevice};
use ota_pal_traits::Sha256EcdsaP256Verifier;
#[cfg(test)]
use ota_pal_traits::{BootControl, PlatformImageState};
use p256::ecdsa::SigningKey;
use pal_psoc6::sim::{
    flash_view, program_area, sim_config, BootOutcome, SimBootloader, SIM_FLASH_BYTES,
};
use pal_psoc6::{Config, Psoc6BootControl, Psoc6ImageStorage};

use crate::mcuboot::{self, Version};
use crate::{file_info, stage_file, Booted};

/// The MCUboot build the example runs (the firmware uses the same preset).
pub const CONFIG: Config = Config::V1_8_SWAP;
/// Bytes of the flash file.
pub const FLASH_BYTES: usize = SIM_FLASH_BYTES;

fn device(flash: Vec<u8>) -> Result<SimDevice<Vec<u8>>, String> {
    if flash.len() != FLASH_BYTES {
        return Err(format!(
            "psoc6 flash file is {} bytes, expected {FLASH_BYTES} (made by `qemu-boot factory`?)",
            flash.len()
        ));
    }
    SimDevice::new(flash, sim_config()).map_err(|e| format!("sim device: {e:?}"))
}

/// The OTA file for `fw`: an MCUboot image signed with `key` (`imgtool sign -H 0x400`).
pub fn package(fw: &[u8], version: Version, key: &SigningKey) -> Result<Vec<u8>, String> {
    mcuboot::build(fw, version, mcuboot::CYPRESS_HEADER_SIZE, key)
}

/// A blank 0x00-erased flash with the signed `fw` in the primary slot, trailer erased: what
/// programming the factory hex (bootloader + signed app) leaves; it boots as confirmed.
pub fn factory(fw: &[u8], version: Version, key: &SigningKey) -> Result<Vec<u8>, String> {
    let image = package(fw, version, key)?;
    if image.len() as u32 > CONFIG.capacity() {
        return Err(format!(
            "image of {} bytes does not fit the primary slot",
            image.len()
        ));
    }
    let dev = device(vec![0u8; FLASH_BYTES])?;
    program_area(&dev, &CONFIG.primary, &image).map_err(|e| format!("program: {e:?}"))?;
    Ok(dev.into_inner())
}

/// Stage `file` as the agent does: prepare, write, verify the OTA signature, request the
/// trial boot. The file must be what [`package`] made.
pub fn stage(
    flash: Vec<u8>,
    file: &[u8],
    sig: &[u8],
    ota_key: &mut Sha256EcdsaP256Verifier,
) -> Result<Vec<u8>, String> {
    let dev = device(flash)?;
    {
        let view = |what| flash_view(&dev).map_err(|e| format!("{what}: {e:?}"));
        let mut storage = Psoc6ImageStorage::new(view("storage")?, CONFIG)
            .map_err(|e| format!("Psoc6ImageStorage::new: {e:?}"))?;
        let mut boot = Psoc6BootControl::new(view("boot control")?, CONFIG)
            .map_err(|e| format!("Psoc6BootControl::new: {e:?}"))?;
        let info = file_info(file)?;
        block_on(stage_file(
            &mut storage,
            &mut boot,
            &info,
            file,
            sig,
            ota_key,
        ))?;
    }
    Ok(dev.into_inner())
}

/// Reset through the simulated MCUboot: swap / revert as its trailers say, validate (the
/// signature with `key`), and report the image that runs from the primary slot.
pub fn boot(flash: Vec<u8>, key: Sha256EcdsaP256Verifier) -> Result<(Vec<u8>, Booted), String> {
    let dev = device(flash)?;
    let outcome = SimBootloader::new(&dev, CONFIG, Some(key)).boot();
    let BootOutcome::Booted { swap, .. } = outcome else {
        return Err(format!(
            "psoc6: MCUboot found no bootable image ({outcome:?})"
        ));
    };
    let flash = dev.into_inner();
    let at = CONFIG.primary.offset() as usize;
    let slot = flash
        .get(at..at + CONFIG.capacity() as usize)
        .ok_or("primary slot outside the flash file")?;
    let (version, payload) =
        mcuboot::payload(slot).ok_or("primary slot has no MCUboot header after boot")?;
    let booted = Booted {
        version: version.to_string(),
        slot: format!("primary slot @ {:#010x}", CONFIG.primary.addr),
        action: format!("{swap:?}"),
        payload: payload.to_vec(),
    };
    Ok((flash, booted))
}

/// The PAL's view of the running image (what the firmware will print): for tests.
#[cfg(test)]
pub fn platform_state(flash: Vec<u8>) -> Result<(Vec<u8>, PlatformImageState), String> {
    let dev = device(flash)?;
    let state = {
        let f = flash_view(&dev).map_err(|e| format!("{e:?}"))?;
        let mut boot = Psoc6BootControl::new(f, CONFIG).map_err(|e| format!("{e:?}"))?;
        block_on(boot.platform_state()).map_err(|e| format!("{e:?}"))?
    };
    Ok((dev.into_inner(), state))
}

/// Confirm (`true`) or reject the running image through the PAL, as the firmware does: for tests.
#[cfg(test)]
pub fn settle(flash: Vec<u8>, confirm: bool) -> Result<Vec<u8>, String> {
    let dev = device(flash)?;
    {
        let f = flash_view(&dev).map_err(|e| format!("{e:?}"))?;
        let mut boot = Psoc6BootControl::new(f, CONFIG).map_err(|e| format!("{e:?}"))?;
        let r = if confirm {
            block_on(boot.confirm())
        } else {
            block_on(boot.reject())
        };
        r.map_err(|e| format!("{e:?}"))?;
    }
    Ok(dev.into_inner())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use p256::ecdsa::signature::Signer;
    use p256::ecdsa::Signature;

    fn mcuboot_key() -> SigningKey {
        SigningKey::from_slice(&[0x11; 32]).unwrap()
    }
    fn ota_key() -> SigningKey {
        SigningKey::from_slice(&[0x22; 32]).unwrap()
    }
    fn verifier(k: &SigningKey) -> Sha256EcdsaP256Verifier {
        Sha256EcdsaP256Verifier::from_verifying_key(*k.verifying_key())
    }
    fn fw(tag: u8) -> Vec<u8> {
        (0..5000u32).map(|i| (i as u8) ^ tag).collect()
    }
    fn ver(b: &Booted) -> Version {
        Version::parse(&b.version).unwrap()
    }
    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }
    fn stage_v2(flash: Vec<u8>, fw: &[u8]) -> Vec<u8> {
        let file = package(fw, v("2.0.0"), &mcuboot_key()).unwrap();
        let sig: Signature = ota_key().sign(&file);
        stage(
            flash,
            &file,
            sig.to_der().as_bytes(),
            &mut verifier(&ota_key()),
        )
        .unwrap()
    }
    fn boot_ok(flash: Vec<u8>) -> (Vec<u8>, Booted) {
        boot(flash, verifier(&mcuboot_key())).unwrap()
    }

    #[test]
    fn update_then_confirm_keeps_the_new_image() {
        let flash = factory(&fw(1), v("1.0.0"), &mcuboot_key()).unwrap();
        let (flash, b) = boot_ok(flash);
        assert_eq!(
            (ver(&b), b.payload.as_slice()),
            (v("1.0.0"), fw(1).as_slice())
        );
        let (flash, s) = platform_state(flash).unwrap();
        assert_eq!(s, PlatformImageState::Valid);
        let flash = stage_v2(flash, &fw(2));
        let (flash, b) = boot_ok(flash);
        assert_eq!(
            (ver(&b), b.payload.as_slice()),
            (v("2.0.0"), fw(2).as_slice())
        );
        assert_eq!(b.action, "Test");
        let (flash, s) = platform_state(flash).unwrap();
        assert_eq!(s, PlatformImageState::PendingCommit);
        let flash = settle(flash, true).unwrap();
        let (flash, b) = boot_ok(flash);
        assert_eq!(ver(&b), v("2.0.0"));
        let (_, s) = platform_state(flash).unwrap();
        assert_eq!(s, PlatformImageState::Valid);
    }

    #[test]
    fn rejected_trial_reverts_to_the_old_image() {
        let flash = factory(&fw(1), v("1.0.0"), &mcuboot_key()).unwrap();
        let flash = stage_v2(flash, &fw(2));
        let (flash, b) = boot_ok(flash);
        assert_eq!(ver(&b), v("2.0.0"));
        let flash = settle(flash, false).unwrap();
        let (flash, b) = boot_ok(flash);
        assert_eq!(
            (ver(&b), b.payload.as_slice()),
            (v("1.0.0"), fw(1).as_slice())
        );
        assert_eq!(b.action, "Revert");
        let (_, s) = platform_state(flash).unwrap();
        assert_eq!(s, PlatformImageState::Valid);
    }

    #[test]
    fn a_bad_ota_signature_is_refused_at_stage() {
        let flash = factory(&fw(1), v("1.0.0"), &mcuboot_key()).unwrap();
        let file = package(&fw(2), v("2.0.0"), &mcuboot_key()).unwrap();
        let sig: Signature = mcuboot_key().sign(&file);
        let e = stage(
            flash,
            &file,
            sig.to_der().as_bytes(),
            &mut verifier(&ota_key()),
        )
        .unwrap_err();
        assert!(e.contains("signature check"), "{e}");
    }

    #[test]
    fn an_image_signed_with_another_key_is_not_installed() {
        let flash = factory(&fw(1), v("1.0.0"), &mcuboot_key()).unwrap();
        let other = SigningKey::from_slice(&[0x33; 32]).unwrap();
        let file = package(&fw(2), v("2.0.0"), &other).unwrap();
        let sig: Signature = ota_key().sign(&file);
        let flash = stage(
            flash,
            &file,
            sig.to_der().as_bytes(),
            &mut verifier(&ota_key()),
        )
        .unwrap();
        let (_, b) = boot_ok(flash);
        assert_eq!(ver(&b), v("1.0.0"));
    }

    #[test]
    fn nothing_bootable_is_an_error() {
        let e = boot(vec![0u8; FLASH_BYTES], verifier(&mcuboot_key())).unwrap_err();
        assert!(e.contains("no bootable image"), "{e}");
        let other = SigningKey::from_slice(&[0x33; 32]).unwrap();
        let flash = factory(&fw(1), v("1.0.0"), &other).unwrap();
        assert!(boot(flash, verifier(&mcuboot_key())).is_err());
        assert!(boot(vec![0u8; 100], verifier(&mcuboot_key())).is_err());
    }
}
