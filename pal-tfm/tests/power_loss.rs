//! Power-loss tests: the whole update cycle (prepare, write, verify, request the trial boot,
//! reboot through the simulated BL2, self-test, confirm — or reject, reboot, old image runs)
//! with a power cut injected at every mutating flash operation of the cycle in turn, N = 1,
//! 2, ... until the cycle completes without reaching the cut.
//!
//! After each cut the device is powered on and booted through the simulated BL2, which must
//! run a verified image (old or new, never nothing); the agent then recovers (restarts the
//! download from block 0, re-requests the boot, confirms or rejects) and the update must
//! complete or roll back cleanly. `cargo test -p pal-tfm --all-features --test power_loss --
//! --nocapture` prints the number of cuts tried per scenario.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;
use common::*;
use pal_tfm::ComponentId;

/// Run `files` with a cut at every operation; returns the number of cuts tried.
fn cut_everywhere(name: &str, files: impl Fn() -> Vec<JobFile>, reject: bool, seed: u64) -> u64 {
    // Reference run without a cut: how many mutating operations the cycle takes.
    let dev = device();
    let sim = factory(&dev);
    let mut run = Run::default();
    let end = agent(&dev, &sim, &files(), reject, &mut run);
    let expected = if reject {
        End::RolledBack
    } else {
        End::Updated
    };
    assert_eq!(end, expected);
    assert_eq!(run.power_cuts, 0);
    let ops = dev.stats().unwrap().mutating();
    let mut n = 1u64;
    let (mut partial, mut redownloads) = (0, 0);
    loop {
        let dev = device();
        let sim = factory(&dev);
        dev.cut_power_at(n, seed ^ n.wrapping_mul(0x9E37_79B9))
            .unwrap();
        let mut run = Run::default();
        let end = agent(&dev, &sim, &files(), reject, &mut run);
        assert_eq!(end, expected, "{name}: cut {n}: {run:?}");
        partial += run.partial_trials;
        redownloads += run.downloads.saturating_sub(1);
        if run.power_cuts == 0 {
            // The cycle completed before reaching cut n: every operation has been cut.
            assert!(n > ops, "{name}: cut {n} of {ops} did not fire");
            break;
        }
        // After the cut, the final state is the expected one and it stays so across a reboot.
        dev.disarm().unwrap();
        let out = sim.boot().unwrap();
        for f in files() {
            let v = out.image(f.component).unwrap().version.build;
            assert_eq!(v == NEW, !reject, "{name}: cut {n}: final version {v}");
            assert!(!out.image(f.component).unwrap().trial);
        }
        n += 1;
    }
    let tried = n - 1;
    println!(
        "{name}: {tried} power cuts tried (cycle = {ops} mutating flash operations), all \
         recovered; {redownloads} extra downloads, {partial} partial multi-image trials \
         rejected"
    );
    tried
}

fn ns_update() -> Vec<JobFile> {
    vec![job_file(
        NS_PATH,
        ComponentId::NONSECURE,
        version(1, NEW),
        5200,
    )]
}

fn s_and_ns_update() -> Vec<JobFile> {
    vec![
        job_file(S_PATH, ComponentId::SECURE, version(1, NEW), 3100),
        job_file(NS_PATH, ComponentId::NONSECURE, version(1, NEW), 5200),
    ]
}

#[test]
fn power_cut_at_every_operation_of_update_and_confirm() {
    let tried = cut_everywhere("update_and_confirm", ns_update, false, 1);
    assert!(tried > 50);
}

#[test]
fn power_cut_at_every_operation_of_update_and_reject() {
    let tried = cut_everywhere("update_and_reject", ns_update, true, 2);
    assert!(tried > 50);
}

#[test]
fn power_cut_at_every_operation_of_secure_and_nonsecure_update() {
    let tried = cut_everywhere("secure_and_nonsecure_update", s_and_ns_update, false, 3);
    assert!(tried > 100);
}

#[test]
fn power_cut_at_every_operation_with_other_tear_patterns() {
    // The same cycle with different tearing seeds.
    for seed in [11, 12] {
        cut_everywhere("update_and_confirm (seed)", ns_update, false, seed);
    }
}

#[test]
fn power_cut_at_every_operation_of_secure_and_nonsecure_update_and_reject() {
    let tried = cut_everywhere(
        "secure_and_nonsecure_update_and_reject",
        s_and_ns_update,
        true,
        4,
    );
    assert!(tried > 100);
}
