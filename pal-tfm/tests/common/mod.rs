//! Shared test fixtures: a small Corstone-like layout, keys, images, and an agent that plays
//! the OTA flow through the PAL and recovers after power cuts.
#![allow(dead_code)]

use ota_pal_traits::sim::{block_on, test_keys::TestKey, SimConfig, SimDevice};
use ota_pal_traits::{verify_stored_image, BootControl, FileInfo, ImageStorage, ImageVerifier};
use ota_pal_traits::{PalError, PlatformImageState, Reset};
use p256::ecdsa::SigningKey;
use pal_tfm::sim::{build_image, BootOutcome, SimTfm};
use pal_tfm::{
    Algorithm, CandidateDigestVerifier, ComponentId, Config, ImageSlots, ImageVersion, Layout,
    P256Crypto, TfmBootControl, TfmReset, TfmStorage,
};

pub const SECTOR: usize = 4096;

/// Two images of 16 KiB slots (3 data sectors + the trailer sector) and a 2-sector scratch.
pub const LAYOUT: Layout = Layout {
    sector_size: SECTOR as u32,
    images: &[
        ImageSlots {
            component: ComponentId::SECURE,
            primary: 0x0000,
            secondary: 0x8000,
            size: 0x4000,
        },
        ImageSlots {
            component: ComponentId::NONSECURE,
            primary: 0x4000,
            secondary: 0xC000,
            size: 0x4000,
        },
    ],
    scratch: 0x1_0000,
    scratch_size: 0x2000,
    flash_size: 0x1_2000,
};

pub const CFG: Config = Config::PAL_PSA;
pub const NS_PATH: &str = "non_secure image";
pub const S_PATH: &str = "secure image";

pub type Sim<'d> = SimTfm<'d, Vec<u8>, SECTOR>;

pub fn device() -> SimDevice<Vec<u8>> {
    let dev = SimDevice::new(
        vec![0u8; LAYOUT.flash_size as usize],
        SimConfig::new(1, SECTOR),
    )
    .unwrap();
    dev.erase_all().unwrap();
    dev
}

pub fn bl2_key() -> SigningKey {
    TestKey::from_seed(0x11).unwrap().signing_key().clone()
}

pub fn aws_key() -> TestKey {
    TestKey::from_seed(0x22).unwrap()
}

pub fn version(major: u8, build: u32) -> ImageVersion {
    ImageVersion {
        major,
        minor: 0,
        patch: 0,
        build,
    }
}

/// A signed MCUboot image with a payload that depends on the version.
pub fn image(v: ImageVersion, payload_len: usize) -> Vec<u8> {
    let payload: Vec<u8> = (0..payload_len)
        .map(|i| (i as u32 ^ v.build.wrapping_mul(31) ^ u32::from(v.major) << 3) as u8)
        .collect();
    let mut out = vec![0u8; payload_len + 0x400 + 256];
    let n = build_image(&mut out, &payload, v, &bl2_key()).unwrap();
    out.truncate(n);
    out
}

/// The AWS code signature of a whole `.bin` (DER).
pub fn aws_sign(data: &[u8]) -> Vec<u8> {
    aws_key().sign(data).as_bytes().to_vec()
}

pub fn file(path: &str, size: usize) -> FileInfo<'_> {
    FileInfo::new(path, size as u32)
}

pub fn verifier<'s, 'd>(sim: &'s Sim<'d>) -> CandidateDigestVerifier<&'s Sim<'d>, P256Crypto> {
    CandidateDigestVerifier::new(
        sim,
        P256Crypto::new(*aws_key().verifying_key()),
        0,
        Algorithm::EcdsaSha256,
        CFG.components,
    )
}

pub const OLD_S: u32 = 1;
pub const OLD_NS: u32 = 1;
pub const NEW: u32 = 2;

/// A fresh device with factory images S v1.0.0+1 and NS v1.0.0+1, booted once.
pub fn factory(dev: &SimDevice<Vec<u8>>) -> Sim<'_> {
    let sim = SimTfm::new(dev, LAYOUT, *bl2_key().verifying_key()).unwrap();
    sim.factory_program(ComponentId::SECURE, &image(version(1, OLD_S), 3000))
        .unwrap();
    sim.factory_program(ComponentId::NONSECURE, &image(version(1, OLD_NS), 5000))
        .unwrap();
    match sim.boot().unwrap() {
        BootOutcome::Booted(_) => {}
        other => panic!("factory image does not boot: {other:?}"),
    }
    dev.reset_stats().unwrap();
    sim
}

/// One file of an update job.
pub struct JobFile {
    pub path: &'static str,
    pub component: ComponentId,
    pub image: Vec<u8>,
    pub signature: Vec<u8>,
}

pub fn job_file(path: &'static str, c: ComponentId, v: ImageVersion, len: usize) -> JobFile {
    let image = image(v, len);
    let signature = aws_sign(&image);
    JobFile {
        path,
        component: c,
        image,
        signature,
    }
}

pub const BLOCK: usize = 1024;

/// Download one file the way the agent does: prepare, blocks (here last to first, to show
/// order does not matter), then close = verify over the candidate digest.
pub fn download(sim: &Sim<'_>, f: &JobFile) -> Result<(), PalError> {
    let mut storage = TfmStorage::new(sim, CFG);
    let mut v = verifier(sim);
    let info = file(f.path, f.image.len());
    block_on(async {
        storage.prepare(&info).await?;
        v.begin(&info);
        let blocks: Vec<(usize, &[u8])> = f
            .image
            .chunks(BLOCK)
            .enumerate()
            .map(|(i, b)| (i * BLOCK, b))
            .collect();
        for &(off, b) in blocks.iter().rev() {
            storage.write(off as u32, b).await?;
        }
        let mut scratch = [0u8; 64];
        verify_stored_image(&mut storage, &mut v, &info, 0, &f.signature, &mut scratch).await
    })
}

