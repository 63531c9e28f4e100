//! TRAVEO T2G (KIT_T2G-B-H_LITE, CYT4BF) with the ROM's Dual Bank Manager: the flash file is the
//! simulated device of `pal_traveo::sim` ([`SIM_DEVICE_SIZE`] bytes): both 0x3F8000-byte
//! code-flash banks in the single-bank linear view (lower at 0, upper at 0x3F8000), then the
//! 0x30000-byte large-sector work flash (at 0x7F0000; flash marker at 0x1401_2000, the PAL's
//! trial record at 0x1401_2800), erased to 0xFF, as [`Config::CYT4BF`].
//!
//! The OTA file is an `app_combined`-style image of the bank (spec §2.2), each application
//! signed with RSA-2048 PKCS#1 v1.5 / SHA-256 over `[start, start + objSize)`, the 256-byte
//! signature at `start + objSize`, made with the DBM's key (`--key`, an RSA PEM):
//!
//! * at 0, the CM0+ application the DBM verifies: the 24-byte `cy_stc_si_appheader_t`
//!   (`objSize`, `appId` = version, one CM0+ core, vector table at [`VT_OFFSET`]) and a small
//!   placeholder body ([`CM0_PLACEHOLDER`]: on the kit this is the code that verifies CM7_0
//!   and starts it), padded with 0x00 to [`CM7_0_APP_OFFSET`];
//! * at [`CM7_0_APP_OFFSET`], the CM7_0 application, which is the example firmware (QEMU's
//!   an500 stands in for the CM7 core): a header whose first word is `objSize` (the other
//!   words as the CM0+ header's, `appId` in the CM7 form `ma<<24 | mi<<20 | bd<<16 | 0x8002`,
//!   `core0Id` 0: the spec gives none for CM7), the firmware binary at +[`VT_OFFSET`], then
//!   its signature. No CM7_1 application.
//!
//! `boot` plays the DBM (the crate's sim: marker, CM0+ signature, mapping) and then the CM0+
//! application's step (§2.4 step 7): verify CM7_0 with the same key and start it, i.e. hand
//! over its binary.
//!
//! The bank mapping the DBM selects (`FLASH_CTL MAIN_MAP` on the kit) is not flash: `boot`
//! writes it next to the flash file, in `FLASH.mapping` (one byte, `A` or `B`), for the
//! firmware to read through semihosting.

use ota_pal_traits::sim::{block_on, SimDevice};
use ota_pal_traits::{BootControl, ImageStorage, ImageVerifier, Sha256EcdsaP256Verifier};
use pal_traveo::layout::{CM7_0_APP_OFFSET, CM7_0_APP_SIZE};
use pal_traveo::sim::{bank_offset, sim_config, BootOutcome, SimBoard, SIM_DEVICE_SIZE};
use pal_traveo::{AppHeader, AppVerifier, AppVersion, Config, Mapping, FIRMWARE_FILE_TYPE};
use rsa::pkcs1v15::{Signature, SigningKey, VerifyingKey};
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey};
use rsa::signature::{SignatureEncoding, Signer, Verifier};
use sha2::Sha256;

use crate::mcuboot::Version;
use crate::Booted;

/// The board configuration the example uses.
pub const CONFIG: Config = Config::CYT4BF;
/// Where the firmware's vector table starts in the image (`core0_vt` + 0x10).
pub const VT_OFFSET: u32 = 0x100;
/// Bytes of the flash file.
pub const FLASH_BYTES: usize = SIM_DEVICE_SIZE;
const SIGNATURE_LEN: usize = 256;

/// The DBM's key: an RSA private key (PKCS#8 PEM) or, for `boot`, a public one (SPKI PEM).
pub enum DbmKey {
    /// Can sign and verify.
    Private(Box<rsa::RsaPrivateKey>),
    /// Can verify.
    Public(rsa::RsaPublicKey),
}

impl DbmKey {
    /// Load `path`.
    pub fn load(path: &str) -> Result<Self, String> {
        let pem = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
        if let Ok(k) = rsa::RsaPrivateKey::from_pkcs8_pem(&pem) {
            return Ok(Self::Private(Box::new(k)));
        }
        rsa::RsaPublicKey::from_public_key_pem(&pem)
            .map(Self::Public)
            .map_err(|_| format!("{path}: not an RSA key in PEM (PKCS#8 private or SPKI public)"))
    }

    fn signer(&self) -> Result<SigningKey<Sha256>, String> {
        match self {
            Self::Private(k) => Ok(SigningKey::new(k.as_ref().clone())),
            Self::Public(_) => Err("the DBM key must be a private key to sign".into()),
        }
    }

