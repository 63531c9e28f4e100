//! Catalogue §8.1 F: what the DRIVER does when the MQTT client (subscribe, publish, receive)
//! or the HTTP client fails, and the reference's strerror tests mapped to our error names.
//! The reference turns each adapter failure into an `OtaErr_t` (`RequestJobFailed`,
//! `RequestFileBlockFailed`, `UpdateJobStatusFailed`, ...) inside its event loop; our driver
//! returns `Exit::Mqtt(e)` with the client's own error, the agent is marked offline (it keeps
//! its job, bitmap and pending final status) and `Driver::run` called again after the
//! reconnect re-subscribes and carries on. HTTP failures are retried on the request timeout
//! (`HttpFailure::Other`) or refresh the URL (`HttpFailure::Expired`).
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

mod common;
use common::{b64, data_block, job_doc, topic, FakeClock, StreamReq, THING};
use std::collections::VecDeque;

use ota_core::agent::{Agent, Config, HttpFailure, State};
use ota_core::driver::{
    Application, Driver, Exit, HttpRangeClient, MqttClient, MqttMessage, NoHttp,
};
use ota_core::wire::status::OtaErr;
use ota_core::wire::topic::Qos;
use ota_core::wire::version::AppVersion;
use ota_pal_traits::sim::{block_on, SimConfig, SimDevice};
use ota_pal_traits::{
    BootControl, FileInfo, FlashJournal, NorFlashImageStorage, PalError, PalErrorKind,
    PlatformImageState, Reset, Sha256EcdsaP256Verifier,
};
use p256::ecdsa::{signature::Signer, Signature, SigningKey};

const BLOCK: u32 = 1024;
const SIZE: u32 = 4 * BLOCK - 10;
const SLOT: u32 = 16 * 1024;
const AREA: u32 = 8 * 1024;
const JOB: &str = "AFR_OTA-adapters";

#[derive(Debug, PartialEq)]
enum MqttError {
    Idle,
    /// The injected failure, naming the operation.
    Failed(&'static str),
}

/// Jobs + Streams behind an in-memory client that fails the `nth` call of one operation.
struct Cloud {
    inbox: VecDeque<(String, Vec<u8>)>,
    log: Vec<String>,
    job: Option<String>,
    image: Vec<u8>,
    /// (operation, topic suffix, calls left before the failure).
    fail: Option<(&'static str, &'static str, u32)>,
    /// With nothing to deliver, `receive` waits (a real client) instead of ending the run,
    /// so the driver's timers fire.
    idle_pends: bool,
}

impl Cloud {
    fn check(&mut self, op: &'static str, topic: &str) -> Result<(), MqttError> {
        if let Some((o, suffix, left)) = self.fail.as_mut() {
            if *o == op && topic.ends_with(*suffix) {
                if *left == 0 {
                    self.fail = None;
                    self.log.push(format!("FAIL {op} {topic}"));
                    return Err(MqttError::Failed(op));
                }
                *left -= 1;
            }
        }
        Ok(())
    }

    fn statuses(&self) -> Vec<&str> {
        self.log
            .iter()
            .filter_map(|l| {
                l.strip_prefix("PUB ")
                    .and_then(|l| l.split_once("/update "))
            })
            .map(|(_, s)| s)
            .collect()
    }

    fn count(&self, prefix: &str) -> usize {
        self.log.iter().filter(|l| l.starts_with(prefix)).count()
    }
}

impl MqttClient for &mut Cloud {
    type Error = MqttError;

    async fn subscribe(&mut self, topic: &str, _qos: Qos) -> Result<(), MqttError> {
        self.check("subscribe", topic)?;
        self.log.push(format!("SUB {topic}"));
        Ok(())
    }

    async fn unsubscribe(&mut self, topic: &str) -> Result<(), MqttError> {
        self.check("unsubscribe", topic)?;
        self.log.push(format!("UNSUB {topic}"));
        Ok(())
    }

