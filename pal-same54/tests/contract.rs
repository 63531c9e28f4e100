//! PAL contract tests (spec §8.5, `Full_OTA_PAL`), through the shared conformance suite and
//! board-specific checks.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use common::*;
use ota_pal_traits::conformance::DUMMY_DATA;
use ota_pal_traits::conformance::{self, PalUnderTest};
use ota_pal_traits::sim::block_on;
use ota_pal_traits::{BootControl, ImageStorage, PalErrorKind, PlatformImageState};
use pal_same54::{Config, ImageState, SUB_NO_SIGNATURE};

fn run_suite(config: Config) -> Result<(), conformance::Failure> {
    let board = factory_board();
    let (mut storage, mut boot) = pal(&board, config);
    let mut verifier = verifier();
    let data = DUMMY_DATA.to_vec();
    let sig = sign(&data);
    let mut bad = sig.clone();
    let n = bad.len();
    bad[n - 2] ^= 0x04;
    let mut scratch = [0u8; 1024];
    let mut put = PalUnderTest {
        storage: &mut storage,
        verifier: &mut verifier,
        boot: &mut boot,
        data: &data,
        signature: &sig,
        invalid_signature: &bad,
        block_size: 512,
        scratch: &mut scratch,
    };
    block_on(conformance::run_all(&mut put))
}

#[test]
fn conformance_suite_passes_with_both_configs() {
    assert_eq!(run_suite(Config::POWER_SAFE), Ok(()));
    assert_eq!(run_suite(Config::VENDOR), Ok(()));
}

#[test]
fn create_any_file_and_too_large_file() {
    let board = factory_board();
    let (mut s, _b) = pal(&board, Config::default());
    assert_eq!(s.capacity(), 0x6E000);
    block_on(s.prepare(&file(0x6E000))).unwrap();
    let e = block_on(s.prepare(&file(0x6E001))).unwrap_err();
    assert_eq!(e.kind(), PalErrorKind::RxFileTooLarge);
}

#[test]
fn write_single_byte_and_read_it_back() {
    let board = factory_board();
    let (mut s, _b) = pal(&board, Config::default());
    block_on(s.prepare(&file(1))).unwrap();
    block_on(s.write(0, &[0x5A])).unwrap();
    let mut b = [0u8; 1];
    block_on(s.read(0, &mut b)).unwrap();
    assert_eq!(b, [0x5A]);
    // Raw: programmed at 0x90000, padded with the erase value to a quad word.
    assert!(board.holds(0x90000, &[0x5A, 0xFF, 0xFF, 0xFF]).unwrap());
}

#[test]
fn write_many_blocks_at_block_offsets_in_any_order() {
    let board = factory_board();
    let (mut s, _b) = pal(&board, Config::default());
    let data = DUMMY_DATA.to_vec();
    let page = 512usize;
    let size = page * 9 + data.len();
    let image: Vec<u8> = (0..size).map(|i| data[i % data.len()]).collect();
    block_on(s.prepare(&file(size))).unwrap();
    for i in [3usize, 0, 9, 5, 1, 8, 2, 7, 4, 6] {
        let end = ((i + 1) * page).min(size);
        block_on(s.write((i * page) as u32, &image[i * page..end])).unwrap();
    }
    assert!(board.holds(0x90000, &image).unwrap());
}

#[test]
fn write_past_the_staging_area_fails() {
    let board = factory_board();
    let (mut s, _b) = pal(&board, Config::default());
    block_on(s.prepare(&file(0x6E000))).unwrap();
    block_on(s.write(0x6E000 - 16, &[1; 16])).unwrap();
    let e = block_on(s.write(0x6E000, &[1; 16])).unwrap_err();
    assert_eq!(e.kind(), PalErrorKind::FileClose);
    // The upper descriptor block was not touched.
    assert!(board.holds(0xFE000, &[0xFF; 16]).unwrap());
}

#[test]
fn write_before_prepare_fails() {
    let board = factory_board();
    let (mut s, _b) = pal(&board, Config::default());
    let e = block_on(s.write(0, &[1])).unwrap_err();
    assert_eq!(e.kind(), PalErrorKind::NullFileContext);
}

#[test]
fn abort_before_open_after_writes_and_twice() {
    let board = factory_board();
    let (mut s, _b) = pal(&board, Config::default());
    block_on(s.abort()).unwrap();
    block_on(s.prepare(&file(4096))).unwrap();
    block_on(s.write(0, &[0u8; 4096])).unwrap();
    block_on(s.abort()).unwrap();
    block_on(s.abort()).unwrap();
    assert!(board.holds(0x90000, &[0xFF; 4096]).unwrap());
    let e = block_on(s.write(0, &[1])).unwrap_err();
    assert_eq!(e.kind(), PalErrorKind::NullFileContext);
}

