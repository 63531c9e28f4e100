//! Power-loss tests: the full update cycle with a power cut injected at every mutating flash
//! operation in turn (cut N = 1, 2, ... until the cycle completes with no cut).
//!
//! After each cut the device powers on through the simulated DBM, which must start an image it
//! verified (the old or the new one, byte for byte), never nothing; then the agent's recovery
//! runs (restart the download from scratch, re-request the trial boot, confirm or reject) and
//! the update must complete (accept path) or roll back (reject path).
//!
//! The figures: `cargo test -p pal-traveo --all-features --test power_loss -- --nocapture`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use common::*;
use ota_pal_traits::sim::{block_on, SimDevice};
use ota_pal_traits::{BootControl, PalError, PlatformImageState};
use pal_traveo::sim::SimBoard;
use pal_traveo::{AppVersion, Config};

/// Download block size: 1 KB blocks give one flash write per block, so many cut points.
const BLOCK: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    /// Self-test passes: confirm.
    Accept,
    /// Self-test fails: reject, reboot, the old image runs.
    Reject,
    /// The trial image resets before confirming (self-test timer, watchdog): the next boot
    /// reverts to the old image.
    ResetWithoutConfirm,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Updated,
    RolledBack,
}

/// The power went off.
#[derive(Debug)]
struct Cut;

/// What survives a power cut outside the device: the job's state in the cloud.
#[derive(Debug, Default)]
struct Cloud {
    /// The device reported the self-test failure.
    rejected: bool,
    /// The new image passed its self-test and the agent started to confirm it.
    confirming: bool,
    /// The trial image was reset without a confirm.
    reset_on_trial: bool,
}

struct Case<'a> {
    keys: &'a Keys,
    old: &'a [u8],
    new: &'a [u8],
    new_version: AppVersion,
    signature: &'a [u8],
    path: Path,
}

fn step<T>(dev: &SimDevice<Vec<u8>>, r: Result<T, PalError>, what: &str) -> Result<T, Cut> {
    match r {
        Ok(v) => Ok(v),
        Err(_) if !dev.is_powered().unwrap() => Err(Cut),
        Err(e) => panic!("{what} failed with the power on: {e}"),
    }
}

/// Boot, check the invariant, and play the agent until the update ends or the power goes.
fn cycle(
    board: &mut SimBoard<'_, Vec<u8>>,
    case: &Case<'_>,
    cloud: &mut Cloud,
) -> Result<End, Cut> {
    let dev = board.device();
    for _ in 0..16 {
        let r = running(board.boot(&mut case.keys.dbm_verifier()).unwrap());
        // Never an unverified image: what runs is the old or the new image, byte for byte.
        let part = bank_signed_part(dev, r.bank);
        assert!(
            part == signed_part(case.old) || part == signed_part(case.new),
            "the DBM started something that is neither image"
        );
        let is_new = r.header.version() == case.new_version;
        let mut boot = board.boot_control().unwrap();
        let rep = step(dev, block_on(boot.startup()), "startup")?;
        if rep.reset_required {
            continue;
        }
        match (case.path, rep.state) {
            (_, PlatformImageState::PendingCommit) => {
                assert!(is_new, "only the new image is ever on trial");
                match case.path {
                    Path::Accept => {
                        cloud.confirming = true;
                        step(dev, block_on(boot.confirm()), "confirm")?;
                        return Ok(End::Updated);
                    }
                    Path::Reject => {
                        cloud.rejected = true;
                        step(dev, block_on(boot.reject()), "reject")?;
                    }
                    Path::ResetWithoutConfirm => cloud.reset_on_trial = true,
                }
            }
            (Path::Accept, PlatformImageState::Valid) if is_new => {
                assert!(
                    cloud.confirming,
                    "the new image became valid without a self-test"
                );
                return Ok(End::Updated);
            }
            (Path::Reject, _) if cloud.rejected && !is_new => return Ok(End::RolledBack),
            (Path::ResetWithoutConfirm, _) if cloud.reset_on_trial && !is_new => {
                return Ok(End::RolledBack)
            }
            (Path::Reject | Path::ResetWithoutConfirm, PlatformImageState::Valid) if is_new => {
                panic!("the new image became valid without a confirm")
            }
            _ => {
                // No update running here yet (or it was lost to a cut): download from scratch.
                assert!(!is_new, "a new image runs outside its trial: {rep:?}");
                let r = download_and_stage(
                    board,
                    &mut boot,
                    case.keys,
                    case.new,
                    case.signature,
                    BLOCK,
                );
                step(dev, r, "download and stage")?;
            }
        }
    }
    panic!("the agent made no progress in 16 boots");
}