    async fn publish(&mut self, t: &str, payload: &[u8], _qos: Qos) -> Result<(), MqttError> {
        self.check("publish", t)?;
        let text = String::from_utf8(payload.to_vec()).unwrap_or_else(|_| "<cbor>".into());
        self.log.push(format!("PUB {t} {text}"));
        if t.ends_with("$next/get") {
            let doc = self
                .job
                .clone()
                .unwrap_or_else(|| r#"{"timestamp":1}"#.into());
            self.inbox
                .push_back((topic("jobs/$next/get/accepted"), doc.into_bytes()));
        } else if t.ends_with("/update") {
            if text.contains("SUCCEEDED") || text.contains("FAILED") {
                self.job = None;
            }
            self.inbox
                .push_back((format!("{t}/accepted"), b"{}".to_vec()));
        } else if t.ends_with("/get/cbor") {
            let req = StreamReq::decode(payload);
            for k in req.wanted() {
                let start = (k * req.block_size) as usize;
                let end = (start + req.block_size as usize).min(self.image.len());
                let msg = data_block(req.file_id, k, &self.image[start..end]);
                self.inbox
                    .push_back((topic("streams/AFR_OTA-S/data/cbor"), msg));
            }
        }
        Ok(())
    }

    async fn receive<'b>(&mut self, buf: &'b mut [u8]) -> Result<MqttMessage<'b>, MqttError> {
        if self.inbox.is_empty() && self.idle_pends {
            std::future::pending::<()>().await;
        }
        let (t, p) = self.inbox.pop_front().ok_or(MqttError::Idle)?;
        self.check("receive", &t)?;
        let (tb, pb) = buf.split_at_mut(t.len());
        tb.copy_from_slice(t.as_bytes());
        pb[..p.len()].copy_from_slice(&p);
        Ok(MqttMessage {
            topic: std::str::from_utf8(tb).unwrap(),
            payload: &pb[..p.len()],
        })
    }
}

struct App;

impl Application for App {
    async fn self_test(&mut self) -> bool {
        true
    }
}

#[derive(Default)]
struct Boot {
    staged: bool,
}

impl BootControl for &mut Boot {
    async fn platform_state(&mut self) -> Result<PlatformImageState, PalError> {
        Ok(PlatformImageState::Valid)
    }
    async fn request_trial_boot(&mut self, _file: &FileInfo<'_>) -> Result<(), PalError> {
        self.staged = true;
        Ok(())
    }
    async fn confirm(&mut self) -> Result<(), PalError> {
        Err(PalError::new(PalErrorKind::CommitFailed))
    }
    async fn reject(&mut self) -> Result<(), PalError> {
        Ok(())
    }
}

struct NoReset;

impl Reset for NoReset {
    fn reset(&mut self) {}
}

fn key() -> SigningKey {
    SigningKey::from_slice(&[0x33; 32]).unwrap()
}

fn image() -> Vec<u8> {
    (0..SIZE).map(|i| (i * 7 + (i >> 9)) as u8).collect()
}

fn doc(protocol: &str, img: &[u8]) -> String {
    let sig: Signature = key().sign(img);
    job_doc(
        JOB,
        "QUEUED",
        "",
        &format!(
            r#"{{"protocols":["{protocol}"],"streamname":"AFR_OTA-S","files":[{{"filepath":"/fw","filesize":{SIZE},"fileid":0,"update_data_url":"https://b.example/x","auth_scheme":"aws.s3.presigned","sig-sha256-ecdsa":"{}"}}]}}"#,
            b64(sig.to_der().as_bytes())
        ),
    )
}

fn cloud(fail: Option<(&'static str, &'static str, u32)>) -> Cloud {
    let img = image();
    Cloud {
        inbox: VecDeque::new(),
        log: Vec::new(),
        job: Some(doc("MQTT", &img)),
        image: img,
        fail,
        idle_pends: false,
    }
}

fn config() -> Config<'static> {
    let mut cfg = Config::new(THING, AppVersion::new(1, 0, 0));
    cfg.block_size = BLOCK;
    cfg.blocks_per_request = 2;
    cfg.rx_buffer_len = 2 * (BLOCK + 64);
    cfg.http_enabled = true;
    cfg
}

