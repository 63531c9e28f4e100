//! End to end over a real mosquitto (spec §8.6): `ota serve --broker` (in-process, external
//! broker mode) and the simulated device of `ota_tool::device`, running the real agent. Each
//! test asserts the job's final state in the stand-in and the version the device runs.
//!
//! mosquitto must be installed (`scripts/setup.sh`); without it these tests fail.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::PathBuf;
use std::pin::pin;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::{mosquitto_binary, Mosquitto, TestClock};
use ota_core::wire::version::AppVersion;
use ota_tool::cloud::{OtaFile, OtaUpdate, Protocol};
use ota_tool::device::image::{self, Behavior};
use ota_tool::device::{run, running_version, DeviceEvent, DeviceOptions, DeviceReport};
use ota_tool::keys;
use ota_tool::serve::{MqttMode, ServeConfig, Server};
use p256::ecdsa::SigningKey;
use serde_json::json;
use tokio::sync::{mpsc, Notify};

const THING: &str = "e2e-thing";
/// 48 KiB + header: 13 blocks of 4 KiB.
const PAYLOAD: u32 = 48 * 1024;
/// Bound on one device run (not a speed assertion).
const RUN_BOUND: Duration = Duration::from_secs(120);

fn v(major: u8, minor: u8) -> AppVersion {
    AppVersion::new(major, minor, 0)
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

struct Env {
    mosq: Mosquitto,
    server: Server,
    dir: tempfile::TempDir,
    key: SigningKey,
    pem: Vec<u8>,
}

impl Env {
    async fn new() -> Env {
        Self::with(|_| {}).await
    }

    async fn with(tweak: impl FnOnce(&mut ServeConfig)) -> Env {
        let mosq = Mosquitto::start().await;
        let mut cfg = ServeConfig::loopback();
        tweak(&mut cfg);
        cfg.mqtt = MqttMode::External {
            host: "127.0.0.1".into(),
            port: mosq.port,
        };
        let server = Server::start(cfg).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (sk, pk) = keys::keygen(&dir.path().join("keys")).unwrap();
        Env {
            key: keys::read_signing_key(&sk).unwrap(),
            pem: std::fs::read(pk).unwrap(),
            mosq,
            server,
            dir,
        }
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("device")
    }

    fn opts(&self) -> DeviceOptions {
        let mut o = DeviceOptions::new(
            THING,
            self.state(),
            "127.0.0.1",
            self.mosq.port,
            self.pem.clone(),
        );
        o.request_timeout_ms = Some(1000);
        o.watchdog = Duration::from_millis(200);
        o.connect_within = Duration::from_secs(20);
        o
    }

    fn image(&self, version: AppVersion, behavior: Behavior) -> (Vec<u8>, Option<String>) {
        let img = image::build(version, PAYLOAD, behavior);
        let sig = keys::sign(&self.key, &img);
        (img, Some(sig))
    }

    fn job_for(&self, thing: &str, id: &str, img: Vec<u8>, sig: Option<String>) -> String {
        self.job_over(thing, id, img, sig, vec![Protocol::Mqtt])
    }

    fn job_over(
        &self,
        thing: &str,
        id: &str,
        img: Vec<u8>,
        sig: Option<String>,
        protocols: Vec<Protocol>,
    ) -> String {
        let update = OtaUpdate {
            id: Some(id.into()),
            things: vec![thing.into()],
            groups: Vec::new(),
            protocols,
            files: vec![OtaFile {
                data: img,
                filepath: Some("/firmware/app.bin".into()),
                file_type: Some(0),
                cert_file: Some("ota-signing-pub.pem".into()),
                signature: sig,
            }],
        };
        let (job, out) = self
            .server
            .cloud
            .lock()
            .unwrap()
            .create_ota_update(update, now())
            .unwrap();
        self.server.publisher.send(out);
        job
    }

    fn job(&self, id: &str, version: AppVersion, behavior: Behavior) -> String {
        let (img, sig) = self.image(version, behavior);
        self.job_for(THING, id, img, sig)
    }

    fn cancel(&self, job: &str) {
        let out = self
            .server
            .cloud
            .lock()
            .unwrap()
            .cancel_job(job, true, now())
            .unwrap();
        self.server.publisher.send(out);
    }

    fn status(&self, job: &str) -> String {
        let cloud = self.server.cloud.lock().unwrap();
        let e = cloud.jobs.execution(THING, job).unwrap();
        format!("{} {:?}", e.status.as_str(), e.status_details)
    }

    /// Wait (bounded) until the job's status starts with `want`.
    async fn expect_status(&self, job: &str, want: &str) {
        for _ in 0..200 {
            if self.status(job).starts_with(want) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("job {job}: want {want}, have {}", self.status(job));
    }

    fn version(&self) -> AppVersion {
        running_version(&self.state()).unwrap()
    }
}

/// Run the device to the end (no job pending); its report and events.
async fn run_device(opts: DeviceOptions) -> (DeviceReport, Vec<DeviceEvent>) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let report = tokio::time::timeout(RUN_BOUND, run(opts, Some(tx)))
        .await
        .expect("the device did not finish in time")
        .expect("device");
    let mut events = Vec::new();
    while let Ok(e) = rx.try_recv() {
        events.push(e);
    }
    (report, events)
}

/// Run the device, handing each event to `f`; `f` returning true stops (drops) the device.
/// Returns the report when the device ended by itself.
async fn run_watching(
    opts: DeviceOptions,
    mut f: impl FnMut(&DeviceEvent) -> bool,
) -> Option<DeviceReport> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut dev = pin!(run(opts, Some(tx)));
    let watch = async {
        loop {
            tokio::select! {
                r = &mut dev => return Some(r.expect("device")),
                Some(e) = rx.recv() => if f(&e) { return None },
            }
        }
    };
    tokio::time::timeout(RUN_BOUND, watch)
        .await
        .expect("the device did not finish in time")
}

