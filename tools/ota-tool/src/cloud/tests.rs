//! The Jobs and Streams rules, checked through the sans-IO core.

use std::sync::Arc;

use ciborium::Value as Cbor;
use serde_json::{json, Value as Json};

use super::jobs::{ExecStatus, JobState, Jobs};
use super::presign::Presigner;
use super::streams::{
    self, Encoding, GetStream, StreamErrorCode, StreamFile, StreamReply, Streams,
};
use super::{Cloud, OtaFile, OtaUpdate, Protocol};

const T0: u64 = 1_700_000_000;

fn things(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn jobs_with(ids: &[&str], targets: &[&str]) -> Jobs {
    let mut j = Jobs::default();
    for (k, id) in ids.iter().enumerate() {
        let doc = json!({"op": id});
        let plain = |job: &super::jobs::Job, _| job.document.clone();
        j.create(id, doc, &things(targets), T0 + k as u64, &plain)
            .unwrap();
    }
    j
}

fn update(j: &mut Jobs, thing: &str, job: &str, body: Json, now: u64) -> (bool, Json) {
    let r = j.update_plain(thing, job, body.to_string().as_bytes(), now);
    (r.accepted, r.payload)
}

// ---------------------------------------------------------------- Jobs

#[test]
fn next_get_with_nothing_pending_has_token_and_timestamp_only() {
    let j = Jobs::default();
    let r = j.get_next_plain("t1", br#"{"clientToken":"0:t1"}"#, T0);
    assert!(r.accepted);
    assert_eq!(r.payload, json!({"clientToken": "0:t1", "timestamp": T0}));
    // An empty payload is an empty request.
    let r = j.get_next_plain("t1", b"", T0);
    assert_eq!(r.payload, json!({"timestamp": T0}));
}

#[test]
fn next_get_gives_the_oldest_queued_execution_with_its_document() {
    let j = jobs_with(&["job-a", "job-b"], &["t1"]);
    let r = j.get_next_plain("t1", br#"{"clientToken":"x"}"#, T0 + 5);
    let e = &r.payload["execution"];
    assert_eq!(r.payload["clientToken"], "x");
    assert_eq!(r.payload["timestamp"], T0 + 5);
    assert_eq!(e["jobId"], "job-a");
    assert_eq!(e["status"], "QUEUED");
    assert_eq!(e["queuedAt"], T0);
    assert_eq!(e["lastUpdatedAt"], T0);
    assert_eq!(e["versionNumber"], 1);
    assert_eq!(e["executionNumber"], 1);
    assert_eq!(e["jobDocument"], json!({"op": "job-a"}));
    assert!(e.get("startedAt").is_none());
    assert!(e.get("statusDetails").is_none());
    // includeJobDocument=false leaves the document out.
    let r = j.get_next_plain("t1", br#"{"includeJobDocument":false}"#, T0);
    assert!(r.payload["execution"].get("jobDocument").is_none());
    // Other things see nothing.
    assert!(j
        .get_next_plain("t2", b"{}", T0)
        .payload
        .get("execution")
        .is_none());
}

#[test]
fn in_progress_executions_come_before_queued_ones() {
    let mut j = jobs_with(&["job-a", "job-b", "job-c"], &["t1"]);
    let (ok, _) = update(
        &mut j,
        "t1",
        "job-c",
        json!({"status": "IN_PROGRESS"}),
        T0 + 10,
    );
    assert!(ok);
    assert_eq!(j.next_pending("t1").unwrap().job_id, "job-c");
    let (ok, _) = update(
        &mut j,
        "t1",
        "job-b",
        json!({"status": "IN_PROGRESS"}),
        T0 + 11,
    );
    assert!(ok);
    // Oldest start first among IN_PROGRESS.
    assert_eq!(j.next_pending("t1").unwrap().job_id, "job-c");
    update(
        &mut j,
        "t1",
        "job-c",
        json!({"status": "SUCCEEDED"}),
        T0 + 12,
    );
    assert_eq!(j.next_pending("t1").unwrap().job_id, "job-b");
    update(&mut j, "t1", "job-b", json!({"status": "FAILED"}), T0 + 13);
    assert_eq!(j.next_pending("t1").unwrap().job_id, "job-a");
}

#[test]
fn create_notifies_only_things_whose_next_execution_changed() {
    let mut j = Jobs::default();
    let plain = |job: &super::jobs::Job, _| job.document.clone();
    let n = j
        .create("job-a", json!({}), &things(&["t1"]), T0, &plain)
        .unwrap();
    assert_eq!(n.len(), 1);
    assert_eq!(n[0].0, "t1");
    assert_eq!(n[0].1["timestamp"], T0);
    assert_eq!(n[0].1["execution"]["jobId"], "job-a");
    assert_eq!(n[0].1["execution"]["jobDocument"], json!({}));
    // job-b queues behind job-a on t1 (no change) but is next on t2.
    let n = j
        .create(
            "job-b",
            json!({}),
            &things(&["t1", "t2", "t2"]),
            T0 + 1,
            &plain,
        )
        .unwrap();
    assert_eq!(n.len(), 1);
    assert_eq!(n[0].0, "t2");
    assert_eq!(
        j.executions_of("job-b").len(),
        2,
        "duplicate targets dropped"
    );
    assert!(j
        .create("job-b", json!({}), &things(&["t1"]), T0, &plain)
        .is_err());
    assert!(j
        .create("bad id!", json!({}), &things(&["t1"]), T0, &plain)
        .is_err());
    assert!(j.create("job-c", json!({}), &[], T0, &plain).is_err());
}

#[test]
fn update_accepted_carries_the_new_execution_state() {
    let mut j = jobs_with(&["job-a"], &["t1"]);
    let (ok, p) = update(
        &mut j,
        "t1",
        "job-a",
        json!({"status": "IN_PROGRESS", "statusDetails": {"receive": "1/3"}, "clientToken": "tok"}),
        T0 + 3,
    );
    assert!(ok);
    assert_eq!(
        p,
        json!({
            "executionState": {"status": "IN_PROGRESS", "statusDetails": {"receive": "1/3"}, "versionNumber": 2},
            "timestamp": T0 + 3,
            "clientToken": "tok",
        })
    );
    let e = j.execution("t1", "job-a").unwrap();
    assert_eq!(e.started_at, Some(T0 + 3));
    assert_eq!(e.last_updated_at, T0 + 3);
    // The reference agent's exact payload is accepted.
    let r = j.update_plain(
        "t1",
        "job-a",
        br#"{"status":"IN_PROGRESS","statusDetails":{"self_test":"ready","updatedBy":"0x01020003"}}"#,
        T0 + 4,
    );
    assert!(r.accepted);
    assert_eq!(j.execution("t1", "job-a").unwrap().started_at, Some(T0 + 3));
}

#[test]
fn status_details_are_replaced_not_merged_and_kept_when_absent() {
    let mut j = jobs_with(&["job-a"], &["t1"]);
    update(
        &mut j,
        "t1",
        "job-a",
        json!({"status": "IN_PROGRESS", "statusDetails": {"a": "1", "b": "2"}}),
        T0,
    );
    update(
        &mut j,
        "t1",
        "job-a",
        json!({"status": "IN_PROGRESS", "statusDetails": {"c": "3"}}),
        T0,
    );
    let e = j.execution("t1", "job-a").unwrap();
    assert_eq!(e.status_details.len(), 1);
    assert_eq!(e.status_details["c"], "3");
    let (_, p) = update(&mut j, "t1", "job-a", json!({"status": "IN_PROGRESS"}), T0);
    assert_eq!(p["executionState"]["statusDetails"], json!({"c": "3"}));
    assert_eq!(p["executionState"]["versionNumber"], 4);
    // next/get shows them.
    let r = j.get_next_plain("t1", b"{}", T0);
    assert_eq!(r.payload["execution"]["statusDetails"], json!({"c": "3"}));
}

#[test]
fn terminal_executions_reject_every_update() {
    let mut j = jobs_with(&["job-a", "job-b"], &["t1"]);
    update(&mut j, "t1", "job-a", json!({"status": "IN_PROGRESS"}), T0);
    let r = j.update_plain(
        "t1",
        "job-a",
        br#"{"status":"SUCCEEDED","statusDetails":{"reason":"accepted  v1.2.3"}}"#,
        T0 + 1,
    );
    assert!(r.accepted);
    // Next execution changed: notify-next with job-b.
    assert_eq!(r.notify.len(), 1);
    assert_eq!(r.notify[0].1["execution"]["jobId"], "job-b");
    for status in ["SUCCEEDED", "IN_PROGRESS", "FAILED"] {
        let (ok, p) = update(
            &mut j,
            "t1",
            "job-a",
            json!({"status": status, "clientToken": "c"}),
            T0 + 2,
        );
        assert!(!ok);
        assert_eq!(p["code"], "TerminalStateReached");
        assert_eq!(p["clientToken"], "c");
        assert_eq!(p["timestamp"], T0 + 2);
        assert!(p["message"].as_str().unwrap().contains("terminal"));
        assert_eq!(p["executionState"]["status"], "SUCCEEDED");
        assert_eq!(p["executionState"]["versionNumber"], 3);
    }
    assert_eq!(j.job("job-a").unwrap().state, JobState::Completed);
}

#[test]
fn the_last_terminal_update_notifies_an_empty_next() {
    let mut j = jobs_with(&["job-a"], &["t1"]);
    let r = j.update_plain("t1", "job-a", br#"{"status":"FAILED"}"#, T0 + 9);
    assert!(r.accepted, "QUEUED -> FAILED is allowed");
    assert_eq!(
        r.notify,
        vec![("t1".to_string(), json!({"timestamp": T0 + 9}))]
    );
}

#[test]
fn bad_updates_are_rejected_with_the_aws_codes() {
    let mut j = jobs_with(&["job-a"], &["t1"]);
    let code = |j: &mut Jobs, thing: &str, job: &str, body: &[u8]| {
        let r = j.update_plain(thing, job, body, T0);
        assert!(!r.accepted, "{}", String::from_utf8_lossy(body));
        r.payload["code"].as_str().unwrap().to_string()
    };
    assert_eq!(
        code(&mut j, "t1", "nope", br#"{"status":"IN_PROGRESS"}"#),
        "ResourceNotFound"
    );
    assert_eq!(
        code(&mut j, "t2", "job-a", br#"{"status":"IN_PROGRESS"}"#),
        "ResourceNotFound"
    );
    assert_eq!(code(&mut j, "t1", "job-a", b"{not json"), "InvalidJson");
    assert_eq!(code(&mut j, "t1", "job-a", b"[1]"), "InvalidJson");
    assert_eq!(code(&mut j, "t1", "job-a", b"{}"), "InvalidRequest");
    assert_eq!(
        code(&mut j, "t1", "job-a", br#"{"status":"DONE"}"#),
        "InvalidRequest"
    );
    assert_eq!(
        code(&mut j, "t1", "job-a", br#"{"status":5}"#),
        "InvalidRequest"
    );
    assert_eq!(
        code(&mut j, "t1", "job-a", br#"{"status":"QUEUED"}"#),
        "InvalidStateTransition"
    );
    assert_eq!(
        code(&mut j, "t1", "job-a", br#"{"status":"CANCELED"}"#),
        "InvalidStateTransition"
    );
    assert_eq!(
        code(&mut j, "t1", "job-a", br#"{"status":"TIMED_OUT"}"#),
        "InvalidStateTransition"
    );
    assert_eq!(
        code(
            &mut j,
            "t1",
            "job-a",
            br#"{"status":"IN_PROGRESS","statusDetails":{"a":1}}"#
        ),
        "InvalidRequest"
    );
    assert_eq!(
        code(
            &mut j,
            "t1",
            "job-a",
            br#"{"status":"IN_PROGRESS","statusDetails":{"bad key":"x"}}"#
        ),
        "InvalidRequest"
    );
    assert_eq!(
        code(
            &mut j,
            "t1",
            "job-a",
            br#"{"status":"IN_PROGRESS","statusDetails":{"k":""}}"#
        ),
        "InvalidRequest"
    );
    let long = format!(
        r#"{{"status":"IN_PROGRESS","clientToken":"{}"}}"#,
        "x".repeat(65)
    );
    assert_eq!(
        code(&mut j, "t1", "job-a", long.as_bytes()),
        "InvalidRequest"
    );
    assert_eq!(
        code(
            &mut j,
            "t1",
            "job-a",
            br#"{"status":"IN_PROGRESS","expectedVersion":7}"#
        ),
        "VersionMismatch"
    );
    assert_eq!(
        code(
            &mut j,
            "t1",
            "job-a",
            br#"{"status":"IN_PROGRESS","executionNumber":2}"#
        ),
        "ResourceNotFound"
    );
    // Nothing changed.
    assert_eq!(j.execution("t1", "job-a").unwrap().version_number, 1);
    let (ok, _) = update(
        &mut j,
        "t1",
        "job-a",
        json!({"status": "IN_PROGRESS", "expectedVersion": 1, "executionNumber": 1}),
        T0,
    );
    assert!(ok);
    // get/next with bad JSON is rejected too.
    let r = j.get_next_plain("t1", b"nope", T0);
    assert!(!r.accepted);
    assert_eq!(r.payload["code"], "InvalidJson");
}

#[test]
fn cancel_moves_queued_executions_and_with_force_in_progress_ones() {
    let mut j = jobs_with(&["job-a", "job-b"], &["t1", "t2"]);
    update(&mut j, "t1", "job-a", json!({"status": "IN_PROGRESS"}), T0);
    let plain = |job: &super::jobs::Job, _| job.document.clone();
    let n = j.cancel("job-a", false, T0 + 1, &plain).unwrap();
    // t2's next moved to job-b; t1 keeps job-a (IN_PROGRESS, not forced).
    assert_eq!(n.len(), 1);
    assert_eq!(n[0].0, "t2");
    assert_eq!(n[0].1["execution"]["jobId"], "job-b");
    assert_eq!(
        j.execution("t2", "job-a").unwrap().status,
        ExecStatus::Canceled
    );
    assert_eq!(
        j.execution("t1", "job-a").unwrap().status,
        ExecStatus::InProgress
    );
    let n = j.cancel("job-a", true, T0 + 2, &plain).unwrap();
    assert_eq!(n.len(), 1);
    assert_eq!(n[0].0, "t1");
    assert_eq!(n[0].1["execution"]["jobId"], "job-b");
    let e = j.execution("t1", "job-a").unwrap();
    assert_eq!(
        (e.status, e.version_number, e.last_updated_at),
        (ExecStatus::Canceled, 3, T0 + 2)
    );
    let (ok, p) = update(
        &mut j,
        "t1",
        "job-a",
        json!({"status": "SUCCEEDED"}),
        T0 + 3,
    );
    assert!(!ok);
    assert_eq!(p["code"], "TerminalStateReached");
    assert_eq!(j.job("job-a").unwrap().state, JobState::Canceled);
    assert!(j.cancel("nope", false, T0, &plain).is_err());
}

#[test]
fn step_timeout_moves_in_progress_to_timed_out() {
    let mut j = jobs_with(&["job-a"], &["t1"]);
    let plain = |job: &super::jobs::Job, _| job.document.clone();
    let (ok, _) = update(
        &mut j,
        "t1",
        "job-a",
        json!({"status": "IN_PROGRESS", "stepTimeoutInMinutes": 1}),
        T0,
    );
    assert!(ok);
    assert!(j.tick(T0 + 59, &plain).is_empty());
    let n = j.tick(T0 + 60, &plain);
    assert_eq!(n, vec![("t1".to_string(), json!({"timestamp": T0 + 60}))]);
    assert_eq!(
        j.execution("t1", "job-a").unwrap().status,
        ExecStatus::TimedOut
    );
    let (ok, p) = update(
        &mut j,
        "t1",
        "job-a",
        json!({"status": "IN_PROGRESS", "stepTimeoutInMinutes": 0}),
        T0,
    );
    assert!(!ok);
    assert_eq!(p["code"], "InvalidRequest");
}

#[test]
fn get_pending_lists_in_progress_and_queued_summaries() {
    let mut j = jobs_with(&["job-a", "job-b", "job-c"], &["t1"]);
    update(
        &mut j,
        "t1",
        "job-b",
        json!({"status": "IN_PROGRESS"}),
        T0 + 5,
    );
    update(&mut j, "t1", "job-c", json!({"status": "REJECTED"}), T0 + 6);
    let r = j.get_pending("t1", br#"{"clientToken":"p"}"#, T0 + 7);
    assert!(r.accepted);
    assert_eq!(
        r.payload,
        json!({
            "inProgressJobs": [{"jobId": "job-b", "queuedAt": T0 + 1, "startedAt": T0 + 5,
                "lastUpdatedAt": T0 + 5, "versionNumber": 2, "executionNumber": 1}],
            "queuedJobs": [{"jobId": "job-a", "queuedAt": T0, "lastUpdatedAt": T0,
                "versionNumber": 1, "executionNumber": 1}],
            "timestamp": T0 + 7,
            "clientToken": "p",
        })
    );
}

#[test]
fn start_next_moves_the_next_execution_to_in_progress() {
    let mut j = jobs_with(&["job-a"], &["t1"]);
    let plain = |job: &super::jobs::Job, _| job.document.clone();
    let r = j.start_next(
        "t1",
        br#"{"statusDetails":{"step":"download"},"clientToken":"s"}"#,
        T0 + 3,
        &plain,
    );
    assert!(r.accepted);
    let e = &r.payload["execution"];
    assert_eq!(e["jobId"], "job-a");
    assert_eq!(e["status"], "IN_PROGRESS");
    assert_eq!(e["startedAt"], T0 + 3);
    assert_eq!(e["statusDetails"], json!({"step": "download"}));
    assert_eq!(e["jobDocument"], json!({"op": "job-a"}));
    assert_eq!(r.payload["clientToken"], "s");
    assert!(r.notify.is_empty(), "the next execution did not change");
    // Again: the same IN_PROGRESS execution.
    let r = j.start_next("t1", b"{}", T0 + 4, &plain);
    assert_eq!(r.payload["execution"]["versionNumber"], 3);
    update(
        &mut j,
        "t1",
        "job-a",
        json!({"status": "SUCCEEDED"}),
        T0 + 5,
    );
    let r = j.start_next("t1", br#"{"clientToken":"s"}"#, T0 + 6, &plain);
    assert_eq!(r.payload, json!({"timestamp": T0 + 6, "clientToken": "s"}));
}

#[test]
fn status_names_round_trip() {
    for s in ExecStatus::ALL {
        assert_eq!(ExecStatus::parse(s.as_str()), Some(s));
    }
    assert_eq!(
        ExecStatus::ALL.iter().filter(|s| s.is_terminal()).count(),
        6
    );
}

// ---------------------------------------------------------------- Streams

fn file(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 256) as u8).collect()
}

fn streams_with(len: usize) -> (Streams, Vec<u8>) {
    let data = file(len);
    let mut s = Streams::default();
    s.insert(
        "AFR_OTA-XYZ".into(),
        vec![StreamFile {
            file_id: 0,
            data: Arc::new(data.clone()),
        }],
    );
    (s, data)
}

fn cbor_map(bytes: &[u8]) -> Vec<(String, Cbor)> {
    let v: Cbor = ciborium::de::from_reader(bytes).unwrap();
    v.into_map()
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k.into_text().unwrap(), v))
        .collect()
}

fn get(m: &[(String, Cbor)], k: &str) -> Cbor {
    m.iter()
        .find(|(x, _)| x == k)
        .map(|(_, v)| v.clone())
        .unwrap_or(Cbor::Null)
}

fn req(f: u32, l: u32, o: u32, bitmap: &[u8], n: u32) -> Vec<u8> {
    let r = ota_core::wire::cbor::StreamRequest {
        client_token: "rdy",
        file_id: f,
        block_size: l,
        block_offset: o,
        bitmap,
        number_of_blocks: n,
    };
    let mut buf = vec![0; r.encoded_len()];
    let k = r.encode(&mut buf).unwrap();
    buf.truncate(k);
    buf
}

fn data(reply: StreamReply) -> Vec<Vec<u8>> {
    match reply {
        StreamReply::Data(d) => d,
        StreamReply::Rejected(r) => panic!("rejected: {:?}", cbor_map(&r)),
    }
}

fn rejected_code(reply: StreamReply) -> (String, Vec<(String, Cbor)>) {
    match reply {
        StreamReply::Rejected(r) => {
            let m = cbor_map(&r);
            (get(&m, "o").into_text().unwrap(), m)
        }
        StreamReply::Data(d) => panic!("{} data messages", d.len()),
    }
}

#[test]
fn reference_request_gets_block_zero_as_an_indefinite_map() {
    let (s, file) = streams_with(10240);
    let request = [
        0xa6, 0x61, 0x63, 0x63, 0x72, 0x64, 0x79, 0x61, 0x66, 0x00, 0x61, 0x6c, 0x19, 0x10, 0x00,
        0x61, 0x6f, 0x00, 0x61, 0x62, 0x41, 0x07, 0x61, 0x6e, 0x01,
    ];
    assert_eq!(req(0, 4096, 0, &[7], 1), request, "the §3.1 bytes");
    let msgs = data(s.handle_get("AFR_OTA-XYZ", Encoding::Cbor, &request));
    assert_eq!(msgs.len(), 1);
    let m = &msgs[0];
    let head = [
        0xbf, 0x61, b'c', 0x63, b'r', b'd', b'y', 0x61, b'f', 0x00, 0x61, b'l', 0x19, 0x10, 0x00,
        0x61, b'i', 0x00, 0x61, b'p', 0x59, 0x10, 0x00,
    ];
    assert_eq!(&m[..head.len()], head);
    assert_eq!(&m[head.len()..m.len() - 1], &file[..4096]);
    assert_eq!(*m.last().unwrap(), 0xff);
    assert_eq!(m.len(), 4096 + 24, "≈24 bytes of overhead, as the service");
    // Independent decoder.
    let map = cbor_map(m);
    let keys: Vec<_> = map.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["c", "f", "l", "i", "p"]);
    assert_eq!(get(&map, "p").into_bytes().unwrap(), file[..4096]);
    // The agent's decoder.
    let b = ota_core::wire::cbor::DataBlock::decode(m).unwrap();
    assert_eq!((b.file_id, b.block_index, b.block_size), (0, 0, 4096));
}

#[test]
fn bitmap_bits_are_lsb_first_from_the_offset_and_n_caps() {
    let (s, file) = streams_with(10240);
    // Blocks 0 and 2 wanted (0b101), n = 5: two blocks, the last one short.
    let msgs = data(s.handle_get("AFR_OTA-XYZ", Encoding::Cbor, &req(0, 4096, 0, &[0x05], 5)));
    assert_eq!(msgs.len(), 2);
    let b0 = cbor_map(&msgs[0]);
    let b2 = cbor_map(&msgs[1]);
    assert_eq!(get(&b0, "i"), Cbor::from(0));
    assert_eq!(get(&b2, "i"), Cbor::from(2));
    assert_eq!(get(&b2, "l"), Cbor::from(2048));
    assert_eq!(get(&b2, "p").into_bytes().unwrap(), file[8192..]);
    // n = 1 caps a full bitmap at one block; bits past the end are ignored.
    let msgs = data(s.handle_get("AFR_OTA-XYZ", Encoding::Cbor, &req(0, 4096, 0, &[0xff], 1)));
    assert_eq!(msgs.len(), 1);
    let msgs = data(s.handle_get("AFR_OTA-XYZ", Encoding::Cbor, &req(0, 4096, 0, &[0xff], 0)));
    assert_eq!(msgs.len(), 3, "n = 0: no cap");
    // Bit 0 is block o.
    let (s, _) = streams_with(256 * 20);
    let msgs = data(s.handle_get(
        "AFR_OTA-XYZ",
        Encoding::Cbor,
        &req(0, 256, 8, &[0x05, 0x80], 10),
    ));
    let idx: Vec<_> = msgs.iter().map(|m| get(&cbor_map(m), "i")).collect();
    assert_eq!(
        idx,
        [Cbor::from(8), Cbor::from(10)],
        "block 8+15=23 is past the end"
    );
}

#[test]
fn without_a_bitmap_n_blocks_from_the_offset() {
    let (s, _) = streams_with(256 * 10 + 1);
    let msgs = data(s.handle_get(
        "AFR_OTA-XYZ",
        Encoding::Cbor,
        &req_no_bitmap(256, 3, Some(4)),
    ));
    let idx: Vec<_> = msgs.iter().map(|m| get(&cbor_map(m), "i")).collect();
    assert_eq!(idx, [3, 4, 5, 6].map(Cbor::from));
    let msgs = data(s.handle_get("AFR_OTA-XYZ", Encoding::Cbor, &req_no_bitmap(256, 9, None)));
    assert_eq!(msgs.len(), 2, "blocks 9 and 10 (1 byte)");
    assert_eq!(get(&cbor_map(&msgs[1]), "l"), Cbor::from(1));
}

fn req_no_bitmap(l: u64, o: u64, n: Option<u64>) -> Vec<u8> {
    let mut w = super::cbor::Writer::default();
    w.begin_map()
        .text("f")
        .uint(0)
        .text("l")
        .uint(l)
        .text("o")
        .uint(o);
    if let Some(n) = n {
        w.text("n").uint(n);
    }
    w.end();
    w.buf
}

#[test]
fn at_most_128_kib_per_request() {
    let g = |l, n, bitmap: Option<Vec<u8>>| GetStream {
        client_token: None,
        version: None,
        file_id: 0,
        block_size: l,
        offset: 0,
        count: n,
        bitmap,
    };
    let len = 1 << 20;
    assert_eq!(
        streams::select_blocks(&g(256, None, None), len)
            .unwrap()
            .len(),
        512
    );
    assert_eq!(
        streams::select_blocks(&g(256, Some(1000), None), len)
            .unwrap()
            .len(),
        512
    );
    assert_eq!(
        streams::select_blocks(&g(4096, Some(1000), Some(vec![0xff; 8])), len)
            .unwrap()
            .len(),
        32
    );
    assert_eq!(
        streams::select_blocks(&g(131072, None, None), len).unwrap(),
        [0]
    );
}

#[test]
fn out_of_bounds_requests_are_rejected_with_short_and_long_keys() {
    let (s, _) = streams_with(10240);
    for (l, o, bitmap, n, want) in [
        (255, 0, vec![1], 1, StreamErrorCode::BlockSizeOutOfBounds),
        (131073, 0, vec![1], 1, StreamErrorCode::BlockSizeOutOfBounds),
        (4096, 3, vec![1], 1, StreamErrorCode::OffsetOutOfBounds),
        (4096, 98305, vec![1], 1, StreamErrorCode::OffsetOutOfBounds),
        (
            4096,
            0,
            vec![1],
            98305,
            StreamErrorCode::BlockCountLimitExceeded,
        ),
        (
            4096,
            0,
            vec![0xff; 12288],
            1,
            StreamErrorCode::BlockBitmapLimitExceeded,
        ),
    ] {
        let (code, m) =
            rejected_code(s.handle_get("AFR_OTA-XYZ", Encoding::Cbor, &req(0, l, o, &bitmap, n)));
        assert_eq!(code, want.as_str());
        assert_eq!(get(&m, "code").into_text().unwrap(), want.as_str());
        assert_eq!(get(&m, "c").into_text().unwrap(), "rdy");
        assert_eq!(get(&m, "clientToken").into_text().unwrap(), "rdy");
        assert_eq!(get(&m, "m"), get(&m, "message"));
    }
    let (code, _) =
        rejected_code(s.handle_get("AFR_OTA-NONE", Encoding::Cbor, &req(0, 4096, 0, &[1], 1)));
    assert_eq!(code, "ResourceNotFound");
    let (code, _) =
        rejected_code(s.handle_get("AFR_OTA-XYZ", Encoding::Cbor, &req(1, 4096, 0, &[1], 1)));
    assert_eq!(code, "ResourceNotFound");
    let (code, m) = rejected_code(s.handle_get("AFR_OTA-XYZ", Encoding::Cbor, b"\xa1\x61"));
    assert_eq!(code, "InvalidCbor");
    assert_eq!(
        get(&m, "c"),
        Cbor::Null,
        "no token when the request is unreadable"
    );
    let (code, _) = rejected_code(s.handle_get(
        "AFR_OTA-XYZ",
        Encoding::Cbor,
        &[0xa1, 0x61, b'l', 0x19, 0x10, 0x00],
    ));
    assert_eq!(code, "InvalidRequest", "f missing");
    let (code, _) = rejected_code(s.handle_get(
        "AFR_OTA-XYZ",
        Encoding::Cbor,
        &[0xa2, 0x61, b'f', 0x40, 0x61, b'l', 0x19, 0x10, 0x00],
    ));
    assert_eq!(code, "InvalidRequest", "f not an int");
    // The agent's decoder reads the rejection.
    let StreamReply::Rejected(r) =
        s.handle_get("AFR_OTA-XYZ", Encoding::Cbor, &req(0, 100, 0, &[1], 1))
    else {
        panic!()
    };
    let rej = ota_core::wire::cbor::StreamRejected::decode(&r).unwrap();
    assert_eq!(rej.code.as_str(), "BlockSizeOutOfBounds");
    assert_eq!(rej.client_token, Some("rdy"));
    assert_eq!(r[0], 0xbf, "indefinite map");
}

#[test]
fn json_requests_get_base64_blocks_and_hex_bitmaps() {
    let (s, file) = streams_with(256 * 44);
    assert_eq!(
        streams::parse_hex_bitmap("0x130080"),
        Some(vec![0x13, 0x00, 0x80])
    );
    let msgs = data(s.handle_get(
        "AFR_OTA-XYZ",
        Encoding::Json,
        br#"{"c":"j","f":0,"l":256,"o":20,"b":"0x130080"}"#,
    ));
    let v: Vec<Json> = msgs
        .iter()
        .map(|m| serde_json::from_slice(m).unwrap())
        .collect();
    let idx: Vec<_> = v.iter().map(|m| m["i"].as_u64().unwrap()).collect();
    assert_eq!(idx, [20, 21, 24, 43], "the service documentation's example");
    use base64::Engine as _;
    let p = base64::engine::general_purpose::STANDARD
        .decode(v[0]["p"].as_str().unwrap())
        .unwrap();
    assert_eq!(p, file[20 * 256..21 * 256]);
    assert_eq!(v[0]["c"], "j");
    assert_eq!(v[0]["l"], 256);
    let StreamReply::Rejected(r) = s.handle_get("AFR_OTA-XYZ", Encoding::Json, b"{") else {
        panic!()
    };
    let r: Json = serde_json::from_slice(&r).unwrap();
    assert_eq!(
        (r["o"].as_str(), r["code"].as_str()),
        (Some("InvalidJson"), Some("InvalidJson"))
    );
}

#[test]
fn stream_version_and_describe_stream() {
    let (mut s, _) = streams_with(10240);
    s.insert(
        "AFR_OTA-TWO".into(),
        vec![
            StreamFile {
                file_id: 0,
                data: Arc::new(vec![1; 10]),
            },
            StreamFile {
                file_id: 7,
                data: Arc::new(vec![2; 300]),
            },
        ],
    );
    let mut w = super::cbor::Writer::default();
    w.begin_map()
        .text("s")
        .uint(2)
        .text("f")
        .uint(0)
        .text("l")
        .uint(4096)
        .end();
    let (code, _) = rejected_code(s.handle_get("AFR_OTA-XYZ", Encoding::Cbor, &w.buf));
    assert_eq!(code, "VersionMismatch");
    let mut w = super::cbor::Writer::default();
    w.begin_map()
        .text("s")
        .uint(1)
        .text("f")
        .uint(0)
        .text("l")
        .uint(4096)
        .end();
    assert_eq!(
        data(s.handle_get("AFR_OTA-XYZ", Encoding::Cbor, &w.buf)).len(),
        3
    );
    // DescribeStream, CBOR.
    let d = s
        .handle_describe(
            "AFR_OTA-TWO",
            Encoding::Cbor,
            &[0xa1, 0x61, b'c', 0x61, b'd'],
        )
        .unwrap();
    let m = cbor_map(&d);
    assert_eq!(get(&m, "c"), Cbor::Text("d".into()));
    assert_eq!(get(&m, "s"), Cbor::from(1));
    let r = get(&m, "r").into_array().unwrap();
    let files: Vec<_> = r
        .into_iter()
        .map(|x| {
            let m: Vec<_> = x.into_map().unwrap();
            (m[0].1.clone(), m[1].1.clone())
        })
        .collect();
    assert_eq!(
        files,
        [
            (Cbor::from(0), Cbor::from(10)),
            (Cbor::from(7), Cbor::from(300))
        ]
    );
    // JSON, and errors.
    let d = s
        .handle_describe("AFR_OTA-TWO", Encoding::Json, b"")
        .unwrap();
    let v: Json = serde_json::from_slice(&d).unwrap();
    assert_eq!(v["r"], json!([{"f": 0, "z": 10}, {"f": 7, "z": 300}]));
    let e = s
        .handle_describe("AFR_OTA-NO", Encoding::Cbor, b"")
        .unwrap_err();
    assert_eq!(
        get(&cbor_map(&e), "o"),
        Cbor::Text("ResourceNotFound".into())
    );
    let e = s
        .handle_describe("AFR_OTA-TWO", Encoding::Cbor, b"zz")
        .unwrap_err();
    assert_eq!(get(&cbor_map(&e), "code"), Cbor::Text("InvalidCbor".into()));
}

// ---------------------------------------------------------------- OTA jobs through the topics

fn cloud() -> Cloud {
    Cloud::new(Some(Presigner {
        base: "http://127.0.0.1:8080".into(),
        secret: [1; 32],
        ttl_secs: 600,
    }))
}

fn ota(things: &[&str], protocols: Vec<Protocol>, files: Vec<Vec<u8>>) -> OtaUpdate {
    OtaUpdate {
        id: Some("testjob20".into()),
        things: things.iter().map(|t| t.to_string()).collect(),
        groups: Vec::new(),
        protocols,
        files: files
            .into_iter()
            .map(|data| OtaFile {
                data,
                filepath: Some("/test/demo".into()),
                file_type: Some(0),
                cert_file: Some("test.crt".into()),
                signature: Some("MEQCIF2QDvww1G/kpRGZ8FYvQrok1bSZvXjXefRk7sqNcyPTAiB4dvGt8fozIY5NC0vUDJ2MY42ZERYEcrbwA4n6q7vrBg==".into()),
            })
            .collect(),
    }
}

#[test]
fn ota_job_documents_have_the_cloud_shape_and_parse_in_the_agent() {
    let mut c = cloud();
    let (job_id, out) = c
        .create_ota_update(
            ota(&["thing1"], vec![Protocol::Mqtt], vec![file(10240)]),
            T0,
        )
        .unwrap();
    assert_eq!(job_id, "AFR_OTA-testjob20");
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].topic, "$aws/things/thing1/jobs/notify-next");
    assert!(!out[0].reply_to_requester);
    let replies = c.handle_publish(
        "$aws/things/thing1/jobs/$next/get",
        br#"{"clientToken":"0:thing1"}"#,
        T0,
    );
    assert_eq!(replies.len(), 1);
    assert_eq!(
        replies[0].topic,
        "$aws/things/thing1/jobs/$next/get/accepted"
    );
    assert!(replies[0].reply_to_requester);
    let v: Json = serde_json::from_slice(&replies[0].payload).unwrap();
    let f = &v["execution"]["jobDocument"]["afr_ota"]["files"][0];
    assert_eq!(f["filesize"], 10240);
    assert_eq!(f["fileid"], 0);
    assert_eq!(f["fileType"], 0);
    assert_eq!(f["update_data_url"], Json::Null);
    assert_eq!(f["auth_scheme"], Json::Null);
    let stream = v["execution"]["jobDocument"]["afr_ota"]["streamname"]
        .as_str()
        .unwrap();
    assert_eq!(stream.len(), 44, "AFR_OTA- + 36-character UUID");
    match ota_core::wire::job::parse::<1>(&replies[0].payload).unwrap() {
        ota_core::wire::job::JobMessage::Ota(doc) => {
            assert_eq!(doc.job_id, "AFR_OTA-testjob20");
            assert_eq!(doc.files[0].file_size, 10240);
            assert_eq!(doc.stream_name.unwrap().as_plain(), Some(stream));
        }
        other => panic!("{other:?}"),
    }
    // The stream serves it.
    let blocks = c.handle_publish(
        &format!("$aws/things/thing1/streams/{stream}/get/cbor"),
        &req(0, 4096, 0, &[7], 3),
        T0,
    );
    assert_eq!(blocks.len(), 3);
    assert!(blocks.iter().all(|b| b.topic
        == format!("$aws/things/thing1/streams/{stream}/data/cbor")
        && b.qos == 0));
    // Unknown topics are ignored.
    assert!(c
        .handle_publish("$aws/things/thing1/shadow/get", b"{}", T0)
        .is_empty());
    assert!(c.handle_publish("other/topic", b"{}", T0).is_empty());
}

#[test]
fn http_jobs_get_a_fresh_presigned_url_per_request() {
    let mut c = cloud();
    c.create_ota_update(
        ota(&["thing1"], vec![Protocol::Http], vec![file(300), file(5)]),
        T0,
    )
    .unwrap();
    let r = c.handle_publish("$aws/things/thing1/jobs/$next/get", b"{}", T0 + 100);
    let v: Json = serde_json::from_slice(&r[0].payload).unwrap();
    let o = &v["execution"]["jobDocument"]["afr_ota"];
    assert!(
        o.get("streamname").is_none(),
        "HTTP only: no stream name (JOB_DOC_HTTP)"
    );
    assert_eq!(o["protocols"], json!(["HTTP"]));
    let f1 = &o["files"][1];
    assert_eq!(f1["fileid"], 1);
    assert_eq!(f1["auth_scheme"], "aws.s3.presigned");
    let url = f1["update_data_url"].as_str().unwrap();
    assert!(url.starts_with("http://127.0.0.1:8080/ota/AFR_OTA-"));
    assert!(url.ends_with(&format!("&expires={}", T0 + 700)), "{url}");
    let target = url.strip_prefix("http://127.0.0.1:8080").unwrap();
    let (stream, id) = c
        .presigner
        .as_ref()
        .unwrap()
        .check(target, T0 + 100)
        .unwrap();
    assert_eq!(c.http_file(&stream, id).unwrap().len(), 5);
}

#[test]
fn jobs_replies_topics_and_groups() {
    let mut c = cloud();
    c.groups
        .insert("fleet".into(), vec!["a".into(), "b".into()]);
    let mut u = ota(&["c"], vec![Protocol::Mqtt], vec![file(10)]);
    u.groups = vec!["fleet".into()];
    let (job, out) = c.create_ota_update(u.clone(), T0).unwrap();
    assert_eq!(out.len(), 3);
    assert!(c.create_ota_update(u.clone(), T0).is_err(), "same id twice");
    u.id = None;
    u.groups = vec!["nope".into()];
    assert!(c.create_ota_update(u, T0).is_err(), "unknown group");
    let r = c.handle_publish(
        &format!("$aws/things/a/jobs/{job}/update"),
        br#"{"status":"IN_PROGRESS"}"#,
        T0,
    );
    assert_eq!(
        r[0].topic,
        format!("$aws/things/a/jobs/{job}/update/accepted")
    );
    let r = c.handle_publish(
        &format!("$aws/things/a/jobs/{job}/update"),
        br#"{"status":"SUCCEEDED"}"#,
        T0,
    );
    assert_eq!(r.len(), 2, "accepted + notify-next");
    assert_eq!(r[1].topic, "$aws/things/a/jobs/notify-next");
    let r = c.handle_publish(
        &format!("$aws/things/a/jobs/{job}/update"),
        br#"{"status":"SUCCEEDED"}"#,
        T0,
    );
    assert_eq!(
        r[0].topic,
        format!("$aws/things/a/jobs/{job}/update/rejected")
    );
    // DescribeJobExecution.
    let r = c.handle_publish(&format!("$aws/things/b/jobs/{job}/get"), b"{}", T0);
    assert_eq!(r[0].topic, format!("$aws/things/b/jobs/{job}/get/accepted"));
    let r = c.handle_publish("$aws/things/b/jobs/nope/get", b"{}", T0);
    assert_eq!(r[0].topic, "$aws/things/b/jobs/nope/get/rejected");
    let out = c.cancel_job(&job, false, T0).unwrap();
    assert_eq!(out.len(), 2, "b and c lose their next job");
    let shown = c.show_json(&job, T0).unwrap();
    assert_eq!(shown["executions"].as_array().unwrap().len(), 3);
    assert_eq!(
        c.list_json()[0]["executions"],
        json!({"SUCCEEDED": 1, "CANCELED": 2})
    );
}
