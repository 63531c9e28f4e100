//! One test per hand-over flow, played through the simulated Dual Bank Manager.
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
use pal_traveo::marker::{SELECTOR_PREFER_A, SELECTOR_PREFER_B};
use pal_traveo::sim::{BootOutcome, SimBoard, SIM_WORK_OFFSET};
use pal_traveo::{Bank, Config, Mapping, StartupReport};

const CONFIGS: [Config; 2] = [Config::CYT4BF, Config::CYT4BF_WORK_ERASED_ZERO];
const BLOCK: usize = 4096;

struct Rig {
    keys: Keys,
    v1: Vec<u8>,
    v2: Vec<u8>,
    v3: Vec<u8>,
}

fn rig() -> Rig {
    let keys = keys();
    let (v1, v2, v3) = (
        make_image(&keys, V1),
        make_image(&keys, V2),
        make_image(&keys, V3),
    );
    Rig { keys, v1, v2, v3 }
}

/// Power on: the DBM boots, then the firmware's startup runs once, on the boot control the
/// agent then uses for the rest of this boot.
fn power_on<'d>(
    board: &mut SimBoard<'d, Vec<u8>>,
    keys: &Keys,
) -> (
    pal_traveo::sim::RunningImage,
    StartupReport,
    SimBootControl<'d>,
) {
    let r = running(board.boot(&mut keys.dbm_verifier()).unwrap());
    let mut boot = board.boot_control().unwrap();
    let rep = block_on(boot.startup()).unwrap();
    (r, rep, boot)
}

fn marker_bytes(board: &SimBoard<'_, Vec<u8>>) -> [u8; 16] {
    let at = (SIM_WORK_OFFSET + 0x12000) as usize;
    board
        .device()
        .inspect(|m| m[at..at + 16].try_into().unwrap())
        .unwrap()
}

fn trial_sector(board: &SimBoard<'_, Vec<u8>>) -> Vec<u8> {
    let at = (SIM_WORK_OFFSET + 0x12800) as usize;
    board
        .device()
        .inspect(|m| m[at..at + 0x800].to_vec())
        .unwrap()
}

fn stage(board: &SimBoard<'_, Vec<u8>>, boot: &mut SimBootControl<'_>, rig: &Rig, image: &[u8]) {
    let sig = rig.keys.sign_file(image);
    download_and_stage(board, boot, &rig.keys, image, &sig, BLOCK).unwrap();
}

#[test]
fn update_confirms_after_self_test() {
    let rig = rig();
    for cfg in CONFIGS {
        let dev = device(&cfg, &rig.v1);
        let mut board = SimBoard::new(&dev, cfg).unwrap();
        let (r, rep, mut boot) = power_on(&mut board, &rig.keys);
        assert_eq!((r.mapping, r.header.version()), (Mapping::A, V1));
        assert_eq!(rep.state, PlatformImageState::Valid);

        stage(&board, &mut boot, &rig, &rig.v2);
        // The vendor's exact marker bytes: 0xAAAAAAAA then three 0xFFFFFFFF words.
        let mut expect = [0xFF; 16];
        expect[..4].copy_from_slice(&[0xAA; 4]);
        assert_eq!(marker_bytes(&board), expect);

        let (r, rep, mut boot) = power_on(&mut board, &rig.keys);
        assert_eq!(
            (r.mapping, r.bank, r.header.version()),
            (Mapping::B, Bank::Upper, V2)
        );
        assert_eq!(rep.state, PlatformImageState::PendingCommit);
        assert!(!rep.reset_required && !rep.rollback_repaired);
        block_on(boot.confirm()).unwrap();
        assert_eq!(
            block_on(boot.platform_state()).unwrap(),
            PlatformImageState::Valid
        );
        assert!(trial_sector(&board)
            .iter()
            .all(|&b| b == cfg.work_erase_value));

        // Confirmed for good: later boots keep v2 and say Valid.
        for _ in 0..2 {
            let (r, rep, _boot) = power_on(&mut board, &rig.keys);
            assert_eq!((r.mapping, r.header.version()), (Mapping::B, V2));
            assert_eq!(rep.state, PlatformImageState::Valid);
        }
        assert_eq!(marker_bytes(&board), expect);
    }
}

