//! Interoperability with MCUboot's `imgtool` (PyPI package `imgtool`): images it signs with the
//! Cypress arguments must pass our header / TLV check, boot through the simulated bootloader,
//! and a flipped byte must fail. Install it with `python3 -m pip install imgtool` (or run
//! `scripts/setup.sh`). This test fails, it never skips, when imgtool is missing.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::Command;

use ota_pal_traits::sim::block_on;
use ota_pal_traits::ImageVerifier;
use ota_pal_traits::{BootControl, PlatformImageState, Sha256EcdsaP256Verifier};
use pal_psoc6::image::check_image;
use pal_psoc6::sim::{BootOutcome, SimBootloader};
use pal_psoc6::{Config, ImageVersion, McubootVerifier};

fn imgtool(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("imgtool")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run `imgtool` ({e}). This test needs MCUboot's imgtool: install it with \
             `python3 -m pip install imgtool` or run `scripts/setup.sh`, and make sure `imgtool` \
             is on PATH."
            )
        });
    assert!(
        out.status.success(),
        "imgtool {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn workdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pal-psoc6-imgtool-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Key + signed image; returns (verifier for the key, signed image bytes).
fn signed(name: &str, extra: &[&str]) -> (Sha256EcdsaP256Verifier, Vec<u8>) {
    let dir = workdir(name);
    imgtool(&dir, &["keygen", "-t", "ecdsa-p256", "-k", "key.pem"]);
    let pem = imgtool(&dir, &["getpub", "-k", "key.pem", "-e", "pem"]);
    let key = Sha256EcdsaP256Verifier::from_pem(pem.as_bytes()).unwrap();
    let payload: Vec<u8> = (0..5000u32).map(|i| (i * 31 % 251) as u8).collect();
    std::fs::write(dir.join("in.bin"), &payload).unwrap();
    let slot = format!("{:#x}", Config::V1_8_SWAP.secondary.size);
    let mut args = vec![
        "sign",
        "--header-size",
        "0x400",
        "--pad-header",
        "--align",
        "8",
        "-S",
        &slot,
        "-R",
        "0",
        "-v",
        "1.2.3",
        "-k",
        "key.pem",
    ];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["in.bin", "out.bin"]);
    imgtool(&dir, &args);
    let img = std::fs::read(dir.join("out.bin")).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    (key, img)
}

fn check(key: &Sha256EcdsaP256Verifier, img: &[u8]) -> pal_psoc6::ImageCheck {
    let mut scratch = [0u8; 512];
    block_on(check_image(&mut &img[..], Some(key), &mut scratch)).unwrap()
}

fn accepts_and_rejects_flips(name: &str, extra: &[&str]) {
    let (key, img) = signed(name, extra);
    let c = check(&key, &img);
    assert!(c.is_valid_signed(), "imgtool image refused: {c:?}");
    assert_eq!(c.version(), Some(ImageVersion::new(1, 2, 3, 0)));
    let h = c.header.unwrap();
    assert_eq!((h.hdr_size, h.img_size), (0x400, 5000));
    // A flipped payload byte breaks the hash; a flipped signature byte breaks the signature.
    let mut bad = img.clone();
    bad[0x400 + 10] ^= 0x01;
    let c = check(&key, &bad);
    assert!(!c.hash_ok && !c.is_valid_signed());
    let mut bad = img.clone();
    let l = bad.len();
    bad[l - 5] ^= 0x01;
    let c = check(&key, &bad);
    assert!(c.hash_ok && !c.signature_ok && !c.is_valid_signed());
    // Another key: KEYHASH does not match.
    let c = check(&mcuboot_verifier(), &img);
    assert!(c.hash_ok && !c.key_hash_ok && !c.is_valid_signed());
    // The streaming wrapper agrees.
    let mut v = McubootVerifier::new(aws_verifier(), key.clone());
    v.begin(&file_of(img.len()));
    for piece in img.chunks(1000) {
        v.update(piece);
    }
    block_on(v.finish(&aws_sig(&img))).unwrap();
    assert_eq!(
        v.last_check().version(),
        Some(ImageVersion::new(1, 2, 3, 0))
    );
    let mut v = McubootVerifier::new(aws_verifier(), key);
    v.begin(&file_of(bad.len()));
    v.update(&bad);
    assert!(block_on(v.finish(&aws_sig(&bad))).is_err());
}

#[test]
fn imgtool_swap_image_is_accepted_and_a_flipped_byte_rejected() {
    accepts_and_rejects_flips("swap", &[]);
}

#[test]
fn imgtool_overwrite_only_image_is_accepted_and_a_flipped_byte_rejected() {
    accepts_and_rejects_flips("overwrite", &["--overwrite-only"]);
}

#[test]
fn imgtool_image_with_protected_tlvs_is_accepted() {
    // `-s 7` adds a protected SEC_CNT TLV (0x50): the hash then covers the 0x6908 area too.
    let (key, img) = signed("protected", &["-s", "7"]);
    let c = check(&key, &img);
    assert!(c.is_valid_signed(), "{c:?}");
    let h = c.header.unwrap();
    assert_eq!(h.protect_tlv_size, 12);
    let at = 0x400 + 5000;
    assert_eq!(&img[at..at + 4], &[0x08, 0x69, 12, 0]);
    // Changing the protected counter breaks the hash.
    let mut bad = img.clone();
    bad[at + 8] ^= 1;
    assert!(!check(&key, &bad).hash_ok);
}

#[test]
fn imgtool_image_updates_through_the_pal_and_the_sim_bootloader() {
    for (cfg, extra) in [
        (Config::V1_8_SWAP, &[][..]),
        (Config::V1_5_0_OVERWRITE, &["--overwrite-only"][..]),
    ] {
        let (key, img) = signed("flow", extra);
        // The primary holds a factory image of another key: only the update is booted.
        let dev = device(&cfg);
        let (mut s, mut b) = pal(&dev, cfg);
        stage_with(&mut s, &mut b, &img, &key).unwrap();
        let o = SimBootloader::new(&dev, cfg, Some(key.clone())).boot();
        assert!(
            matches!(o, BootOutcome::Booted { version, .. } if version == ImageVersion::new(1, 2, 3, 0)),
            "{o:?}"
        );
        let (_s, mut b) = pal(&dev, cfg);
        assert_eq!(
            block_on(b.platform_state()).unwrap(),
            PlatformImageState::PendingCommit
        );
        block_on(b.confirm()).unwrap();
        let o = SimBootloader::new(&dev, cfg, Some(key)).boot();
        assert!(matches!(o, BootOutcome::Booted { .. }), "{o:?}");
    }
}
