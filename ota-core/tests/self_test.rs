//! Catalogue §8.1 D and spec §6: the self test after a reboot into a new image, anti-rollback,
//! platform/job mismatches and the self-test timer; item g (confirm before SUCCEEDED).
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

mod common;
use common::*;
use ota_core::agent::State;
use ota_pal_traits::{PalError, PalErrorKind, PlatformImageState};

const JOB: &str = "AFR_OTA-testjob20";

fn after_reboot(updated_by: &str, extra: &str) -> Harness {
    let mut h = Harness::new(config());
    h.platform = PlatformImageState::PendingCommit;
    h.job = Some(self_test_doc(JOB, updated_by, extra));
    h.boot();
    h
}

fn failed(sub: &str) -> String {
    format!(r#"{{"status":"FAILED","statusDetails":{{"reason":"rejected: {sub}"}}}}"#)
}

#[test]
fn newer_image_passes_self_test_confirms_then_succeeds() {
    let h = after_reboot("0x1020002", "");
    let confirm = h.log.iter().position(|e| *e == Ev::Confirm).unwrap();
    let succeeded = h
        .log
        .iter()
        .position(|e| matches!(e, Ev::Pub(_, p, 1) if p.starts_with(br#"{"status":"SUCCEEDED""#)))
        .unwrap();
    assert!(
        confirm < succeeded,
        "confirm happens before SUCCEEDED (#506)"
    );
    assert_eq!(h.resets, 0);
    assert_eq!(h.state(), State::WaitingForJob);
}

#[test]
fn same_version_is_rejected_0x10_and_resets_after_the_ack() {
    let mut h = Harness::new(config());
    h.platform = PlatformImageState::PendingCommit;
    h.job = Some(self_test_doc(JOB, "0x1020003", ""));
    h.auto_ack = false;
    h.boot();
    assert_eq!(h.statuses(), [failed("0x00000010")]);
    assert_eq!(h.count(&Ev::Reject), 1);
    assert_eq!(h.resets, 0, "waits for update/accepted");
    h.deliver(&topic(&format!("jobs/{JOB}/update/accepted")), b"{}");
    assert_eq!(h.resets, 1);
}

#[test]
fn downgrade_is_rejected_0x0f() {
    let h = after_reboot("0x2000000", "");
    assert_eq!(h.statuses(), [failed("0x0000000f")]);
    assert_eq!(h.count(&Ev::Reject), 1);
    assert_eq!(h.resets, 1);
    assert_eq!(h.count(&Ev::Confirm), 0);
}

#[test]
fn downgrade_allowed_by_config_skips_the_check() {
    let mut cfg = config();
    cfg.allow_downgrade = true;
    let mut h = Harness::new(cfg);
    h.platform = PlatformImageState::PendingCommit;
    h.job = Some(self_test_doc(JOB, "0x2000000", ""));
    h.boot();
    assert_eq!(h.count(&Ev::Confirm), 1);
    assert_eq!(h.resets, 0);
}

#[test]
fn a_non_firmware_file_type_skips_the_version_check() {
    let h = after_reboot("0x1020003", r#","fileType":255"#);
    assert_eq!(h.count(&Ev::Confirm), 1);
    assert!(h.statuses().last().unwrap().contains("SUCCEEDED"));
}

#[test]
fn self_test_job_but_platform_not_pending_commit_fails_0x11_and_resets() {
    let mut h = Harness::new(config());
    h.platform = PlatformImageState::Valid;
    h.job = Some(self_test_doc(JOB, "0x1020002", ""));
    h.boot();
    assert_eq!(h.statuses(), [failed("0x00000011")]);
    assert_eq!(h.resets, 1);
    assert_eq!(h.count(&Ev::Confirm), 0);
}

#[test]
fn pending_commit_but_job_not_in_self_test_resets_without_a_status() {
    let mut h = Harness::new(config());
    h.platform = PlatformImageState::PendingCommit;
    h.job = Some(job_doc_a());
    h.boot();
    assert!(h.statuses().is_empty());
    assert_eq!(h.resets, 1);
    assert_eq!(h.state(), State::Resetting);
}

#[test]
fn no_self_test_job_within_16_s_resets() {
    let mut h = Harness::new(config());
    h.platform = PlatformImageState::PendingCommit;
    h.lose_get_next = 100;
    h.boot();
    h.advance(15_999);
    assert_eq!(h.resets, 0);
    h.advance(1);
    assert_eq!(h.resets, 1);
}

#[test]
fn failing_self_test_rejects_reports_and_resets() {
    let mut h = Harness::new(config());
    h.platform = PlatformImageState::PendingCommit;
    h.job = Some(self_test_doc(JOB, "0x1020002", ""));
    h.self_test_pass = false;
    h.boot();
    assert_eq!(h.count(&Ev::Reject), 1);
    assert_eq!(h.count(&Ev::Confirm), 0);
    assert_eq!(h.statuses().last().unwrap(), &failed("0x00000000"));
    assert_eq!(h.resets, 1);
}

#[test]
fn confirm_failure_reports_failed_with_the_pal_status_and_resets_to_roll_back() {
    let mut h = Harness::new(config());
    h.platform = PlatformImageState::PendingCommit;
    h.job = Some(self_test_doc(JOB, "0x1020002", ""));
    h.confirm_result = Err(PalError::new(PalErrorKind::CommitFailed));
    h.boot();
    assert_eq!(h.statuses().last().unwrap(), &failed("0xeb000000"));
    assert!(!h.statuses().iter().any(|s| s.contains("SUCCEEDED")));
    assert_eq!(h.resets, 1);
}

#[test]
fn succeeded_is_republished_until_acknowledged() {
    let mut h = Harness::new(config());
    h.platform = PlatformImageState::PendingCommit;
    h.job = Some(self_test_doc(JOB, "0x1020002", ""));
    h.auto_ack = false;
    h.boot();
    assert_eq!(h.state(), State::AwaitingAck);
    h.advance(10_000);
    h.advance(10_000);
    let succeeded = h
        .statuses()
        .iter()
        .filter(|s| s.contains("SUCCEEDED"))
        .count();
    assert_eq!(succeeded, 3);
    h.job = None;
    h.deliver(&topic(&format!("jobs/{JOB}/update/accepted")), b"{}");
    assert_eq!(h.state(), State::WaitingForJob);
    assert_eq!(h.count(&Ev::Confirm), 1, "confirmed once");
}
