//! Interoperability with MCUboot's `imgtool` (PyPI package `imgtool`): images it signs with the
//! Cypress arguments must pass our header / TLV check, boot through the simulated bootloader,
//! and a flipped byte must fail; the trailer a pending request writes must equal the one
//! `imgtool sign --pad --confirm` / `--pad` produces at the same offsets.
//!
//! Which imgtool runs: `$IMGTOOL` if set, else the virtual environment `scripts/setup.sh`
//! installs (`target/tools-venv/bin/imgtool`, or `$OTA_TOOLS_VENV/bin/imgtool`), else `imgtool`
//! on PATH. These tests fail, they never skip, when none is there.
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
use pal_psoc6::image::{check_image, ImageHeader};
use pal_psoc6::layout::ROW_SIZE;
use pal_psoc6::sim::{BootOutcome, SimBootloader};
use pal_psoc6::{Config, ImageVersion, McubootVerifier, PendingMode, UpgradeMode};

/// The imgtool to run (see the module docs).
fn imgtool_program() -> PathBuf {
    if let Some(p) = std::env::var_os("IMGTOOL").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let venv = std::env::var_os("OTA_TOOLS_VENV")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/tools-venv"));
    let in_venv = venv.join("bin").join("imgtool");
    if in_venv.is_file() {
        in_venv
    } else {
        PathBuf::from("imgtool")
    }
}