fn blocks_of(events: &[DeviceEvent]) -> u32 {
    events
        .iter()
        .filter(|e| matches!(e, DeviceEvent::Block { .. }))
        .count() as u32
}

fn total_blocks() -> u32 {
    (PAYLOAD + image::HEADER_LEN as u32).div_ceil(4096)
}

async fn expect_outcome(env: &Env, job: &str, status: &str, version: AppVersion) {
    env.expect_status(job, status).await;
    assert_eq!(env.version(), version, "running version");
}

#[tokio::test]
async fn greater_version_updates_and_confirms() {
    let env = Env::new().await;
    let job = env.job("greater", v(1, 1), Behavior::Normal);
    let (report, events) = run_device(env.opts()).await;
    assert_eq!(report.initial_version, v(1, 0));
    assert_eq!(report.version, v(1, 1));
    assert_eq!(report.boots, 2);
    assert_eq!(blocks_of(&events), total_blocks());
    expect_outcome(&env, &job, "SUCCEEDED", v(1, 1)).await;
}

#[tokio::test]
async fn back_to_back_three_updates() {
    let env = Env::new().await;
    let jobs: Vec<String> = (1..=3)
        .map(|k| env.job(&format!("b2b-{k}"), v(1, k), Behavior::Normal))
        .collect();
    let (report, _) = run_device(env.opts()).await;
    assert_eq!(report.boots, 4);
    for j in &jobs {
        env.expect_status(j, "SUCCEEDED").await;
    }
    assert_eq!(env.version(), v(1, 3));
}

#[tokio::test]
async fn rollback_when_the_new_image_cannot_connect() {
    let env = Env::new().await;
    let job = env.job("noconnect", v(1, 1), Behavior::CannotConnect);
    let (_, events) = run_device(env.opts()).await;
    assert!(events.contains(&DeviceEvent::CannotConnect));
    expect_outcome(&env, &job, "FAILED", v(1, 0)).await;
}

