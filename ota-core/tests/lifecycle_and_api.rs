//! Catalogue §8.1 A: init, lifecycle and public API. Our agent has no init/shutdown/event
//! queue (it is a value: `Agent::new` is init, dropping it is shutdown); suspend/resume are
//! `disconnected`/`connected`. The mapping of every reference test is in `tests/README.md`.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

mod common;
use common::*;
use ota_core::agent::{Agent, Completion, Config, ConfigError, Instant, State, Statistics};
use ota_core::wire::version::AppVersion;
use ota_pal_traits::PlatformImageState;

const V: AppVersion = AppVersion::new(1, 2, 3);

fn names(n: usize) -> String {
    "a".repeat(n)
}

#[test]
fn new_agent_is_stopped_with_zero_statistics_and_does_nothing_until_started() {
    let mut a: Agent = Agent::new(config()).unwrap();
    assert_eq!(a.state(), State::Stopped);
    assert_eq!(a.statistics(), Statistics::default());
    // Events before start are not consumed (reference: EventProcess_WhileStopped).
    a.connected(Instant(0));
    a.check_for_update(Instant(0));
    assert!(!a.abort_job(Instant(0)));
    assert_eq!(
        a.handle_publish(
            Instant(0),
            &topic("jobs/notify-next"),
            job_doc_a().as_bytes()
        ),
        ota_core::agent::Received::Nothing
    );
    a.handle_timeout(Instant(1_000_000));
    assert!(a.poll_command().is_none());
    assert_eq!(a.poll_timeout(), None);
    assert_eq!(a.state(), State::Stopped);
}