#[test]
fn rejected_update_rolls_back_to_old_image() {
    let rig = rig();
    for cfg in CONFIGS {
        let dev = device(&cfg, &rig.v1);
        let mut board = SimBoard::new(&dev, cfg).unwrap();
        let (_, _, mut boot) = power_on(&mut board, &rig.keys);
        stage(&board, &mut boot, &rig, &rig.v2);
        let (r, rep, mut boot) = power_on(&mut board, &rig.keys);
        assert_eq!(
            (r.header.version(), rep.state),
            (V2, PlatformImageState::PendingCommit)
        );

        block_on(boot.reject()).unwrap();
        assert_eq!(
            block_on(boot.platform_state()).unwrap(),
            PlatformImageState::Invalid
        );
        let e = block_on(boot.confirm()).unwrap_err();
        assert_eq!(e.kind(), PalErrorKind::CommitFailed);
        assert_eq!(marker_bytes(&board), [0xFF; 16], "mode 0 from mapping B");

        let (r, rep, _boot) = power_on(&mut board, &rig.keys);
        assert_eq!((r.mapping, r.header.version()), (Mapping::A, V1));
        assert_eq!(rep.state, PlatformImageState::Invalid);
        assert!(!rep.rollback_repaired);
    }
}

#[test]
fn reset_without_confirm_reverts() {
    let rig = rig();
    for cfg in CONFIGS {
        let dev = device(&cfg, &rig.v1);
        let mut board = SimBoard::new(&dev, cfg).unwrap();
        let (_, _, mut boot) = power_on(&mut board, &rig.keys);
        stage(&board, &mut boot, &rig, &rig.v2);
        let (r, rep, _boot) = power_on(&mut board, &rig.keys);
        assert_eq!(
            (r.header.version(), rep.state),
            (V2, PlatformImageState::PendingCommit)
        );
        // Reset (watchdog, crash, self-test timeout) before confirm: the DBM boots v2 again, and
        // its startup sends the next boot to the old bank.
        let (r, rep, mut boot) = power_on(&mut board, &rig.keys);
        assert_eq!(r.header.version(), V2);
        assert!(rep.reset_required);
        assert_eq!(rep.state, PlatformImageState::Invalid);
        let e = block_on(boot.confirm()).unwrap_err();
        assert_eq!(e.kind(), PalErrorKind::CommitFailed);
        let (r, rep, _boot) = power_on(&mut board, &rig.keys);
        assert_eq!((r.mapping, r.header.version()), (Mapping::A, V1));
        assert_eq!(rep.state, PlatformImageState::Invalid);
        assert!(!rep.reset_required);
    }
}

#[test]
fn second_update_returns_to_lower_bank() {
    let rig = rig();
    for cfg in CONFIGS {
        let dev = device(&cfg, &rig.v1);
        let mut board = SimBoard::new(&dev, cfg).unwrap();
        let (_, _, mut boot) = power_on(&mut board, &rig.keys);
        stage(&board, &mut boot, &rig, &rig.v2);
        let (_, _, mut boot) = power_on(&mut board, &rig.keys);
        block_on(boot.confirm()).unwrap();
        // From mapping B, v3 goes to the lower bank (the inactive bank at 0x1200_0000).
        stage(&board, &mut boot, &rig, &rig.v3);
        assert_eq!(marker_bytes(&board), [0xFF; 16], "mode 0 from mapping B");
        assert_eq!(bank_signed_part(&dev, Bank::Lower), signed_part(&rig.v3));
        let (r, rep, mut boot) = power_on(&mut board, &rig.keys);
        assert_eq!((r.mapping, r.header.version()), (Mapping::A, V3));
        assert_eq!(rep.state, PlatformImageState::PendingCommit);
        block_on(boot.confirm()).unwrap();
        let (r, rep, _boot) = power_on(&mut board, &rig.keys);
        assert_eq!(
            (r.mapping, r.header.version(), rep.state),
            (Mapping::A, V3, PlatformImageState::Valid)
        );
    }
}

