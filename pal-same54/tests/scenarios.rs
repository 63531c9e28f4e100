//! One test per update flow, played through the PAL and the simulated aws_bootloader.
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
use pal_same54::sim::{write_factory_image_without_copy, BootOutcome, BrickReason};
use pal_same54::{BankSwap, Config, ImageFlags, ImageState, Layout};

const LOWER: u32 = 0x7E000;
const UPPER: u32 = 0xFE000;

fn stage_new(board: &pal_same54::sim::Same54Board<Vec<u8>>, config: Config) {
    let (mut s, mut b) = pal(board, config);
    let img = new_app();
    download_and_stage(&mut s, &mut b, &img, &sign(&img)).unwrap();
}

#[test]
fn factory_image_boots_verified() {
    let mut board = factory_board();
    let r = boot(&mut board).unwrap();
    assert_eq!(r.swaps, 0);
    assert_eq!(r.outcome.sequence(), Some(0));
    assert_eq!(running(&board), Running::Old);
    let (_s, mut b) = pal(&board, Config::default());
    assert_eq!(state(&mut b), PlatformImageState::Valid);
}

#[test]
fn update_confirms_after_self_test() {
    for config in [Config::POWER_SAFE, Config::VENDOR] {
        let mut board = factory_board();
        boot(&mut board).unwrap();
        stage_new(&board, config);
        let up = board.peek_descriptor(UPPER).unwrap();
        assert_eq!(up.flags, ImageFlags::NEW);
        assert_eq!(up.sequence, OLD_VERSION + 1);
        assert_eq!(up.image_size as usize, new_app().len());

        let r = boot(&mut board).unwrap();
        assert_eq!(r.swaps, 1);
        assert!(!board.bank_a_first());
        assert_eq!(r.outcome.sequence(), Some(OLD_VERSION + 1));
        assert_eq!(running(&board), Running::New);
        assert_eq!(
            board.peek_descriptor(LOWER).unwrap().flags,
            ImageFlags::COMMIT_PENDING
        );

        let (_s, mut b) = pal(&board, config);
        assert_eq!(state(&mut b), PlatformImageState::PendingCommit);
        block_on(b.set_image_state(ImageState::Testing)).unwrap();
        block_on(b.confirm()).unwrap();
        assert_eq!(state(&mut b), PlatformImageState::Valid);
        assert_eq!(
            board.peek_descriptor(LOWER).unwrap().flags,
            ImageFlags::VALID
        );

        // Stays on the new image.
        for _ in 0..2 {
            let r = boot(&mut board).unwrap();
            assert_eq!(r.swaps, 0);
            assert_eq!(running(&board), Running::New);
        }
    }
}

#[test]
fn rejected_update_rolls_back_to_old_image() {
    let mut board = factory_board();
    boot(&mut board).unwrap();
    stage_new(&board, Config::default());
    boot(&mut board).unwrap();
    assert_eq!(running(&board), Running::New);
    let (_s, mut b) = pal(&board, Config::default());
    block_on(b.reject()).unwrap();
    assert_eq!(
        board.peek_descriptor(LOWER).unwrap().flags,
        ImageFlags::INVALID
    );
    let r = boot(&mut board).unwrap();
    assert_eq!(r.swaps, 1);
    assert!(board.bank_a_first());
    assert_eq!(running(&board), Running::Old);
    assert_eq!(r.outcome.sequence(), Some(0));
    let (_s, mut b) = pal(&board, Config::default());
    assert_eq!(state(&mut b), PlatformImageState::Invalid);
}

#[test]
fn reset_without_confirm_reverts() {
    let mut board = factory_board();
    boot(&mut board).unwrap();
    stage_new(&board, Config::default());
    boot(&mut board).unwrap();
    assert_eq!(running(&board), Running::New);
    // Self-test never finishes: the watchdog resets.
    let r = boot(&mut board).unwrap();
    assert_eq!(r.swaps, 1);
    assert_eq!(running(&board), Running::Old);
    assert_eq!(
        board.peek_descriptor(UPPER).unwrap().flags,
        ImageFlags::COMMIT_PENDING
    );
    let (_s, mut b) = pal(&board, Config::default());
    assert_eq!(state(&mut b), PlatformImageState::Invalid);
    let e = block_on(b.confirm()).unwrap_err();
    assert_eq!(e.kind(), PalErrorKind::CommitFailed);
}

