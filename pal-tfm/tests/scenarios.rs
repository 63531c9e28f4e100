//! One test per flow, each named after what it plays, booting through the simulated BL2.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;
use common::*;
use ota_pal_traits::sim::block_on;
use ota_pal_traits::{BootControl, ImageStorage, PalErrorKind, PlatformImageState};
use pal_tfm::sim::BootOutcome;
use pal_tfm::{ComponentId, ComponentState, PsaFwu, Status, TfmBootControl, TfmStorage};

fn ns_version(out: &BootOutcome) -> u32 {
    out.image(ComponentId::NONSECURE).unwrap().version.build
}

fn ns_file() -> JobFile {
    job_file(NS_PATH, ComponentId::NONSECURE, version(1, NEW), 5200)
}

#[test]
fn update_confirms_after_self_test() {
    let dev = device();
    let sim = factory(&dev);
    let f = ns_file();
    download(&sim, &f).unwrap();
    assert_eq!(
        sim.query(ComponentId::NONSECURE).unwrap().state,
        ComponentState::Candidate
    );
    activate(&sim, core::slice::from_ref(&f)).unwrap();
    assert_eq!(
        sim.query(ComponentId::NONSECURE).unwrap().state,
        ComponentState::Staged
    );
    let out = sim.boot().unwrap();
    assert_eq!(ns_version(&out), NEW);
    assert!(out.image(ComponentId::NONSECURE).unwrap().trial);
    assert_eq!(state(&sim), PlatformImageState::PendingCommit);
    confirm(&sim).unwrap();
    // accept then clean: UPDATED → READY.
    assert_eq!(
        sim.query(ComponentId::NONSECURE).unwrap().state,
        ComponentState::Ready
    );
    assert_eq!(state(&sim), PlatformImageState::Valid);
    let out = sim.boot().unwrap();
    assert_eq!(ns_version(&out), NEW);
    assert!(!out.image(ComponentId::NONSECURE).unwrap().trial);
    assert_eq!(state(&sim), PlatformImageState::Valid);
}

#[test]
fn rejected_update_rolls_back_to_old_image() {
    let dev = device();
    let sim = factory(&dev);
    let f = ns_file();
    download(&sim, &f).unwrap();
    activate(&sim, core::slice::from_ref(&f)).unwrap();
    assert_eq!(ns_version(&sim.boot().unwrap()), NEW);
    reject(&sim).unwrap();
    assert_eq!(
        sim.query(ComponentId::NONSECURE).unwrap().state,
        ComponentState::Rejected
    );
    assert_eq!(
        sim.query(ComponentId::NONSECURE).unwrap().error,
        Status::NOT_PERMITTED
    );
    assert_eq!(state(&sim), PlatformImageState::Invalid);
    let out = sim.boot().unwrap();
    assert_eq!(ns_version(&out), OLD_NS);
    assert!(!out.image(ComponentId::NONSECURE).unwrap().trial);
    assert_eq!(state(&sim), PlatformImageState::Valid);
    // And it stays old.
    assert_eq!(ns_version(&sim.boot().unwrap()), OLD_NS);
}

#[test]
fn reset_without_confirm_reverts() {
    let dev = device();
    let sim = factory(&dev);
    let f = ns_file();
    download(&sim, &f).unwrap();
    activate(&sim, core::slice::from_ref(&f)).unwrap();
    assert_eq!(ns_version(&sim.boot().unwrap()), NEW);
    // Self-test timer expires: the agent resets without confirming.
    let out = sim.boot().unwrap();
    assert_eq!(ns_version(&out), OLD_NS);
    assert_eq!(state(&sim), PlatformImageState::Valid);
}

#[test]
fn staged_update_rejected_before_reboot_never_runs() {
    let dev = device();
    let sim = factory(&dev);
    let f = ns_file();
    download(&sim, &f).unwrap();
    activate(&sim, core::slice::from_ref(&f)).unwrap();
    reject(&sim).unwrap();
    assert_eq!(
        sim.query(ComponentId::NONSECURE).unwrap().state,
        ComponentState::Failed
    );
    assert_eq!(ns_version(&sim.boot().unwrap()), OLD_NS);
}

