//! PAL contract tests in the spirit of spec §8.5 (`Full_OTA_PAL`), plus the
//! `ota_pal_traits::conformance` suite run against this crate, and the RSA-3072 PSS path.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;
use common::*;
use ota_pal_traits::conformance::{self as conf, PalUnderTest};
use ota_pal_traits::sim::block_on;
use ota_pal_traits::{
    verify_stored_image, BootControl, ImageStorage, ImageVerifier, PalErrorKind, PlatformImageState,
};
use pal_tfm::{
    Algorithm, CandidateDigestVerifier, ComponentId, ComponentState, Config, PsaCrypto, PsaFwu,
    Status, TfmBootControl, TfmStorage,
};
use sha2::{Digest, Sha256};

/// `ucDummyData` of the reference PAL tests (spec §8.5).
const DUMMY: [u8; 84] = ota_pal_traits::conformance::DUMMY_DATA;

#[test]
fn dummy_data_matches_the_spec_digest() {
    let d: [u8; 32] = Sha256::digest(DUMMY).into();
    assert_eq!(
        hex(&d),
        "a06b4732211f3526e61fdd2afe3d51b4a780211cc6b274e1e835a8f200e95f68"
    );
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The conformance suite, with unknown paths (the suite uses "") going to the NS image.
/// `WriteBlock_WriteSingleByte` and `WriteBlock_WriteManyBlocks` read the file back, which TF-M
/// cannot do (no read API for the staging area): they are replayed below over the candidate
/// digest instead.
#[test]
fn conformance_suite_passes() {
    let dev = device();
    let sim = factory(&dev);
    let cfg = Config::PAL_PSA_DEFAULT_NONSECURE;
    let mut storage = TfmStorage::new(&sim, cfg);
    let mut verifier = CandidateDigestVerifier::new(
        &sim,
        pal_tfm::P256Crypto::new(*aws_key().verifying_key()),
        0,
        Algorithm::EcdsaSha256,
        cfg.components,
    );
    let mut boot = TfmBootControl::new(&sim, cfg);
    let sig = aws_sign(&DUMMY);
    let bad = aws_sign(b"not the data");
    let mut scratch = [0u8; 1024];
    let mut pal = PalUnderTest {
        storage: &mut storage,
        verifier: &mut verifier,
        boot: &mut boot,
        data: &DUMMY,
        signature: &sig,
        invalid_signature: &bad,
        block_size: 1024,
        scratch: &mut scratch,
    };
    block_on(async {
        conf::close_file_valid_signature(&mut pal).await.unwrap();
        conf::close_file_invalid_signature_block_written(&mut pal)
            .await
            .unwrap();
        conf::close_file_invalid_signature_no_block_written(&mut pal)
            .await
            .unwrap();
        conf::close_file_valid_signature_no_block_written(&mut pal)
            .await
            .unwrap();
        conf::create_file_for_rx(&mut pal).await.unwrap();
        conf::abort_open_file(&mut pal).await.unwrap();
        conf::abort_file_with_block_written(&mut pal).await.unwrap();
        conf::abort_with_nothing_open(&mut pal).await.unwrap();
        conf::accepted_state_without_close(&mut pal).await.unwrap();
        conf::invalid_state_after_close_failure(&mut pal)
            .await
            .unwrap();
        // The two read-back checks fail only on the read, as documented.
        let e = conf::write_single_byte(&mut pal).await.unwrap_err();
        assert_eq!(e.got.unwrap().kind(), PalErrorKind::FileClose);
        pal.storage.abort().await.unwrap();
    });
}

fn ns_storage<'s, 'd>(sim: &'s Sim<'d>) -> TfmStorage<&'s Sim<'d>> {
    TfmStorage::new(sim, CFG)
}

#[test]
fn create_any_file() {
    let dev = device();
    let sim = factory(&dev);
    let mut st = ns_storage(&sim);
    block_on(st.prepare(&file(NS_PATH, 84))).unwrap();
    assert_eq!(st.component(), Some(ComponentId::NONSECURE));
    assert_eq!(
        sim.query(ComponentId::NONSECURE).unwrap().state,
        ComponentState::Writing
    );
    block_on(st.prepare(&file(S_PATH, 84))).unwrap();
    assert_eq!(st.component(), Some(ComponentId::SECURE));
    block_on(st.prepare(&file("combined image", 84))).unwrap();
    assert_eq!(st.component(), Some(ComponentId::FULL));
    // Unknown path with the PAL-PSA table: RxFileCreateFailed.
    let e = block_on(st.prepare(&file("firmware.bin", 84))).unwrap_err();
    assert_eq!(e.kind(), PalErrorKind::RxFileCreateFailed);
    assert_eq!(e.sub(), pal_tfm::pal::SUB_UNKNOWN_PATH);
    // Too large for the slot.
    let e = block_on(st.prepare(&file(NS_PATH, 0x4001))).unwrap_err();
    assert_eq!(e.kind(), PalErrorKind::RxFileTooLarge);
    assert_eq!(st.capacity(), 0x4000);
    block_on(st.abort()).unwrap();
}

#[test]
fn write_single_byte() {
    let dev = device();
    let sim = factory(&dev);
    let mut st = ns_storage(&sim);
    let info = file(NS_PATH, 1);
    block_on(st.prepare(&info)).unwrap();
    block_on(st.write(0, &[0x5A])).unwrap();
    let mut v = verifier(&sim);
    v.begin(&info);
    let d = v.candidate_digest(ComponentId::NONSECURE).unwrap();
    assert_eq!(d, <[u8; 32]>::from(Sha256::digest([0x5A])));
    block_on(st.abort()).unwrap();
}

#[test]
fn write_many_blocks_at_block_offsets() {
    let dev = device();
    let sim = factory(&dev);
    let mut st = ns_storage(&sim);
    let page = 1024usize;
    let size = page * 9 + DUMMY.len();
    let info = file(NS_PATH, size);
    block_on(st.prepare(&info)).unwrap();
    let mut expect = vec![0xFFu8; size];
    for i in (0..10).rev() {
        block_on(st.write((i * page) as u32, &DUMMY)).unwrap();
        expect[i * page..i * page + DUMMY.len()].copy_from_slice(&DUMMY);
    }
    let mut v = verifier(&sim);
    v.begin(&info);
    // TF-M hashes `loaded_size` bytes of the slot: the holes read as erased flash.
    let d = v.candidate_digest(ComponentId::NONSECURE).unwrap();
    assert_eq!(d, <[u8; 32]>::from(Sha256::digest(&expect)));
    block_on(st.abort()).unwrap();
}

#[test]
fn blocks_larger_than_max_write_size_are_chunked() {
    let dev = device();
    let sim = factory(&dev);
    let cfg = Config {
        max_write_size: 100,
        ..CFG
    };
    let sim = sim.with_max_write_size(100);
    let mut st = TfmStorage::new(&sim, cfg);
    let data: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
    block_on(st.prepare(&file(NS_PATH, data.len()))).unwrap();
    block_on(st.write(0, &data)).unwrap();
    assert!(sim.finish(ComponentId::NONSECURE).is_success());
    assert_eq!(
        sim.query(ComponentId::NONSECURE).unwrap().candidate_digest,
        <[u8; 32]>::from(Sha256::digest(&data))
    );
    // A write past the file size is refused before reaching PSA.
    let mut st = TfmStorage::new(&sim, cfg);
    block_on(st.prepare(&file(NS_PATH, 10))).unwrap();
    assert_eq!(
        block_on(st.write(8, &[0; 4])).unwrap_err().kind(),
        PalErrorKind::FileClose
    );
}

fn close(sim: &Sim<'_>, size: usize, sig: &[u8]) -> Result<(), ota_pal_traits::PalError> {
    let info = file(NS_PATH, size);
    let mut st = ns_storage(sim);
    let mut v = verifier(sim);
    v.begin(&info);
    let mut scratch = [0u8; 16];
    block_on(verify_stored_image(
        &mut st,
        &mut v,
        &info,
        0,
        sig,
        &mut scratch,
    ))
}

#[test]
fn close_valid_and_invalid_signature_with_and_without_blocks() {
    let dev = device();
    let sim = factory(&dev);
    let mut st = ns_storage(&sim);
    let info = file(NS_PATH, DUMMY.len());
    // Valid, blocks written.
    block_on(st.prepare(&info)).unwrap();
    block_on(st.write(0, &DUMMY)).unwrap();
    close(&sim, DUMMY.len(), &aws_sign(&DUMMY)).unwrap();
    assert_eq!(
        sim.query(ComponentId::NONSECURE).unwrap().state,
        ComponentState::Candidate
    );
    // Closing again (the component is CANDIDATE already) verifies the same digest.
    close(&sim, DUMMY.len(), &aws_sign(&DUMMY)).unwrap();
    // Invalid, blocks written.
    block_on(st.prepare(&info)).unwrap();
    block_on(st.write(0, &DUMMY)).unwrap();
    let e = close(&sim, DUMMY.len(), &aws_sign(b"other")).unwrap_err();
    assert_eq!(e.kind(), PalErrorKind::SignatureCheckFailed);
    // Garbage (not DER, not 64 bytes).
    let e = close(&sim, DUMMY.len(), &[1, 2, 3]).unwrap_err();
    assert_eq!(e.kind(), PalErrorKind::SignatureCheckFailed);
    // Valid and invalid, no block written.
    block_on(st.prepare(&info)).unwrap();
    let e = close(&sim, DUMMY.len(), &aws_sign(&DUMMY)).unwrap_err();
    assert_eq!(e.kind(), PalErrorKind::SignatureCheckFailed);
    block_on(st.prepare(&info)).unwrap();
    let e = close(&sim, DUMMY.len(), &aws_sign(b"other")).unwrap_err();
    assert_eq!(e.kind(), PalErrorKind::SignatureCheckFailed);
    // Nothing prepared at all (READY): fails too.
    block_on(st.abort()).unwrap();
    let e = close(&sim, DUMMY.len(), &aws_sign(&DUMMY)).unwrap_err();
    assert_eq!(e.kind(), PalErrorKind::SignatureCheckFailed);
    assert_eq!(e.sub(), pal_tfm::verify::SUB_NOT_CANDIDATE);
}

#[test]
fn abort_before_open_after_writes_and_twice() {
    let dev = device();
    let sim = factory(&dev);
    let mut st = ns_storage(&sim);
    block_on(st.abort()).unwrap();
    block_on(st.abort()).unwrap();
    assert_eq!(
        block_on(st.write(0, &[1])).unwrap_err().kind(),
        PalErrorKind::NullFileContext
    );
    block_on(st.prepare(&file(NS_PATH, 84))).unwrap();
    block_on(st.write(0, &DUMMY)).unwrap();
    block_on(st.abort()).unwrap();
    assert_eq!(
        sim.query(ComponentId::NONSECURE).unwrap().state,
        ComponentState::Ready
    );
    block_on(st.abort()).unwrap();
    assert_eq!(
        block_on(st.write(0, &[1])).unwrap_err().kind(),
        PalErrorKind::NullFileContext
    );
    // Abort after a successful close discards the candidate.
    block_on(st.prepare(&file(NS_PATH, 84))).unwrap();
    block_on(st.write(0, &DUMMY)).unwrap();
    close(&sim, 84, &aws_sign(&DUMMY)).unwrap();
    block_on(st.abort()).unwrap();
    assert_eq!(
        sim.query(ComponentId::NONSECURE).unwrap().state,
        ComponentState::Ready
    );
    // The erased staging area no longer verifies.
    assert!(close(&sim, 84, &aws_sign(&DUMMY)).is_err());
    // After `release` (hand-over done), abort keeps the candidate.
    block_on(st.prepare(&file(NS_PATH, 84))).unwrap();
    block_on(st.write(0, &DUMMY)).unwrap();
    close(&sim, 84, &aws_sign(&DUMMY)).unwrap();
    st.release();
    block_on(st.abort()).unwrap();
    assert_eq!(
        sim.query(ComponentId::NONSECURE).unwrap().state,
        ComponentState::Candidate
    );
}

#[test]
fn confirm_before_anything_is_pending_is_commit_failed() {
    let dev = device();
    let sim = factory(&dev);
    let mut boot = TfmBootControl::new(&sim, CFG);
    let e = block_on(boot.confirm()).unwrap_err();
    assert_eq!(e.kind(), PalErrorKind::CommitFailed);
    // Also with a download in progress and after a successful close.
    let mut st = ns_storage(&sim);
    block_on(st.prepare(&file(NS_PATH, 84))).unwrap();
    block_on(st.write(0, &DUMMY)).unwrap();
    assert_eq!(
        block_on(boot.confirm()).unwrap_err().kind(),
        PalErrorKind::CommitFailed
    );
    close(&sim, 84, &aws_sign(&DUMMY)).unwrap();
    assert_eq!(
        block_on(boot.confirm()).unwrap_err().kind(),
        PalErrorKind::CommitFailed
    );
    assert_eq!(
        block_on(boot.platform_state()).unwrap(),
        PlatformImageState::Invalid
    );
}

#[test]
fn invalid_state_after_failed_verification() {
    let dev = device();
    let sim = factory(&dev);
    assert_eq!(state(&sim), PlatformImageState::Valid);
    let mut st = ns_storage(&sim);
    block_on(st.prepare(&file(NS_PATH, 84))).unwrap();
    block_on(st.write(0, &DUMMY)).unwrap();
    assert!(close(&sim, 84, &aws_sign(b"x")).is_err());
    assert_eq!(state(&sim), PlatformImageState::Invalid);
    reject(&sim).unwrap();
    assert_eq!(state(&sim), PlatformImageState::Invalid);
    block_on(st.abort()).unwrap();
    assert_eq!(state(&sim), PlatformImageState::Valid);
}

// ---- RSA-3072 PSS through PsaCrypto -------------------------------------------------------

/// `psa_verify_hash` for `PSA_ALG_RSA_PSS_ANY_SALT(SHA_256)` on the host, with the `rsa`
/// crate: PSS, SHA-256, MGF1-SHA-256, any salt length.
struct RsaPssAnySalt(rsa::RsaPublicKey);

impl PsaCrypto for RsaPssAnySalt {
    fn verify_hash(&self, _key: u32, alg: Algorithm, hash: &[u8], sig: &[u8]) -> Status {
        use rsa::traits::PublicKeyParts;
        if alg != Algorithm::RsaPssAnySaltSha256 {
            return Status::NOT_SUPPORTED;
        }
        let max_salt = self.0.size() - 32 - 2;
        let ok = (0..=max_salt).rev().any(|salt| {
            self.0
                .verify(rsa::Pss::new_with_salt::<Sha256>(salt), hash, sig)
                .is_ok()
        });
        if ok {
            Status::SUCCESS
        } else {
            Status::INVALID_SIGNATURE
        }
    }
}

#[test]
fn rsa3072_pss_signature_over_candidate_digest() {
    use rand::SeedableRng;
    let mut rng = rand::rngs::StdRng::seed_from_u64(3072);
    let key = rsa::RsaPrivateKey::new(&mut rng, 3072).unwrap();
    let public = key.to_public_key();
    let dev = device();
    let sim = factory(&dev);
    let img = image(version(1, NEW), 4000);
    let digest: [u8; 32] = Sha256::digest(&img).into();
    // openssl pkeyutl -pkeyopt rsa_padding_mode:pss signs with the longest salt (OpenSSL 3
    // default) or the digest length: both must verify.
    for salt in [32usize, 384 - 32 - 2, 0] {
        let sig = key
            .sign_with_rng(&mut rng, rsa::Pss::new_with_salt::<Sha256>(salt), &digest)
            .unwrap();
        assert_eq!(sig.len(), 384);
        let info = file(NS_PATH, img.len());
        let mut st = ns_storage(&sim);
        block_on(st.prepare(&info)).unwrap();
        block_on(st.write(0, &img)).unwrap();
        let mut v = CandidateDigestVerifier::new(
            &sim,
            RsaPssAnySalt(public.clone()),
            1,
            Algorithm::RsaPssAnySaltSha256,
            CFG.components,
        );
        assert_eq!(v.kind(), ota_pal_traits::SignatureKind::SHA256_RSA);
        assert!(!v.needs_image_bytes());
        v.begin(&info);
        block_on(v.finish(&sig)).unwrap();
        // A flipped bit in the signature, or another image, fails.
        let mut bad = sig.clone();
        bad[100] ^= 1;
        assert_eq!(
            block_on(v.finish(&bad)).unwrap_err().kind(),
            PalErrorKind::SignatureCheckFailed
        );
        block_on(st.abort()).unwrap();
        block_on(st.prepare(&info)).unwrap();
        block_on(st.write(0, &img[..img.len() - 1])).unwrap();
        v.begin(&info);
        assert_eq!(
            block_on(v.finish(&sig)).unwrap_err().kind(),
            PalErrorKind::SignatureCheckFailed
        );
        block_on(st.abort()).unwrap();
    }
    // The full flow with RSA: install, trial, confirm.
    let sig = key
        .sign_with_rng(&mut rng, rsa::Pss::new_with_salt::<Sha256>(32), &digest)
        .unwrap();
    let info = file(NS_PATH, img.len());
    let mut st = ns_storage(&sim);
    block_on(st.prepare(&info)).unwrap();
    block_on(st.write(0, &img)).unwrap();
    let mut v = CandidateDigestVerifier::new(
        &sim,
        RsaPssAnySalt(public),
        1,
        Algorithm::RsaPssAnySaltSha256,
        CFG.components,
    );
    v.begin(&info);
    block_on(v.finish(&sig)).unwrap();
    block_on(TfmBootControl::new(&sim, CFG).request_trial_boot(&info)).unwrap();
    let out = sim.boot().unwrap();
    assert_eq!(
        out.image(ComponentId::NONSECURE).unwrap().version.build,
        NEW
    );
    confirm(&sim).unwrap();
    assert_eq!(state(&sim), PlatformImageState::Valid);
}

#[test]
fn ecdsa_raw_and_der_signatures_both_verify() {
    let dev = device();
    let sim = factory(&dev);
    let mut st = ns_storage(&sim);
    let info = file(NS_PATH, DUMMY.len());
    block_on(st.prepare(&info)).unwrap();
    block_on(st.write(0, &DUMMY)).unwrap();
    let der = aws_sign(&DUMMY);
    let raw = pal_tfm::verify::ecdsa_der_to_raw(&der).unwrap();
    close(&sim, DUMMY.len(), &der).unwrap();
    close(&sim, DUMMY.len(), &raw).unwrap();
    // P256Crypto refuses RSA.
    let c = pal_tfm::P256Crypto::new(*aws_key().verifying_key());
    assert_eq!(
        c.verify_hash(0, Algorithm::RsaPssAnySaltSha256, &[0; 32], &raw),
        Status::NOT_SUPPORTED
    );
}