#[test]
fn image_with_bad_signature_is_refused_and_old_image_stays() {
    let mut board = factory_board();
    boot(&mut board).unwrap();
    let (mut s, mut b) = pal(&board, Config::default());
    let img = new_app();
    let e = download_and_stage(&mut s, &mut b, &img, &sign_with(&other_key(), &img)).unwrap_err();
    assert_eq!(e.kind(), PalErrorKind::SignatureCheckFailed);
    assert_eq!(state(&mut b), PlatformImageState::Invalid);
    // close_file erased the update bank.
    assert!(board.holds(0x90000, &[0xFF; 4096]).unwrap());
    assert!(!board.peek_descriptor(UPPER).unwrap().magic_ok());
    boot(&mut board).unwrap();
    assert_eq!(running(&board), Running::Old);
}

#[test]
fn staged_image_corrupted_after_staging_never_boots() {
    let mut board = factory_board();
    boot(&mut board).unwrap();
    stage_new(&board, Config::default());
    board.device().modify(|m| m[0x90000 + 5] ^= 1).unwrap();
    let r = boot(&mut board).unwrap();
    assert_eq!(r.swaps, 0);
    assert_eq!(running(&board), Running::Old);
}

#[test]
fn aborted_update_erases_the_update_bank() {
    let mut board = factory_board();
    boot(&mut board).unwrap();
    stage_new(&board, Config::default());
    let (_s, mut b) = pal(&board, Config::default());
    block_on(b.set_image_state(ImageState::Aborted)).unwrap();
    assert!(!board.peek_descriptor(UPPER).unwrap().magic_ok());
    assert!(board.holds(0x90000, &[0xFF; 8192]).unwrap());
    let r = boot(&mut board).unwrap();
    assert_eq!((r.swaps, running(&board)), (0, Running::Old));
}

#[test]
fn rejecting_a_staged_image_before_reboot_marks_it_invalid() {
    let mut board = factory_board();
    boot(&mut board).unwrap();
    stage_new(&board, Config::default());
    let (_s, mut b) = pal(&board, Config::default());
    block_on(b.reject()).unwrap();
    assert_eq!(
        board.peek_descriptor(UPPER).unwrap().flags,
        ImageFlags::INVALID
    );
    assert_eq!(state(&mut b), PlatformImageState::Invalid);
    let r = boot(&mut board).unwrap();
    assert_eq!((r.swaps, running(&board)), (0, Running::Old));
}

#[test]
fn vendor_policy_rewrites_the_lower_sequence_first() {
    let mut board = factory_board();
    boot(&mut board).unwrap();
    assert_eq!(board.peek_descriptor(LOWER).unwrap().sequence, 0);
    stage_new(&board, Config::VENDOR);
    let lower = board.peek_descriptor(LOWER).unwrap();
    assert_eq!(lower.sequence, OLD_VERSION);
    assert_eq!(lower.flags, ImageFlags::VALID);
    assert_eq!(
        board.peek_descriptor(UPPER).unwrap().sequence,
        OLD_VERSION + 1
    );
}

#[test]
fn power_safe_policy_leaves_the_lower_descriptor_alone() {
    let mut board = factory_board();
    boot(&mut board).unwrap();
    let before = board.peek_descriptor(LOWER).unwrap();
    stage_new(&board, Config::POWER_SAFE);
    assert_eq!(board.peek_descriptor(LOWER).unwrap(), before);
    // Same staged descriptor as the vendor's.
    let mut other = factory_board();
    boot(&mut other).unwrap();
    stage_new(&other, Config::VENDOR);
    assert_eq!(
        board.peek_descriptor(UPPER).unwrap(),
        other.peek_descriptor(UPPER).unwrap()
    );
}

#[test]
fn power_safe_sequence_outranks_a_lower_sequence_above_the_version() {
    let mut board = factory_board();
    // A running image whose descriptor sequence is above its own version (same-version
    // re-flash): the vendor rewrites it; POWER_SAFE stages above it instead.
    board
        .device()
        .modify(|m| {
            m[LOWER as usize + 0x10..LOWER as usize + 0x14]
                .copy_from_slice(&(OLD_VERSION + 7).to_le_bytes())
        })
        .unwrap();
    stage_new(&board, Config::POWER_SAFE);
    assert_eq!(
        board.peek_descriptor(UPPER).unwrap().sequence,
        OLD_VERSION + 8
    );
    let r = boot(&mut board).unwrap();
    assert_eq!(running(&board), Running::New);
    assert_eq!(r.swaps, 1);
}

