//! TRAVEO T2G (KIT_T2G-B-H_LITE, CYT4BF) with the ROM's Dual Bank Manager: the flash file is the
//! simulated device of `pal_traveo::sim` ([`SIM_DEVICE_SIZE`] bytes): both 0x3F8000-byte
//! code-flash banks in the single-bank linear view (lower at 0, upper at 0x3F8000), then the
//! 0x30000-byte large-sector work flash (at 0x7F0000; flash marker at 0x1401_2000, the PAL's
//! trial record at 0x1401_2800), erased to 0xFF, as [`Config::CYT4BF`].
//!
//! The OTA file is an `app_combined`-style CM0+ image: the 24-byte `cy_stc_si_appheader_t`
//! (`objSize`, `appId` = version, one CM0+ core, vector table at [`VT_OFFSET`]), padding, the
//! firmware binary at [`VT_OFFSET`], and the 256-byte RSA-2048 PKCS#1 v1.5 / SHA-256 signature
//! of `[0, objSize)` at `objSize`, made with the DBM's key (`--key`, an RSA PEM). No CM7
//! images: the example is the CM0+ application (QEMU's an500 stands in for the CM7 core, which
//! the DBM's model here does not check).
//!
//! The bank mapping the DBM selects (`FLASH_CTL MAIN_MAP` on the kit) is not flash: `boot`
//! writes it next to the flash file, in `FLASH.mapping` (one byte, `A` or `B`), for the
//! firmware to read through semihosting.

use ota_pal_traits::sim::{block_on, SimDevice};
use ota_pal_traits::{BootControl, ImageStorage, ImageVerifier, Sha256EcdsaP256Verifier};
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

/// The signed CM0+ image of `fw` (see the module docs).
pub fn package(fw: &[u8], version: Version, key: &DbmKey) -> Result<Vec<u8>, String> {
    let obj_size = VT_OFFSET as usize + fw.len();
    if obj_size > CONFIG.cm0_signature_limit as usize {
        return Err(format!(
            "firmware of {} bytes does not fit the CM0+ region (objSize {obj_size:#x} > {:#x})",
            fw.len(),
            CONFIG.cm0_signature_limit
        ));
    }
    let header = AppHeader::cm0p(obj_size as u32, app_version(version)?, VT_OFFSET);
    let mut img = vec![0u8; obj_size];
    img.get_mut(..24)
        .ok_or("image too short")?
        .copy_from_slice(&header.encode());
    img.get_mut(VT_OFFSET as usize..VT_OFFSET as usize + fw.len())
        .ok_or("image too short")?
        .copy_from_slice(fw);
    let sig = key.signer()?.sign(&img).to_bytes();
    if sig.len() != SIGNATURE_LEN {
        return Err(format!(
            "the DBM key must be RSA-2048 (signature of {} bytes)",
            sig.len()
        ));
    }
    img.extend_from_slice(&sig);
    Ok(img)
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
    let at = bank_offset(running.bank) as usize;
    let payload = flash
        .get(at + VT_OFFSET as usize..at + running.header.obj_size as usize)
        .ok_or("the running image's objSize is shorter than its vector table offset")?
        .to_vec();
    let v = running.version();
    let booted = Booted {
        version: format!("{}.{}.{}", v.major, v.minor, v.build),
        slot: format!("{:?} bank (mapping {:?})", running.bank, running.mapping),
        action: "DBM verified the RSA signature".into(),
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
