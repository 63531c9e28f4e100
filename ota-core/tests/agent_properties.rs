//! Property tests: arbitrary event sequences never panic and keep the machine's invariants;
//! any delivery order of a file's blocks assembles the right image.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

mod common;
use common::*;
use ota_core::agent::{Completion, HttpFailure, Instant, State};
use ota_pal_traits::{PalError, PalErrorKind, PlatformImageState};
use proptest::prelude::*;
use std::collections::BTreeSet;

#[derive(Debug, Clone)]
enum Op {
    Doc(u8),
    Block {
        k: u8,
        size: u8,
        file: u8,
        copies: u8,
    },
    Advance(u32),
    Disconnect,
    Connect,
    FailNextWrite,
    Verify(bool),
    Ack,
    UpdateRejected(u8),
    StreamRejected(u8),
    Garbage(u8, Vec<u8>),
    CheckForUpdate,
    Abort,
    CustomResult(bool),
    Http(u8, bool),
    Completion(u8),
    Start(u8),
}

fn docs(i: u8) -> String {
    match i % 10 {
        0 => job_doc_a(),
        1 => job_doc_a().replace("testjob20", "testjob21"),
        2 => r#"{"timestamp":1}"#.into(),
        3 => self_test_doc("AFR_OTA-testjob20", "0x1020002", ""),
        4 => mqtt_job("AFR_OTA-testjob20", 8000),
        5 => r#"{"timestamp":1,"execution":{"jobId":"custom","jobDocument":{"x":1}}}"#.into(),
        6 => job_doc_a().replace(r#""fileid":0,"#, r#""fileid":0,"fileType":3,"#),
        7 => job_doc(
            "AFR_OTA-http",
            "QUEUED",
            "",
            &format!(
                r#"{{"protocols":["HTTP"],"files":[{}]}}"#,
                file_json(9000, r#","update_data_url":"https://x/y""#)
            ),
        ),
        8 => mqtt_job("AFR_OTA-zero", 0),
        _ => "{]".into(),
    }
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => any::<u8>().prop_map(Op::Doc),
        8 => (0u8..4, 0u8..4, 0u8..3, 1u8..3).prop_map(|(k, size, file, copies)| Op::Block { k, size, file, copies }),
        3 => (0u32..20_000).prop_map(Op::Advance),
        1 => Just(Op::Disconnect),
        1 => Just(Op::Connect),
        1 => Just(Op::FailNextWrite),
        1 => any::<bool>().prop_map(Op::Verify),
        2 => Just(Op::Ack),
        1 => any::<u8>().prop_map(Op::UpdateRejected),
        1 => any::<u8>().prop_map(Op::StreamRejected),
        1 => (any::<u8>(), proptest::collection::vec(any::<u8>(), 0..40)).prop_map(|(t, p)| Op::Garbage(t, p)),
        1 => Just(Op::CheckForUpdate),
        1 => Just(Op::Abort),
        1 => any::<bool>().prop_map(Op::CustomResult),
        2 => (0u8..4, any::<bool>()).prop_map(|(k, e)| Op::Http(k, e)),
        1 => any::<u8>().prop_map(Op::Completion),
        1 => (0u8..3).prop_map(Op::Start),
    ]
}

/// Checks the invariants on the log of this boot:
/// - each block written at most once per download, and a verify only after every block of the
///   file was written;
/// - no `RequestTrialBoot` of a file without a `Completion::Verified(Ok)` for that file in the
///   same download (since its `PrepareFile`);
/// - no `SUCCEEDED` published after a `ConfirmImage` without a `Completion::Confirmed(Ok)`
///   after it, and in a `PendingCommit` boot none without a `Confirmed(Ok)` at all;
/// - while downloading, the bitmap's received count equals the blocks reported written
///   (journalled) for the file;
/// - the bitmap's remaining count matches its bits.
fn check_log(h: &Harness) {
    let mut written = BTreeSet::new();
    let mut blocks = 0u32;
    let mut resumed = false;
    // Files whose verification passed in their current download.
    let mut verified_ok = BTreeSet::new();
    let mut verifying: Option<u8> = None;
    let mut current_file: Option<u8> = None;
    // `Some(ok)` once a ConfirmImage was issued: whether it was answered Ok since.
    let mut confirm: Option<bool> = None;
    let mut confirmed_ever = false;
    let mut completions = h.completed.iter().peekable();
    for (i, e) in h.log.iter().enumerate() {
        while let Some((_, c)) = completions.next_if(|(at, _)| *at <= i) {
            match c {
                Completion::Verified(r) => {
                    if let (Ok(()), Some(f)) = (r, verifying) {
                        verified_ok.insert(f);
                    }
                    verifying = None;
                }
                Completion::Confirmed(Ok(())) => {
                    if confirm.is_some() {
                        confirm = Some(true);
                    }
                    confirmed_ever = true;
                }
                _ => {}
            }
        }
        match e {
            Ev::Prepare {
                size,
                resume,
                index,
                ..
            } => {
                written.clear();
                resumed = *resume;
                blocks = size.div_ceil(h.block_size);
                verified_ok.remove(index);
                current_file = Some(*index);
            }
            Ev::Abort => {
                written.clear();
                verified_ok.clear();
            }
            Ev::Write(k) => {
                assert!(written.insert(*k), "block {k} written twice")
            }
            Ev::Verify => {
                // After a resume the blocks of the previous boot are not in this log.
                if !resumed {
                    assert_eq!(
                        written.len() as u32,
                        blocks,
                        "verify before every block was written"
                    );
                }
                written.clear();
                verifying = current_file;
            }
            Ev::TrialBoot(f) => assert!(
                verified_ok.contains(f),
                "trial boot of file {f} without a passed verification in its download: {:?}",
                h.log.iter().map(Ev::text).collect::<Vec<_>>()
            ),
            Ev::Confirm => confirm = Some(false),
            Ev::Pub(t, p, _) if t.ends_with("/update") => {
                let text = String::from_utf8_lossy(p);
                if text.contains(r#""status":"SUCCEEDED""#) {
                    assert_ne!(confirm, Some(false), "SUCCEEDED before the confirm passed");
                    if h.platform == PlatformImageState::PendingCommit {
                        assert!(confirmed_ever, "SUCCEEDED on trial without a confirm");
                    }
                }
            }
            _ => {}
        }
    }
    let b = h.agent.bitmap();
    let ones: u32 = b.as_bytes().iter().map(|x| x.count_ones()).sum();
    assert_eq!(b.remaining(), ones);
    if h.agent.state() == State::Downloading {
        let journalled: BTreeSet<u32> = h.journal_blocks.iter().copied().collect();
        assert_eq!(
            b.received(),
            journalled.len() as u32,
            "bitmap received count != blocks reported written"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_event_sequences_keep_the_invariants(
        platform in 0u8..3,
        ops in proptest::collection::vec(op(), 1..80),
    ) {
        let mut cfg = config();
        cfg.http_enabled = true;
        cfg.blocks_per_request = 2;
        cfg.rx_buffer_len = 9000;
        let mut h = Harness::new(cfg);
        h.serve_blocks = false;
        h.auto_ack = false;
        h.image = image(10240);
        h.platform = [PlatformImageState::Valid, PlatformImageState::PendingCommit, PlatformImageState::Invalid][platform as usize];
        h.boot();
        for op in ops {
            let now = h.now();
            match op {
                Op::Start(p) => {
                    // A reboot, keeping storage and journal.
                    h.platform = [PlatformImageState::Valid, PlatformImageState::PendingCommit, PlatformImageState::Invalid][p as usize];
                    h.reboot(cfg);
                }
                Op::Doc(i) => {
                    let t = if i % 2 == 0 { "jobs/notify-next" } else { "jobs/$next/get/accepted" };
                    h.deliver(&topic(t), docs(i / 2).as_bytes());
                }
                Op::Block { k, size, file, copies } => {
                    // Mostly well-formed blocks of the file being downloaded.
                    let file_size = h.log.iter().rev().find_map(|e| match e {
                        Ev::Prepare { size, .. } => Some(*size as usize),
                        _ => None,
                    }).unwrap_or(10240);
                    let start = usize::from(k) * 4096;
                    let good = file_size.saturating_sub(start).min(4096);
                    let len = match size { 0 | 1 => good, 2 => 0, _ => 4097 };
                    let file = u32::from(file == 2);
                    let data = vec![k; len];
                    for _ in 0..copies {
                        h.deliver(&topic("streams/AFR_OTA-XYZ/data/cbor"), &data_block(file, u32::from(k), &data));
                    }
                }
                Op::Advance(ms) => h.advance(u64::from(ms)),
                Op::Disconnect => h.agent.disconnected(now),
                Op::Connect => { h.agent.connected(now); h.run(); }
                Op::FailNextWrite => {
                    let k = h.agent.bitmap().first_wanted().unwrap_or(0);
                    h.fail_write = Some((k, PalError::new(PalErrorKind::FileClose)));
                }
                Op::Verify(ok) => {
                    h.verify_result = if ok { Ok(()) } else { Err(PalError::new(PalErrorKind::SignatureCheckFailed)) };
                }
                Op::Ack => {
                    for j in ["AFR_OTA-testjob20", "AFR_OTA-testjob21", "custom", "AFR_OTA-http"] {
                        h.deliver(&topic(&format!("jobs/{j}/update/accepted")), b"{}");
                    }
                }
                Op::UpdateRejected(c) => {
                    let code = ["TerminalStateReached", "RequestThrottled", "ResourceNotFound", "x"][c as usize % 4];
                    h.deliver(&topic("jobs/AFR_OTA-testjob20/update/rejected"), format!(r#"{{"code":"{code}"}}"#).as_bytes());
                }
                Op::StreamRejected(c) => {
                    let mut out = Vec::new();
                    let code = ["ResourceNotFound", "InvalidCbor"][c as usize % 2];
                    ciborium::into_writer(&ciborium::value::Value::Map(vec![(ciborium::value::Value::Text("o".into()), ciborium::value::Value::Text(code.into()))]), &mut out).unwrap();
                    h.deliver(&topic("streams/AFR_OTA-XYZ/rejected/cbor"), &out);
                }
                Op::Garbage(t, p) => {
                    let topics = ["jobs/notify-next", "jobs/$next/get/accepted", "streams/AFR_OTA-XYZ/data/cbor", "jobs/AFR_OTA-testjob20/update/accepted", "streams/AFR_OTA-XYZ/rejected/cbor", "jobs/$next/get/rejected"];
                    h.deliver(&topic(topics[t as usize % topics.len()]), &p);
                }
                Op::CheckForUpdate => { h.agent.check_for_update(now); h.run(); }
                Op::Abort => { h.agent.abort_job(now); h.run(); }
                Op::CustomResult(claim) => {
                    let u = claim.then_some(ota_core::wire::status::StatusUpdate::Progress { received: 1, total: 2 });
                    h.agent.custom_job_result(now, u);
                    h.run();
                }
                Op::Http(k, expired) => {
                    if expired {
                        h.agent.http_failed(now, HttpFailure::Expired);
                    } else {
                        let start = usize::from(k) * 4096;
                        let end = (start + 4096).min(9000);
                        if start < end {
                            let data = vec![k; end - start];
                            if let ota_core::agent::Received::Block { index, offset, data } = h.agent.handle_http_block(now, u32::from(k), &data) {
                                let d = data.to_vec();
                                h.write_block(index, offset, &d);
                            }
                        }
                    }
                    h.run();
                }
                Op::Completion(c) => {
                    let r = if c & 1 == 0 { Ok(()) } else { Err(PalError::new(PalErrorKind::CommitFailed)) };
                    let completion = match (c >> 1) % 5 {
                        0 => Completion::Prepared(r),
                        1 => Completion::Verified(r),
                        2 => Completion::TrialBootRequested(r),
                        3 => Completion::Confirmed(r),
                        _ => Completion::SelfTest(r.is_ok()),
                    };
                    h.completed.push((h.log.len(), completion));
                    h.agent.complete(now, completion);
                    h.run();
                }
            }
            check_log(&h);
            if let Some(t) = h.agent.poll_timeout() {
                prop_assert!(t >= Instant(0));
            }
        }
    }

    #[test]
    fn any_delivery_order_assembles_the_image(
        blocks in 1u32..24,
        tail in 1u32..=256,
        order_seed in proptest::collection::vec(any::<u32>(), 24),
        dups in proptest::collection::vec(0u8..3, 24),
    ) {
        let mut cfg = config();
        cfg.block_size = 256;
        let size = (blocks - 1) * 256 + tail;
        let mut h = Harness::new(cfg);
        h.image = image(size as usize);
        h.job = Some(mqtt_job("AFR_OTA-order", size));
        h.serve_blocks = false;
        h.boot();
        let mut order: Vec<u32> = (0..blocks).collect();
        order.sort_by_key(|k| order_seed[*k as usize]);
        for k in order {
            let start = (k * 256) as usize;
            let end = (start + 256).min(size as usize);
            let msg = data_block(0, k, &h.image[start..end]);
            for _ in 0..=dups[k as usize] {
                h.deliver(&topic("streams/AFR_OTA-XYZ/data/cbor"), &msg);
            }
        }
        prop_assert_eq!(&h.storage, &h.image);
        prop_assert_eq!(h.count(&Ev::Verify), 1);
        prop_assert_eq!(h.written.len() as u32, blocks);
        check_log(&h);
    }
}