/// Run the driver over `cloud` and `http` until the trial boot is requested or it stalls;
/// each `Exit::Mqtt` other than `Idle` is a dropped connection: run again (same agent and
/// driver, as after a reconnect). Returns the exits seen.
fn run_until_done<H: HttpRangeClient>(
    cloud: &mut Cloud,
    http: H,
    boot: &mut Boot,
) -> (Vec<Exit<MqttError>>, Agent) {
    let chip =
        SimDevice::new(vec![0xFF; (SLOT + AREA) as usize], SimConfig::new(16, 1024)).unwrap();
    let slot = chip.view::<16, 1024>(0, SLOT).unwrap();
    let area = chip.view::<16, 1024>(SLOT, AREA).unwrap();
    let point = key().verifying_key().to_encoded_point(true);
    let mut agent: Agent = Agent::new(config()).unwrap();
    let mut driver = Driver::new(
        &mut *cloud,
        FakeClock(0),
        App,
        http,
        NorFlashImageStorage::new(slot, 0, SLOT, 0xFF).unwrap(),
        Sha256EcdsaP256Verifier::from_sec1(point.as_bytes()).unwrap(),
        &mut *boot,
        NoReset,
        FlashJournal::new(area, 0, AREA, 0xFF).unwrap(),
    );
    let mut rx = vec![0u8; 4096];
    let mut exits = Vec::new();
    for _ in 0..10 {
        let exit = block_on(driver.run(&mut agent, &mut rx));
        let done = matches!(exit, Exit::Reset | Exit::Mqtt(MqttError::Idle));
        exits.push(exit);
        if done {
            break;
        }
    }
    drop(driver);
    chip.inspect(|m| {
        if boot.staged {
            assert!(m[..SIZE as usize] == image()[..], "image intact");
        }
    })
    .unwrap();
    (exits, agent)
}