#[test]
fn invalid_signature_is_never_staged() {
    let rig = rig();
    for cfg in CONFIGS {
        let dev = device(&cfg, &rig.v1);
        let mut board = SimBoard::new(&dev, cfg).unwrap();
        let (_, _, mut boot) = power_on(&mut board, &rig.keys);
        let before = marker_bytes(&board);
        let bad = rig.keys.sign_file(&rig.v3);
        let e = download_and_stage(&board, &mut boot, &rig.keys, &rig.v2, &bad, BLOCK).unwrap_err();
        assert_eq!(e.kind(), PalErrorKind::SignatureCheckFailed);
        assert_eq!(
            block_on(boot.platform_state()).unwrap(),
            PlatformImageState::Invalid
        );
        assert_eq!(marker_bytes(&board), before);
        let (r, rep, _boot) = power_on(&mut board, &rig.keys);
        assert_eq!(
            (r.header.version(), rep.state),
            (V1, PlatformImageState::Valid)
        );
    }
}

#[test]
fn reject_before_reset_keeps_old_image() {
    let rig = rig();
    let cfg = Config::CYT4BF;
    let dev = device(&cfg, &rig.v1);
    let mut board = SimBoard::new(&dev, cfg).unwrap();
    let (_, _, mut boot) = power_on(&mut board, &rig.keys);
    stage(&board, &mut boot, &rig, &rig.v2);
    block_on(boot.reject()).unwrap();
    assert_eq!(marker_bytes(&board), [0xFF; 16], "mode 1 from mapping A");
    assert_eq!(
        block_on(boot.platform_state()).unwrap(),
        PlatformImageState::Invalid
    );
    let (r, rep, _boot) = power_on(&mut board, &rig.keys);
    assert_eq!(
        (r.header.version(), rep.state),
        (V1, PlatformImageState::Invalid)
    );
}

#[test]
fn dbm_falls_back_and_check_bank_repairs_marker() {
    let rig = rig();
    for cfg in CONFIGS {
        let dev = device(&cfg, &rig.v1);
        let mut board = SimBoard::new(&dev, cfg).unwrap();
        let (_, _, mut boot) = power_on(&mut board, &rig.keys);
        stage(&board, &mut boot, &rig, &rig.v2);
        // Flip one code byte of the staged image behind the PAL's back.
        let at = pal_traveo::sim::bank_offset(Bank::Upper) as usize + 0x100;
        dev.modify(|m| m[at] ^= 0x01).unwrap();
        let (r, rep, _boot) = power_on(&mut board, &rig.keys);
        assert_eq!((r.mapping, r.header.version()), (Mapping::A, V1));
        assert!(
            rep.rollback_repaired,
            "checkBank rewrites the marker with mode 1"
        );
        assert_eq!(rep.selector, SELECTOR_PREFER_B);
        assert_eq!(board.read_marker().unwrap().selector, SELECTOR_PREFER_A);
        assert_eq!(rep.state, PlatformImageState::Invalid);
    }
}