#[tokio::test]
async fn same_version_is_rejected() {
    let env = Env::new().await;
    let job = env.job("same", v(1, 0), Behavior::Normal);
    run_device(env.opts()).await;
    expect_outcome(&env, &job, "FAILED", v(1, 0)).await;
    assert!(
        env.status(&job).contains("rejected"),
        "{}",
        env.status(&job)
    );
}

#[tokio::test]
async fn previous_version_is_rejected() {
    let env = Env::new().await;
    let job = env.job("previous", v(1, 0), Behavior::Normal);
    let mut opts = env.opts();
    opts.version = v(1, 2);
    run_device(opts).await;
    expect_outcome(&env, &job, "FAILED", v(1, 2)).await;
}

#[tokio::test]
async fn unsigned_image_is_rejected() {
    let env = Env::new().await;
    let (img, _) = env.image(v(1, 1), Behavior::Normal);
    let job = env.job_for(THING, "unsigned", img, None);
    let (report, _) = run_device(env.opts()).await;
    assert_eq!(report.boots, 1, "no reboot");
    expect_outcome(&env, &job, "FAILED", v(1, 0)).await;
}

#[tokio::test]
async fn untrusted_signer_is_rejected() {
    let env = Env::new().await;
    let (img, _) = env.image(v(1, 1), Behavior::Normal);
    let other = SigningKey::from_slice(&[7u8; 32]).unwrap();
    let sig = keys::sign(&other, &img);
    let job = env.job_for(THING, "untrusted", img, Some(sig));
    let (report, _) = run_device(env.opts()).await;
    assert_eq!(report.boots, 1, "no reboot");
    expect_outcome(&env, &job, "FAILED", v(1, 0)).await;
}

#[tokio::test]
async fn unsupported_signing_algorithm_is_rejected() {
    let env = Env::new().await;
    let (img, sig) = env.image(v(1, 1), Behavior::Normal);
    // An OTA update for another thing makes the stream; a job for ours carries its document
    // with the signature under another algorithm's key.
    let donor = env.job_for("donor-thing", "donor", img, sig.clone());
    let mut doc = {
        let cloud = env.server.cloud.lock().unwrap();
        cloud.jobs.job(&donor).unwrap().document.clone()
    };
    let file = doc["afr_ota"]["files"][0].as_object_mut().unwrap();
    file.remove("sig-sha256-ecdsa");
    file.insert("sig-sha1-rsa".into(), json!(sig));
    let job = "AFR_OTA-alg".to_string();
    let out = env
        .server
        .cloud
        .lock()
        .unwrap()
        .create_job(&job, doc, &[THING.into()], &[], now())
        .unwrap();
    env.server.publisher.send(out);
    let (report, _) = run_device(env.opts()).await;
    assert_eq!(report.boots, 1, "no reboot");
    expect_outcome(&env, &job, "FAILED", v(1, 0)).await;
}

#[tokio::test]
async fn image_failing_its_self_test_is_rolled_back() {
    let env = Env::new().await;
    let job = env.job("selftest", v(1, 1), Behavior::FailSelfTest);
    run_device(env.opts()).await;
    expect_outcome(&env, &job, "FAILED", v(1, 0)).await;
}

#[tokio::test]
async fn image_crashing_in_its_self_test_is_rolled_back() {
    let env = Env::new().await;
    let job = env.job("crash", v(1, 1), Behavior::Crash);
    let (_, events) = run_device(env.opts()).await;
    assert!(events.contains(&DeviceEvent::Crashed));
    expect_outcome(&env, &job, "FAILED", v(1, 0)).await;
}

#[tokio::test]
async fn disconnect_and_resume() {
    let env = Env::new().await;
    let job = env.job("resume", v(1, 1), Behavior::Normal);
    let mut opts = env.opts();
    opts.faults.disconnect_after_blocks = Some(5);
    let (report, events) = run_device(opts).await;
    assert!(events
        .iter()
        .any(|e| matches!(e, DeviceEvent::Disconnected(_))));
    // Resumed: at most the block in flight again, not the whole file.
    assert!(report.blocks <= total_blocks() + 1, "{}", report.blocks);
    expect_outcome(&env, &job, "SUCCEEDED", v(1, 1)).await;
}

