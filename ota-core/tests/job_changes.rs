//! Catalogue §8.1 E and item d: a job replaced, cancelled or refreshed during a download;
//! unexpected events; user abort.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

mod common;
use common::*;
use ota_core::agent::{Completion, State};

fn downloading() -> Harness {
    let mut h = Harness::new(config());
    h.job = Some(job_doc_a());
    h.serve_blocks = false;
    h.boot();
    assert_eq!(h.state(), State::Downloading);
    let blk = data_block(0, 0, &h.image[..4096]);
    h.deliver(&topic("streams/AFR_OTA-XYZ/data/cbor"), &blk);
    assert_eq!(h.written, [0]);
    h
}

#[test]
fn a_new_job_during_download_discards_the_old_one_and_starts_the_new() {
    let mut h = downloading();
    let doc_b = job_doc_a().replace("AFR_OTA-testjob20", "AFR_OTA-testjob21");
    h.log.clear();
    h.deliver(&topic("jobs/notify-next"), doc_b.as_bytes());
    let t = h.texts();
    assert_eq!(t[0], "Abort");
    assert!(
        t.contains(&"UNSUB $aws/things/thing1/jobs/AFR_OTA-testjob20/update/accepted".to_string())
    );
    assert!(t.contains(
        &"SUB qos1 $aws/things/thing1/jobs/AFR_OTA-testjob21/update/accepted".to_string()
    ));
    assert!(
        t.contains(&"Prepare { resume: false, size: 10240, index: 0, file_type: 0 }".to_string())
    );
    assert_eq!(h.agent.job_id(), Some("AFR_OTA-testjob21"));
    assert!(
        h.statuses().is_empty(),
        "nothing published for the replaced job"
    );
    assert_eq!(h.agent.bitmap().remaining(), 3);
}

#[test]
fn refresh_with_the_same_document_continues_from_the_bitmap() {
    let mut h = downloading();
    h.log.clear();
    let now = h.now();
    h.agent.disconnected(now);
    h.agent.connected(now);
    h.run();
    // Re-subscribes, re-reads the job, and asks only for the missing blocks.
    assert_eq!(h.count(&Ev::Abort), 0);
    assert!(!h.log.iter().any(|e| matches!(e, Ev::Prepare { .. })));
    let last = h.requests.last().unwrap();
    assert_eq!(last.bitmap, [0x06]);
    assert_eq!(h.state(), State::Downloading);
}

#[test]
fn refresh_with_a_different_document_for_the_same_job_restarts() {
    let mut h = downloading();
    h.job = Some(mqtt_job("AFR_OTA-testjob20", 8192));
    h.log.clear();
    h.deliver(
        &topic("jobs/notify-next"),
        h.job.clone().unwrap().as_bytes(),
    );
    assert_eq!(h.log[0], Ev::Abort);
    assert!(h.log.contains(&Ev::Prepare {
        resume: false,
        size: 8192,
        index: 0,
        file_type: 0
    }));
    assert_eq!(h.agent.bitmap().remaining(), 2);
}