fn ready(cloud: &Cloud) -> bool {
    cloud
        .statuses()
        .last()
        .is_some_and(|s| s.contains(r#""self_test":"ready""#))
}

#[test]
fn subscribe_failure_exits_with_the_client_error_and_the_rerun_resubscribes() {
    // test_OTA_MQTT_JobSubscribingFailed: the notify-next subscription fails.
    let mut c = cloud(Some(("subscribe", "jobs/notify-next", 0)));
    let mut boot = Boot::default();
    let (exits, _) = run_until_done(&mut c, NoHttp, &mut boot);
    assert_eq!(
        exits,
        [Exit::Mqtt(MqttError::Failed("subscribe")), Exit::Reset]
    );
    assert_eq!(c.count("SUB $aws/things/thing1/jobs/notify-next"), 1);
    assert!(boot.staged && ready(&c));
}

#[test]
fn stream_subscribe_failure_mid_job_exits_and_the_rerun_continues() {
    // test_OTA_MQTT_InitFileTransferSubscribeFailed.
    let mut c = cloud(Some(("subscribe", "/data/cbor", 0)));
    let mut boot = Boot::default();
    let (exits, agent) = run_until_done(&mut c, NoHttp, &mut boot);
    assert_eq!(
        exits,
        [Exit::Mqtt(MqttError::Failed("subscribe")), Exit::Reset]
    );
    assert!(boot.staged && ready(&c));
    assert_eq!(agent.statistics().blocks_written, 4);
}

#[test]
fn get_next_publish_failure_exits_and_the_rerun_asks_again() {
    // test_OTA_MQTT_PublishesToCorrectTopic's publish failing (RequestJobFailed).
    let mut c = cloud(Some(("publish", "$next/get", 0)));
    let mut boot = Boot::default();
    let (exits, _) = run_until_done(&mut c, NoHttp, &mut boot);
    assert_eq!(
        exits,
        [Exit::Mqtt(MqttError::Failed("publish")), Exit::Reset]
    );
    assert_eq!(c.count("FAIL publish $aws/things/thing1/jobs/$next/get"), 1);
    assert_eq!(
        c.count("PUB $aws/things/thing1/jobs/$next/get "),
        1,
        "asked again"
    );
    assert!(boot.staged && ready(&c));
}

#[test]
fn block_request_publish_failure_exits_and_the_rerun_requests_only_missing_blocks() {
    // test_OTA_MQTT_RequestFileFailed (RequestFileBlockFailed): the second request fails.
    let mut c = cloud(Some(("publish", "/get/cbor", 1)));
    let mut boot = Boot::default();
    let (exits, agent) = run_until_done(&mut c, NoHttp, &mut boot);
    assert_eq!(
        exits,
        [Exit::Mqtt(MqttError::Failed("publish")), Exit::Reset]
    );
    assert_eq!(
        agent.statistics().blocks_written,
        4,
        "no block written twice"
    );
    assert!(boot.staged && ready(&c));
}

#[test]
fn status_publish_failure_exits_and_the_rerun_republishes_the_final_status() {
    // test_OTA_MQTT_UpdateStatusFailed (UpdateJobStatusFailed): self_test "ready" is lost.
    let mut c = cloud(Some(("publish", "/update", 1)));
    let mut boot = Boot::default();
    let (exits, _) = run_until_done(&mut c, NoHttp, &mut boot);
    assert_eq!(
        exits,
        [Exit::Mqtt(MqttError::Failed("publish")), Exit::Reset]
    );
    assert!(c
        .log
        .iter()
        .any(|l| l.starts_with("FAIL publish") && l.ends_with("/update")));
    assert!(
        ready(&c),
        "re-published after the reconnect, then reset: {:?}",
        c.log
    );
}

#[test]
fn receive_failure_exits_and_the_rerun_continues_from_the_bitmap() {
    let mut c = cloud(Some(("receive", "/data/cbor", 2)));
    let mut boot = Boot::default();
    let (exits, agent) = run_until_done(&mut c, NoHttp, &mut boot);
    assert_eq!(
        exits,
        [Exit::Mqtt(MqttError::Failed("receive")), Exit::Reset]
    );
    assert_eq!(agent.statistics().blocks_written, 4);
    assert!(boot.staged && ready(&c));
}

#[test]
fn unsubscribe_failure_after_the_job_exits_and_the_rerun_goes_on() {
    // test_OTA_MQTT_CleanupFailed: unsubscribing the job topics fails once the job is over
    // (here a file that fails its signature check).
    let img = image();
    let mut c = cloud(Some(("unsubscribe", "", 0)));
    c.job = Some(doc("MQTT", b"other bytes"));
    c.image = img;
    let mut boot = Boot::default();
    let (exits, agent) = run_until_done(&mut c, NoHttp, &mut boot);
    assert_eq!(
        exits,
        [
            Exit::Mqtt(MqttError::Failed("unsubscribe")),
            Exit::Mqtt(MqttError::Idle)
        ]
    );
    assert!(!boot.staged);
    assert_eq!(
        c.statuses().last().unwrap(),
        &r#"{"status":"FAILED","statusDetails":{"reason":"0x000000e3: 0x00000203"}}"#
    );
    assert_eq!(agent.job_id(), None, "the job is over");
    assert_eq!(
        agent.state(),
        State::Offline,
        "the fake's Idle ended the session"
    );
}

/// HTTP that fails the first `fail` range requests with `how`.
struct FlakyHttp {
    image: Vec<u8>,
    fail: u32,
    how: HttpFailure,
    calls: u32,
}

impl HttpRangeClient for &mut FlakyHttp {
    async fn get(
        &mut self,
        _url: &str,
        start: u32,
        end: u32,
        buf: &mut [u8],
    ) -> Result<usize, HttpFailure> {
        self.calls += 1;
        if self.fail > 0 {
            self.fail -= 1;
            return Err(self.how);
        }
        let body = &self.image[start as usize..=end as usize];
        buf[..body.len()].copy_from_slice(body);
        Ok(body.len())
    }
}

#[test]
fn http_failures_are_retried_on_the_request_timeout() {
    let img = image();
    let mut c = cloud(None);
    c.job = Some(doc("HTTP", &img));
    c.idle_pends = true;
    let mut http = FlakyHttp {
        image: img,
        fail: 3,
        how: HttpFailure::Other,
        calls: 0,
    };
    let mut boot = Boot::default();
    let (exits, _) = run_until_done(&mut c, &mut http, &mut boot);
    assert_eq!(exits, [Exit::Reset]);
    assert_eq!(http.calls, 4 + 3);
    assert!(boot.staged && ready(&c));
}

#[test]
fn an_expired_url_rereads_the_job_document() {
    let img = image();
    let mut c = cloud(None);
    c.job = Some(doc("HTTP", &img));
    c.idle_pends = true;
    let mut http = FlakyHttp {
        image: img,
        fail: 1,
        how: HttpFailure::Expired,
        calls: 0,
    };
    let mut boot = Boot::default();
    let (exits, _) = run_until_done(&mut c, &mut http, &mut boot);
    assert_eq!(exits, [Exit::Reset]);
    assert_eq!(c.count("PUB $aws/things/thing1/jobs/$next/get "), 2);
    assert!(boot.staged && ready(&c));
}

/// The reference's strerror tests (`OTA_Err_strerror`, `OTA_PalStatus_strerror`, ...) map
/// every enumerator to its name. Ours are Rust enums: no out-of-range value exists (the
/// reference's "InvalidErrorCode" case), the names are the `Debug` names and the wire codes
/// are pinned here.
#[test]
fn error_names_and_codes_match_the_reference() {
    let ota = [
        (OtaErr::None, "None", 0),
        (OtaErr::Uninitialized, "Uninitialized", 1),
        (OtaErr::Panic, "Panic", 2),
        (OtaErr::InvalidArg, "InvalidArg", 3),
        (OtaErr::AgentStopped, "AgentStopped", 4),
        (OtaErr::SignalEventFailed, "SignalEventFailed", 5),
        (OtaErr::RequestJobFailed, "RequestJobFailed", 6),
        (OtaErr::InitFileTransferFailed, "InitFileTransferFailed", 7),
        (OtaErr::RequestFileBlockFailed, "RequestFileBlockFailed", 8),
        (OtaErr::CleanupControlFailed, "CleanupControlFailed", 9),
        (OtaErr::CleanupDataFailed, "CleanupDataFailed", 10),
        (OtaErr::UpdateJobStatusFailed, "UpdateJobStatusFailed", 11),
        (OtaErr::JobParserError, "JobParserError", 12),
        (OtaErr::InvalidDataProtocol, "InvalidDataProtocol", 13),
        (OtaErr::MomentumAbort, "MomentumAbort", 14),
        (OtaErr::DowngradeNotAllowed, "DowngradeNotAllowed", 15),
        (OtaErr::SameFirmwareVersion, "SameFirmwareVersion", 16),
        (OtaErr::ImageStateMismatch, "ImageStateMismatch", 17),
        (OtaErr::NoActiveJob, "NoActiveJob", 18),
        (OtaErr::UserAbort, "UserAbort", 19),
        (OtaErr::FailedToEncodeCbor, "FailedToEncodeCbor", 20),
        (OtaErr::FailedToDecodeCbor, "FailedToDecodeCbor", 21),
        (OtaErr::ActivateFailed, "ActivateFailed", 22),
        (OtaErr::FileSizeOverflow, "FileSizeOverflow", 23),
        (OtaErr::EmptyJobDocument, "EmptyJobDocument", 24),
    ];
    for (e, name, code) in ota {
        assert_eq!(format!("{e:?}"), name);
        assert_eq!(e.code(), code);
    }
    let pal = [
        (PalErrorKind::Uninitialized, 0xe0),
        (PalErrorKind::OutOfMemory, 0xe1),
        (PalErrorKind::NullFileContext, 0xe2),
        (PalErrorKind::SignatureCheckFailed, 0xe3),
        (PalErrorKind::RxFileCreateFailed, 0xe4),
        (PalErrorKind::RxFileTooLarge, 0xe5),
        (PalErrorKind::BootInfoCreateFailed, 0xe6),
        (PalErrorKind::BadSignerCert, 0xe7),
        (PalErrorKind::BadImageState, 0xe8),
        (PalErrorKind::AbortFailed, 0xe9),
        (PalErrorKind::RejectFailed, 0xea),
        (PalErrorKind::CommitFailed, 0xeb),
        (PalErrorKind::ActivateFailed, 0xec),
        (PalErrorKind::FileAbort, 0xed),
        (PalErrorKind::FileClose, 0xee),
    ];
    for (k, code) in pal {
        let e = PalError::with_sub(k, 0x203);
        assert_eq!(e.status(), (code << 24) | 0x203);
        assert_eq!(e.to_string(), format!("{k:?} (0x{code:02x}000203)"));
    }
    // The driver's exit names the failing client's own error.
    assert_eq!(
        format!("{:?}", Exit::Mqtt(MqttError::Failed("publish"))),
        r#"Mqtt(Failed("publish"))"#
    );
}
