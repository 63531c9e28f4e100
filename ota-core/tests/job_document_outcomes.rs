//! Catalogue §8.1 B: what each kind of job document leads to (and item i: validation failures
//! are reported, not silent).
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

mod common;
use common::*;
use ota_core::agent::{Received, State};
use ota_core::wire::status::StatusUpdate;

const FAILED_PARSE: &str =
    r#"{"status":"FAILED","statusDetails":{"reason":"0x0000000c: 0x00000004"}}"#;

fn booted_with(doc: String) -> Harness {
    let mut h = Harness::new(config());
    h.job = Some(doc);
    h.boot();
    h
}

#[test]
fn no_pending_job_leaves_the_agent_waiting_silently() {
    let h = booted_with(r#"{"clientToken":"0:thing1","timestamp":1}"#.into());
    assert_eq!(h.state(), State::WaitingForJob);
    assert!(h.statuses().is_empty());
    assert!(h.agent.poll_timeout().is_none());
}

#[test]
fn notify_next_with_only_a_timestamp_is_no_job() {
    let mut h = booted_with(r#"{"clientToken":"0:thing1","timestamp":1}"#.into());
    h.deliver(&topic("jobs/notify-next"), br#"{"timestamp":1602795143}"#);
    assert_eq!(h.state(), State::WaitingForJob);
    assert!(h.statuses().is_empty());
}

#[test]
fn invalid_json_is_dropped() {
    let mut h = booted_with(r#"{"clientToken":"0:thing1","timestamp":1}"#.into());
    let before = h.agent.statistics().packets_dropped;
    h.deliver(&topic("jobs/notify-next"), b"not a json");
    assert_eq!(h.agent.statistics().packets_dropped, before + 1);
    assert_eq!(h.state(), State::WaitingForJob);
}

fn custom_doc(job: &str, document: &str) -> String {
    format!(
        r#"{{"timestamp":1,"execution":{{"jobId":"{job}","status":"QUEUED","jobDocument":{document}}}}}"#
    )
}

#[test]
fn a_custom_job_goes_to_the_application_which_claims_it() {
    let mut h = Harness::new(config());
    h.boot();
    let doc = custom_doc("custom-1", r#"{"operation":"reboot"}"#);
    let now = h.now();
    let r = h
        .agent
        .handle_publish(now, &topic("jobs/notify-next"), doc.as_bytes());
    assert_eq!(
        r,
        Received::CustomJob {
            job_id: "custom-1",
            document: r#"{"operation":"reboot"}"#
        }
    );
    h.run();
    assert_eq!(h.state(), State::CustomJob);
    h.agent.custom_job_result(
        now,
        Some(StatusUpdate::Succeeded {
            running: ota_core::wire::version::AppVersion::new(1, 2, 3),
            updater: ota_core::wire::version::AppVersion::new(1, 2, 3),
        }),
    );
    h.run();
    assert_eq!(
        h.statuses(),
        [
            r#"{"status":"SUCCEEDED","statusDetails":{"reason":"accepted  v1.2.3","updatedBy":"  v1.2.3"}}"#
        ]
    );
    assert_eq!(h.state(), State::WaitingForJob);
}

#[test]
fn a_malformed_ota_document_not_claimed_fails_with_parser_error() {
    let mut h = Harness::new(config());
    h.boot();
    // Missing filesize.
    let doc = job_doc(
        "AFR_OTA-bad",
        "QUEUED",
        "",
        &format!(
            r#"{{"protocols":["MQTT"],"streamname":"AFR_OTA-XYZ","files":[{{"fileid":0,"sig-sha256-ecdsa":"{SIG}"}}]}}"#
        ),
    );
    let now = h.now();
    let r = h
        .agent
        .handle_publish(now, &topic("jobs/notify-next"), doc.as_bytes());
    assert!(matches!(
        r,
        Received::CustomJob {
            job_id: "AFR_OTA-bad",
            ..
        }
    ));
    h.run();
    h.agent.custom_job_result(now, None);
    h.run();
    assert_eq!(h.statuses(), [FAILED_PARSE]);
    assert!(h
        .texts()
        .contains(&"SUB qos1 $aws/things/thing1/jobs/AFR_OTA-bad/update/accepted".to_string()));
}

#[test]
fn invalid_base64_signature_is_a_malformed_document() {
    let mut h = Harness::new(config());
    h.boot();
    let doc = mqtt_job("AFR_OTA-b64", 10240).replace(SIG, "Zg===");
    let now = h.now();
    let r = h
        .agent
        .handle_publish(now, &topic("jobs/notify-next"), doc.as_bytes());
    assert!(matches!(r, Received::CustomJob { .. }));
    h.agent.custom_job_result(now, None);
    h.run();
    assert_eq!(h.statuses(), [FAILED_PARSE]);
}

#[test]
fn zero_file_size_is_reported_not_silent() {
    let mut h = Harness::new(config());
    h.boot();
    let doc = mqtt_job("AFR_OTA-zero", 0);
    let now = h.now();
    let r = h
        .agent
        .handle_publish(now, &topic("jobs/notify-next"), doc.as_bytes());
    assert!(matches!(r, Received::CustomJob { .. }));
    h.agent.custom_job_result(now, None);
    h.run();
    assert_eq!(
        h.statuses(),
        [r#"{"status":"FAILED","statusDetails":{"reason":"0x0000000c: 0x00000003"}}"#]
    );
}

#[test]
fn more_blocks_than_the_bitmap_holds_fails_with_bad_model() {
    // 4097 blocks of 4096 bytes: one more than the default bitmap holds.
    let h = booted_with(mqtt_job("AFR_OTA-big", 4097 * 4096));
    assert_eq!(
        h.statuses(),
        [r#"{"status":"FAILED","statusDetails":{"reason":"0x0000000c: 0x00000005"}}"#]
    );
    assert_eq!(h.count(&Ev::Verify), 0);
    assert!(!h.log.iter().any(|e| matches!(e, Ev::Prepare { .. })));
}

#[test]
fn unusable_protocol_fails_aborted_0x0d_and_the_agent_moves_on() {
    let doc = mqtt_job("AFR_OTA-proto", 10240).replace(r#"["MQTT"]"#, r#"["XYZ"]"#);
    let h = booted_with(doc);
    assert_eq!(
        h.statuses(),
        [r#"{"status":"FAILED","statusDetails":{"reason":"aborted: 0x0000000d"}}"#]
    );
    assert!(!h.log.iter().any(|e| matches!(e, Ev::Prepare { .. })));
    assert_eq!(h.state(), State::WaitingForJob);
}

#[test]
fn http_only_job_with_http_disabled_is_an_unusable_protocol() {
    let doc = job_doc(
        "AFR_OTA-http",
        "QUEUED",
        "",
        &format!(
            r#"{{"protocols":["HTTP"],"files":[{}]}}"#,
            file_json(
                10240,
                r#","update_data_url":"https://dummy-url.com/ota.bin","auth_scheme":"aws.s3.presigned""#
            )
        ),
    );
    let h = booted_with(doc);
    assert_eq!(
        h.statuses(),
        [r#"{"status":"FAILED","statusDetails":{"reason":"aborted: 0x0000000d"}}"#]
    );
}

#[test]
fn job_without_the_verifiers_signature_key_fails_before_downloading() {
    let doc = mqtt_job("AFR_OTA-unsigned", 10240).replace("sig-sha256-ecdsa", "sig-sha256-rsa");
    let h = booted_with(doc);
    assert_eq!(
        h.statuses(),
        [r#"{"status":"FAILED","statusDetails":{"reason":"0x000000e3: 0x00000000"}}"#]
    );
    assert!(!h.log.iter().any(|e| matches!(e, Ev::Prepare { .. })));
}

#[test]
fn prepare_failure_reports_aborted_with_the_pal_status() {
    let mut h = Harness::new(config());
    h.job = Some(job_doc_a());
    h.prepare_result = Err(ota_pal_traits::PalError::new(
        ota_pal_traits::PalErrorKind::RxFileCreateFailed,
    ));
    h.boot();
    assert_eq!(
        h.statuses(),
        [r#"{"status":"FAILED","statusDetails":{"reason":"aborted: 0xe4000000"}}"#]
    );
    assert_eq!(h.state(), State::WaitingForJob);
}

#[test]
fn messages_of_other_things_and_unknown_topics_are_ignored() {
    let mut h = Harness::new(config());
    h.boot();
    let n = h.log.len();
    h.deliver("$aws/things/other/jobs/notify-next", job_doc_a().as_bytes());
    h.deliver("some/topic", b"x");
    assert_eq!(h.log.len(), n);
    assert_eq!(h.agent.statistics().packets_dropped, 2);
}
