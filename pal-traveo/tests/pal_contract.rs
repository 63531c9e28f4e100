//! PAL contract tests in the spirit of spec §8.5 (`Full_OTA_PAL`), on the simulated board: the
//! shared conformance suite, then the same rules checked one by one with this board's images.
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
use ota_pal_traits::{
    verify_stored_image, BootControl, FileInfo, ImageStorage, ImageVerifier, PalErrorKind,
    PlatformImageState,
};
use pal_traveo::sim::SimBoard;
use pal_traveo::Config;

#[test]
fn conformance_suite_passes() {
    let keys = keys();
    let data = DUMMY_DATA.to_vec();
    let sig = keys.sign_file(&data);
    let mut bad = sig.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0x01;
    for cfg in [Config::CYT4BF, Config::CYT4BF_WORK_ERASED_ZERO] {
        // The dummy data has no application header: qualification runs without that check.
        let cfg = cfg.check_app_header(false);
        let dev = device(&cfg, &make_image(&keys, V1));
        let mut board = SimBoard::new(&dev, cfg).unwrap();
        running(board.boot(&mut keys.dbm_verifier()).unwrap());
        let mut storage = board.image_storage().unwrap();
        let mut boot = board.boot_control().unwrap();
        let mut verifier = keys.ota_verifier();
        let mut scratch = vec![0u8; 1024];
        let mut pal = PalUnderTest {
            storage: &mut storage,
            verifier: &mut verifier,
            boot: &mut boot,
            data: &data,
            signature: &sig,
            invalid_signature: &bad,
            block_size: 512,
            scratch: &mut scratch,
        };
        let report = block_on(conformance::run_all(&mut pal));
        assert!(report.is_ok(), "{report:?}");
    }
}

struct Pal<'d> {
    storage: pal_traveo::TraveoImageStorage<pal_traveo::sim::SimCodeFlash<'d, Vec<u8>>>,
    boot: SimBootControl<'d>,
}