#[tokio::test]
async fn power_cut_mid_download_resumes_from_the_journal() {
    let env = Env::new().await;
    let job = env.job("powercut", v(1, 1), Behavior::Normal);
    let ended = run_watching(env.opts(), |e| {
        matches!(e, DeviceEvent::Block { received: 6, .. })
    })
    .await;
    assert!(ended.is_none(), "cut before the end");
    let (report, _) = run_device(env.opts()).await;
    assert!(
        report.blocks < total_blocks(),
        "only the missing blocks: {}",
        report.blocks
    );
    expect_outcome(&env, &job, "SUCCEEDED", v(1, 1)).await;
}

#[tokio::test]
async fn job_cancelled_while_disconnected() {
    let env = Env::new().await;
    let job = env.job("cancel-offline", v(1, 1), Behavior::Normal);
    let gate = Arc::new(Notify::new());
    let mut opts = env.opts();
    opts.faults.disconnect_after_blocks = Some(4);
    opts.faults.reconnect_gate = Some(gate.clone());
    let ended = run_watching(opts, |e| {
        if matches!(e, DeviceEvent::Disconnected(_)) {
            env.cancel(&job);
            gate.notify_one();
        }
        false
    })
    .await;
    let report = ended.expect("the device ends: no job pending");
    assert_eq!(report.boots, 1);
    expect_outcome(&env, &job, "CANCELED", v(1, 0)).await;
}

#[tokio::test]
async fn two_updates_with_the_first_cancelled() {
    let env = Env::new().await;
    let first = env.job("first", v(1, 1), Behavior::Normal);
    let second = env.job("second", v(1, 2), Behavior::Normal);
    let mut cancelled = false;
    run_watching(env.opts(), |e| {
        if !cancelled && matches!(e, DeviceEvent::Block { received: 4, .. }) {
            cancelled = true;
            env.cancel(&first);
        }
        false
    })
    .await
    .expect("ends");
    env.expect_status(&first, "CANCELED").await;
    expect_outcome(&env, &second, "SUCCEEDED", v(1, 2)).await;
}

#[tokio::test]
async fn cancel_then_update() {
    let env = Env::new().await;
    let first = env.job("cancelled", v(1, 1), Behavior::Normal);
    let mut second = None;
    let mut succeeded = false;
    let mut opts = env.opts();
    // The cancel makes the device idle for a moment: keep it running until the second job.
    opts.follow = true;
    let stopped = run_watching(opts, |e| match e {
        DeviceEvent::Block { received: 4, .. } if second.is_none() => {
            env.cancel(&first);
            second = Some(env.job("after", v(1, 2), Behavior::Normal));
            false
        }
        DeviceEvent::Status { job_id, payload } => {
            succeeded |= Some(job_id) == second.as_ref() && payload.contains("SUCCEEDED");
            false
        }
        DeviceEvent::Idle => succeeded,
        _ => false,
    })
    .await;
    assert!(stopped.is_none());
    env.expect_status(&first, "CANCELED").await;
    expect_outcome(&env, second.as_ref().unwrap(), "SUCCEEDED", v(1, 2)).await;
}

#[tokio::test]
async fn dropped_blocks_are_requested_again() {
    let env = Env::new().await;
    let job = env.job("dropped", v(1, 1), Behavior::Normal);
    let mut opts = env.opts();
    opts.faults.drop_every = Some(4);
    run_device(opts).await;
    expect_outcome(&env, &job, "SUCCEEDED", v(1, 1)).await;
}

#[tokio::test]
async fn duplicated_blocks_are_ignored() {
    let env = Env::new().await;
    let job = env.job("duplicated", v(1, 1), Behavior::Normal);
    let mut opts = env.opts();
    opts.faults.duplicate_every = Some(3);
    run_device(opts).await;
    expect_outcome(&env, &job, "SUCCEEDED", v(1, 1)).await;
}

