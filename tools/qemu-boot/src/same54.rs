//! SAME54 Xplained Pro with the amazon-freertos `aws_bootloader`: the flash file is the 1 MB NVM
//! as the CPU sees it (after any bank swap), write unit 16 bytes, 8 KB blocks, erased to 0xFF,
//! laid out as [`Layout::SAME54_XPRO`]: bootloader at 0, application at 0x10000, descriptor at
//! 0x7E000, and the same in the upper bank (staging at 0x90000, descriptor at 0xFE000). The
//! bootloader is [`pal_same54::sim::Bootloader`]: highest valid sequence wins, an upper winner
//! means a bank swap (BKSWRST) and a new decision, a first boot rewrites flags 0xFF → 0xFE.
//!
//! The image format has no version: the OTA file is the raw application binary and its
//! descriptor carries a sequence number and the code-signing signature (the same ECDSA P-256 /
//! SHA-256 signature the job document carries), so `--key` and `--sign-key` name the same
//! trust here: the bootloader's `aws_boot_codesigner_public_key.h` is the OTA signer's key.
//! STATUS.AFIRST (which half is mapped first) is not kept in the file: the file is the CPU's
//! view, and the sim swaps the halves in place.

use ota_pal_traits::sim::block_on;
use ota_pal_traits::{BootControl, ImageStorage, ImageVerifier, Sha256EcdsaP256Verifier};
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use pal_same54::sim::{write_factory_image, BootOutcome, Bootloader, Same54Board};
use pal_same54::{close_file, Config, Layout, Same54Boot, Same54Storage};

use crate::{file_info, Booted};

/// The bootloader build the example uses (the descriptors are the vendor's; no rewrite of the
/// lower descriptor at close, see `pal_same54::SequencePolicy`).
pub const CONFIG: Config = Config::POWER_SAFE;
const LAYOUT: Layout = Layout::SAME54_XPRO;
/// Bytes of the flash file.
pub const FLASH_BYTES: usize = 0x10_0000;
/// What sits where the bootloader is (and its copy in bank B, which a bank swap needs): a
/// placeholder, since the bootloader runs on the host.
fn bootloader_placeholder() -> Vec<u8> {
    let mut b = b"ota-rs qemu-boot: SAME54 aws_bootloader placeholder (runs on the host)".to_vec();
    b.resize(LAYOUT.bootloader_size as usize, 0xFF);
    b
}

fn board(flash: Vec<u8>) -> Result<Same54Board<Vec<u8>>, String> {
    if flash.len() != FLASH_BYTES {
        return Err(format!(
            "same54 flash file is {} bytes, expected {FLASH_BYTES} (made by `qemu-boot factory`?)",
            flash.len()
        ));
    }
    Same54Board::new(flash, LAYOUT).map_err(|e| format!("sim board: {e:?}"))
}

fn sign(key: &SigningKey, data: &[u8]) -> Vec<u8> {
    let s: Signature = key.sign(data);
    s.to_der().as_bytes().to_vec()
}

/// What `factory_image_generator.py` and the bootloader hex leave: the bootloader (and its
/// bank-B copy), `fw` at 0x10000, the factory descriptor (sequence 0, flags 0xFC, signature).
pub fn factory(fw: &[u8], key: &SigningKey) -> Result<Vec<u8>, String> {
    let b = board(vec![0xFF; FLASH_BYTES])?;
    write_factory_image(&b, &bootloader_placeholder(), fw, &sign(key, fw))
        .map_err(|e| format!("factory image: {e:?}"))?;
    into_flash(b)
}

/// Stage `file` (the raw application) as the agent does: `Same54Storage` prepare and writes,
/// `close_file` (signature check over the stored bytes; hands the signature to boot control),
/// then `request_trial_boot` (the upper descriptor, sequence = lower + 1).
pub fn stage(
    flash: Vec<u8>,
    file: &[u8],
    sig: &[u8],
    ota_key: &mut Sha256EcdsaP256Verifier,
) -> Result<Vec<u8>, String> {
    let b = board(flash)?;
    {
        let nvm = |what| b.nvm().map_err(|e| format!("{what}: {e:?}"));
        let mut storage = Same54Storage::new(nvm("storage")?, LAYOUT)
            .map_err(|e| format!("Same54Storage::new: {e:?}"))?;
        // The running firmware's AppVersion32 only matters to the vendor sequence policy.
        let mut boot = Same54Boot::new(nvm("boot")?, CONFIG, 0)
            .map_err(|e| format!("Same54Boot::new: {e:?}"))?;
        let info = file_info(file)?;
        block_on(async {
            storage
                .prepare(&info)
                .await
                .map_err(|e| format!("prepare failed: {e:?}"))?;
            ota_key.begin(&info);
            for (i, block) in file.chunks(crate::BLOCK).enumerate() {
                storage
                    .write((i * crate::BLOCK) as u32, block)
                    .await
                    .map_err(|e| format!("write failed: {e:?}"))?;
            }
            let mut scratch = [0u8; 512];
            close_file(
                &mut storage,
                ota_key,
                &mut boot,
                &info,
                0,
                sig,
                &mut scratch,
            )
            .await
            .map_err(|e| format!("signature check of the stored file failed: {e:?}"))?;
            boot.request_trial_boot(&info)
                .await
                .map_err(|e| format!("request_trial_boot failed: {e:?}"))
        })?;
    }
    into_flash(b)
}

