//! The §4.7 end-to-end wire trace (MQTT happy path), byte for byte, then the reboot into the
//! new image: self test, confirm, SUCCEEDED.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

mod common;
use common::*;
use ota_core::agent::{Instant, State};
use ota_core::wire::version::AppVersion;
use ota_pal_traits::PlatformImageState;

#[test]
fn happy_path_matches_the_reference_trace_then_self_test_succeeds() {
    let mut h = Harness::new(config());
    h.job = Some(job_doc_a());
    h.auto_ack = false;
    h.boot();
    let t = h.texts();
    let expected_start = [
        "SUB qos1 $aws/things/thing1/jobs/notify-next",
        "SUB qos1 $aws/things/thing1/jobs/$next/get/accepted",
        "SUB qos1 $aws/things/thing1/jobs/$next/get/rejected",
        // Deviation (documented): the whole counter is sent, `0:thing1` not `:thing1`.
        r#"PUB qos1 $aws/things/thing1/jobs/$next/get {"clientToken":"0:thing1"}"#,
        "SUB qos1 $aws/things/thing1/jobs/AFR_OTA-testjob20/update/accepted",
        "SUB qos1 $aws/things/thing1/jobs/AFR_OTA-testjob20/update/rejected",
        "SUB qos0 $aws/things/thing1/streams/AFR_OTA-XYZ/data/cbor",
        "SUB qos0 $aws/things/thing1/streams/AFR_OTA-XYZ/rejected/cbor",
        "Prepare { resume: false, size: 10240, index: 0, file_type: 0 }",
        "PUB qos0 $aws/things/thing1/streams/AFR_OTA-XYZ/get/cbor a6616363726479616600616c191000616f0061624107616e01",
        "Write(0)",
        r#"PUB qos0 $aws/things/thing1/jobs/AFR_OTA-testjob20/update {"status":"IN_PROGRESS","statusDetails":{"receive":"1/3"}}"#,
        "PUB qos0 $aws/things/thing1/streams/AFR_OTA-XYZ/get/cbor a6616363726479616600616c191000616f0061624106616e01",
        "Write(1)",
        "PUB qos0 $aws/things/thing1/streams/AFR_OTA-XYZ/get/cbor a6616363726479616600616c191000616f0061624104616e01",
        "Write(2)",
        "Verify",
        "TrialBoot(0)",
        "ClearJournal",
        r#"PUB qos1 $aws/things/thing1/jobs/AFR_OTA-testjob20/update {"status":"IN_PROGRESS","statusDetails":{"self_test":"ready","updatedBy":"0x01020003"}}"#,
    ];
    assert_eq!(t, expected_start);
    assert_eq!(h.storage, h.image);
    assert_eq!(h.state(), State::AwaitingAck);
    // No reset before the Jobs service acknowledged "ready" (item g).
    h.advance(1000);
    assert_eq!(h.resets, 0);
    // The Jobs service answers the QoS 0 progress report first: not the ack of "ready".
    h.deliver(
        &topic("jobs/AFR_OTA-testjob20/update/accepted"),
        br#"{"timestamp":2}"#,
    );
    assert_eq!(h.resets, 0);
    h.deliver(
        &topic("jobs/AFR_OTA-testjob20/update/accepted"),
        br#"{"timestamp":3}"#,
    );
    assert_eq!(h.log.last().unwrap(), &Ev::Reset);
    assert_eq!(h.state(), State::Resetting);

    // --- reboot into the new image 1.2.3, updated by 1.2.2 ---
    h.platform = PlatformImageState::PendingCommit;
    h.job = Some(self_test_doc("AFR_OTA-testjob20", "0x1020002", ""));
    h.auto_ack = true;
    h.reboot(config());
    let t = h.texts();
    let tail: Vec<&str> = t.iter().map(String::as_str).skip(4).collect();
    assert_eq!(
        tail,
        [
            "SUB qos1 $aws/things/thing1/jobs/AFR_OTA-testjob20/update/accepted",
            "SUB qos1 $aws/things/thing1/jobs/AFR_OTA-testjob20/update/rejected",
            r#"PUB qos1 $aws/things/thing1/jobs/AFR_OTA-testjob20/update {"status":"IN_PROGRESS","statusDetails":{"self_test":"active","updatedBy":"0x01020003"}}"#,
            "SelfTest",
            // Confirm before SUCCEEDED (issue #506).
            "Confirm",
            r#"PUB qos1 $aws/things/thing1/jobs/AFR_OTA-testjob20/update {"status":"SUCCEEDED","statusDetails":{"reason":"accepted  v1.2.3","updatedBy":"  v1.2.2"}}"#,
            "UNSUB $aws/things/thing1/jobs/AFR_OTA-testjob20/update/accepted",
            "UNSUB $aws/things/thing1/jobs/AFR_OTA-testjob20/update/rejected",
            r#"PUB qos1 $aws/things/thing1/jobs/$next/get {"clientToken":"1:thing1"}"#,
        ]
    );
    assert_eq!(h.resets, 1, "no further reset");
    let _ = (Instant(0), AppVersion::new(1, 2, 3));
}
