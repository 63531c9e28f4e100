//! Power cut at every mutating flash operation of the update cycle, for both bootloader builds.
//!
//! For each scenario the cycle (prepare, write, verify, request the trial boot, reset through
//! the simulated bootloader, self-test, confirm or reject, reset) runs with a power cut at the
//! Nth mutating flash operation (PAL and bootloader alike), N = 1, 2, ... until a run completes
//! without the cut firing, with several tearing seeds per N. After each cut the device is
//! powered on and booted: it must run a verified image (old or new). Then the agent's recovery
//! runs (state query; confirm/reject what is on trial, or restart the download from scratch)
//! and the update must complete (confirm flow) or roll back (reject flow).
//!
//! `cargo test -p pal-psoc6 --all-features --test power_loss -- --nocapture` prints the figures.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;
use common::*;

use ota_pal_traits::sim::block_on;
use ota_pal_traits::{BootControl, PalError, PlatformImageState};
use pal_psoc6::boot::SUB_NO_ROLLBACK;
use pal_psoc6::sim::BootOutcome;
use pal_psoc6::{Config, UpgradeMode};

const SEEDS: u64 = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Confirm,
    Reject,
}

/// Power went off: fine. Any other error is a bug.
fn lost<T: core::fmt::Debug>(dev: &Dev, r: Result<T, PalError>) -> Result<T, ()> {
    match r {
        Ok(x) => Ok(x),
        Err(e) => {
            assert!(!dev.is_powered().unwrap(), "error with the power on: {e:?}");
            Err(())
        }
    }
}

fn boot_once(dev: &Dev, cfg: Config) -> Result<pal_psoc6::ImageVersion, ()> {
    match bootloader(dev, cfg).boot() {
        BootOutcome::PowerLost => Err(()),
        o => Ok(running(o)),
    }
}

/// The whole cycle; `Err` when the power went off.
fn cycle(dev: &Dev, cfg: Config, flow: Flow, new: &[u8]) -> Result<(), ()> {
    let (mut s, mut b) = pal(dev, cfg);
    lost(dev, stage(&mut s, &mut b, new))?;
    if flow == Flow::Reject && cfg.mode == UpgradeMode::OverwriteOnly {
        // No trial on overwrite-only: the reject flow withdraws the staged image.
        lost(dev, block_on(b.reject()))?;
        assert_eq!(boot_once(dev, cfg)?, OLD);
        return Ok(());
    }
    assert_eq!(boot_once(dev, cfg)?, NEW);
    let (_s, mut b) = pal(dev, cfg);
    assert_eq!(
        lost(dev, block_on(b.platform_state()))?,
        PlatformImageState::PendingCommit
    );
    match flow {
        Flow::Confirm => lost(dev, block_on(b.confirm()))?,
        Flow::Reject => lost(dev, block_on(b.reject()))?,
    }
    let want = if flow == Flow::Confirm { NEW } else { OLD };
    assert_eq!(boot_once(dev, cfg)?, want);
    Ok(())
}

#[derive(Default, Debug)]
struct Tally {
    cuts: u32,
    booted_old: u32,
    booted_new: u32,
    redownloads: u32,
    no_rollback: u32,
}

