//! Catalogue §8.1 G: handler error paths. The reference's G tests inject failures of its OS
//! layer (event queue posts, timers); our agent has neither (the caller owns time and the
//! queue is internal, bounded and drained synchronously), so G maps to the failures that do
//! exist: every PAL operation failing, and every timer-driven retry running out, in each
//! phase. Prepare, write, signature and confirm failures are also pinned in
//! `job_document_outcomes`, `block_ingest` and `self_test`.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

mod common;
use common::*;
use ota_core::agent::{Completion, State};
use ota_pal_traits::{PalError, PalErrorKind, PlatformImageState};

const JOB: &str = "AFR_OTA-testjob20";

fn failed(reason: &str) -> String {
    format!(r#"{{"status":"FAILED","statusDetails":{{"reason":"{reason}"}}}}"#)
}

#[test]
fn prepare_failure_reports_aborted_with_the_pal_status_and_discards() {
    let mut h = Harness::new(config());
    h.job = Some(job_doc_a());
    h.prepare_result = Err(PalError::with_sub(PalErrorKind::RxFileCreateFailed, 7));
    h.boot();
    assert_eq!(h.statuses(), [failed("aborted: 0xe4000007")]);
    assert_eq!(h.count(&Ev::Abort), 1);
    assert_eq!(h.count(&Ev::Verify), 0);
    assert_eq!(h.state(), State::WaitingForJob);
}

#[test]
fn journal_or_block_write_failure_fails_the_job_with_the_pal_status() {
    // The driver reports a failed `DownloadJournal::record_block` like a failed write.
    let mut h = Harness::new(config());
    h.job = Some(job_doc_a());
    h.fail_write = Some((1, PalError::with_sub(PalErrorKind::FileClose, 3)));
    h.boot();
    assert_eq!(h.written, [0]);
    assert_eq!(
        h.statuses().last().unwrap(),
        &failed("0x000000ee: 0x00000003")
    );
    assert_eq!(h.count(&Ev::Abort), 1);
    assert_eq!(h.count(&Ev::Verify), 0, "never verified");
    assert_eq!(h.count(&Ev::TrialBoot(0)), 0);
    assert_eq!(h.state(), State::WaitingForJob);
}

#[test]
fn verify_failure_of_any_kind_rejects_discards_and_never_trial_boots() {
    for (e, reason) in [
        (
            PalError::with_sub(PalErrorKind::SignatureCheckFailed, 0x203),
            "0x000000e3: 0x00000203",
        ),
        (
            PalError::new(PalErrorKind::BadSignerCert),
            "0x000000e7: 0x00000000",
        ),
        (
            PalError::with_sub(PalErrorKind::FileClose, 0x204),
            "0x000000ee: 0x00000204",
        ),
    ] {
        let mut h = Harness::new(config());
        h.job = Some(job_doc_a());
        h.verify_result = Err(e);
        h.boot();
        assert_eq!(h.statuses().last().unwrap(), &failed(reason));
        assert_eq!(h.count(&Ev::Reject), 1);
        assert_eq!(h.count(&Ev::Abort), 1);
        assert_eq!(h.count(&Ev::TrialBoot(0)), 0);
        assert_eq!(h.resets, 0);
    }
}

#[test]
fn trial_boot_failure_rejects_clears_the_journal_reports_and_does_not_reset() {
    let mut h = Harness::new(config());
    h.job = Some(job_doc_a());
    h.trial_result = Err(PalError::with_sub(PalErrorKind::BadImageState, 1));
    h.boot();
    assert_eq!(h.count(&Ev::TrialBoot(0)), 1);
    assert_eq!(h.count(&Ev::Reject), 1);
    assert_eq!(h.count(&Ev::ClearJournal), 1);
    assert_eq!(
        h.statuses().last().unwrap(),
        &failed("0x000000e8: 0x00000001")
    );
    assert_eq!(h.resets, 0, "nothing to boot into");
    assert_eq!(h.state(), State::WaitingForJob);
}

#[test]
fn confirm_failure_reports_rejected_with_the_pal_status_and_resets_to_roll_back() {
    let mut h = Harness::new(config());
    h.platform = PlatformImageState::PendingCommit;
    h.job = Some(self_test_doc(JOB, "0x1020002", ""));
    h.confirm_result = Err(PalError::with_sub(PalErrorKind::CommitFailed, 9));
    h.boot();
    assert_eq!(
        h.statuses().last().unwrap(),
        &failed("rejected: 0xeb000009")
    );
    assert!(
        !h.statuses().iter().any(|s| s.contains("SUCCEEDED")),
        "never SUCCEEDED"
    );
    assert_eq!(h.resets, 1);
}

#[test]
fn failing_self_test_rejects_and_resets() {
    let mut h = Harness::new(config());
    h.platform = PlatformImageState::PendingCommit;
    h.job = Some(self_test_doc(JOB, "0x1020002", ""));
    h.self_test_pass = false;
    h.boot();
    assert_eq!(h.count(&Ev::Confirm), 0);
    assert_eq!(h.count(&Ev::Reject), 1);
    assert_eq!(
        h.statuses().last().unwrap(),
        &failed("rejected: 0x00000000")
    );
    assert_eq!(h.resets, 1);
}

#[test]
fn a_completion_of_the_wrong_kind_is_ignored_and_the_right_one_proceeds() {
    let mut h = Harness::new(config());
    h.job = Some(job_doc_a());
    h.auto_pal = false;
    h.serve_blocks = false;
    h.boot();
    assert_eq!(h.state(), State::WaitingForPal);
    let before = h.log.len();
    h.complete(Completion::Verified(Ok(())));
    h.complete(Completion::TrialBootRequested(Ok(())));
    h.complete(Completion::SelfTest(true));
    assert_eq!(h.log.len(), before, "not what the agent waits for");
    assert_eq!(h.state(), State::WaitingForPal);
    h.complete(Completion::Prepared(Ok(())));
    assert_eq!(h.state(), State::Downloading);
}

/// Retries run out in each timed phase (with `max_retries = 3`):
/// - requesting a job: never gives up (backoff capped, item a);
/// - downloading: `aborted: 0x0000000e` (MomentumAbort), the agent stays alive;
/// - awaiting the ack of a final status: re-published 3 times, then the agent goes on as if
///   acknowledged (idle for FAILED/SUCCEEDED, reset for `ready`);
/// - PendingCommit without a self-test job: reset after 16 s.
#[test]
fn timer_driven_retries_run_out_in_each_phase() {
    let mut cfg = config();
    cfg.max_retries = 3;

    // Requesting: 100 lost replies, still asking, at most every 5 minutes.
    let mut h = Harness::new(cfg);
    h.lose_get_next = 1000;
    h.boot();
    for _ in 0..100 {
        h.fire();
    }
    assert_eq!(h.pubs("$next/get").len(), 101);
    assert_eq!(h.state(), State::RequestingJob);
    assert!(h.agent.poll_timeout().unwrap().0 - h.now <= 300_000);

    // Downloading: no block ever comes.
    let mut h = Harness::new(cfg);
    h.job = Some(job_doc_a());
    h.serve_blocks = false;
    h.boot();
    for _ in 0..3 {
        h.fire();
    }
    assert!(h.statuses().iter().all(|s| !s.contains("FAILED")));
    h.fire();
    assert_eq!(h.requests.len(), 4, "the first request and 3 retries");
    assert_eq!(h.statuses().last().unwrap(), &failed("aborted: 0x0000000e"));
    assert_eq!(h.count(&Ev::Abort), 1);
    assert_eq!(h.state(), State::WaitingForJob);

    // Awaiting the ack of `ready` (nothing is acknowledged): 1 + 3 publishes, then the
    // reset anyway.
    let mut h2 = Harness::new(cfg);
    h2.job = Some(job_doc_a());
    h2.auto_ack = false;
    h2.boot();
    assert_eq!(h2.resets, 0);
    let ready = |h: &Harness| h.statuses().iter().filter(|s| s.contains("ready")).count();
    assert_eq!(ready(&h2), 1);
    for _ in 0..3 {
        h2.fire();
    }
    assert_eq!(ready(&h2), 4);
    assert_eq!(h2.resets, 0);
    h2.fire();
    assert_eq!(h2.resets, 1, "gave up waiting, reset into the trial image");

    // PendingCommit and no self-test job.
    let mut h = Harness::new(cfg);
    h.platform = PlatformImageState::PendingCommit;
    h.boot();
    h.advance(15_999);
    assert_eq!(h.resets, 0);
    h.advance(1);
    assert_eq!(h.resets, 1);
}