    fn verifier(&self) -> RsaAppVerifier {
        let public = match self {
            Self::Private(k) => rsa::RsaPublicKey::from(k.as_ref()),
            Self::Public(k) => k.clone(),
        };
        RsaAppVerifier(VerifyingKey::new(public))
    }
}

/// The ROM's `Cy_FB_VerifyApplication`: RSA-2048 PKCS#1 v1.5 over SHA-256, signature stored
/// big-endian as PKCS#1 has it (the order `cymcuelftool` uses is not confirmed, see
/// `pal_traveo::AppVerifier`).
pub struct RsaAppVerifier(VerifyingKey<Sha256>);

impl AppVerifier for RsaAppVerifier {
    fn verify_application(&mut self, app: &[u8], signature: &[u8]) -> bool {
        Signature::try_from(signature).is_ok_and(|s| self.0.verify(app, &s).is_ok())
    }
}

fn device(flash: Vec<u8>) -> Result<SimDevice<Vec<u8>>, String> {
    if flash.len() != FLASH_BYTES {
        return Err(format!(
            "traveo flash file is {} bytes, expected {FLASH_BYTES} (made by `qemu-boot factory`?)",
            flash.len()
        ));
    }
    SimDevice::new(flash, sim_config(&CONFIG)).map_err(|e| format!("sim device: {e:?}"))
}

fn app_version(v: Version) -> Result<AppVersion, String> {
    Ok(AppVersion {
        major: v.major,
        minor: v.minor,
        build: v.revision,
    })
}

/// The CM0+ application's body in the examples' images.
pub const CM0_PLACEHOLDER: &[u8] =
    b"ota-rs qemu-boot: CM0+ placeholder (on the kit: verify CM7_0 and start it)";

/// `data` with its RSA signature appended.
fn sign_appended(mut data: Vec<u8>, key: &DbmKey) -> Result<Vec<u8>, String> {
    let sig = key.signer()?.sign(&data).to_bytes();
    if sig.len() != SIGNATURE_LEN {
        return Err(format!(
            "the DBM key must be RSA-2048 (signature of {} bytes)",
            sig.len()
        ));
    }
    data.extend_from_slice(&sig);
    Ok(data)
}

/// The CM7 form of a version in an application header's `appId`.
fn cm7_app_id(v: AppVersion) -> u32 {
    u32::from(v.major) << 24
        | (u32::from(v.minor) & 0xF) << 20
        | (u32::from(v.build) & 0xF) << 16
        | 0x8002
}

/// The signed `app_combined` image of `fw` (see the module docs).
pub fn package(fw: &[u8], version: Version, key: &DbmKey) -> Result<Vec<u8>, String> {
    let version = app_version(version)?;
    // CM0+: header, placeholder, signature, padding up to CM7_0.
    let cm0_size = VT_OFFSET as usize + CM0_PLACEHOLDER.len();
    let header = AppHeader::cm0p(cm0_size as u32, version, VT_OFFSET);
    let mut cm0 = vec![0u8; cm0_size];
    cm0.get_mut(..24)
        .ok_or("image too short")?
        .copy_from_slice(&header.encode());
    cm0.get_mut(VT_OFFSET as usize..)
        .ok_or("image too short")?
        .copy_from_slice(CM0_PLACEHOLDER);
    let mut img = sign_appended(cm0, key)?;
    img.resize(CM7_0_APP_OFFSET as usize, 0);
    // CM7_0: header, firmware at VT_OFFSET, signature.
    let cm7_size = VT_OFFSET as usize + fw.len();
    if cm7_size + SIGNATURE_LEN > CM7_0_APP_SIZE as usize {
        return Err(format!(
            "firmware of {} bytes does not fit the CM7_0 region ({CM7_0_APP_SIZE:#x} bytes)",
            fw.len()
        ));
    }
    let cm7_header = AppHeader {
        obj_size: cm7_size as u32,
        app_id: cm7_app_id(version),
        core0_id: 0,
        ..header
    };
    let mut cm7 = vec![0u8; cm7_size];
    cm7.get_mut(..24)
        .ok_or("image too short")?
        .copy_from_slice(&cm7_header.encode());
    cm7.get_mut(VT_OFFSET as usize..)
        .ok_or("image too short")?
        .copy_from_slice(fw);
    img.extend_from_slice(&sign_appended(cm7, key)?);
    Ok(img)
}

