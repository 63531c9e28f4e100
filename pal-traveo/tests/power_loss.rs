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
            (Path::Reject, PlatformImageState::Valid) if is_new => {
                panic!("the reject path confirmed the new image")
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

/// Run the cycle with no cut, then with a cut at every mutating operation; returns the number
/// of runs (cuts tried + the uncut run).
fn cut_everywhere(cfg: Config, path: Path) -> u64 {
    let keys = keys();
    let old = make_image(&keys, V1);
    let new = make_image(&keys, V2);
    let signature = keys.sign_file(&new);
    let case = Case {
        keys: &keys,
        old: &old,
        new: &new,
        new_version: V2,
        signature: &signature,
        path,
    };
    let expected = match path {
        Path::Accept => End::Updated,
        Path::Reject => End::RolledBack,
    };

    let dev = device(&cfg, &old);
    dev.reset_stats().unwrap();
    let mut board = SimBoard::new(&dev, cfg).unwrap();
    let end = cycle(&mut board, &case, &mut Cloud::default()).unwrap();
    assert_eq!(end, expected);
    let ops = dev.stats().unwrap().mutating();
    check_final(&mut board, &case, end);

    let mut outcomes = [0u64; 2];
    for n in 1..=ops {
        let dev = device(&cfg, &old);
        let mut board = SimBoard::new(&dev, cfg).unwrap();
        let mut cloud = Cloud::default();
        dev.cut_power_at(
            n,
            n.wrapping_mul(0x9E37_79B9) ^ u64::from(cfg.work_erase_value),
        )
        .unwrap();
        match cycle(&mut board, &case, &mut cloud) {
            Err(Cut) => {}
            Ok(end) => panic!("cut {n} of {ops} never happened (ended {end:?})"),
        }
        // Power back on: boots a verified image (checked inside), then the agent recovers.
        let end = cycle(&mut board, &case, &mut cloud)
            .unwrap_or_else(|_| panic!("power lost again after cut {n}"));
        assert_eq!(end, expected, "after cut {n}");
        check_final(&mut board, &case, end);
        outcomes[usize::from(end == End::Updated)] += 1;
    }
    println!(
        "power_loss {path:?} work-erase={:#04x}: {ops} mutating operations, {ops} cuts tried + 1 uncut run, all recovered ({expected:?})",
        cfg.work_erase_value
    );
    assert!(ops > 70, "the cycle has a write per block: {ops}");
    ops + 1
}

#[test]
fn update_cycle_survives_a_cut_at_every_flash_operation() {
    for cfg in [Config::CYT4BF, Config::CYT4BF_WORK_ERASED_ZERO] {
        cut_everywhere(cfg, Path::Accept);
    }
}

#[test]
fn reject_cycle_survives_a_cut_at_every_flash_operation() {
    for cfg in [Config::CYT4BF, Config::CYT4BF_WORK_ERASED_ZERO] {
        cut_everywhere(cfg, Path::Reject);
    }
}