#[test]
fn abort_after_release_keeps_the_staged_image() {
    let board = factory_board();
    let (mut s, mut b) = pal(&board, Config::default());
    let img = new_app();
    download_and_stage(&mut s, &mut b, &img, &sign(&img)).unwrap();
    block_on(s.abort()).unwrap();
    assert!(board.holds(0x90000, &img).unwrap());
    assert!(board.peek_descriptor(0xFE000).unwrap().magic_ok());
}

#[test]
fn close_with_valid_and_invalid_signature_with_and_without_blocks() {
    let img = new_app();
    let good = sign(&img);
    let bad = sign_with(&other_key(), &img);
    for (write, sig, ok) in [
        (true, &good, true),
        (true, &bad, false),
        (false, &good, false),
        (false, &bad, false),
    ] {
        let board = factory_board();
        let (mut s, mut b) = pal(&board, Config::default());
        let f = file(img.len());
        block_on(s.prepare(&f)).unwrap();
        if write {
            block_on(s.write(0, &img)).unwrap();
        }
        let mut v = verifier();
        ota_pal_traits::ImageVerifier::begin(&mut v, &f);
        let mut scratch = [0u8; 64];
        let r = block_on(pal_same54::close_file(
            &mut s,
            &mut v,
            &mut b,
            &f,
            0,
            sig,
            &mut scratch,
        ));
        assert_eq!(r.is_ok(), ok, "write={write}");
        if ok {
            assert_eq!(state(&mut b), PlatformImageState::Valid);
        } else {
            assert_eq!(r.unwrap_err().kind(), PalErrorKind::SignatureCheckFailed);
            assert_eq!(state(&mut b), PlatformImageState::Invalid);
            let e = block_on(b.request_trial_boot(&f)).unwrap_err();
            assert_eq!(e.sub(), SUB_NO_SIGNATURE);
        }
    }
}

#[test]
fn confirm_with_nothing_pending_is_commit_failed() {
    let board = factory_board();
    let (_s, mut b) = pal(&board, Config::default());
    let e = block_on(b.confirm()).unwrap_err();
    assert_eq!(e.kind(), PalErrorKind::CommitFailed);
    // Testing outside a trial is a no-op.
    block_on(b.set_image_state(ImageState::Testing)).unwrap();
    assert_eq!(state(&mut b), PlatformImageState::Valid);
}

#[test]
fn request_trial_boot_needs_the_signature() {
    let board = factory_board();
    let (mut s, mut b) = pal(&board, Config::default());
    let img = new_app();
    block_on(s.prepare(&file(img.len()))).unwrap();
    block_on(s.write(0, &img)).unwrap();
    let e = block_on(b.request_trial_boot(&file(img.len()))).unwrap_err();
    assert_eq!(
        (e.kind(), e.sub()),
        (PalErrorKind::BootInfoCreateFailed, SUB_NO_SIGNATURE)
    );
    let e = block_on(b.request_trial_boot(&file(0x6E001))).unwrap_err();
    assert_eq!(e.kind(), PalErrorKind::RxFileTooLarge);
    b.set_signature(&sign(&img)).unwrap();
    block_on(b.request_trial_boot(&file(img.len()))).unwrap();
    let e = b.set_signature(&[0; 257]).unwrap_err();
    assert_eq!(e.kind(), PalErrorKind::BootInfoCreateFailed);
}

#[test]
fn invalid_state_after_a_failed_verification() {
    let board = factory_board();
    let (mut s, mut b) = pal(&board, Config::default());
    let img = new_app();
    let e = download_and_stage(&mut s, &mut b, &img, &sign(&img[1..])).unwrap_err();
    assert_eq!(e.kind(), PalErrorKind::SignatureCheckFailed);
    assert_eq!(state(&mut b), PlatformImageState::Invalid);
    // A new, good download clears it once staged.
    download_and_stage(&mut s, &mut b, &img, &sign(&img)).unwrap();
    assert_eq!(state(&mut b), PlatformImageState::Valid);
}

#[test]
fn wrong_flash_geometry_is_refused() {
    use ota_pal_traits::sim::{SimConfig, SimDevice};
    let dev = SimDevice::new(vec![0xFF; 0x8_0000], SimConfig::new(16, 8192)).unwrap();
    let e = pal_same54::Same54Storage::new(
        dev.view::<16, 8192>(0, 0x8_0000).unwrap(),
        pal_same54::Layout::SAME54_XPRO,
    )
    .unwrap_err();
    assert_eq!(e.sub(), pal_same54::SUB_BAD_FLASH);
    let dev = SimDevice::new(vec![0xFF; 0x10_0000], SimConfig::new(32, 8192)).unwrap();
    let e = pal_same54::Same54Boot::new(
        dev.view::<32, 8192>(0, 0x10_0000).unwrap(),
        Config::default(),
        1,
    )
    .unwrap_err();
    assert_eq!(e.kind(), PalErrorKind::Uninitialized);
}