#[test]
fn thing_name_of_128_characters_is_accepted_129_refused() {
    let n128 = names(128);
    let mut a: Agent = Agent::new(Config::new(&n128, V)).unwrap();
    a.start(Instant(0), PlatformImageState::Valid, None);
    a.connected(Instant(0));
    let mut get_next = None;
    while let Some(c) = a.poll_command() {
        if let ota_core::agent::Command::Publish { topic, payload, .. } = c {
            get_next = Some((topic.to_string(), payload.to_vec()));
        }
    }
    let (t, p) = get_next.unwrap();
    assert_eq!(t, format!("$aws/things/{n128}/jobs/$next/get"));
    // Client token `0:` + the first 53 characters of the name (ThingNameTruncated).
    assert_eq!(
        String::from_utf8(p).unwrap(),
        format!(r#"{{"clientToken":"0:{}"}}"#, names(53))
    );

    let n129 = names(129);
    assert_eq!(
        Agent::<512>::new(Config::new(&n129, V)).err(),
        Some(ConfigError::InvalidThingName)
    );
    assert_eq!(
        Agent::<512>::new(Config::new("", V)).err(),
        Some(ConfigError::InvalidThingName),
        "the reference's NULL name"
    );
    assert_eq!(
        Agent::<512>::new(Config::new("thing/1", V)).err(),
        Some(ConfigError::InvalidThingName)
    );
}

#[test]
fn block_sizes_outside_256_to_128k_are_refused() {
    for (size, ok) in [(255, false), (256, true), (131_072, true), (131_073, false)] {
        let mut c = config();
        c.block_size = size;
        assert_eq!(Agent::<512>::new(c).is_ok(), ok, "{size}");
    }
}

#[test]
fn start_when_valid_requests_a_job() {
    let mut h = Harness::new(config());
    h.boot();
    assert_eq!(h.state(), State::WaitingForJob);
    assert_eq!(h.pubs("$next/get").len(), 1);
    assert_eq!(h.agent.poll_timeout(), None, "answered: no retry pending");
    assert_eq!(h.agent.statistics().job_requests, 1);
}

#[test]
fn start_in_each_platform_state() {
    for (platform, timer) in [
        (PlatformImageState::Valid, false),
        (PlatformImageState::Invalid, false),
        (PlatformImageState::Unknown, false),
        (PlatformImageState::PendingCommit, true),
    ] {
        let mut h = Harness::new(config());
        h.platform = platform;
        h.boot();
        assert_eq!(h.pubs("$next/get").len(), 1, "{platform:?}");
        // Only PendingCommit arms the self-test timer (ResumeSelfTestTimerRestart vs
        // ResumeNoSelfTestTimerRestart).
        assert_eq!(h.agent.poll_timeout().is_some(), timer, "{platform:?}");
        if timer {
            h.fire();
            assert_eq!(h.resets, 1, "no self-test job within 16 s → reset");
        }
    }
}

#[test]
fn start_twice_is_ignored() {
    let mut h = Harness::new(config());
    h.boot();
    let before = h.log.len();
    let now = h.now();
    h.agent.start(now, PlatformImageState::PendingCommit, None);
    h.run();
    assert_eq!(h.log.len(), before);
    assert_eq!(
        h.agent.poll_timeout(),
        None,
        "no self-test timer from the second start"
    );
}

#[test]
fn start_before_connect_waits_offline_then_requests() {
    let mut a: Agent = Agent::new(config()).unwrap();
    a.start(Instant(0), PlatformImageState::Valid, None);
    assert_eq!(a.state(), State::Offline);
    assert!(a.poll_command().is_none());
    a.connected(Instant(5));
    let mut n = 0;
    while a.poll_command().is_some() {
        n += 1;
    }
    assert!(n >= 4, "subscriptions + get-next");
    assert_eq!(a.state(), State::RequestingJob);
}

#[test]
fn check_for_update_in_each_state() {
    // Idle: asks.
    let mut h = Harness::new(config());
    h.boot();
    h.log.clear();
    let now = h.now();
    h.agent.check_for_update(now);
    h.run();
    assert_eq!(h.pubs("$next/get").len(), 1);
    // Downloading: ignored (the job is active).
    let mut h = Harness::new(config());
    h.job = Some(job_doc_a());
    h.serve_blocks = false;
    h.boot();
    assert_eq!(h.state(), State::Downloading);
    h.log.clear();
    let now = h.now();
    h.agent.check_for_update(now);
    h.run();
    assert!(h.log.is_empty());
    // Waiting for a PAL operation: ignored.
    let mut h = Harness::new(config());
    h.job = Some(job_doc_a());
    h.auto_pal = false;
    h.boot();
    assert_eq!(h.state(), State::WaitingForPal);
    h.log.clear();
    let now = h.now();
    h.agent.check_for_update(now);
    h.run();
    assert!(h.log.is_empty());
    // Offline: ignored (nothing can be sent).
    let mut h = Harness::new(config());
    h.boot();
    let now = h.now();
    h.agent.disconnected(now);
    h.log.clear();
    h.agent.check_for_update(now);
    h.run();
    assert!(h.log.is_empty());
}

#[test]
fn abort_with_a_job_fails_it_and_without_a_job_does_nothing() {
    let mut h = Harness::new(config());
    h.boot();
    let now = h.now();
    assert!(!h.agent.abort_job(now), "ImageStateAbortWithNoJob");
    h.run();
    assert!(h.statuses().is_empty());

    let mut h = Harness::new(config());
    h.job = Some(job_doc_a());
    h.serve_blocks = false;
    h.boot();
    let now = h.now();
    assert!(h.agent.abort_job(now));
    h.run();
    assert_eq!(
        h.statuses(),
        [r#"{"status":"FAILED","statusDetails":{"reason":"aborted: 0x00000013"}}"#]
    );
    assert_eq!(h.count(&Ev::Abort), 1);
    assert_eq!(h.state(), State::WaitingForJob);
}

#[test]
fn abort_while_a_pal_operation_runs_is_refused() {
    let mut h = Harness::new(config());
    h.job = Some(job_doc_a());
    h.auto_pal = false;
    h.boot();
    assert_eq!(h.state(), State::WaitingForPal);
    let now = h.now();
    assert!(!h.agent.abort_job(now));
}

#[test]
fn disconnect_suspends_and_connect_resumes_the_download_dropping_blocks_meanwhile() {
    let mut h = Harness::new(config());
    h.job = Some(job_doc_a());
    h.serve_blocks = false;
    h.boot();
    let b0 = data_block(0, 0, &h.image[..4096]);
    h.deliver(&topic("streams/AFR_OTA-XYZ/data/cbor"), &b0);
    assert_eq!(h.written, [0]);
    let now = h.now();
    h.agent.disconnected(now);
    assert_eq!(h.state(), State::Offline);
    assert_eq!(h.agent.poll_timeout(), None, "no retries while suspended");
    // Retry timers do not run while disconnected.
    h.log.clear();
    h.advance(60_000);
    assert!(h.log.is_empty());
    // A block the client still delivers after the drop (already in its buffer) is valid data
    // of the current file: kept, not re-requested (the reference drops events while
    // suspended; dropping would only cost a re-request).
    let b1 = data_block(0, 1, &h.image[4096..8192]);
    h.deliver(&topic("streams/AFR_OTA-XYZ/data/cbor"), &b1);
    assert_eq!(h.written, [0, 1]);
    assert!(
        h.log.iter().all(|e| !matches!(e, Ev::Pub(..))),
        "nothing sent offline: {:?}",
        h.texts()
    );
    // Resume: re-subscribe, re-read the job, continue from the bitmap.
    h.serve_blocks = true;
    h.log.clear();
    let now = h.now();
    h.agent.connected(now);
    h.run();
    assert!(h.texts()[0].starts_with("SUB"));
    assert_eq!(h.requests.last().unwrap().wanted(), [2]);
    assert_eq!(h.written, [0, 1, 2]);
    assert_eq!(h.storage, h.image);
    assert_eq!(h.count(&Ev::TrialBoot(0)), 1);
}

#[test]
fn statistics_count_packets_blocks_drops_duplicates_and_requests() {
    let mut h = Harness::new(config());
    h.job = Some(job_doc_a());
    h.duplicate_blocks = 2;
    h.boot();
    h.deliver(&topic("jobs/notify-next"), b"not json");
    let s = h.agent.statistics();
    assert_eq!(s.blocks_written, 3);
    // The copies of blocks 0 and 1; the copy of block 2 comes after the file is complete
    // and counts as dropped only.
    assert_eq!(s.duplicates, 2);
    // The 3 duplicates and the garbage document.
    assert!(s.packets_dropped >= 4, "{s:?}");
    assert_eq!(s.block_requests as usize, h.requests.len());
    assert_eq!(s.job_requests as usize, h.pubs("$next/get").len());
    // Every publish handed over was counted: job docs, 6 blocks, the acks, the garbage.
    assert!(s.packets_received >= 6 + 2, "{s:?}");
}

#[test]
fn after_a_finished_job_the_agent_waits_for_the_next_one() {
    // A job without firmware completes and the same agent takes the next job.
    let mut h = Harness::new(config());
    h.job = Some(job_doc_a().replace(r#""fileid":0,"#, r#""fileid":0,"fileType":3,"#));
    h.boot();
    assert!(h.statuses().last().unwrap().contains("SUCCEEDED"));
    assert_eq!(h.state(), State::WaitingForJob);
    h.job = Some(
        job_doc_a()
            .replace("testjob20", "testjob21")
            .replace(r#""fileid":0,"#, r#""fileid":0,"fileType":3,"#),
    );
    h.deliver(
        &topic("jobs/notify-next"),
        h.job.clone().unwrap().as_bytes(),
    );
    assert_eq!(h.count(&Ev::Verify), 2);
    assert_eq!(
        h.statuses()
            .iter()
            .filter(|s| s.contains("SUCCEEDED"))
            .count(),
        2
    );
}

#[test]
fn a_new_agent_after_a_reset_restarts_cleanly() {
    // The reference's restartOtaAfterShutdown(+DropEvents): a new value has no stale events.
    let mut h = Harness::new(config());
    h.job = Some(job_doc_a());
    h.boot();
    assert_eq!(h.resets, 1, "trial boot requested, reset");
    h.job = None;
    h.reboot(config());
    assert_eq!(h.state(), State::WaitingForJob);
    assert_eq!(h.agent.statistics().blocks_written, 0);
    let now = h.now();
    h.agent.complete(now, Completion::Verified(Ok(())));
    h.run();
    assert_eq!(
        h.count(&Ev::TrialBoot(0)),
        0,
        "a stale completion is ignored"
    );
}
