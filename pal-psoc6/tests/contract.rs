//! The PAL contract (spec §5) and the qualification checks of §8.5, for both presets: the
//! `ota_pal_traits::conformance` suite, then the same checks written out with this board's
//! specifics (row-aligned blocks, trailer state).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;
use common::*;
use ota_pal_traits::conformance::DUMMY_DATA;

use ota_pal_traits::conformance::{run_all, PalUnderTest};
use ota_pal_traits::sim::block_on;
use ota_pal_traits::{BootControl, ImageStorage, PalErrorKind, PlatformImageState};
use pal_psoc6::Config;

const PRESETS: [Config; 2] = [Config::V1_8_SWAP, Config::V1_5_0_OVERWRITE];

#[test]
fn conformance_suite_passes_on_both_presets() {
    for cfg in PRESETS {
        let dev = device(&cfg);
        let (mut s, mut b) = pal(&dev, cfg);
        let data = DUMMY_DATA.to_vec();
        let sig = aws_sig(&data);
        let mut bad = sig.clone();
        let l = bad.len();
        bad[l - 1] ^= 0x01;
        let mut v = aws_verifier();
        let mut scratch = [0u8; 1024];
        let mut put = PalUnderTest {
            storage: &mut s,
            verifier: &mut v,
            boot: &mut b,
            data: &data,
            signature: &sig,
            invalid_signature: &bad,
            block_size: 512,
            scratch: &mut scratch,
        };
        assert_eq!(block_on(run_all(&mut put)), Ok(()), "{:?}", cfg.mode);
        // And the device still boots its factory image.
        assert_eq!(running(reboot(&dev, cfg)), OLD);
    }
}

#[test]
fn create_any_file_and_too_large() {
    for cfg in PRESETS {
        let dev = device(&cfg);
        let (mut s, _b) = pal(&dev, cfg);
        assert_eq!(s.capacity(), 0xEE000 - 512);
        block_on(s.prepare(&file_of(1))).unwrap();
        block_on(s.prepare(&file_of(s.capacity() as usize))).unwrap();
        let e = block_on(s.prepare(&file_of(s.capacity() as usize + 1))).unwrap_err();
        assert_eq!(e.kind(), PalErrorKind::RxFileTooLarge);
    }
}

#[test]
fn write_single_byte_reads_back() {
    let cfg = Config::V1_8_SWAP;
    let dev = device(&cfg);
    let (mut s, _b) = pal(&dev, cfg);
    block_on(s.prepare(&file_of(1))).unwrap();
    block_on(s.write(0, &[0x5A])).unwrap();
    let mut b = [0u8; 1];
    block_on(s.read(0, &mut b)).unwrap();
    assert_eq!(b, [0x5A]);
    // On flash: the row is padded with the erased value 0x00.
    assert_eq!(bytes(&dev, cfg.secondary.offset(), 4), vec![0x5A, 0, 0, 0]);
}

#[test]
fn write_many_blocks_at_block_offsets() {
    for cfg in PRESETS {
        let dev = device(&cfg);
        let (mut s, _b) = pal(&dev, cfg);
        let block = 4096usize;
        let data: Vec<u8> = (0..block * 10).map(|i| (i % 253) as u8).collect();
        block_on(s.prepare(&file_of(data.len()))).unwrap();
        for i in (0..10).rev() {
            block_on(s.write((i * block) as u32, &data[i * block..(i + 1) * block])).unwrap();
        }
        assert_eq!(bytes(&dev, cfg.secondary.offset(), data.len()), data);
        // A block that is not row-aligned is refused rather than padded.
        assert_eq!(
            block_on(s.write(100, &[1; 512])).unwrap_err().kind(),
            PalErrorKind::FileClose
        );
    }
}

