//! Power-loss tests: the whole update cycle (prepare, write, verify, request the trial boot,
//! reboot through the simulated aws_bootloader, self-test, confirm — or reject, reboot, old
//! image) with a power cut at every mutating flash operation in turn, the bootloader's own
//! writes included. After every power-on the device must boot a verified image, and the
//! agent's recovery (download again from scratch, request the trial boot again, confirm or
//! reject again) must finish the update or its rollback.
//!
//! The figures: `cargo test -p pal-same54 --all-features --test power_loss -- --nocapture`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use common::*;
use ota_pal_traits::sim::block_on;
use ota_pal_traits::{BootControl, PlatformImageState};
use pal_same54::sim::{BootOutcome, Same54Board};
use pal_same54::{Config, ImageFlags};

/// Tearing patterns tried per cut position.
const SEEDS: u64 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    Accept,
    Reject,
}

/// What the cloud remembers about the job across reboots.
#[derive(Debug, Default)]
struct Job {
    confirmed: bool,
    rejected: bool,
}

#[derive(Debug, Default)]
struct RunReport {
    cut_fired: bool,
    /// How many of the armed cuts fired.
    cuts_fired: usize,
    boots: u32,
    /// Boots that took the bootloader's unverified default path.
    default_boots: u32,
    finished: bool,
    final_running: Option<Running>,
}

enum Step {
    Reboot,
    Finished,
}

/// The firmware's part after a boot: the agent's start-up and self-test logic.
fn agent_step(
    board: &Same54Board<Vec<u8>>,
    config: Config,
    scenario: Scenario,
    job: &mut Job,
) -> Result<Step, ()> {
    let (mut s, mut b) = pal(board, config);
    let st = block_on(b.platform_state()).map_err(|_| ())?;
    let now = running(board);
    if st == PlatformImageState::PendingCommit {
        assert_eq!(now, Running::New, "only the update is ever on trial");
        match scenario {
            Scenario::Accept => {
                block_on(b.confirm()).map_err(|_| ())?;
                job.confirmed = true;
            }
            Scenario::Reject => {
                block_on(b.reject()).map_err(|_| ())?;
                job.rejected = true;
            }
        }
        return Ok(Step::Reboot);
    }
    match (scenario, now) {
        (Scenario::Accept, Running::New) if job.confirmed => Ok(Step::Finished),
        (Scenario::Reject, Running::Old) if job.rejected => Ok(Step::Finished),
        (_, Running::Old) => {
            let img = new_app();
            download_and_stage(&mut s, &mut b, &img, &sign(&img)).map_err(|_| ())?;
            Ok(Step::Reboot)
        }
        (_, r) => panic!("running {r:?} with state {st:?} and job {job:?}"),
    }
}

/// One cycle from the factory image, with a cut at mutating operation `cut` (0: none).
/// `strict`: every boot must be verified.
fn run(config: Config, scenario: Scenario, cut: u64, seed: u64, strict: bool) -> RunReport {
    let cuts: &[u64] = if cut == 0 { &[] } else { &[cut] };
    run_cuts(config, scenario, cuts, seed, strict)
}

/// Power-cut `board` was hit by: power on and arm the next cut of `cuts`, if any.
fn after_cut(board: &Same54Board<Vec<u8>>, report: &mut RunReport, cuts: &[u64], seed: u64) {
    assert!(!board.device().is_powered().unwrap());
    report.cut_fired = true;
    report.cuts_fired += 1;
    board.device().power_on().unwrap();
    if let Some(&next) = cuts.get(report.cuts_fired) {
        board.device().cut_power_at(next, seed + 1000).unwrap();
    }
}