fn imgtool(dir: &Path, args: &[&str]) -> String {
    let program = imgtool_program();
    let out = Command::new(&program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run `{}` ({e}). This test needs MCUboot's imgtool (PyPI `imgtool`): run \
                 `scripts/setup.sh`, which installs it into the virtual environment \
                 `target/tools-venv`, or point the IMGTOOL environment variable at an imgtool \
                 executable.",
                program.display()
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

/// The length of a signed image without imgtool's padding: header, payload, protected TLVs and
/// the unprotected TLV area (its info header states its total size).
fn unpadded_len(img: &[u8]) -> usize {
    let h = ImageHeader::decode(img[..32].try_into().unwrap());
    let at = h.hdr_size as usize + h.img_size as usize + h.protect_tlv_size as usize;
    assert_eq!(
        &img[at..at + 2],
        &[0x07, 0x69],
        "unprotected TLV info magic"
    );
    at + u16::from_le_bytes([img[at + 2], img[at + 3]]) as usize
}

/// What [`slot_against_imgtool`] found: imgtool's padded image, our secondary slot after the
/// pending request, and the offsets from the slot end where they differ.
struct SlotCompare {
    imgtool: Vec<u8>,
    ours: Vec<u8>,
    differ_at: Vec<usize>,
}

impl SlotCompare {
    /// `len` bytes at `at` bytes before the slot end: (imgtool's, ours).
    fn at(&self, at: usize, len: usize) -> (&[u8], &[u8]) {
        let from = self.ours.len() - at;
        (
            &self.imgtool[from..from + len],
            &self.ours[from..from + len],
        )
    }
}

/// Sign with `imgtool sign --pad ... -R 0 --align 8 -S <slot> --header-size 0x400 --pad-header`
/// plus `mark` (`--confirm`, `--test` or nothing; `--overwrite-only` for that build), stage the
/// same image *without* its trailer through the PAL (download, close, `request_trial_boot` with
/// the configured [`PendingMode`]) on the sim secondary slot, and compare the whole slot with
/// imgtool's padded image. The bootloader must then boot the update.
fn slot_against_imgtool(cfg: Config, mark: &[&str]) -> SlotCompare {
    let name = format!("pad{}", mark.join(""));
    let mut extra = vec!["--pad"];
    extra.extend_from_slice(mark);
    if cfg.mode == UpgradeMode::OverwriteOnly {
        extra.push("--overwrite-only");
    }
    let (key, padded) = signed(&name, &extra);
    let slot = cfg.secondary.size as usize;
    assert_eq!(padded.len(), slot, "--pad pads to the slot size");
    let len = unpadded_len(&padded);
    // imgtool's padding below the trailer row is the erased value 0x00 (`-R 0`).
    let trailer_row = slot - ROW_SIZE as usize;
    assert!(len <= trailer_row);
    assert!(padded[len..trailer_row].iter().all(|&b| b == 0));

    let dev = device(&cfg);
    let (mut s, mut b) = pal(&dev, cfg);
    stage_with(&mut s, &mut b, &padded[..len], &key).unwrap();
    let ours = bytes(&dev, cfg.secondary.offset(), slot);
    let differ_at = (0..slot)
        .filter(|&i| ours[i] != padded[i])
        .map(|i| slot - i)
        .collect();

    let o = SimBootloader::new(&dev, cfg, Some(key)).boot();
    assert!(
        matches!(o, BootOutcome::Booted { version, .. } if version == ImageVersion::new(1, 2, 3, 0)),
        "{o:?}"
    );
    SlotCompare {
        imgtool: padded,
        ours,
        differ_at,
    }
}

/// Trailer offsets from the slot end (board-formats §1.4, `BOOT_MAX_ALIGN` = 8).
const MAGIC_AT: usize = 16;
const IMAGE_OK_AT: usize = 24;
const SWAP_INFO_AT: usize = 40;
const MAGIC: [u8; 16] = [
    0x77, 0xC2, 0x95, 0xF3, 0x60, 0xD2, 0xEF, 0x7F, 0x35, 0x52, 0x50, 0x0F, 0x2C, 0xB6, 0x79, 0x80,
];

/// `imgtool sign --pad --confirm -R 0` for a swap build writes the MAGIC at S-16 and
/// image_ok = 0x01 at S-24 (padded to 8 bytes with 0x00); everything else in the trailer —
/// copy_done at S-32, swap_info at S-40, swap_size at S-48 and the swap-status area below — it
/// leaves at the erased value 0x00. Our `PendingMode::Permanent` request is MCUboot's
/// `boot_set_pending(1)` (anycloud 1.x, §1.6): MAGIC, image_ok = 0x01 **and swap_info = 0x03**
/// (`BOOT_SWAP_TYPE_PERM`, image 0). imgtool marks an image at build time and never writes
/// swap_info (`boot_set_pending` writes it at run time), so that byte is compared with what
/// `boot_set_pending(1)` writes instead. Every other byte of the slot is equal.
///
/// With `--overwrite-only`, imgtool (2.x `Image.pad_to`: `if (test or confirm) and not
/// overwrite_only`) writes no image_ok either — the overwrite-only bootloader never reads it —
/// so there S-24 is also compared with `boot_set_pending(1)`'s 0x01.
///
/// 0x00-erased layout only: the PSoC 6 internal flash erases to 0x00 and the crate has no
/// 0xFF-erased (external QSPI) layout, so imgtool's default `-R 0xff` is not compared.
#[test]
fn permanent_pending_trailer_equals_imgtool_pad_confirm() {
    for base in [Config::V1_8_SWAP, Config::V1_5_0_OVERWRITE] {
        let cfg = base.with_pending(PendingMode::Permanent);
        let swap = cfg.mode == UpgradeMode::SwapWithStatus;
        let c = slot_against_imgtool(cfg, &["--confirm"]);
        // What imgtool wrote at the §1.4 offsets, and ours there.
        assert_eq!(c.at(MAGIC_AT, 16), (&MAGIC[..], &MAGIC[..]));
        let image_ok = [1, 0, 0, 0, 0, 0, 0, 0];
        let imgtool_image_ok = if swap { image_ok } else { [0; 8] };
        assert_eq!(c.at(IMAGE_OK_AT, 8), (&imgtool_image_ok[..], &image_ok[..]));
        assert_eq!(
            c.at(SWAP_INFO_AT, 8),
            (&[0u8; 8][..], &[0x03, 0, 0, 0, 0, 0, 0, 0][..])
        );
        let expect = if swap {
            vec![SWAP_INFO_AT]
        } else {
            vec![SWAP_INFO_AT, IMAGE_OK_AT]
        };
        assert_eq!(c.differ_at, expect, "{:?}", cfg.mode);
    }
}

/// `imgtool sign --pad` (no mark) writes only the MAGIC: byte for byte what the anycloud 5.x
/// request (`PendingMode::MagicOnly`, §1.7 point 2) leaves in the slot.
#[test]
fn magic_only_pending_trailer_equals_imgtool_pad() {
    for base in [Config::V1_8_SWAP, Config::V1_5_0_OVERWRITE] {
        let cfg = base.with_pending(PendingMode::MagicOnly);
        let c = slot_against_imgtool(cfg, &[]);
        assert_eq!(c.at(MAGIC_AT, 16).0, MAGIC);
        assert_eq!(c.differ_at, Vec::<usize>::new(), "{:?}", cfg.mode);
    }
}

/// `imgtool sign --pad --test` also writes only the MAGIC; `PendingMode::Test`
/// (`boot_set_pending(0)`) adds swap_info = 0x02 (`BOOT_SWAP_TYPE_TEST`) at S-40, the one byte
/// that differs.
#[test]
fn test_pending_trailer_equals_imgtool_pad_test_except_swap_info() {
    for base in [Config::V1_8_SWAP, Config::V1_5_0_OVERWRITE] {
        let cfg = base.with_pending(PendingMode::Test);
        let c = slot_against_imgtool(cfg, &["--test"]);
        assert_eq!(c.at(SWAP_INFO_AT, 1), (&[0u8][..], &[0x02u8][..]));
        assert_eq!(c.differ_at, vec![SWAP_INFO_AT], "{:?}", cfg.mode);
    }
}