/// After the end of a cycle, one more power-on shows the final state is stable.
fn check_final(board: &mut SimBoard<'_, Vec<u8>>, case: &Case<'_>, end: End) {
    let r = running(board.boot(&mut case.keys.dbm_verifier()).unwrap());
    let mut boot = board.boot_control().unwrap();
    let rep = block_on(boot.startup()).unwrap();
    assert!(!rep.reset_required);
    match end {
        End::Updated => {
            assert_eq!(r.header.version(), case.new_version);
            assert_eq!(rep.state, PlatformImageState::Valid);
        }
        End::RolledBack => {
            assert_ne!(r.header.version(), case.new_version);
            assert_ne!(rep.state, PlatformImageState::PendingCommit);
        }
    }
}

/// Where the cycle starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    /// Factory state: v1 in the lower bank, marker erased (mapping A); the update is v2.
    FromLowerBank,
    /// After a confirmed v1 → v2 update: v2 runs from the upper bank (marker 0xAAAAAAAA), v1 is
    /// still in the lower bank; the update is v3, written over v1.
    FromUpperBank,
}

/// Tear seeds tried at each cut point (each tears the operation differently).
const SEEDS: u64 = 3;

fn fresh(cfg: &Config, start: Start, v1: &[u8], v2: &[u8]) -> SimDevice<Vec<u8>> {
    let dev = device(cfg, v1);
    if start == Start::FromUpperBank {
        let board = SimBoard::new(&dev, *cfg).unwrap();
        board.factory_program(pal_traveo::Bank::Upper, v2).unwrap();
        let at = (pal_traveo::sim::SIM_WORK_OFFSET + 0x12000) as usize;
        let marker = pal_traveo::FlashMarker::new(0xAAAA_AAAA).encode();
        dev.modify(|m| m[at..at + 16].copy_from_slice(&marker))
            .unwrap();
    }
    dev.reset_stats().unwrap();
    dev
}

/// Run the cycle with no cut, then with a cut at every mutating operation (with [`SEEDS`]
/// tears each); returns the number of cuts tried.
fn cut_everywhere(cfg: Config, start: Start, path: Path) -> u64 {
    let keys = keys();
    let v1 = make_image(&keys, V1);
    let v2 = make_image(&keys, V2);
    let v3 = make_image(&keys, V3);
    let (old, new, new_version) = match start {
        Start::FromLowerBank => (&v1, &v2, V2),
        Start::FromUpperBank => (&v2, &v3, V3),
    };
    let signature = keys.sign_file(new);
    let case = Case {
        keys: &keys,
        old,
        new,
        new_version,
        signature: &signature,
        path,
    };
    let expected = match path {
        Path::Accept => End::Updated,
        Path::Reject | Path::ResetWithoutConfirm => End::RolledBack,
    };

    let dev = fresh(&cfg, start, &v1, &v2);
    let mut board = SimBoard::new(&dev, cfg).unwrap();
    let end = cycle(&mut board, &case, &mut Cloud::default()).unwrap();
    assert_eq!(end, expected);
    let ops = dev.stats().unwrap().mutating();
    check_final(&mut board, &case, end);

    let mut cuts = 0;
    for n in 1..=ops {
        for seed in 0..SEEDS {
            let dev = fresh(&cfg, start, &v1, &v2);
            let mut board = SimBoard::new(&dev, cfg).unwrap();
            let mut cloud = Cloud::default();
            let tear = n.wrapping_mul(0x9E37_79B9) ^ (seed << 32) ^ u64::from(cfg.work_erase_value);
            dev.cut_power_at(n, tear).unwrap();
            match cycle(&mut board, &case, &mut cloud) {
                Err(Cut) => {}
                Ok(end) => panic!("cut {n} of {ops} never happened (ended {end:?})"),
            }
            // Power back on: boots a verified image (checked inside), then the agent recovers.
            let end = cycle(&mut board, &case, &mut cloud)
                .unwrap_or_else(|_| panic!("power lost again after cut {n}"));
            assert_eq!(end, expected, "after cut {n} seed {seed}");
            check_final(&mut board, &case, end);
            cuts += 1;
        }
    }
    println!(
        "power_loss {start:?} {path:?} work-erase={:#04x}: {ops} mutating operations in the cycle; {cuts} cuts tried ({ops} points x {SEEDS} tears) + 1 uncut run; all boot a verified image and end {expected:?}",
        cfg.work_erase_value
    );
    assert!(ops > 70, "the cycle has a write per block: {ops}");
    cuts
}

fn all(path: Path) {
    let mut total = 0;
    for start in [Start::FromLowerBank, Start::FromUpperBank] {
        for cfg in [Config::CYT4BF, Config::CYT4BF_WORK_ERASED_ZERO] {
            total += cut_everywhere(cfg, start, path);
        }
    }
    println!("power_loss {path:?}: {total} cuts tried in all, all passing");
}

#[test]
fn update_cycle_survives_a_cut_at_every_flash_operation() {
    all(Path::Accept);
}

#[test]
fn reject_cycle_survives_a_cut_at_every_flash_operation() {
    all(Path::Reject);
}

#[test]
fn reset_without_confirm_cycle_survives_a_cut_at_every_flash_operation() {
    all(Path::ResetWithoutConfirm);
}
