//! `McubootVerifier`: the MCUboot check applied while the agent hashes the file at close.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;
use common::*;

use ota_pal_traits::sim::block_on;
use ota_pal_traits::{verify_stored_image, ImageVerifier, PalErrorKind};
use pal_psoc6::verifier::SUB_MCUBOOT_CHECK;
use pal_psoc6::{Config, McubootVerifier};

fn run(
    file: &[u8],
    sig: &[u8],
    scratch_len: usize,
    fed: usize,
) -> (Result<(), ota_pal_traits::PalError>, pal_psoc6::ImageCheck) {
    let cfg = Config::V1_8_SWAP;
    let dev = device(&cfg);
    let (mut s, _b) = pal(&dev, cfg);
    download(&mut s, file).unwrap();
    let mut v = McubootVerifier::new(aws_verifier(), mcuboot_verifier());
    let info = file_of(file.len());
    v.begin(&info);
    // The agent hashed the first `fed` bytes on the fly (in odd pieces); the rest is read back.
    for piece in file[..fed].chunks(333) {
        v.update(piece);
    }
    let mut scratch = vec![0u8; scratch_len];
    let r = block_on(verify_stored_image(
        &mut s,
        &mut v,
        &info,
        fed as u32,
        sig,
        &mut scratch,
    ));
    (r, v.last_check())
}

#[test]
fn valid_image_passes_whatever_the_chunking() {
    let new = image(NEW, 7000);
    let sig = aws_sig(&new);
    for (scratch, fed) in [
        (1, 0),
        (7, 0),
        (512, 0),
        (4096, 0),
        (100, 31),
        (64, 1024),
        (512, 7500),
    ] {
        let fed = fed.min(new.len());
        let (r, c) = run(&new, &sig, scratch, fed);
        assert_eq!(r, Ok(()), "scratch {scratch} fed {fed}");
        assert!(c.is_valid_signed());
        assert_eq!(c.version(), Some(NEW));
    }
}

#[test]
fn job_signature_failure_is_reported_first() {
    let new = image(NEW, 3000);
    let mut sig = aws_sig(&new);
    let l = sig.len();
    sig[l - 1] ^= 1;
    let (r, c) = run(&new, &sig, 512, 0);
    let e = r.unwrap_err();
    assert_eq!(e.kind(), PalErrorKind::SignatureCheckFailed);
    assert_ne!(e.sub(), SUB_MCUBOOT_CHECK);
    assert!(c.is_valid_signed(), "the MCUboot part is still evaluated");
}

#[test]
fn image_mcuboot_would_refuse_fails_close() {
    // Properly signed for the job, but the MCUboot signature is by another key.
    let other = p256::ecdsa::SigningKey::from_slice(&[0x44; 32]).unwrap();
    let payload = vec![0x5Au8; 3000];
    let mut out = vec![0u8; 8192];
    let n = pal_psoc6::image::build_signed_image(&payload, NEW, 0x400, &other, &mut out).unwrap();
    let file = &out[..n];
    let (r, c) = run(file, &aws_sig(file), 512, 0);
    let e = r.unwrap_err();
    assert_eq!(
        (e.kind(), e.sub()),
        (PalErrorKind::SignatureCheckFailed, SUB_MCUBOOT_CHECK)
    );
    assert!(c.hash_ok && !c.key_hash_ok && !c.signature_ok);
    // Not an MCUboot image at all.
    let junk = vec![0x11u8; 2000];
    let (r, c) = run(&junk, &aws_sig(&junk), 512, 0);
    assert_eq!(r.unwrap_err().sub(), SUB_MCUBOOT_CHECK);
    assert!(c.header.is_none());
}