/// The CM0+ application's step: verify the CM7_0 application of the bank at `bank` of
/// `flash` and return its firmware binary.
fn start_cm7(flash: &[u8], bank: usize, key: &DbmKey) -> Result<Vec<u8>, String> {
    let at = bank + CM7_0_APP_OFFSET as usize;
    let word = flash
        .get(at..at + 4)
        .ok_or("the CM7_0 region is outside the flash")?;
    let obj_size = u32::from_le_bytes([word[0], word[1], word[2], word[3]]) as usize;
    if obj_size < VT_OFFSET as usize || obj_size + SIGNATURE_LEN > CM7_0_APP_SIZE as usize {
        return Err(format!(
            "traveo: no CM7_0 application (objSize {obj_size:#x}): the CM0+ application does not start CM7"
        ));
    }
    let app = flash
        .get(at..at + obj_size)
        .ok_or("CM7_0 outside the flash")?;
    let sig = flash
        .get(at + obj_size..at + obj_size + SIGNATURE_LEN)
        .ok_or("CM7_0 signature outside the flash")?;
    if !key.verifier().verify_application(app, sig) {
        return Err(
            "traveo: the CM7_0 signature does not verify: the CM0+ application does not start CM7"
                .into(),
        );
    }
    Ok(app.get(VT_OFFSET as usize..).unwrap_or_default().to_vec())
}

/// An erased device with the signed `fw` in the lower bank and no marker (the DBM prefers
/// the lower bank): what programming the factory image leaves.
pub fn factory(fw: &[u8], version: Version, key: &DbmKey) -> Result<Vec<u8>, String> {
    let image = package(fw, version, key)?;
    let dev = device(vec![0xFF; FLASH_BYTES])?;
    dev.erase_all().map_err(|e| format!("{e:?}"))?;
    SimBoard::new(&dev, CONFIG)
        .map_err(|e| format!("{e:?}"))?
        .factory_program(pal_traveo::Bank::Lower, &image)
        .map_err(|e| format!("program the lower bank: {e:?}"))?;
    Ok(dev.into_inner())
}

/// Stage `file` as the agent does, in the inactive bank of the mapping the DBM selected (the
/// DBM writes no flash, so deciding it again here changes nothing): prepare, write, the OTA
/// signature check over the stored file, the header check, `request_trial_boot` (trial record,
/// then the marker set to the other bank).
pub fn stage(
    flash: Vec<u8>,
    file: &[u8],
    sig: &[u8],
    ota_key: &mut Sha256EcdsaP256Verifier,
    key: &DbmKey,
) -> Result<Vec<u8>, String> {
    let dev = device(flash)?;
    {
        let mut board = SimBoard::new(&dev, CONFIG).map_err(|e| format!("{e:?}"))?;
        match board.boot(&mut key.verifier()) {
            Ok(BootOutcome::Runs(_)) => {}
            other => return Err(format!("traveo: nothing runs to stage from ({other:?})")),
        }
        let mut storage = board
            .image_storage()
            .map_err(|e| format!("image storage: {e:?}"))?;
        let mut boot = board
            .boot_control()
            .map_err(|e| format!("boot control: {e:?}"))?;
        let info = ota_pal_traits::FileInfo {
            file_type: FIRMWARE_FILE_TYPE,
            ..crate::file_info(file)?
        };
        block_on(async {
            let e = |what: &'static str| move |e| format!("{what} failed: {e:?}");
            storage.prepare(&info).await.map_err(e("prepare"))?;
            for (i, block) in file.chunks(crate::BLOCK).enumerate() {
                storage
                    .write((i * crate::BLOCK) as u32, block)
                    .await
                    .map_err(e("write"))?;
            }
            ota_key.begin(&info);
            let mut scratch = [0u8; 512];
            if let Err(err) = ota_pal_traits::verify_stored_image(
                &mut storage,
                ota_key,
                &info,
                0,
                sig,
                &mut scratch,
            )
            .await
            {
                boot.reject().await.map_err(e("reject"))?;
                storage.abort().await.map_err(e("abort"))?;
                return Err(format!(
                    "signature check of the stored file failed: {err:?}"
                ));
            }
            storage
                .check_header(&info)
                .await
                .map_err(e("header check"))?;
            boot.request_trial_boot(&info)
                .await
                .map_err(e("request_trial_boot"))?;
            storage.release();
            Ok::<(), String>(())
        })?;
    }
    Ok(dev.into_inner())
}

/// Power on through the simulated DBM and hand over the firmware of the bank it maps.
pub fn boot(flash: Vec<u8>, key: &DbmKey) -> Result<(Vec<u8>, Booted, Mapping), String> {
    let dev = device(flash)?;
    let running = {
        let mut board = SimBoard::new(&dev, CONFIG).map_err(|e| format!("{e:?}"))?;
        match board.boot(&mut key.verifier()) {
            Ok(BootOutcome::Runs(r)) => r,
            Ok(BootOutcome::Hang) => {
                return Err("traveo: the DBM found no bootable image (it hangs)".into())
            }
            Err(e) => return Err(format!("traveo: flash error in the DBM: {e:?}")),
        }
    };
    let flash = dev.into_inner();
    let payload = start_cm7(&flash, bank_offset(running.bank) as usize, key)?;
    let v = running.version();
    let booted = Booted {
        version: format!("{}.{}.{}", v.major, v.minor, v.build),
        slot: format!("{:?} bank (mapping {:?})", running.bank, running.mapping),
        action: "DBM verified the CM0+ signature, CM0+ the CM7_0 one".into(),
        payload,
    };
    Ok((flash, booted, running.mapping))
}