fn recover(
    dev: &Dev,
    cfg: Config,
    flow: Flow,
    new: &[u8],
    mut v: pal_psoc6::ImageVersion,
    t: &mut Tally,
) {
    for _ in 0..3 {
        let (mut s, mut b) = pal(dev, cfg);
        let st = state(&mut b);
        match flow {
            Flow::Confirm => {
                if st == PlatformImageState::PendingCommit {
                    assert_eq!(v, NEW);
                    block_on(b.confirm()).unwrap();
                } else if v != NEW {
                    t.redownloads += 1;
                    stage(&mut s, &mut b, new).unwrap();
                    v = running(reboot(dev, cfg));
                    assert_eq!(v, NEW);
                    continue;
                }
                assert_eq!(running(reboot(dev, cfg)), NEW);
                assert_eq!(running(reboot(dev, cfg)), NEW);
                let (_s, mut b) = pal(dev, cfg);
                assert_eq!(state(&mut b), PlatformImageState::Valid);
                return;
            }
            Flow::Reject => {
                if st == PlatformImageState::PendingCommit {
                    assert_eq!(v, NEW);
                    match block_on(b.reject()) {
                        Ok(()) => {}
                        Err(e)
                            if cfg.mode == UpgradeMode::OverwriteOnly
                                && e.sub() == SUB_NO_ROLLBACK =>
                        {
                            // The cut landed after the hand-over: overwrite-only copied the
                            // verified new image and cannot go back. It keeps running, verified.
                            t.no_rollback += 1;
                            assert_eq!(running(reboot(dev, cfg)), NEW);
                            let (_s, mut b) = pal(dev, cfg);
                            assert_eq!(state(&mut b), PlatformImageState::Valid);
                            return;
                        }
                        Err(e) => panic!("reject failed: {e:?}"),
                    }
                } else {
                    assert_eq!(v, OLD, "a new image runs outside a trial");
                    // Withdraw whatever the cut left staged.
                    block_on(b.reject()).unwrap();
                }
                assert_eq!(running(reboot(dev, cfg)), OLD);
                assert_eq!(running(reboot(dev, cfg)), OLD);
                let (_s, mut b) = pal(dev, cfg);
                assert_eq!(state(&mut b), PlatformImageState::Valid);
                return;
            }
        }
    }
    panic!("recovery did not converge");
}

fn play(cfg: Config, flow: Flow, name: &str) -> Tally {
    let new = image(NEW, 6000);
    let mut t = Tally::default();
    // The operation count of an uninterrupted cycle, for the record.
    let dev = device(&cfg);
    dev.reset_stats().unwrap();
    cycle(&dev, cfg, flow, &new).unwrap();
    let ops = dev.stats().unwrap().mutating();
    let mut n = 1u64;
    'outer: loop {
        for seed in 0..SEEDS {
            let dev = device(&cfg);
            dev.cut_power_at(n, seed * 7919 + n).unwrap();
            let r = cycle(&dev, cfg, flow, &new);
            if r.is_ok() && dev.is_powered().unwrap() {
                dev.disarm().unwrap();
                break 'outer;
            }
            assert!(!dev.is_powered().unwrap());
            t.cuts += 1;
            // Power back on: a verified image must boot (`running` panics otherwise).
            let v = running(reboot(&dev, cfg));
            assert!(v == OLD || v == NEW, "{v:?}");
            if v == OLD {
                t.booted_old += 1;
            } else {
                t.booted_new += 1;
            }
            recover(&dev, cfg, flow, &new, v, &mut t);
        }
        n += 1;
    }
    assert_eq!(n - 1, ops, "cut points = mutating operations of the cycle");
    println!(
        "power-loss {name}: {ops} mutating ops x {SEEDS} seeds = {} cuts, all recovered \
         (after the cut: old image booted {}, new {}; re-downloads {}; overwrite no-rollback {})",
        t.cuts, t.booted_old, t.booted_new, t.redownloads, t.no_rollback
    );
    assert_eq!(u64::from(t.cuts), ops * SEEDS);
    t
}

#[test]
fn power_cut_anywhere_in_swap_confirm_cycle() {
    play(Config::V1_8_SWAP, Flow::Confirm, "v1.8 swap, confirm");
}

#[test]
fn power_cut_anywhere_in_swap_reject_cycle() {
    play(Config::V1_8_SWAP, Flow::Reject, "v1.8 swap, reject");
}

#[test]
fn power_cut_anywhere_in_overwrite_confirm_cycle() {
    play(
        Config::V1_5_0_OVERWRITE,
        Flow::Confirm,
        "v1.5.0 overwrite, confirm",
    );
}

#[test]
fn power_cut_anywhere_in_overwrite_reject_cycle() {
    play(
        Config::V1_5_0_OVERWRITE,
        Flow::Reject,
        "v1.5.0 overwrite, withdraw staged",
    );
}