/// One cycle from the factory image with a cut at mutating operation `cuts[0]` counted from
/// the start of the cycle, then, once it fired and the power is back, a cut at operation
/// `cuts[1]` counted from that power-on, and so on.
fn run_cuts(
    config: Config,
    scenario: Scenario,
    cuts: &[u64],
    seed: u64,
    strict: bool,
) -> RunReport {
    let cut = cuts.first().copied().unwrap_or(0);
    let mut board = factory_board();
    let mut report = RunReport::default();
    let first = boot(&mut board).unwrap();
    assert!(first.outcome.is_verified());
    if cut > 0 {
        board.device().cut_power_at(cut, seed).unwrap();
    }
    let mut job = Job::default();
    for _ in 0..30 {
        let r = boot(&mut board);
        report.boots += 1;
        let r = match r {
            Ok(r) => r,
            Err(_) => {
                // The cut landed inside the bootloader's own writes: power on, it restarts.
                after_cut(&board, &mut report, cuts, seed);
                continue;
            }
        };
        match &r.outcome {
            BootOutcome::Verified { .. } => {}
            BootOutcome::Default { .. } => {
                report.default_boots += 1;
                // The unverified launch still runs the intact old application.
                assert_eq!(running(&board), Running::Old, "cut {cut}: default path");
                if strict {
                    panic!("cut {cut} seed {seed}: no verified image, default path taken");
                }
                report.final_running = Some(Running::Old);
                return report;
            }
            BootOutcome::Bricked(why) => panic!("cut {cut} seed {seed}: bricked: {why:?}"),
        }
        let now = running(&board);
        assert_ne!(
            now,
            Running::Other,
            "cut {cut} seed {seed}: unknown image runs"
        );
        // The verified descriptor is the one of the bytes that run.
        let seq = r.outcome.sequence().unwrap();
        match now {
            Running::Old => assert!(seq == 0 || seq == OLD_VERSION, "old with seq {seq:#x}"),
            Running::New => assert_eq!(seq, OLD_VERSION + 1),
            Running::Other => unreachable!(),
        }
        match agent_step(&board, config, scenario, &mut job) {
            Ok(Step::Reboot) => {}
            Ok(Step::Finished) => {
                report.finished = true;
                break;
            }
            Err(()) => {
                assert!(
                    !board.device().is_powered().unwrap(),
                    "cut {cut} seed {seed}: a PAL call failed with the power on"
                );
                after_cut(&board, &mut report, cuts, seed);
            }
        }
    }
    if !board.device().is_powered().unwrap() {
        board.device().power_on().unwrap();
    }
    board.device().disarm().unwrap();
    assert!(
        report.finished,
        "cut {cut} seed {seed}: the cycle never finished: {report:?}"
    );
    // Stable: two more boots run the same image, without swapping.
    for _ in 0..2 {
        let r = boot(&mut board).unwrap();
        assert!(r.outcome.is_verified());
        assert_eq!(r.swaps, 0, "cut {cut} seed {seed}: not stable");
    }
    let now = running(&board);
    let (_s, mut b) = pal(&board, config);
    match scenario {
        Scenario::Accept => {
            assert_eq!(now, Running::New, "cut {cut} seed {seed}");
            assert_eq!(
                board.peek_descriptor(0x7E000).unwrap().flags,
                ImageFlags::VALID
            );
            assert_eq!(state(&mut b), PlatformImageState::Valid);
        }
        Scenario::Reject => {
            assert_eq!(now, Running::Old, "cut {cut} seed {seed}");
            assert_eq!(
                board.peek_descriptor(0x7E000).unwrap().flags,
                ImageFlags::VALID
            );
            assert_ne!(state(&mut b), PlatformImageState::PendingCommit);
        }
    }
    report.final_running = Some(now);
    report
}

/// Cut at operation 1, 2, ... until a cycle completes without the cut firing.
/// Returns (cut positions, runs, runs that reached the default path).
fn sweep(config: Config, scenario: Scenario, strict: bool) -> (u64, u64, u64) {
    let clean = run(config, scenario, 0, 0, strict);
    assert!(!clean.cut_fired);
    let mut positions = 0;
    let mut runs = 0;
    let mut default_runs = 0;
    for cut in 1.. {
        let mut fired = false;
        for seed in 0..SEEDS {
            let r = run(config, scenario, cut, seed, strict);
            fired |= r.cut_fired;
            if r.cut_fired {
                runs += 1;
                if r.default_boots > 0 {
                    default_runs += 1;
                }
            }
        }
        if !fired {
            break;
        }
        positions = cut;
    }
    println!(
        "power-loss {scenario:?} {:?}: {positions} cut positions x {SEEDS} tearing seeds = {runs} cuts tried, {} passed with a verified image at every boot, {default_runs} reached the unverified default path",
        config.sequence,
        runs - default_runs
    );
    (positions, runs, default_runs)
}