#[tokio::test]
async fn reordered_blocks_are_accepted() {
    let env = Env::new().await;
    let job = env.job("reordered", v(1, 1), Behavior::Normal);
    let mut opts = env.opts();
    opts.blocks_per_request = Some(4);
    opts.faults.reorder_every = Some(3);
    run_device(opts).await;
    expect_outcome(&env, &job, "SUCCEEDED", v(1, 1)).await;
}

/// Kill mosquitto and start it again on the same port.
fn restart_broker(mosq: &mut Mosquitto, dir: &std::path::Path) {
    let _ = mosq.child.kill();
    let _ = mosq.child.wait();
    let conf = dir.join("mosquitto-restart.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {} 127.0.0.1\nallow_anonymous true\npersistence false\n\
             log_dest stderr\nlog_type error\n",
            mosq.port
        ),
    )
    .unwrap();
    mosq.child = Command::new(mosquitto_binary())
        .arg("-c")
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
}

#[tokio::test]
async fn broker_restart_mid_download() {
    let mut env = Env::new().await;
    let job = env.job("restart", v(1, 1), Behavior::Normal);
    let dir = env.dir.path().to_path_buf();
    let opts = env.opts();
    let mut restarted = false;
    let mosq = &mut env.mosq;
    run_watching(opts, |e| {
        if !restarted && matches!(e, DeviceEvent::Block { received: 5, .. }) {
            restarted = true;
            restart_broker(mosq, &dir);
        }
        false
    })
    .await
    .expect("ends");
    assert!(restarted);
    expect_outcome(&env, &job, "SUCCEEDED", v(1, 1)).await;
}

#[tokio::test]
async fn http_data_path_updates() {
    let env = Env::new().await;
    let (img, sig) = env.image(v(1, 1), Behavior::Normal);
    let job = env.job_over(THING, "http", img, sig, vec![Protocol::Http]);
    let mut opts = env.opts();
    opts.http = true;
    let (report, events) = run_device(opts).await;
    assert_eq!(blocks_of(&events), total_blocks());
    assert_eq!(report.version, v(1, 1));
    expect_outcome(&env, &job, "SUCCEEDED", v(1, 1)).await;
}

#[tokio::test]
async fn presigned_url_expired_gets_a_fresh_one_and_resumes() {
    let clock = TestClock::new(now());
    let env = Env::with(|cfg| {
        cfg.clock = clock.clock();
        cfg.url_ttl_secs = 300;
    })
    .await;
    let (img, sig) = env.image(v(1, 1), Behavior::Normal);
    let job = env.job_over(THING, "expiry", img, sig, vec![Protocol::Http]);
    let mut opts = env.opts();
    opts.http = true;
    let mut expired = 0;
    let report = run_watching(opts, |e| {
        match e {
            DeviceEvent::Block { received: 3, .. } if expired == 0 => clock.advance(301),
            DeviceEvent::UrlExpired => expired += 1,
            _ => {}
        }
        false
    })
    .await
    .expect("ends");
    assert!(expired >= 1, "the URL expired during the download");
    assert!(
        report.blocks <= total_blocks() + 1,
        "resumed, not restarted: {}",
        report.blocks
    );
    expect_outcome(&env, &job, "SUCCEEDED", v(1, 1)).await;
}

fn psoc6_job(env: &Env, id: &str, version: AppVersion, behavior: Behavior) -> String {
    let img = ota_tool::device::psoc6_image(version, PAYLOAD, behavior).unwrap();
    let sig = keys::sign(&env.key, &img);
    env.job_for(THING, id, img, Some(sig))
}