/// Hand the verified files to the bootloader and reset through PSA.
pub fn activate(sim: &Sim<'_>, files: &[JobFile]) -> Result<(), PalError> {
    let mut boot = TfmBootControl::new(sim, CFG);
    for f in files {
        block_on(boot.request_trial_boot(&file(f.path, f.image.len())))?;
    }
    TfmReset::new(sim).reset();
    assert!(sim.reboot_requested());
    Ok(())
}

pub fn state(sim: &Sim<'_>) -> PlatformImageState {
    block_on(TfmBootControl::new(sim, CFG).platform_state()).unwrap()
}

pub fn confirm(sim: &Sim<'_>) -> Result<(), PalError> {
    block_on(TfmBootControl::new(sim, CFG).confirm())
}

pub fn reject(sim: &Sim<'_>) -> Result<(), PalError> {
    block_on(TfmBootControl::new(sim, CFG).reject())
}

/// How a recovery run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The new images run, confirmed.
    Updated,
    /// The update was rejected after its trial and the old images run.
    RolledBack,
}

/// What a run saw.
#[derive(Debug, Default)]
pub struct Run {
    pub boots: u32,
    pub power_cuts: u32,
    pub downloads: u32,
    pub partial_trials: u32,
}

/// Boot until the device comes up (BL2 is restartable), asserting that every boot runs a
/// verified image of an expected version.
pub fn boot_checked(
    dev: &SimDevice<Vec<u8>>,
    sim: &Sim<'_>,
    files: &[JobFile],
    run: &mut Run,
) -> BootOutcome {
    loop {
        run.boots += 1;
        assert!(run.boots < 50, "boot loop");
        match sim.boot() {
            Ok(out) => {
                let BootOutcome::Booted(_) = out else {
                    panic!("nothing bootable after a power cut: {out:?}");
                };
                for s in LAYOUT.images {
                    let img = out.image(s.component).expect("every image runs");
                    let old = if s.component == ComponentId::SECURE {
                        OLD_S
                    } else {
                        OLD_NS
                    };
                    let updated = files.iter().any(|f| f.component == s.component);
                    assert!(
                        img.version.build == old || (updated && img.version.build == NEW),
                        "unexpected version {:?} for {:?}",
                        img.version,
                        s.component
                    );
                }
                return out;
            }
            Err(_) => {
                assert!(!dev.is_powered().unwrap(), "boot failed with the power on");
                run.power_cuts += 1;
                dev.power_on().unwrap();
            }
        }
    }
}

fn power_lost(dev: &SimDevice<Vec<u8>>, run: &mut Run, what: &str, e: PalError) {
    assert!(
        !dev.is_powered().unwrap(),
        "{what} failed with the power on: {e}"
    );
    run.power_cuts += 1;
    dev.power_on().unwrap();
}

/// The agent, from power-on to the end of the update: it boots, looks at the platform state,
/// self-tests and confirms (or rejects, when `reject`), or (re)starts the download from block
/// 0 and re-requests the trial boot. Power cuts anywhere send it back to the boot.
pub fn agent(
    dev: &SimDevice<Vec<u8>>,
    sim: &Sim<'_>,
    files: &[JobFile],
    reject_update: bool,
    run: &mut Run,
) -> End {
    let mut rejected = false;
    for _ in 0..30 {
        let out = boot_checked(dev, sim, files, run);
        let all_new = files
            .iter()
            .all(|f| out.image(f.component).unwrap().version.build == NEW);
        match state(sim) {
            PlatformImageState::PendingCommit if !all_new => {
                // A cut inside `psa_fwu_install` staged only some components of a
                // multi-image job (TF-M stages them one after the other, not atomically):
                // the self-test fails on the mixed set, the agent rejects it and restarts.
                assert!(
                    files.len() > 1,
                    "a trial image must be the new one: {out:?}"
                );
                run.partial_trials += 1;
                match reject(sim) {
                    Ok(()) => TfmReset::new(sim).reset(),
                    Err(e) => power_lost(dev, run, "reject", e),
                }
                continue;
            }
            PlatformImageState::PendingCommit => {
                // Self-test passed (the new version runs); confirm or reject.
                let r = if reject_update {
                    reject(sim)
                } else {
                    confirm(sim)
                };
                match r {
                    Ok(()) => {
                        if reject_update {
                            rejected = true;
                            TfmReset::new(sim).reset();
                        }
                    }
                    Err(e) => power_lost(dev, run, "confirm/reject", e),
                }
                continue;
            }
            PlatformImageState::Valid if all_new && !reject_update => return End::Updated,
            PlatformImageState::Valid if rejected => {
                assert!(files
                    .iter()
                    .all(|f| out.image(f.component).unwrap().version.build != NEW));
                return End::RolledBack;
            }
            s => {
                assert!(!all_new || reject_update, "new image runs in state {s:?}");
            }
        }
        // (Re)start the job: every file from block 0, then the hand-over.
        run.downloads += 1;
        let mut ok = true;
        for f in files {
            if let Err(e) = download(sim, f) {
                power_lost(dev, run, "download", e);
                ok = false;
                break;
            }
        }
        if ok {
            if let Err(e) = activate(sim, files) {
                power_lost(dev, run, "activate", e);
            }
        }
    }
    panic!("the update neither completed nor rolled back: {run:?}");
}