/// Reset through the simulated aws_bootloader and hand over what runs at 0x10000.
pub fn boot(flash: Vec<u8>, key: Sha256EcdsaP256Verifier) -> Result<(Vec<u8>, Booted), String> {
    let mut b = board(flash)?;
    let report = Bootloader::new(&key)
        .boot(&mut b)
        .map_err(|e| format!("bootloader flash error: {e:?}"))?;
    let BootOutcome::Verified {
        descriptor,
        flags_at_boot,
        ..
    } = report.outcome
    else {
        return Err(format!(
            "same54: no verified image ({:?}); the real bootloader would launch 0x10000 \
             unchecked or not at all",
            report.outcome
        ));
    };
    let flash = into_flash(b)?;
    let at = LAYOUT.app_addr() as usize;
    let payload = flash
        .get(at..at + descriptor.image_size as usize)
        .ok_or("image size past the flash file")?
        .to_vec();
    let booted = Booted {
        version: format!("sequence {}", descriptor.sequence),
        slot: format!("lower bank @ {at:#07x}"),
        action: format!(
            "{} bank swap(s), flags at launch {:#04x}",
            report.swaps, flags_at_boot.0
        ),
        payload,
    };
    Ok((flash, booted))
}

/// The flash contents (`Same54Board` has no `into_inner`: copied out through the raw view).
fn into_flash(b: Same54Board<Vec<u8>>) -> Result<Vec<u8>, String> {
    b.device()
        .inspect(|m| m.to_vec())
        .map_err(|e| format!("sim board: {e:?}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use ota_pal_traits::PlatformImageState;

    fn key() -> SigningKey {
        SigningKey::from_slice(&[0x42; 32]).unwrap()
    }
    fn verifier() -> Sha256EcdsaP256Verifier {
        Sha256EcdsaP256Verifier::from_verifying_key(*key().verifying_key())
    }
    fn fw(tag: u8) -> Vec<u8> {
        (0..5000u32).map(|i| (i as u8) ^ tag).collect()
    }
    fn decide(flash: Vec<u8>, confirm: Option<bool>) -> (Vec<u8>, PlatformImageState) {
        let b = board(flash).unwrap();
        let state = {
            let mut boot = Same54Boot::new(b.nvm().unwrap(), CONFIG, 0).unwrap();
            let s = block_on(boot.platform_state()).unwrap();
            match confirm {
                Some(true) => block_on(boot.confirm()).unwrap(),
                Some(false) => block_on(boot.reject()).unwrap(),
                None => {}
            }
            s
        };
        (into_flash(b).unwrap(), state)
    }

    #[test]
    fn update_confirm_and_rollback() {
        for confirm in [true, false] {
            let flash = factory(&fw(1), &key()).unwrap();
            let (flash, b) = boot(flash, verifier()).unwrap();
            assert_eq!(b.payload, fw(1));
            let (flash, s) = decide(flash, None);
            assert_eq!(s, PlatformImageState::Valid);
            let new = fw(2);
            let flash = stage(flash, &new, &sign(&key(), &new), &mut verifier()).unwrap();
            let (flash, b) = boot(flash, verifier()).unwrap();
            assert_eq!(
                (b.payload.as_slice(), b.version.as_str()),
                (new.as_slice(), "sequence 1")
            );
            let (flash, s) = decide(flash, Some(confirm));
            assert_eq!(s, PlatformImageState::PendingCommit);
            let (flash, b) = boot(flash, verifier()).unwrap();
            assert_eq!(
                b.payload,
                if confirm { fw(2) } else { fw(1) },
                "confirm {confirm}"
            );
            let (_, s) = decide(flash, None);
            assert_eq!(
                s,
                if confirm {
                    PlatformImageState::Valid
                } else {
                    PlatformImageState::Invalid
                }
            );
        }
    }

    #[test]
    fn refusals() {
        let flash = factory(&fw(1), &key()).unwrap();
        let other = SigningKey::from_slice(&[0x17; 32]).unwrap();
        let new = fw(2);
        let e = stage(flash.clone(), &new, &sign(&other, &new), &mut verifier()).unwrap_err();
        assert!(e.contains("signature check"), "{e}");
        let e = boot(
            flash,
            Sha256EcdsaP256Verifier::from_verifying_key(*other.verifying_key()),
        )
        .unwrap_err();
        assert!(e.contains("no verified image"), "{e}");
    }
}