#[test]
fn power_cut_at_every_operation_of_an_accepted_update() {
    let (positions, runs, default_runs) = sweep(Config::POWER_SAFE, Scenario::Accept, true);
    assert!(positions >= 10, "{positions}");
    assert_eq!(runs, positions * SEEDS);
    assert_eq!(default_runs, 0);
}

#[test]
fn power_cut_at_every_operation_of_a_rejected_update() {
    let (positions, runs, default_runs) = sweep(Config::POWER_SAFE, Scenario::Reject, true);
    assert!(positions >= 10, "{positions}");
    assert_eq!(runs, positions * SEEDS);
    assert_eq!(default_runs, 0);
}

/// The vendor PAL's lower-descriptor rewrite (sequence quirk) has a window with no valid
/// descriptor at all: cuts there reach the bootloader's unverified default path (which still
/// runs the intact old application). Every other cut passes like the power-safe policy.
#[test]
fn vendor_sequence_rewrite_window_reaches_the_default_path() {
    for scenario in [Scenario::Accept, Scenario::Reject] {
        let (positions, runs, default_runs) = sweep(Config::VENDOR, scenario, false);
        assert!(positions >= 12, "{positions}");
        assert_eq!(runs, positions * SEEDS);
        // The erase and the program of the lower descriptor block, every tearing seed.
        assert_eq!(default_runs, 2 * SEEDS, "{scenario:?}");
    }
}

/// A second cut during the recovery from the first: for every first cut position, a second
/// cut at every operation after the power-on, until the recovery completes without it.
#[test]
fn power_cut_again_during_recovery() {
    for scenario in [Scenario::Accept, Scenario::Reject] {
        let mut runs = 0u64;
        let mut first_positions = 0u64;
        for first in 1.. {
            if !run(Config::POWER_SAFE, scenario, first, 0, true).cut_fired {
                break;
            }
            first_positions = first;
            for second in 1.. {
                let r = run_cuts(Config::POWER_SAFE, scenario, &[first, second], 0, true);
                assert_eq!(r.default_boots, 0);
                if r.cuts_fired < 2 {
                    break;
                }
                runs += 1;
            }
        }
        println!(
            "power-loss {scenario:?} Monotonic, two cuts: {first_positions} first positions, {runs} (first, second) pairs tried, all passed"
        );
        assert!(runs > first_positions * 5, "{runs}");
    }
}

/// The bootloader's default path (no valid descriptor) copies itself into bank B: a cut at
/// any of its operations is followed by a re-run that completes the copy.
#[test]
fn power_cut_inside_the_default_path_bootloader_copy() {
    let mut cuts = 0;
    for cut in 1.. {
        let mut board = factory_board();
        board
            .device()
            .modify(|m| {
                m[0x7E000] = 0;
                m[0x80000..0x90000].fill(0xFF);
            })
            .unwrap();
        board.device().cut_power_at(cut, cut).unwrap();
        let first = boot(&mut board);
        if first.is_ok() {
            board.device().disarm().unwrap();
            break;
        }
        cuts += 1;
        board.device().power_on().unwrap();
        let r = boot(&mut board).unwrap();
        assert!(matches!(r.outcome, BootOutcome::Default { .. }));
        assert!(
            board.holds(0x80000, &bootloader_bin()).unwrap(),
            "cut {cut}"
        );
        assert_eq!(running(&board), Running::Old);
    }
    println!("power-loss default-path copy: {cuts} cuts tried, all re-ran to completion");
    assert_eq!(cuts, 65);
}