#[tokio::test]
async fn psoc6_board_updates_through_its_simulated_mcuboot() {
    let env = Env::new().await;
    let job = psoc6_job(&env, "psoc6", v(1, 1), Behavior::Normal);
    let mut opts = env.opts();
    opts.board = ota_tool::device::Board::Psoc6;
    let (report, events) = run_device(opts).await;
    assert_eq!(report.boots, 2);
    assert!(events.iter().any(|e| matches!(
        e,
        DeviceEvent::Booted {
            decision: ota_tool::device::boot::BootDecision::Trial,
            ..
        }
    )));
    expect_outcome(&env, &job, "SUCCEEDED", v(1, 1)).await;
    // Confirmed: the next boot is a normal one on 1.1.0.
    let mut opts = env.opts();
    opts.board = ota_tool::device::Board::Psoc6;
    let (report, _) = run_device(opts).await;
    assert_eq!((report.boots, report.version), (1, v(1, 1)));
}

#[tokio::test]
async fn psoc6_board_rolls_back_an_image_that_crashes() {
    let env = Env::new().await;
    // The behaviour byte travels inside the MCUboot image's payload.
    let job = psoc6_job(&env, "psoc6-crash", v(1, 1), Behavior::Crash);
    let mut opts = env.opts();
    opts.board = ota_tool::device::Board::Psoc6;
    let (report, events) = run_device(opts).await;
    assert!(events.contains(&DeviceEvent::Crashed));
    assert_eq!(report.version, v(1, 0));
    expect_outcome(&env, &job, "FAILED", v(1, 0)).await;
}

fn board_job(env: &Env, id: &str, img: Vec<u8>) -> String {
    let sig = keys::sign(&env.key, &img);
    env.job_for(THING, id, img, Some(sig))
}

fn same54_opts(env: &Env) -> DeviceOptions {
    let mut opts = env.opts();
    opts.board = ota_tool::device::Board::Same54;
    opts.factory_key = Some(env.key.clone());
    opts
}

fn rolled_back_to(events: &[DeviceEvent], want: AppVersion) -> bool {
    events.iter().any(|e| {
        matches!(
            e,
            DeviceEvent::Booted {
                decision: ota_tool::device::boot::BootDecision::RolledBack,
                version,
                ..
            } if *version == want
        )
    })
}

fn has_trial_boot(events: &[DeviceEvent]) -> bool {
    events.iter().any(|e| {
        matches!(
            e,
            DeviceEvent::Booted {
                decision: ota_tool::device::boot::BootDecision::Trial,
                ..
            }
        )
    })
}

#[tokio::test]
async fn same54_board_updates_through_its_simulated_aws_bootloader() {
    let env = Env::new().await;
    let img = ota_tool::device::same54::same54_image(v(2, 0), PAYLOAD, Behavior::Normal);
    let job = board_job(&env, "same54", img);
    let (report, events) = run_device(same54_opts(&env)).await;
    assert!(events.contains(&DeviceEvent::Provisioned(v(1, 0))));
    assert_eq!(report.initial_version, v(1, 0));
    assert_eq!((report.boots, report.version), (2, v(2, 0)));
    assert!(has_trial_boot(&events));
    expect_outcome(&env, &job, "SUCCEEDED", v(2, 0)).await;
    // Committed: the next boot is a normal one on 2.0.0 (no bank swap back).
    let (report, events) = run_device(same54_opts(&env)).await;
    assert_eq!((report.boots, report.version), (1, v(2, 0)));
    assert!(!has_trial_boot(&events));
}

#[tokio::test]
async fn same54_board_rolls_back_an_image_failing_its_self_test() {
    let env = Env::new().await;
    let img = ota_tool::device::same54::same54_image(v(2, 0), PAYLOAD, Behavior::FailSelfTest);
    let job = board_job(&env, "same54-fail", img);
    let (report, events) = run_device(same54_opts(&env)).await;
    assert!(has_trial_boot(&events));
    assert!(rolled_back_to(&events, v(1, 0)));
    assert_eq!(report.version, v(1, 0));
    expect_outcome(&env, &job, "FAILED", v(1, 0)).await;
}