#[test]
fn no_job_while_downloading_means_cancelled() {
    let mut h = downloading();
    h.deliver(&topic("jobs/notify-next"), br#"{"timestamp":5}"#);
    assert_eq!(h.count(&Ev::Abort), 1);
    assert_eq!(h.state(), State::WaitingForJob);
    assert_eq!(h.agent.job_id(), None);
    assert_eq!(h.journal, None, "journal cleared with the file");
}

#[test]
fn update_rejected_terminal_state_cancels_the_download() {
    let mut h = downloading();
    h.job = None;
    h.deliver(
        &topic("jobs/AFR_OTA-testjob20/update/rejected"),
        br#"{"code":"TerminalStateReached","message":"job canceled"}"#,
    );
    assert_eq!(h.count(&Ev::Abort), 1);
    assert_eq!(h.state(), State::WaitingForJob);
}

#[test]
fn update_rejected_throttled_does_not_cancel() {
    let mut h = downloading();
    h.deliver(
        &topic("jobs/AFR_OTA-testjob20/update/rejected"),
        br#"{"code":"RequestThrottled","message":"slow down"}"#,
    );
    assert_eq!(h.count(&Ev::Abort), 0);
    assert_eq!(h.state(), State::Downloading);
}

#[test]
fn stream_resource_not_found_rechecks_the_job_and_cancels_when_gone() {
    let mut h = downloading();
    h.job = None; // the job was deleted in the cloud
    let mut rej = Vec::new();
    ciborium::into_writer(
        &ciborium::value::Value::Map(vec![
            (
                ciborium::value::Value::Text("o".into()),
                ciborium::value::Value::Text("ResourceNotFound".into()),
            ),
            (
                ciborium::value::Value::Text("m".into()),
                ciborium::value::Value::Text("gone".into()),
            ),
        ]),
        &mut rej,
    )
    .unwrap();
    h.log.clear();
    h.deliver(&topic("streams/AFR_OTA-XYZ/rejected/cbor"), &rej);
    assert!(h.texts()[0].contains("$next/get"));
    assert_eq!(h.count(&Ev::Abort), 1);
    assert_eq!(h.state(), State::WaitingForJob);
}

#[test]
fn user_abort_reports_aborted_0x13() {
    let mut h = downloading();
    let now = h.now();
    assert!(h.agent.abort_job(now));
    h.run();
    assert_eq!(h.count(&Ev::Abort), 1);
    assert_eq!(
        h.statuses().last().unwrap(),
        r#"{"status":"FAILED","statusDetails":{"reason":"aborted: 0x00000013"}}"#
    );
    assert!(!h.agent.abort_job(now), "nothing left to abort");
}

#[test]
fn unexpected_events_change_nothing() {
    let mut h = Harness::new(config());
    h.boot();
    let now = h.now();
    let before = h.log.len();
    h.agent.complete(now, Completion::Verified(Ok(())));
    h.agent.block_written(now, 3, Ok(()));
    h.agent.custom_job_result(now, None);
    h.deliver(
        &topic("streams/AFR_OTA-XYZ/data/cbor"),
        &data_block(0, 0, &[0; 4096]),
    );
    h.deliver(&topic("jobs/AFR_OTA-x/update/accepted"), b"{}");
    h.run();
    assert_eq!(h.log.len(), before);
    assert_eq!(h.state(), State::WaitingForJob);
}

#[test]
fn check_for_update_while_idle_asks_for_a_job() {
    let mut h = Harness::new(config());
    h.boot();
    h.log.clear();
    h.job = Some(job_doc_a());
    let now = h.now();
    h.agent.check_for_update(now);
    h.run();
    assert!(h.texts()[0].contains("$next/get"));
    assert_eq!(h.storage, h.image);
}

/// Found by the `agent_events` fuzz target: a journal restored for job B, then job A runs
/// (its `PrepareFile` rewrites the journal), then job B comes back. B must start from
/// scratch: resuming would take A's received blocks for B's.
#[test]
fn a_restored_journal_is_spent_once_another_download_starts() {
    let doc_b = job_doc_a().replace("testjob20", "testjob21");
    let mut h = Harness::new(config());
    h.job = Some(doc_b.clone());
    h.serve_blocks = false;
    h.boot();
    let b0 = data_block(0, 0, &h.image[..4096]);
    h.deliver(&topic("streams/AFR_OTA-XYZ/data/cbor"), &b0);
    // Reboot with B journalled; the cloud now offers A first.
    h.job = Some(job_doc_a());
    h.reboot(config());
    assert!(h
        .texts()
        .contains(&"Prepare { resume: false, size: 10240, index: 0, file_type: 0 }".to_string()));
    h.deliver(&topic("streams/AFR_OTA-XYZ/data/cbor"), &b0);
    // B replaces A.
    h.log.clear();
    h.deliver(&topic("jobs/notify-next"), doc_b.as_bytes());
    assert_eq!(h.agent.job_id(), Some("AFR_OTA-testjob21"));
    assert!(
        h.texts().contains(
            &"Prepare { resume: false, size: 10240, index: 0, file_type: 0 }".to_string()
        ),
        "{:?}",
        h.texts()
    );
    assert_eq!(h.agent.bitmap().received(), 0);
}