#[test]
fn bad_signature_is_never_installed() {
    let dev = device();
    let sim = factory(&dev);
    let mut f = ns_file();
    f.signature = aws_sign(b"something else");
    let e = download(&sim, &f).unwrap_err();
    assert_eq!(e.kind(), PalErrorKind::SignatureCheckFailed);
    assert_eq!(state(&sim), PlatformImageState::Invalid);
    // The agent rejects after a failed close: CANDIDATE is cancelled → FAILED, still Invalid.
    reject(&sim).unwrap();
    assert_eq!(
        sim.query(ComponentId::NONSECURE).unwrap().state,
        ComponentState::Failed
    );
    assert_eq!(state(&sim), PlatformImageState::Invalid);
    let e =
        block_on(TfmBootControl::new(&sim, CFG).request_trial_boot(&file(NS_PATH, 1))).unwrap_err();
    assert_eq!(e.kind(), PalErrorKind::ActivateFailed);
    assert_eq!(ns_version(&sim.boot().unwrap()), OLD_NS);
    // A new download starts cleanly after that (FAILED is cleaned first).
    let good = ns_file();
    download(&sim, &good).unwrap();
}

#[test]
fn image_not_signed_for_bl2_is_refused_at_boot_and_old_image_runs() {
    let dev = device();
    let sim = factory(&dev);
    // The AWS code signature is valid, but the MCUboot signature is broken: BL2 refuses it.
    let mut img = image(version(1, NEW), 5200);
    let last = img.len() - 1;
    img[last] ^= 0x55;
    let f = JobFile {
        path: NS_PATH,
        component: ComponentId::NONSECURE,
        signature: aws_sign(&img),
        image: img,
    };
    download(&sim, &f).unwrap();
    activate(&sim, core::slice::from_ref(&f)).unwrap();
    let out = sim.boot().unwrap();
    assert_eq!(ns_version(&out), OLD_NS);
    assert_eq!(state(&sim), PlatformImageState::Valid);
    assert_eq!(ns_version(&sim.boot().unwrap()), OLD_NS);
}

#[test]
fn secure_and_nonsecure_job_installs_both_with_one_install() {
    let dev = device();
    let sim = factory(&dev);
    let s = job_file(S_PATH, ComponentId::SECURE, version(1, NEW), 3100);
    let ns = ns_file();
    download(&sim, &s).unwrap();
    download(&sim, &ns).unwrap();
    let mut boot = TfmBootControl::new(&sim, CFG);
    // The first request installs every CANDIDATE; the second finds its component STAGED.
    block_on(boot.request_trial_boot(&file(S_PATH, s.image.len()))).unwrap();
    assert_eq!(
        sim.query(ComponentId::NONSECURE).unwrap().state,
        ComponentState::Staged
    );
    block_on(boot.request_trial_boot(&file(NS_PATH, ns.image.len()))).unwrap();
    let out = sim.boot().unwrap();
    assert_eq!(out.image(ComponentId::SECURE).unwrap().version.build, NEW);
    assert_eq!(ns_version(&out), NEW);
    assert_eq!(state(&sim), PlatformImageState::PendingCommit);
    confirm(&sim).unwrap();
    let out = sim.boot().unwrap();
    assert_eq!(out.image(ComponentId::SECURE).unwrap().version.build, NEW);
    assert_eq!(ns_version(&out), NEW);
    assert_eq!(state(&sim), PlatformImageState::Valid);
}

#[test]
fn download_interrupted_by_reboot_restarts_from_block_zero() {
    let dev = device();
    let sim = factory(&dev);
    let f = ns_file();
    let info = file(NS_PATH, f.image.len());
    let mut st = TfmStorage::new(&sim, CFG);
    block_on(st.prepare(&info)).unwrap();
    block_on(st.write(0, &f.image[..BLOCK])).unwrap();
    // Same boot: resume works (component still WRITING).
    let mut st2 = TfmStorage::new(&sim, CFG);
    block_on(st2.resume(&info)).unwrap();
    block_on(st2.write(BLOCK as u32, &f.image[BLOCK..2 * BLOCK])).unwrap();
    // After a reboot the staging is gone (VOLATILE_STAGING): resume refuses, prepare works.
    sim.boot().unwrap();
    let mut st3 = TfmStorage::new(&sim, CFG);
    assert_eq!(
        block_on(st3.resume(&info)).unwrap_err().kind(),
        PalErrorKind::RxFileCreateFailed
    );
    download(&sim, &f).unwrap();
}

#[test]
fn new_download_while_on_trial_is_refused() {
    let dev = device();
    let sim = factory(&dev);
    let f = ns_file();
    download(&sim, &f).unwrap();
    activate(&sim, core::slice::from_ref(&f)).unwrap();
    sim.boot().unwrap();
    let mut st = TfmStorage::new(&sim, CFG);
    let e = block_on(st.prepare(&file(NS_PATH, 100))).unwrap_err();
    assert_eq!(e.kind(), PalErrorKind::RxFileCreateFailed);
    assert_eq!(e.sub(), pal_tfm::pal::SUB_UPDATE_IN_PROGRESS);
}