/// A job for a board whose firmware has its own file type (traveo: 141).
fn typed_job(env: &Env, id: &str, img: Vec<u8>, file_type: u32) -> String {
    let sig = keys::sign(&env.key, &img);
    let update = OtaUpdate {
        id: Some(id.into()),
        things: vec![THING.into()],
        groups: Vec::new(),
        protocols: vec![Protocol::Mqtt],
        files: vec![OtaFile {
            data: img,
            filepath: Some("/firmware/app.bin".into()),
            file_type: Some(file_type),
            cert_file: Some("ota-signing-pub.pem".into()),
            signature: Some(sig),
        }],
    };
    let (job, out) = env
        .server
        .cloud
        .lock()
        .unwrap()
        .create_ota_update(update, now())
        .unwrap();
    env.server.publisher.send(out);
    job
}

fn traveo_opts(env: &Env) -> DeviceOptions {
    let mut opts = env.opts();
    opts.board = ota_tool::device::Board::Traveo;
    opts
}

fn traveo_job(env: &Env, id: &str, version: AppVersion, behavior: Behavior) -> String {
    let img = ota_tool::device::traveo::traveo_image(version, PAYLOAD, behavior).unwrap();
    typed_job(env, id, img, pal_traveo::FIRMWARE_FILE_TYPE)
}

#[tokio::test]
async fn traveo_board_updates_through_its_simulated_dbm() {
    let env = Env::new().await;
    let job = traveo_job(&env, "traveo", v(2, 0), Behavior::Normal);
    let (report, events) = run_device(traveo_opts(&env)).await;
    assert!(events.contains(&DeviceEvent::Provisioned(v(1, 0))));
    assert_eq!(report.initial_version, v(1, 0));
    assert_eq!((report.boots, report.version), (2, v(2, 0)));
    assert!(has_trial_boot(&events));
    expect_outcome(&env, &job, "SUCCEEDED", v(2, 0)).await;
    // Confirmed: the next boot is a normal one on 2.0.0 in the upper bank.
    let (report, events) = run_device(traveo_opts(&env)).await;
    assert_eq!((report.boots, report.version), (1, v(2, 0)));
    assert!(!has_trial_boot(&events));
}

#[tokio::test]
async fn traveo_board_rolls_back_an_image_failing_its_self_test() {
    let env = Env::new().await;
    let job = traveo_job(&env, "traveo-fail", v(2, 0), Behavior::FailSelfTest);
    let (report, events) = run_device(traveo_opts(&env)).await;
    assert!(has_trial_boot(&events));
    assert!(rolled_back_to(&events, v(1, 0)));
    assert_eq!(report.version, v(1, 0));
    expect_outcome(&env, &job, "FAILED", v(1, 0)).await;
}

fn tfm_opts(env: &Env) -> DeviceOptions {
    let mut opts = env.opts();
    opts.board = ota_tool::device::Board::Tfm;
    opts
}

fn tfm_job(env: &Env, id: &str, version: AppVersion, behavior: Behavior) -> String {
    let img = ota_tool::device::tfm::tfm_image(version, PAYLOAD, behavior).unwrap();
    board_job(env, id, img)
}

#[tokio::test]
async fn tfm_board_updates_through_its_simulated_fwu_and_bl2() {
    let env = Env::new().await;
    let job = tfm_job(&env, "tfm", v(2, 0), Behavior::Normal);
    let (report, events) = run_device(tfm_opts(&env)).await;
    assert!(events.contains(&DeviceEvent::Provisioned(v(1, 0))));
    assert_eq!(report.initial_version, v(1, 0));
    assert_eq!((report.boots, report.version), (2, v(2, 0)));
    assert!(has_trial_boot(&events));
    expect_outcome(&env, &job, "SUCCEEDED", v(2, 0)).await;
    // Accepted: the next boot is a normal one on 2.0.0 (BL2 does not revert it).
    let (report, events) = run_device(tfm_opts(&env)).await;
    assert_eq!((report.boots, report.version), (1, v(2, 0)));
    assert!(!has_trial_boot(&events));
}