#[test]
fn close_valid_and_invalid_signature_with_and_without_blocks() {
    for cfg in PRESETS {
        let dev = device(&cfg);
        let new = image(NEW, 2500);
        let sig = aws_sig(&new);
        let mut bad = sig.clone();
        let l = bad.len();
        bad[l - 2] ^= 0x10;
        let (mut s, mut b) = pal(&dev, cfg);
        download(&mut s, &new).unwrap();
        close(&mut s, &mut b, new.len(), &sig).unwrap();
        assert_eq!(state(&mut b), PlatformImageState::Valid);
        assert_eq!(
            close(&mut s, &mut b, new.len(), &bad).unwrap_err().kind(),
            PalErrorKind::SignatureCheckFailed
        );
        assert_eq!(state(&mut b), PlatformImageState::Invalid);
        // Nothing written: erased bytes never verify.
        block_on(s.prepare(&file_of(new.len()))).unwrap();
        assert_eq!(
            close(&mut s, &mut b, new.len(), &sig).unwrap_err().kind(),
            PalErrorKind::SignatureCheckFailed
        );
        assert_eq!(
            close(&mut s, &mut b, new.len(), &bad).unwrap_err().kind(),
            PalErrorKind::SignatureCheckFailed
        );
        assert_eq!(state(&mut b), PlatformImageState::Invalid);
        // A new hand-over clears Invalid.
        download(&mut s, &new).unwrap();
        close(&mut s, &mut b, new.len(), &sig).unwrap();
        block_on(b.request_trial_boot(&file_of(new.len()))).unwrap();
        assert_eq!(state(&mut b), PlatformImageState::Valid);
    }
}

#[test]
fn abort_before_open_after_writes_and_twice() {
    for cfg in PRESETS {
        let dev = device(&cfg);
        let (mut s, _b) = pal(&dev, cfg);
        block_on(s.abort()).unwrap();
        let new = image(NEW, 3000);
        download(&mut s, &new).unwrap();
        block_on(s.abort()).unwrap();
        assert!(bytes(&dev, cfg.secondary.offset(), new.len())
            .iter()
            .all(|&x| x == 0));
        block_on(s.abort()).unwrap();
        assert_eq!(
            block_on(s.write(0, &[1])).unwrap_err().kind(),
            PalErrorKind::NullFileContext
        );
        assert_eq!(running(reboot(&dev, cfg)), OLD);
    }
}

#[test]
fn confirm_before_anything_is_pending_is_commit_failed() {
    for cfg in PRESETS {
        let dev = device(&cfg);
        let (mut s, mut b) = pal(&dev, cfg);
        assert_eq!(
            block_on(b.confirm()).unwrap_err().kind(),
            PalErrorKind::CommitFailed
        );
        // Nor after close, nor after the request but before the reset.
        let new = image(NEW, 3000);
        download(&mut s, &new).unwrap();
        assert_eq!(
            block_on(b.confirm()).unwrap_err().kind(),
            PalErrorKind::CommitFailed
        );
        close(&mut s, &mut b, new.len(), &aws_sig(&new)).unwrap();
        block_on(b.request_trial_boot(&file_of(new.len()))).unwrap();
        assert_eq!(
            block_on(b.confirm()).unwrap_err().kind(),
            PalErrorKind::CommitFailed
        );
        // The primary trailer was not written.
        assert!(bytes(&dev, cfg.primary.end_offset() - 48, 48)
            .iter()
            .all(|&x| x == 0));
    }
}

#[test]
fn release_keeps_the_image_after_hand_over() {
    let cfg = Config::V1_8_SWAP;
    let dev = device(&cfg);
    let (mut s, mut b) = pal(&dev, cfg);
    stage(&mut s, &mut b, &image(NEW, 3000)).unwrap();
    block_on(s.abort()).unwrap();
    assert_eq!(running(reboot(&dev, cfg)), NEW);
}

#[test]
fn bad_flash_geometry_is_refused() {
    use ota_pal_traits::sim::{SimConfig, SimDevice};
    let dev = SimDevice::new(
        vec![0u8; 0x20_0000],
        SimConfig::new(256, 4096).erase_value(0),
    )
    .unwrap();
    let f = dev.view::<256, 4096>(0, 0x20_0000).unwrap();
    assert_eq!(
        pal_psoc6::Psoc6ImageStorage::new(f.clone(), Config::V1_8_SWAP)
            .unwrap_err()
            .kind(),
        PalErrorKind::Uninitialized
    );
    assert!(pal_psoc6::Psoc6BootControl::new(f, Config::V1_8_SWAP).is_err());
}
