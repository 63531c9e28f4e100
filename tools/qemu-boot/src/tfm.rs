//! Arm Corstone-300/310 with TF-M: the flash file is the Corstone flash of
//! [`Layout::CORSTONE3XX`] (7.5 MB, 64 KB sectors, erased to 0xFF: S and NS primary slots,
//! their secondary slots, scratch). [`SimTfm`] plays both TF-M's FWU partition (for `stage`,
//! through the PAL's `TfmStorage` / `TfmBootControl`) and BL2 (MCUboot swap using scratch, for
//! `boot`). The example firmware is the non-secure image; the secure slot holds a signed
//! placeholder, because no TF-M runs in the emulation (see examples/README.md).

use ota_pal_traits::sim::{block_on, SimConfig, SimDevice};
use ota_pal_traits::FileInfo;
#[cfg(test)]
use ota_pal_traits::PlatformImageState;
use p256::ecdsa::{SigningKey, VerifyingKey};
use pal_tfm::sim::{BootOutcome, SimTfm};
use pal_tfm::{
    Algorithm, CandidateDigestVerifier, ComponentId, Config, Layout, P256Crypto, TfmBootControl,
    TfmStorage,
};

use crate::mcuboot::{self, Version};
use crate::{stage_file, Booted};

/// The TF-M flash layout of the example.
pub const LAYOUT: Layout = Layout::CORSTONE3XX;
/// The PAL configuration (PAL-PSA's path table).
pub const CONFIG: Config = Config::PAL_PSA;
/// The job document's `filepath` of the non-secure image.
pub const NS_PATH: &str = "non_secure image";
const SECTOR: usize = 64 * 1024;
/// Bytes of the flash file.
pub const FLASH_BYTES: usize = LAYOUT.flash_size as usize;
/// The secure image's payload: a placeholder (TF-M itself does not run in the emulation).
const SECURE_PLACEHOLDER: &[u8] = b"ota-rs qemu-boot: secure image placeholder (no TF-M in QEMU)";

type Sim<'d> = SimTfm<'d, Vec<u8>, SECTOR>;

fn device(flash: Vec<u8>) -> Result<SimDevice<Vec<u8>>, String> {
    if flash.len() != FLASH_BYTES {
        return Err(format!(
            "tfm flash file is {} bytes, expected {FLASH_BYTES} (made by `qemu-boot factory`?)",
            flash.len()
        ));
    }
    SimDevice::new(flash, SimConfig::new(1, SECTOR)).map_err(|e| format!("sim device: {e:?}"))
}

fn sim<'d>(dev: &'d SimDevice<Vec<u8>>, key: VerifyingKey) -> Result<Sim<'d>, String> {
    SimTfm::new(dev, LAYOUT, key).map_err(|e| format!("SimTfm::new: {e:?}"))
}

fn ns_slots() -> Result<pal_tfm::ImageSlots, String> {
    LAYOUT
        .image(ComponentId::NONSECURE)
        .copied()
        .ok_or_else(|| "layout has no non-secure image".to_string())
}

/// The OTA file: the NS image as TF-M's `wrapper.py -H 0x400 --pad-header` signs it for BL2.
pub fn package(fw: &[u8], version: Version, key: &SigningKey) -> Result<Vec<u8>, String> {
    mcuboot::build(fw, version, 0x400, key)
}

/// An erased Corstone flash with the signed secure placeholder and the signed `fw` (NS) in the
/// primary slots, no trailers: what flashing the factory images leaves (CS3XX images carry
/// no trailer).
pub fn factory(fw: &[u8], version: Version, key: &SigningKey) -> Result<Vec<u8>, String> {
    let dev = device(vec![0xFF; FLASH_BYTES])?;
    {
        let sim = sim(&dev, *key.verifying_key())?;
        let secure = package(SECURE_PLACEHOLDER, version, key)?;
        sim.factory_program(ComponentId::SECURE, &secure)
            .map_err(|e| format!("program the secure slot: {e:?}"))?;
        sim.factory_program(ComponentId::NONSECURE, &package(fw, version, key)?)
            .map_err(|e| format!("program the non-secure slot: {e:?}"))?;
    }
    Ok(dev.into_inner())
}

/// Stage the NS `file` as the agent does through PSA FWU: `TfmStorage` prepare (start),
/// write, close with the candidate-digest signature check, `TfmBootControl::request_trial_boot`
/// (install). `bl2_key` is BL2's key (the FWU partition's device needs it, BL2 checks later).
pub fn stage(
    flash: Vec<u8>,
    file: &[u8],
    sig: &[u8],
    ota_key: VerifyingKey,
    bl2_key: VerifyingKey,
) -> Result<Vec<u8>, String> {
    let dev = device(flash)?;
    {
        // A fresh partition has every component READY. (TF-M would re-derive TRIAL for an
        // unconfirmed running image and refuse to start a download; the sim does that only in
        // `boot`, which is also BL2, so here the caller must not stage over a trial image.)
        let sim = sim(&dev, bl2_key)?;
        let mut storage = TfmStorage::new(&sim, CONFIG);
        let mut boot = TfmBootControl::new(&sim, CONFIG);
        let mut verifier = CandidateDigestVerifier::new(
            &sim,
            P256Crypto::new(ota_key),
            0,
            Algorithm::EcdsaSha256,
            CONFIG.components,
        );
        let info = FileInfo {
            path: NS_PATH,
            ..crate::file_info(file)?
        };
        block_on(stage_file(
            &mut storage,
            &mut boot,
            &info,
            file,
            sig,
            &mut verifier,
        ))?;
    }
    Ok(dev.into_inner())
}