fn with_pal(f: impl FnOnce(&mut Pal<'_>, &Keys, &[u8])) {
    let keys = keys();
    let image = make_image(&keys, V2);
    let cfg = Config::CYT4BF;
    let dev = device(&cfg, &make_image(&keys, V1));
    let mut board = SimBoard::new(&dev, cfg).unwrap();
    running(board.boot(&mut keys.dbm_verifier()).unwrap());
    let mut pal = Pal {
        storage: board.image_storage().unwrap(),
        boot: board.boot_control().unwrap(),
    };
    f(&mut pal, &keys, &image);
}

fn close(
    pal: &mut Pal<'_>,
    keys: &Keys,
    file: &FileInfo<'_>,
    sig: &[u8],
) -> Result<(), ota_pal_traits::PalError> {
    block_on(async {
        let mut v = keys.ota_verifier();
        v.begin(file);
        let mut scratch = [0u8; 256];
        let r = verify_stored_image(&mut pal.storage, &mut v, file, 0, sig, &mut scratch).await;
        if r.is_err() {
            pal.boot.reject().await?;
        }
        r
    })
}

#[test]
fn create_any_file_and_too_large_file() {
    with_pal(|pal, _, _| {
        assert_eq!(pal.storage.capacity(), 0x3F_8000);
        block_on(pal.storage.prepare(&file_info(FILE_LEN))).unwrap();
        let e = block_on(pal.storage.prepare(&file_info(0x3F_8001))).unwrap_err();
        assert_eq!(e.kind(), PalErrorKind::RxFileTooLarge);
    });
}

#[test]
fn write_one_byte_file() {
    let cfg = Config::CYT4BF.check_app_header(false);
    let keys = keys();
    let dev = device(&cfg, &make_image(&keys, V1));
    let mut board = SimBoard::new(&dev, cfg).unwrap();
    running(board.boot(&mut keys.dbm_verifier()).unwrap());
    let mut storage = board.image_storage().unwrap();
    block_on(async {
        storage.prepare(&file_info(1)).await.unwrap();
        storage.write(0, &[0x5A]).await.unwrap();
        let mut b = [0u8; 2];
        storage.read(0, &mut b).await.unwrap();
        assert_eq!(b, [0x5A, 0xFF], "the row is padded with the erase value");
    });
}

#[test]
fn write_many_blocks_at_block_offsets_in_any_order() {
    with_pal(|pal, keys, image| {
        let file = file_info(image.len());
        block_on(pal.storage.prepare(&file)).unwrap();
        let blocks: Vec<_> = image.chunks(1024).enumerate().collect();
        for (i, chunk) in blocks.iter().rev() {
            block_on(pal.storage.write((*i * 1024) as u32, chunk)).unwrap();
        }
        let mut back = vec![0u8; image.len()];
        block_on(pal.storage.read(0, &mut back)).unwrap();
        assert_eq!(back, image);
        let sig = keys.sign_file(image);
        close(pal, keys, &file, &sig).unwrap();
        assert_eq!(
            block_on(pal.boot.platform_state()).unwrap(),
            PlatformImageState::Valid
        );
    });
}

#[test]
fn close_with_invalid_signature_with_and_without_blocks() {
    with_pal(|pal, keys, image| {
        let file = file_info(image.len());
        let good = keys.sign_file(image);
        let wrong = keys.sign_file(&image[1..]);
        // Nothing written: neither signature verifies erased flash.
        block_on(pal.storage.prepare(&file)).unwrap();
        for sig in [&good, &wrong] {
            let e = close(pal, keys, &file, sig).unwrap_err();
            assert_eq!(e.kind(), PalErrorKind::SignatureCheckFailed);
        }
        // Written: only the right one does.
        block_on(pal.storage.prepare(&file)).unwrap();
        for (i, c) in image.chunks(4096).enumerate() {
            block_on(pal.storage.write((i * 4096) as u32, c)).unwrap();
        }
        let e = close(pal, keys, &file, &wrong).unwrap_err();
        assert_eq!(e.kind(), PalErrorKind::SignatureCheckFailed);
        assert_eq!(
            block_on(pal.boot.platform_state()).unwrap(),
            PlatformImageState::Invalid
        );
        close(pal, keys, &file, &good).unwrap();
    });
}

#[test]
fn abort_before_open_after_writes_and_twice() {
    with_pal(|pal, keys, image| {
        block_on(pal.storage.abort()).unwrap();
        let file = file_info(image.len());
        block_on(pal.storage.prepare(&file)).unwrap();
        block_on(pal.storage.write(0, &image[..4096])).unwrap();
        block_on(pal.storage.abort()).unwrap();
        block_on(pal.storage.abort()).unwrap();
        let e = block_on(pal.storage.write(4096, &image[4096..8192])).unwrap_err();
        assert_eq!(e.kind(), PalErrorKind::NullFileContext);
        // The aborted bytes are gone.
        let mut head = [0u8; 24];
        block_on(pal.storage.read(0, &mut head)).unwrap();
        assert_eq!(head, [0xFF; 24]);
        let sig = keys.sign_file(image);
        assert!(close(pal, keys, &file, &sig).is_err());
    });
}

#[test]
fn confirm_with_nothing_pending_is_commit_failed() {
    with_pal(|pal, keys, image| {
        let e = block_on(pal.boot.confirm()).unwrap_err();
        assert_eq!(e.kind(), PalErrorKind::CommitFailed);
        // Also with a verified image staged but not yet booted.
        let file = file_info(image.len());
        block_on(pal.storage.prepare(&file)).unwrap();
        for (i, c) in image.chunks(4096).enumerate() {
            block_on(pal.storage.write((i * 4096) as u32, c)).unwrap();
        }
        close(pal, keys, &file, &keys.sign_file(image)).unwrap();
        block_on(pal.boot.request_trial_boot(&file)).unwrap();
        let e = block_on(pal.boot.confirm()).unwrap_err();
        assert_eq!(e.kind(), PalErrorKind::CommitFailed);
        assert_eq!(
            block_on(pal.boot.platform_state()).unwrap(),
            PlatformImageState::Valid
        );
    });
}