#[test]
fn second_update_after_a_confirmed_one_swaps_back_to_bank_a() {
    let mut board = factory_board();
    boot(&mut board).unwrap();
    stage_new(&board, Config::default());
    boot(&mut board).unwrap();
    {
        let (_s, mut b) = pal(&board, Config::default());
        block_on(b.confirm()).unwrap();
    }
    // Now the old image is the update (a re-install of 1.0.0 signed again is still newer by
    // sequence: the sequence comes from the *running* version 1.1.0).
    let (mut s, mut b) = pal(&board, Config::default());
    let img = old_app();
    download_and_stage(&mut s, &mut b, &img, &sign(&img)).unwrap();
    assert_eq!(
        board.peek_descriptor(UPPER).unwrap().sequence,
        NEW_VERSION + 1
    );
    let r = boot(&mut board).unwrap();
    assert_eq!(r.swaps, 1);
    assert!(board.bank_a_first());
    assert_eq!(running(&board), Running::Old);
}

#[test]
fn staging_twice_is_idempotent() {
    let board = factory_board();
    let (mut s, mut b) = pal(&board, Config::default());
    let img = new_app();
    download_and_stage(&mut s, &mut b, &img, &sign(&img)).unwrap();
    let before = board.device().stats().unwrap().mutating();
    block_on(b.request_trial_boot(&file(img.len()))).unwrap();
    assert_eq!(board.device().stats().unwrap().mutating(), before);
}

#[test]
fn factory_without_bank_b_bootloader_copy_bricks_at_first_swap() {
    let mut board = factory_board();
    let old = old_app();
    write_factory_image_without_copy(&board, &bootloader_bin(), &old, &sign(&old)).unwrap();
    stage_new(&board, Config::default());
    let r = boot(&mut board).unwrap();
    assert_eq!(
        r.outcome,
        BootOutcome::Bricked(BrickReason::NoBootloaderInBankB)
    );
}

#[test]
fn no_valid_descriptor_takes_the_default_path_and_copies_the_bootloader() {
    let mut board = factory_board();
    board
        .device()
        .modify(|m| {
            m[LOWER as usize] = 0;
            m[0x80000..0x90000].fill(0xFF);
        })
        .unwrap();
    let r = boot(&mut board).unwrap();
    assert!(matches!(r.outcome, BootOutcome::Default { .. }));
    assert!(board.holds(0x80000, &bootloader_bin()).unwrap());
    let _ = Layout::SAME54_XPRO;
}

#[test]
fn storage_prepare_erases_the_whole_update_bank() {
    let board = factory_board();
    board
        .device()
        .modify(|m| m[0x90000..0x100000].fill(0))
        .unwrap();
    let (mut s, _b) = pal(&board, Config::default());
    board.device().reset_stats().unwrap();
    block_on(s.prepare(&file(100))).unwrap();
    assert!(board
        .device()
        .inspect(|m| m[0x90000..0x100000].iter().all(|&b| b == 0xFF))
        .unwrap());
    // Descriptor block, tail, head: three erases, 56 blocks.
    let st = board.device().stats().unwrap();
    assert_eq!((st.erases, st.sectors_erased), (3, 56));
}

#[test]
fn torn_lower_descriptor_reads_invalid_and_the_fallback_boots() {
    let mut board = factory_board();
    boot(&mut board).unwrap();
    stage_new(&board, Config::default());
    boot(&mut board).unwrap();
    // The new image's descriptor torn (as by a cut while committing): the PAL reads Invalid,
    // and the bootloader falls back to the old image in the upper bank.
    board
        .device()
        .modify(|m| m[LOWER as usize..LOWER as usize + 8].fill(0xFF))
        .unwrap();
    let (_s, mut b) = pal(&board, Config::default());
    assert_eq!(state(&mut b), PlatformImageState::Invalid);
    let e = block_on(b.confirm()).unwrap_err();
    assert_eq!(e.kind(), PalErrorKind::CommitFailed);
    let r = boot(&mut board).unwrap();
    assert_eq!((r.swaps, running(&board)), (1, Running::Old));
    assert!(r.outcome.is_verified());
}
