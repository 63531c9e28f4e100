//! Shared fixtures: signed test images (RSA-2048 for the DBM, ECDSA P-256 for the OTA job), a
//! simulated board, and the agent's download / hand-over steps.
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
    Sha256EcdsaP256Verifier,
};
use p256::ecdsa::signature::Signer;
use pal_traveo::sim::{sim_config, BootOutcome, RunningImage, SimBoard, SIM_DEVICE_SIZE};
/// The boot control the sim hands out.
pub type SimBootControl<'d> = pal_traveo::TraveoBootControl<
    pal_traveo::sim::SimWorkFlash<'d, Vec<u8>>,
    pal_traveo::FixedMapping,
>;

use pal_traveo::{AppHeader, AppVerifier, AppVersion, Bank, Config, FIRMWARE_FILE_TYPE};
use rsa::pkcs8::DecodePrivateKey;
use rsa::signature::{SignatureEncoding, Verifier};
use sha2::Sha256;

/// The DBM's ROM check with a real RSA-2048 PKCS#1 v1.5 / SHA-256 implementation.
pub struct RsaAppVerifier {
    key: rsa::pkcs1v15::VerifyingKey<Sha256>,
    pub calls: u32,
}

impl AppVerifier for RsaAppVerifier {
    fn verify_application(&mut self, app: &[u8], signature: &[u8]) -> bool {
        self.calls += 1;
        match rsa::pkcs1v15::Signature::try_from(signature) {
            Ok(sig) => self.key.verify(app, &sig).is_ok(),
            Err(_) => false,
        }
    }
}

pub struct Keys {
    pub rsa: rsa::pkcs1v15::SigningKey<Sha256>,
    pub ecdsa: TestKey,
}

pub fn keys() -> Keys {
    let pk = rsa::RsaPrivateKey::from_pkcs8_pem(include_str!("../data/dbm-test-key.pem")).unwrap();
    Keys {
        rsa: rsa::pkcs1v15::SigningKey::<Sha256>::new(pk),
        ecdsa: TestKey::from_seed(0x42).unwrap(),
    }
}

impl Keys {
    pub fn dbm_verifier(&self) -> RsaAppVerifier {
        RsaAppVerifier {
            // PKCS#1 v1.5 with the SHA-256 DigestInfo prefix, as `--encrypt RSASSA-PKCS` signs.
            key: rsa::pkcs1v15::VerifyingKey::<Sha256>::new(rsa::RsaPublicKey::from(
                self.rsa.as_ref(),
            )),
            calls: 0,
        }
    }

    pub fn ota_verifier(&self) -> Sha256EcdsaP256Verifier {
        self.ecdsa.verifier()
    }

    /// The `sig-sha256-ecdsa` of a whole OTA file (DER), as AWS code signing makes it.
    pub fn sign_file(&self, file: &[u8]) -> Vec<u8> {
        self.ecdsa.sign(file).as_bytes().to_vec()
    }
}

/// Size of the test OTA files: the 64 KB CM0+ region plus 4 KB of CM7_0 image.
pub const FILE_LEN: usize = 0x1_1000;
/// CM0+ `objSize` of the test images.
pub const OBJ_SIZE: u32 = 0x3000;

pub const V1: AppVersion = AppVersion {
    major: 1,
    minor: 0,
    build: 0,
};
pub const V2: AppVersion = AppVersion {
    major: 1,
    minor: 1,
    build: 0,
};
pub const V3: AppVersion = AppVersion {
    major: 1,
    minor: 2,
    build: 7,
};

/// An `app_combined_s.bin`: CM0+ header + code, its RSA signature at `objSize`, zero fill to
/// 0x10000 (objcopy), then a CM7_0 image (objSize word, code, RSA signature).
pub fn make_image(keys: &Keys, version: AppVersion) -> Vec<u8> {
    let mut img = vec![0u8; FILE_LEN];
    let h = AppHeader::cm0p(OBJ_SIZE, version, 0x100);
    img[..24].copy_from_slice(&h.encode());
    let mut x = version.packed() as u64 | 1;
    for b in &mut img[24..OBJ_SIZE as usize] {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    let sig = keys.rsa.sign(&img[..OBJ_SIZE as usize]).to_bytes();
    img[OBJ_SIZE as usize..OBJ_SIZE as usize + 256].copy_from_slice(&sig);
    // CM7_0 at 0x10000: objSize 0x800, code, signature.
    let cm7 = 0x1_0000;
    img[cm7..cm7 + 4].copy_from_slice(&0x800u32.to_le_bytes());
    for (i, b) in img[cm7 + 4..cm7 + 0x800].iter_mut().enumerate() {
        *b = (i as u8) ^ version.minor;
    }
    let sig7 = keys.rsa.sign(&img[cm7..cm7 + 0x800]).to_bytes();
    img[cm7 + 0x800..cm7 + 0x900].copy_from_slice(&sig7);
    img
}

pub fn file_info(len: usize) -> FileInfo<'static> {
    FileInfo {
        file_type: FIRMWARE_FILE_TYPE,
        ..FileInfo::new("", len as u32)
    }
}

/// A fresh simulated board with `old` factory-programmed in the lower bank, marker erased.
pub fn device(cfg: &Config, old: &[u8]) -> SimDevice<Vec<u8>> {
    let dev = SimDevice::new(vec![0u8; SIM_DEVICE_SIZE], sim_config(cfg)).unwrap();
    dev.erase_all().unwrap();
    SimBoard::new(&dev, *cfg)
        .unwrap()
        .factory_program(Bank::Lower, old)
        .unwrap();
    dev
}

pub fn running(outcome: BootOutcome) -> RunningImage {
    match outcome {
        BootOutcome::Runs(r) => r,
        BootOutcome::Hang => panic!("the DBM hangs: nothing bootable"),
    }
}

/// The agent's download of `image` into the inactive bank, its signature check, and the
/// hand-over (request trial boot) — the steps before the reset. On a bad signature the agent
/// rejects and aborts, as the reference does.
pub fn download_and_stage<M: AsRef<[u8]> + AsMut<[u8]>>(
    board: &SimBoard<'_, M>,
    boot: &mut impl BootControl,
    keys: &Keys,
    image: &[u8],
    signature: &[u8],
    block: usize,
) -> Result<(), PalError> {
    block_on(async {
        let mut storage = board.image_storage()?;
        let file = file_info(image.len());
        storage.prepare(&file).await?;
        for (i, chunk) in image.chunks(block).enumerate() {
            storage.write((i * block) as u32, chunk).await?;
        }
        let mut v = keys.ota_verifier();
        v.begin(&file);
        let mut scratch = [0u8; 512];
        if let Err(e) =
            verify_stored_image(&mut storage, &mut v, &file, 0, signature, &mut scratch).await
        {
            boot.reject().await?;
            storage.abort().await?;
            return Err(e);
        }
        storage.check_header(&file).await?;
        boot.request_trial_boot(&file).await?;
        storage.release();
        storage.abort().await
    })
}

/// Bytes of a bank covered by the DBM's check (header, code, signature).
pub fn signed_part(image: &[u8]) -> &[u8] {
    &image[..OBJ_SIZE as usize + 256]
}

/// The signed part of `bank` as it is on the device.
pub fn bank_signed_part(dev: &SimDevice<Vec<u8>>, bank: Bank) -> Vec<u8> {
    let at = pal_traveo::sim::bank_offset(bank) as usize;
    dev.inspect(|m| m[at..at + OBJ_SIZE as usize + 256].to_vec())
        .unwrap()
}