/// Reset through the simulated BL2: swap / revert every image as its trailers say, validate
/// each primary, and hand over the NS image.
pub fn boot(flash: Vec<u8>, key: VerifyingKey) -> Result<(Vec<u8>, Booted), String> {
    let dev = device(flash)?;
    let outcome = sim(&dev, key)?
        .boot()
        .map_err(|e| format!("BL2 flash error: {e:?}"))?;
    let BootOutcome::Booted(_) = outcome else {
        return Err(format!("tfm: BL2 found no bootable image ({outcome:?})"));
    };
    let ns = outcome
        .image(ComponentId::NONSECURE)
        .ok_or("tfm: BL2 booted without a non-secure image")?;
    let flash = dev.into_inner();
    let s = ns_slots()?;
    let slot = flash
        .get(s.primary as usize..(s.primary + s.size) as usize)
        .ok_or("NS primary slot outside the flash file")?;
    let (version, payload) =
        mcuboot::payload(slot).ok_or("NS primary slot has no MCUboot header after boot")?;
    let booted = Booted {
        version: version.to_string(),
        slot: format!("non-secure primary slot @ {:#010x}", s.primary),
        action: if ns.trial {
            "trial (swapped in, TEST)".into()
        } else {
            "none".into()
        },
        payload: payload.to_vec(),
    };
    Ok((flash, booted))
}

/// One reset through BL2 followed by what the example firmware does through the PAL (state,
/// then confirm / reject), in the same partition instance: for tests.
#[cfg(test)]
pub fn after_boot(
    flash: Vec<u8>,
    key: VerifyingKey,
    decide: Option<bool>,
) -> Result<(Vec<u8>, PlatformImageState), String> {
    use ota_pal_traits::BootControl;
    let dev = device(flash)?;
    let state = {
        let sim = sim(&dev, key)?;
        sim.boot().map_err(|e| format!("{e:?}"))?;
        let mut b = TfmBootControl::new(&sim, CONFIG);
        let state = block_on(b.platform_state()).map_err(|e| format!("{e:?}"))?;
        match decide {
            Some(true) => block_on(b.confirm()).map_err(|e| format!("{e:?}"))?,
            Some(false) => block_on(b.reject()).map_err(|e| format!("{e:?}"))?,
            None => {}
        }
        state
    };
    Ok((dev.into_inner(), state))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use p256::ecdsa::signature::Signer;
    use p256::ecdsa::Signature;

    fn bl2_key() -> SigningKey {
        SigningKey::from_slice(&[0x11; 32]).unwrap()
    }
    fn ota_key() -> SigningKey {
        SigningKey::from_slice(&[0x22; 32]).unwrap()
    }
    fn fw(tag: u8) -> Vec<u8> {
        (0..7000u32).map(|i| (i as u8) ^ tag).collect()
    }
    fn ver(b: &Booted) -> Version {
        Version::parse(&b.version).unwrap()
    }
    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }
    fn vk(k: &SigningKey) -> VerifyingKey {
        *k.verifying_key()
    }
    fn stage_v2(flash: Vec<u8>, fw: &[u8], signer: &SigningKey) -> Result<Vec<u8>, String> {
        let file = package(fw, v("2.0.0"), &bl2_key()).unwrap();
        let sig: Signature = signer.sign(&file);
        stage(
            flash,
            &file,
            sig.to_der().as_bytes(),
            vk(&ota_key()),
            vk(&bl2_key()),
        )
    }

    #[test]
    fn update_confirm_and_rollback() {
        for confirm in [true, false] {
            let flash = factory(&fw(1), v("1.0.0"), &bl2_key()).unwrap();
            let (flash, b) = boot(flash, vk(&bl2_key())).unwrap();
            assert_eq!(
                (ver(&b), b.payload.as_slice()),
                (v("1.0.0"), fw(1).as_slice())
            );
            let (flash, s) = after_boot(flash, vk(&bl2_key()), None).unwrap();
            assert_eq!(s, PlatformImageState::Valid);
            let flash = stage_v2(flash, &fw(2), &ota_key()).unwrap();
            let (flash, s) = after_boot(flash, vk(&bl2_key()), Some(confirm)).unwrap();
            assert_eq!(s, PlatformImageState::PendingCommit);
            let (_, b) = boot(flash, vk(&bl2_key())).unwrap();
            let want = if confirm {
                (v("2.0.0"), fw(2))
            } else {
                (v("1.0.0"), fw(1))
            };
            assert_eq!((ver(&b), b.payload), want, "confirm {confirm}");
        }
    }

    #[test]
    fn refusals() {
        let flash = factory(&fw(1), v("1.0.0"), &bl2_key()).unwrap();
        let e = stage_v2(flash.clone(), &fw(2), &bl2_key()).unwrap_err();
        assert!(e.contains("signature check"), "{e}");
        let other = SigningKey::from_slice(&[0x33; 32]).unwrap();
        let e = boot(flash, vk(&other)).unwrap_err();
        assert!(e.contains("no bootable image"), "{e}");
        assert!(boot(vec![0xFF; 10], vk(&bl2_key())).is_err());
    }
}