#[test]
fn button_forces_mapping_a() {
    let rig = rig();
    let cfg = Config::CYT4BF;
    let dev = device(&cfg, &rig.v1);
    let mut board = SimBoard::new(&dev, cfg).unwrap();
    let (_, _, mut boot) = power_on(&mut board, &rig.keys);
    stage(&board, &mut boot, &rig, &rig.v2);
    let (_, _, mut boot) = power_on(&mut board, &rig.keys);
    block_on(boot.confirm()).unwrap();
    board.press_button(true);
    let (r, rep, _boot) = power_on(&mut board, &rig.keys);
    assert_eq!((r.mapping, r.header.version()), (Mapping::A, V1));
    // The vendor's checkBank takes it as a rollback and makes mapping A preferred.
    assert!(rep.rollback_repaired);
    board.press_button(false);
    let (r, _, _) = power_on(&mut board, &rig.keys);
    assert_eq!(r.header.version(), V1);
}

#[test]
fn nothing_bootable_hangs() {
    let rig = rig();
    let cfg = Config::CYT4BF;
    let dev = device(&cfg, &rig.v1);
    let mut board = SimBoard::new(&dev, cfg).unwrap();
    dev.modify(|m| m[0x40] ^= 0x80).unwrap();
    assert_eq!(
        board.boot(&mut rig.keys.dbm_verifier()).unwrap(),
        BootOutcome::Hang
    );
    assert_eq!(board.mapping(), None);
}

#[test]
fn staging_during_a_trial_is_refused() {
    let rig = rig();
    let cfg = Config::CYT4BF;
    let dev = device(&cfg, &rig.v1);
    let mut board = SimBoard::new(&dev, cfg).unwrap();
    let (_, _, mut boot) = power_on(&mut board, &rig.keys);
    stage(&board, &mut boot, &rig, &rig.v2);
    let (_, _, mut boot) = power_on(&mut board, &rig.keys);
    let e = block_on(boot.request_trial_boot(&file_info(FILE_LEN))).unwrap_err();
    assert_eq!(e.kind(), PalErrorKind::ActivateFailed);
}

#[test]
fn unbootable_header_is_refused_at_the_first_block() {
    let rig = rig();
    let cfg = Config::CYT4BF;
    let dev = device(&cfg, &rig.v1);
    let mut board = SimBoard::new(&dev, cfg).unwrap();
    power_on(&mut board, &rig.keys);
    let mut storage = board.image_storage().unwrap();
    let file = file_info(FILE_LEN);
    block_on(storage.prepare(&file)).unwrap();
    let mut img = rig.v2.clone();
    img[12] = 2; // numCores
    let e = block_on(storage.write(0, &img[..BLOCK])).unwrap_err();
    assert_eq!((e.kind(), e.sub()), (PalErrorKind::FileClose, 0x304));
    let mut img = rig.v2.clone();
    img[..4].copy_from_slice(&0xFF04u32.to_le_bytes()); // signature past 0x1000FF00
    let e = block_on(storage.write(0, &img[..BLOCK])).unwrap_err();
    assert_eq!(e.sub(), 0x302);
    block_on(storage.write(0, &rig.v2[..BLOCK])).unwrap();
}

#[test]
fn wrong_work_erase_value_in_config_still_works() {
    // The work flash really erases to 0x00, the firmware was configured for 0xFF (or the
    // reverse): the PAL never depends on the unconfirmed erase value.
    let rig = rig();
    for (flash, configured) in [
        (Config::CYT4BF_WORK_ERASED_ZERO, Config::CYT4BF),
        (Config::CYT4BF, Config::CYT4BF_WORK_ERASED_ZERO),
    ] {
        let dev = device(&flash, &rig.v1);
        let mut board = SimBoard::new(&dev, configured).unwrap();
        let (_, _, mut boot) = power_on(&mut board, &rig.keys);
        stage(&board, &mut boot, &rig, &rig.v2);
        let (r, rep, mut boot) = power_on(&mut board, &rig.keys);
        assert_eq!(
            (r.header.version(), rep.state),
            (V2, PlatformImageState::PendingCommit)
        );
        block_on(boot.confirm()).unwrap();
        let (r, rep, _) = power_on(&mut board, &rig.keys);
        assert_eq!(
            (r.header.version(), rep.state),
            (V2, PlatformImageState::Valid)
        );
    }
}