#[tokio::test]
async fn tfm_board_rolls_back_an_image_failing_its_self_test() {
    let env = Env::new().await;
    let job = tfm_job(&env, "tfm-fail", v(2, 0), Behavior::FailSelfTest);
    let (report, events) = run_device(tfm_opts(&env)).await;
    assert!(has_trial_boot(&events));
    assert!(rolled_back_to(&events, v(1, 0)));
    assert_eq!(report.version, v(1, 0));
    expect_outcome(&env, &job, "FAILED", v(1, 0)).await;
}

/// A trial image that crashes before confirming (a reset without confirm) on each board: the
/// board's bootloader (or, on traveo, `startup` at the next boot) brings v1 back.
#[tokio::test]
async fn same54_traveo_tfm_roll_back_an_image_that_crashes() {
    type Make = fn(AppVersion, u32, Behavior) -> Vec<u8>;
    let boards: [(ota_tool::device::Board, Make, u32); 3] = [
        (
            ota_tool::device::Board::Same54,
            ota_tool::device::same54::same54_image,
            0,
        ),
        (
            ota_tool::device::Board::Traveo,
            |v, n, b| ota_tool::device::traveo::traveo_image(v, n, b).unwrap(),
            pal_traveo::FIRMWARE_FILE_TYPE,
        ),
        (
            ota_tool::device::Board::Tfm,
            |v, n, b| ota_tool::device::tfm::tfm_image(v, n, b).unwrap(),
            0,
        ),
    ];
    for (board, make, file_type) in boards {
        let env = Env::new().await;
        let job = typed_job(
            &env,
            "crash",
            make(v(2, 0), PAYLOAD, Behavior::Crash),
            file_type,
        );
        let mut opts = env.opts();
        opts.board = board;
        opts.factory_key = Some(env.key.clone());
        let (report, events) = run_device(opts).await;
        assert!(events.contains(&DeviceEvent::Crashed), "{board:?}");
        assert!(has_trial_boot(&events), "{board:?}");
        assert!(rolled_back_to(&events, v(1, 0)), "{board:?}: {events:?}");
        assert_eq!(report.version, v(1, 0), "{board:?}");
        expect_outcome(&env, &job, "FAILED", v(1, 0)).await;
    }
}

/// A power cut mid-download on each board: same54 and traveo resume from the journal (their
/// flash is written through); tfm's FWU partition loses the WRITING state at the reboot, as
/// TF-M's does, so the download starts again. Each ends SUCCEEDED on v2.
#[tokio::test]
async fn same54_traveo_tfm_power_cut_mid_download() {
    type Make = fn(AppVersion, u32, Behavior) -> Vec<u8>;
    let boards: [(ota_tool::device::Board, Make, u32, bool); 3] = [
        (
            ota_tool::device::Board::Same54,
            ota_tool::device::same54::same54_image,
            0,
            true,
        ),
        (
            ota_tool::device::Board::Traveo,
            |v, n, b| ota_tool::device::traveo::traveo_image(v, n, b).unwrap(),
            pal_traveo::FIRMWARE_FILE_TYPE,
            true,
        ),
        (
            ota_tool::device::Board::Tfm,
            |v, n, b| ota_tool::device::tfm::tfm_image(v, n, b).unwrap(),
            0,
            false,
        ),
    ];
    for (board, make, file_type, resumes) in boards {
        let env = Env::new().await;
        let img = make(v(2, 0), PAYLOAD, Behavior::Normal);
        let blocks = (img.len() as u32).div_ceil(4096);
        let job = typed_job(&env, "powercut", img, file_type);
        let mut opts = env.opts();
        opts.board = board;
        opts.factory_key = Some(env.key.clone());
        let ended = run_watching(opts.clone(), |e| {
            matches!(e, DeviceEvent::Block { received: 6, .. })
        })
        .await;
        assert!(ended.is_none(), "{board:?}: cut before the end");
        let (report, _) = run_device(opts).await;
        if resumes {
            assert!(
                report.blocks < blocks,
                "{board:?}: only the missing blocks: {}",
                report.blocks
            );
        }
        assert_eq!(report.version, v(2, 0), "{board:?}");
        expect_outcome(&env, &job, "SUCCEEDED", v(2, 0)).await;
    }
}
