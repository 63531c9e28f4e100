//! Items a, b, c, g: lost get-next retried with backoff, rejected replies handled, several
//! blocks in flight with the window form of the request, a 4096-block file, retries exhausted
//! fail the job and keep the agent alive, and statuses wait for `update/accepted`.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

mod common;
use common::*;
use ota_core::agent::State;

fn get_next_times(h: &Harness) -> usize {
    h.log
        .iter()
        .filter(|e| matches!(e, Ev::Pub(t, _, _) if t.ends_with("$next/get")))
        .count()
}

#[test]
fn a_lost_get_next_reply_is_retried_with_backoff() {
    let mut h = Harness::new(config());
    h.job = Some(job_doc_a());
    h.lose_get_next = 3;
    h.boot();
    assert_eq!(h.state(), State::RequestingJob);
    assert_eq!(h.agent.poll_timeout().unwrap().0, 5_000);
    h.advance(5_000);
    assert_eq!(get_next_times(&h), 2);
    assert_eq!(h.agent.poll_timeout().unwrap().0, 15_000, "doubled to 10 s");
    h.advance(10_000);
    assert_eq!(get_next_times(&h), 3);
    assert_eq!(h.agent.poll_timeout().unwrap().0, 35_000, "doubled to 20 s");
    h.advance(20_000);
    assert_eq!(get_next_times(&h), 4);
    assert_eq!(h.storage, h.image, "the fourth reply got through");
}

#[test]
fn the_backoff_is_capped() {
    let mut h = Harness::new(config());
    h.lose_get_next = 1000;
    h.boot();
    for _ in 0..12 {
        h.fire();
    }
    let now = h.now;
    assert_eq!(h.agent.poll_timeout().unwrap().0 - now, 300_000);
}

#[test]
fn get_next_rejected_waits_for_the_backoff_then_retries() {
    let mut h = Harness::new(config());
    h.lose_get_next = 1;
    h.boot();
    h.deliver(
        &topic("jobs/$next/get/rejected"),
        br#"{"code":"RequestThrottled","message":"x"}"#,
    );
    assert_eq!(get_next_times(&h), 1);
    h.job = Some(job_doc_a());
    h.fire();
    assert_eq!(get_next_times(&h), 2);
    assert_eq!(h.storage, h.image);
}

#[test]
fn several_blocks_per_request_are_capped_by_the_receive_buffer() {
    let mut cfg = config();
    cfg.blocks_per_request = 8;
    cfg.rx_buffer_len = 2 * (4096 + 64) + 100;
    assert_eq!(cfg.effective_blocks_per_request(), 2);
    let mut h = Harness::new(cfg);
    h.image = image(5 * 4096);
    h.job = Some(mqtt_job("AFR_OTA-n2", 5 * 4096));
    h.boot();
    let r: Vec<(u32, Vec<u8>, u32)> = h
        .requests
        .iter()
        .map(|r| (r.offset, r.bitmap.clone(), r.n))
        .collect();
    assert_eq!(
        r,
        [(0, vec![0x1f], 2), (0, vec![0x1c], 2), (0, vec![0x10], 1)],
        "a new request once both blocks of the last one landed"
    );
    assert_eq!(h.storage, h.image);
}

#[test]
fn a_4096_block_file_uses_small_windowed_requests() {
    let mut cfg = config();
    cfg.block_size = 256;
    cfg.blocks_per_request = 16;
    cfg.rx_buffer_len = 16 * (256 + 64);
    let size = 4096 * 256;
    let mut h = Harness::new(cfg);
    h.image = image(size);
    h.job = Some(mqtt_job("AFR_OTA-big", size as u32));
    h.boot();
    assert_eq!(h.storage, h.image);
    assert_eq!(h.requests.len(), 256);
    for (i, r) in h.requests.iter().enumerate() {
        assert_eq!(r.offset, 16 * i as u32, "window offset (o)");
        assert_eq!(r.bitmap, [0xff, 0xff], "two bitmap bytes, not 512");
        assert_eq!(r.n, 16);
    }
    assert!(h.statuses().last().unwrap().contains("ready"));
}

#[test]
fn a_lost_block_is_requested_again_on_timeout() {
    let mut h = Harness::new(config());
    h.job = Some(job_doc_a());
    h.lose_blocks_once.insert(1);
    h.boot();
    assert_eq!(h.written, [0]);
    h.advance(10_000);
    assert_eq!(h.written, [0, 1, 2]);
    assert_eq!(h.requests[2].bitmap, [0x06]);
}

#[test]
fn running_out_of_retries_fails_the_job_and_the_agent_stays_alive() {
    let mut h = Harness::new(config());
    h.job = Some(job_doc_a());
    h.serve_blocks = false;
    h.boot();
    for _ in 0..32 {
        h.fire();
        assert_eq!(h.state(), State::Downloading);
    }
    h.fire();
    assert_eq!(h.requests.len(), 33);
    assert_eq!(
        h.statuses(),
        [r#"{"status":"FAILED","statusDetails":{"reason":"aborted: 0x0000000e"}}"#]
    );
    assert_eq!(h.count(&Ev::Abort), 1);
    assert_eq!(h.state(), State::WaitingForJob);
    // Still alive: the next job downloads.
    h.serve_blocks = true;
    h.job = Some(job_doc_a().replace("testjob20", "testjob21"));
    h.deliver(
        &topic("jobs/notify-next"),
        h.job.clone().unwrap().as_bytes(),
    );
    assert_eq!(h.storage, h.image);
}

#[test]
fn ready_is_republished_until_acknowledged_and_only_then_the_device_resets() {
    let mut h = Harness::new(config());
    h.job = Some(job_doc_a());
    h.auto_ack = false;
    h.boot();
    assert_eq!(h.resets, 0);
    h.advance(10_000);
    h.advance(10_000);
    let ready = h.statuses().iter().filter(|s| s.contains("ready")).count();
    assert_eq!(ready, 3);
    assert_eq!(h.resets, 0);
    // The first answer is the one to the "receive 1/3" progress report.
    h.deliver(&topic("jobs/AFR_OTA-testjob20/update/accepted"), b"{}");
    assert_eq!(h.resets, 0);
    h.deliver(&topic("jobs/AFR_OTA-testjob20/update/accepted"), b"{}");
    assert_eq!(h.resets, 1);
}

#[test]
fn ack_never_coming_gives_up_after_max_retries() {
    let mut cfg = config();
    cfg.max_retries = 2;
    let mut h = Harness::new(cfg);
    h.job = Some(job_doc_a());
    h.auto_ack = false;
    h.boot();
    h.fire();
    h.fire();
    assert_eq!(h.resets, 0);
    h.fire();
    assert_eq!(h.resets, 1);
}

#[test]
fn no_retries_while_disconnected() {
    let mut h = Harness::new(config());
    h.job = Some(job_doc_a());
    h.serve_blocks = false;
    h.boot();
    let now = h.now();
    h.agent.disconnected(now);
    assert_eq!(h.state(), State::Offline);
    assert_eq!(h.agent.poll_timeout(), None);
}
