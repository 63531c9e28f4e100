//! Catalogue §8.1 C: block ingest (empty, oversize, short last block, write failure,
//! duplicates, out of order, signature failure, non-firmware file type).
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

mod common;
use common::*;
use ota_core::agent::State;
use ota_pal_traits::{PalError, PalErrorKind};

const BAD_BLOCK: &str =
    r#"{"status":"FAILED","statusDetails":{"reason":"0x000000e0: 0x00000000"}}"#;

fn manual() -> Harness {
    let mut h = Harness::new(config());
    h.job = Some(job_doc_a());
    h.serve_blocks = false;
    h.boot();
    assert_eq!(h.state(), State::Downloading);
    h
}

fn data_topic() -> String {
    topic("streams/AFR_OTA-XYZ/data/cbor")
}

#[test]
fn an_empty_block_fails_the_job() {
    let mut h = manual();
    h.deliver(&data_topic(), &data_block(0, 0, &[]));
    assert_eq!(h.statuses(), [BAD_BLOCK]);
    assert_eq!(h.count(&Ev::Abort), 1, "the partial file is discarded");
    assert_eq!(h.state(), State::WaitingForJob);
}

#[test]
fn an_oversize_block_fails_the_job() {
    let mut h = manual();
    h.deliver(&data_topic(), &data_block(0, 0, &[1; 4097]));
    assert_eq!(h.statuses(), [BAD_BLOCK]);
}

#[test]
fn a_short_last_block_fails_the_job() {
    let mut h = manual();
    h.deliver(&data_topic(), &data_block(0, 2, &[1; 2047]));
    assert_eq!(h.statuses(), [BAD_BLOCK]);
}

#[test]
fn a_block_of_another_file_id_is_dropped() {
    let mut h = manual();
    h.deliver(&data_topic(), &data_block(7, 0, &[1; 4096]));
    assert!(h.statuses().is_empty());
    assert!(h.written.is_empty());
    assert_eq!(h.state(), State::Downloading);
}

#[test]
fn undecodable_data_is_dropped() {
    let mut h = manual();
    h.deliver(&data_topic(), b"\xff\x00garbage");
    assert!(h.statuses().is_empty());
    assert_eq!(h.state(), State::Downloading);
}

#[test]
fn a_write_failure_fails_the_job_with_the_pal_status() {
    let mut h = Harness::new(config());
    h.job = Some(job_doc_a());
    h.fail_write = Some((1, PalError::with_sub(PalErrorKind::FileClose, 0x12)));
    h.boot();
    assert_eq!(
        h.statuses(),
        [
            r#"{"status":"IN_PROGRESS","statusDetails":{"receive":"1/3"}}"#,
            r#"{"status":"FAILED","statusDetails":{"reason":"0x000000ee: 0x00000012"}}"#
        ]
    );
    assert_eq!(h.count(&Ev::Abort), 1);
    assert_eq!(h.count(&Ev::Verify), 0);
}

#[test]
fn every_block_sent_three_times_is_written_once() {
    let mut h = Harness::new(config());
    h.job = Some(job_doc_a());
    h.duplicate_blocks = 3;
    h.boot();
    assert_eq!(h.written, [0, 1, 2]);
    assert_eq!(h.storage, h.image);
    assert!(h.agent.statistics().duplicates >= 4);
    assert_eq!(h.count(&Ev::TrialBoot(0)), 1);
}

#[test]
fn out_of_order_blocks_assemble_the_same_image() {
    let mut cfg = config();
    cfg.blocks_per_request = 3;
    cfg.rx_buffer_len = 3 * (4096 + 64);
    let mut h = Harness::new(cfg);
    h.job = Some(job_doc_a());
    h.reverse_order = true;
    h.boot();
    assert_eq!(h.written, [2, 1, 0]);
    assert_eq!(h.storage, h.image);
    assert_eq!(h.requests.len(), 1, "one request for the three blocks");
    assert_eq!(h.requests[0].n, 3);
}

#[test]
fn signature_failure_rejects_discards_and_reports_the_pal_code() {
    let mut h = Harness::new(config());
    h.job = Some(job_doc_a());
    h.verify_result = Err(PalError::with_sub(
        PalErrorKind::SignatureCheckFailed,
        0x1234,
    ));
    h.boot();
    let t = h
        .log
        .iter()
        .skip_while(|e| **e != Ev::Verify)
        .cloned()
        .collect::<Vec<_>>();
    assert_eq!(t[1], Ev::Reject);
    assert_eq!(t[2], Ev::Abort);
    assert_eq!(
        h.statuses().last().unwrap(),
        r#"{"status":"FAILED","statusDetails":{"reason":"0x000000e3: 0x00001234"}}"#
    );
    assert_eq!(h.count(&Ev::TrialBoot(0)), 0);
    assert_eq!(h.resets, 0);
    assert_eq!(h.state(), State::WaitingForJob);
}

#[test]
fn a_non_firmware_file_type_succeeds_without_a_trial_boot() {
    let doc = job_doc_a().replace(r#""fileid":0,"#, r#""fileid":0,"fileType":2,"#);
    let mut h = Harness::new(config());
    h.job = Some(doc);
    h.boot();
    assert_eq!(h.count(&Ev::TrialBoot(0)), 0);
    assert_eq!(h.count(&Ev::Abort), 0, "a verified file is never erased");
    assert_eq!(
        h.statuses().last().unwrap(),
        r#"{"status":"SUCCEEDED","statusDetails":{"reason":"accepted  v0.0.2","updatedBy":"  v0.0.0"}}"#
    );
    assert!(h
        .log
        .iter()
        .any(|e| matches!(e, Ev::Prepare { file_type: 2, .. })));
    assert_eq!(h.resets, 0);
    assert_eq!(h.state(), State::WaitingForJob);
}

#[test]
fn progress_is_reported_on_the_first_block_and_every_64() {
    let mut h = Harness::new(config());
    h.image = image(130 * 4096);
    h.job = Some(mqtt_job("AFR_OTA-progress", 130 * 4096));
    h.boot();
    let progress: Vec<String> = h
        .statuses()
        .into_iter()
        .filter(|s| s.contains("receive"))
        .collect();
    assert_eq!(
        progress,
        [
            r#"{"status":"IN_PROGRESS","statusDetails":{"receive":"1/130"}}"#,
            r#"{"status":"IN_PROGRESS","statusDetails":{"receive":"64/130"}}"#,
            r#"{"status":"IN_PROGRESS","statusDetails":{"receive":"128/130"}}"#
        ]
    );
    assert_eq!(h.storage, h.image);
}