#[test]
fn psa_calls_in_the_wrong_state_are_bad_state() {
    let dev = device();
    let sim = factory(&dev);
    let c = ComponentId::NONSECURE;
    assert_eq!(sim.finish(c), Status::BAD_STATE);
    assert_eq!(sim.write(c, 0, &[1]), Status::BAD_STATE);
    assert_eq!(sim.install(), Status::BAD_STATE);
    assert_eq!(sim.accept(), Status::BAD_STATE);
    assert_eq!(sim.reject(Status::NOT_PERMITTED), Status::BAD_STATE);
    assert_eq!(sim.cancel(c), Status::BAD_STATE);
    assert_eq!(sim.clean(c), Status::BAD_STATE);
    assert_eq!(sim.start(c, &[1]), Status::NOT_SUPPORTED);
    assert_eq!(sim.start(ComponentId(9), &[]), Status::DOES_NOT_EXIST);
    assert_eq!(sim.start(c, &[]), Status::SUCCESS);
    assert_eq!(sim.start(c, &[]), Status::BAD_STATE);
    assert_eq!(sim.write(c, 0, &[0u8; 1025]), Status::INVALID_ARGUMENT);
    assert_eq!(sim.write(c, 0, &[1, 2, 3]), Status::SUCCESS);
    assert_eq!(sim.finish(c), Status::SUCCESS);
    assert_eq!(sim.install(), Status::SUCCESS_REBOOT);
    assert_eq!(sim.cancel(c), Status::BAD_STATE);
    assert_eq!(sim.request_reboot(), Status::SUCCESS);
    let info = sim.query(c).unwrap();
    assert_eq!(info.flags, pal_tfm::psa::FLAG_VOLATILE_STAGING);
    assert_eq!(info.max_size, 0x4000);
    assert_eq!(info.version.build, OLD_NS);
}

#[test]
fn candidate_digest_is_sha256_of_the_bytes_written() {
    use sha2::{Digest, Sha256};
    let dev = device();
    let sim = factory(&dev);
    let c = ComponentId::NONSECURE;
    let data: Vec<u8> = (0..3000u32).map(|i| (i * 7) as u8).collect();
    assert!(sim.start(c, &[]).is_success());
    // Out of order, in max-write-size pieces.
    assert!(sim.write(c, 1024, &data[1024..2048]).is_success());
    assert!(sim.write(c, 2048, &data[2048..]).is_success());
    assert!(sim.write(c, 0, &data[..1024]).is_success());
    assert!(sim.finish(c).is_success());
    let d: [u8; 32] = Sha256::digest(&data).into();
    assert_eq!(sim.query(c).unwrap().candidate_digest, d);
}

#[test]
fn power_cut_during_swap_resumes_and_runs_new_image() {
    let dev = device();
    let sim = factory(&dev);
    let f = ns_file();
    download(&sim, &f).unwrap();
    activate(&sim, core::slice::from_ref(&f)).unwrap();
    // Cut in the middle of BL2's swap (its 20th flash operation), then power on again.
    dev.reset_stats().unwrap();
    dev.cut_power_at(20, 7).unwrap();
    assert!(sim.boot().is_err());
    dev.power_on().unwrap();
    let out = sim.boot().unwrap();
    assert_eq!(ns_version(&out), NEW);
    assert!(out.image(ComponentId::NONSECURE).unwrap().trial);
    confirm(&sim).unwrap();
    assert_eq!(ns_version(&sim.boot().unwrap()), NEW);
}

#[test]
fn corrupted_primary_is_reported_as_nothing_bootable() {
    let dev = device();
    let sim = factory(&dev);
    // Flip one payload byte of the running NS image: its SHA256 TLV no longer matches.
    dev.modify(|m| m[0x4000 + 0x500] ^= 1).unwrap();
    assert_eq!(
        sim.boot().unwrap(),
        BootOutcome::NothingBootable(ComponentId::NONSECURE)
    );
}

#[test]
fn image_signed_by_another_bl2_key_is_refused() {
    let dev = device();
    let sim = factory(&dev);
    let other = p256::ecdsa::SigningKey::from_bytes(&[0x33u8; 32].into()).unwrap();
    let payload = vec![0xA5u8; 2000];
    let mut img = vec![0u8; 4000];
    let n = pal_tfm::sim::build_image(&mut img, &payload, version(1, NEW), &other).unwrap();
    img.truncate(n);
    let f = JobFile {
        path: NS_PATH,
        component: ComponentId::NONSECURE,
        signature: aws_sign(&img),
        image: img,
    };
    download(&sim, &f).unwrap();
    activate(&sim, core::slice::from_ref(&f)).unwrap();
    assert_eq!(ns_version(&sim.boot().unwrap()), OLD_NS);
}