/// The one-byte mapping file's contents.
pub fn mapping_byte(m: Mapping) -> u8 {
    match m {
        Mapping::A => b'A',
        Mapping::B => b'B',
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use ota_pal_traits::PlatformImageState;
    use p256::ecdsa::Signature as EcSig;

    fn dbm_key() -> DbmKey {
        let pem = include_str!("../../../pal-traveo/tests/data/dbm-test-key.pem");
        DbmKey::Private(Box::new(rsa::RsaPrivateKey::from_pkcs8_pem(pem).unwrap()))
    }
    fn ota_key() -> p256::ecdsa::SigningKey {
        p256::ecdsa::SigningKey::from_slice(&[0x22; 32]).unwrap()
    }
    fn ota_verifier() -> Sha256EcdsaP256Verifier {
        Sha256EcdsaP256Verifier::from_verifying_key(*ota_key().verifying_key())
    }
    fn fw(tag: u8) -> Vec<u8> {
        (0..6001u32).map(|i| (i as u8) ^ tag).collect()
    }
    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }
    /// The firmware's part of one boot: startup, state, then confirm / reject.
    fn firmware(
        flash: Vec<u8>,
        mapping: Mapping,
        decide: Option<bool>,
    ) -> (Vec<u8>, PlatformImageState) {
        let dev = device(flash).unwrap();
        let state = {
            let mut board = SimBoard::new(&dev, CONFIG).unwrap();
            let r = board.boot(&mut dbm_key().verifier()).unwrap();
            assert!(matches!(r, BootOutcome::Runs(x) if x.mapping == mapping));
            let mut b = board.boot_control().unwrap();
            let s = block_on(b.platform_state()).unwrap();
            match decide {
                Some(true) => block_on(b.confirm()).unwrap(),
                Some(false) => block_on(b.reject()).unwrap(),
                None => {}
            }
            s
        };
        (dev.into_inner(), state)
    }

    #[test]
    fn a_firmware_larger_than_the_cm0_region_runs_as_cm7_0() {
        let big: Vec<u8> = (0..150_000u32).map(|i| (i * 7) as u8).collect();
        let flash = factory(&big, v("1.2.3"), &dbm_key()).unwrap();
        let (_, b, m) = boot(flash, &dbm_key()).unwrap();
        assert_eq!((b.version.as_str(), m), ("1.2.3", Mapping::A));
        assert_eq!(b.payload, big);
    }

    #[test]
    fn a_cm7_0_application_with_a_bad_signature_is_not_started() {
        let mut flash = factory(&fw(3), v("1.0.0"), &dbm_key()).unwrap();
        // One bit of the firmware, inside CM7_0's signed range (the DBM's CM0+ check passes).
        flash[(CM7_0_APP_OFFSET + VT_OFFSET + 10) as usize] ^= 1;
        let err = boot(flash, &dbm_key()).err().unwrap();
        assert!(err.contains("CM7_0 signature"), "{err}");
    }

    #[test]
    fn update_confirm_and_rollback() {
        use p256::ecdsa::signature::Signer as _;
        for confirm in [true, false] {
            let flash = factory(&fw(1), v("1.0.0"), &dbm_key()).unwrap();
            let (flash, b, m) = boot(flash, &dbm_key()).unwrap();
            assert_eq!(
                (b.version.as_str(), b.payload.as_slice()),
                ("1.0.0", fw(1).as_slice())
            );
            let (flash, s) = firmware(flash, m, None);
            assert_eq!(s, PlatformImageState::Valid);
            let file = package(&fw(2), v("2.0.0"), &dbm_key()).unwrap();
            let sig: EcSig = ota_key().sign(&file);
            let flash = stage(
                flash,
                &file,
                sig.to_der().as_bytes(),
                &mut ota_verifier(),
                &dbm_key(),
            )
            .unwrap();
            let (flash, b, m) = boot(flash, &dbm_key()).unwrap();
            assert_eq!(
                (b.version.as_str(), b.payload.as_slice()),
                ("2.0.0", fw(2).as_slice())
            );
            assert_eq!(m, Mapping::B);
            let (flash, s) = firmware(flash, m, Some(confirm));
            assert_eq!(s, PlatformImageState::PendingCommit);
            let (_, b, _) = boot(flash, &dbm_key()).unwrap();
            assert_eq!(
                b.payload,
                if confirm { fw(2) } else { fw(1) },
                "confirm {confirm}"
            );
        }
    }
}
