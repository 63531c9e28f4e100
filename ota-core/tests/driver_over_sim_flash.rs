//! The async driver over the simulated PAL (`ota_pal_traits::sim`): a full update with a real
//! ECDSA signature, reboot, self test and confirm; a bad signature; a download cut in the
//! middle that resumes and asks only for the missing blocks.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

mod common;
use common::{b64, data_block, job_doc, topic, FakeClock, StreamReq, THING};
use std::collections::VecDeque;

use ota_core::agent::{Agent, Config};
use ota_core::driver::{Application, Driver, Exit, MqttClient, MqttMessage, NoHttp};
use ota_core::wire::topic::Qos;
use ota_core::wire::version::AppVersion;
use ota_pal_traits::sim::{block_on, SimConfig, SimDevice};
use ota_pal_traits::{
    BootControl, FileInfo, FlashJournal, NorFlashImageStorage, PalError, PalErrorKind,
    PlatformImageState, Reset, Sha256EcdsaP256Verifier,
};
use p256::ecdsa::{signature::Signer, Signature, SigningKey};

const BLOCK: u32 = 1024;
const SIZE: u32 = 10 * BLOCK - 300;
const SLOT: u32 = 16 * 1024;
const AREA: u32 = 8 * 1024;
const JOB: &str = "AFR_OTA-driver";

#[derive(Debug, PartialEq)]
enum CloudError {
    Idle,
    PowerCut,
}

/// The cloud (Jobs + Streams) behind an in-memory MQTT client.
struct Cloud {
    inbox: VecDeque<(String, Vec<u8>)>,
    log: Vec<String>,
    job: Option<String>,
    image: Vec<u8>,
    requests: Vec<StreamReq>,
    blocks_delivered: usize,
    cut_after_blocks: Option<usize>,
}

impl Cloud {
    fn new(image: Vec<u8>, job: String) -> Self {
        Cloud {
            inbox: VecDeque::new(),
            log: Vec::new(),
            job: Some(job),
            image,
            requests: Vec::new(),
            blocks_delivered: 0,
            cut_after_blocks: None,
        }
    }

    fn statuses(&self) -> Vec<&str> {
        self.log
            .iter()
            .filter(|l| l.contains("/update "))
            .map(|l| l.split_once("/update ").unwrap().1)
            .collect()
    }
}

impl MqttClient for Cloud {
    type Error = CloudError;

    async fn subscribe(&mut self, topic: &str, qos: Qos) -> Result<(), CloudError> {
        self.log.push(format!("SUB {} {topic}", qos as u8));
        Ok(())
    }

    async fn unsubscribe(&mut self, topic: &str) -> Result<(), CloudError> {
        self.log.push(format!("UNSUB {topic}"));
        Ok(())
    }

    async fn publish(&mut self, t: &str, payload: &[u8], qos: Qos) -> Result<(), CloudError> {
        let text = String::from_utf8(payload.to_vec()).unwrap_or_else(|_| "<cbor>".into());
        self.log.push(format!("PUB {} {t} {text}", qos as u8));
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
            self.requests.push(req);
        }
        Ok(())
    }

    async fn receive<'b>(&mut self, buf: &'b mut [u8]) -> Result<MqttMessage<'b>, CloudError> {
        if self.cut_after_blocks == Some(self.blocks_delivered) {
            self.cut_after_blocks = None;
            return Err(CloudError::PowerCut);
        }
        let (t, p) = self.inbox.pop_front().ok_or(CloudError::Idle)?;
        if t.ends_with("/data/cbor") {
            self.blocks_delivered += 1;
        }
        let (tb, pb) = buf.split_at_mut(t.len());
        tb.copy_from_slice(t.as_bytes());
        pb[..p.len()].copy_from_slice(&p);
        Ok(MqttMessage {
            topic: std::str::from_utf8(tb).unwrap(),
            payload: &pb[..p.len()],
        })
    }
}

struct App {
    pass: bool,
    tests: u32,
}

impl Application for App {
    async fn self_test(&mut self) -> bool {
        self.tests += 1;
        self.pass
    }
}

/// A bootloader in RAM: `request_trial_boot` stages, the reboot (done by the test) runs the
/// staged image as PendingCommit.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Boot {
    state: PlatformImageState,
    staged: bool,
}

impl BootControl for &mut Boot {
    async fn platform_state(&mut self) -> Result<PlatformImageState, PalError> {
        Ok(self.state)
    }
    async fn request_trial_boot(&mut self, _file: &FileInfo<'_>) -> Result<(), PalError> {
        self.staged = true;
        Ok(())
    }
    async fn confirm(&mut self) -> Result<(), PalError> {
        if self.state != PlatformImageState::PendingCommit {
            return Err(PalError::new(PalErrorKind::CommitFailed));
        }
        self.state = PlatformImageState::Valid;
        Ok(())
    }
    async fn reject(&mut self) -> Result<(), PalError> {
        self.staged = false;
        self.state = PlatformImageState::Invalid;
        Ok(())
    }
}

struct Resets(u32);

impl Reset for &mut Resets {
    fn reset(&mut self) {
        self.0 += 1;
    }
}

fn image() -> Vec<u8> {
    (0..SIZE).map(|i| (i ^ (i >> 7)) as u8).collect()
}

fn key() -> SigningKey {
    SigningKey::from_slice(&[0x42; 32]).unwrap()
}

fn verifier() -> Sha256EcdsaP256Verifier {
    let point = key().verifying_key().to_encoded_point(true);
    Sha256EcdsaP256Verifier::from_sec1(point.as_bytes()).unwrap()
}

fn job(status: &str, details: &str, signed: &[u8]) -> String {
    let sig: Signature = key().sign(signed);
    let sig = b64(sig.to_der().as_bytes());
    job_doc(
        JOB,
        status,
        details,
        &format!(
            r#"{{"protocols":["MQTT"],"streamname":"AFR_OTA-S","files":[{{"filepath":"/fw","filesize":{SIZE},"fileid":0,"certfile":"c","sig-sha256-ecdsa":"{sig}"}}]}}"#
        ),
    )
}

fn config(version: AppVersion) -> Config<'static> {
    let mut cfg = Config::new(THING, version);
    cfg.block_size = BLOCK;
    cfg.blocks_per_request = 4;
    cfg.rx_buffer_len = 4 * (BLOCK + 64);
    cfg
}

/// One boot of the device over the persistent chip. Returns how the run ended.
fn boot_once(
    chip: &SimDevice<Vec<u8>>,
    cloud: &mut Cloud,
    boot: &mut Boot,
    resets: &mut Resets,
    app: &mut App,
    version: AppVersion,
) -> Exit<CloudError> {
    let slot = chip.view::<16, 1024>(0, SLOT).unwrap();
    let area = chip.view::<16, 1024>(SLOT, AREA).unwrap();
    let storage = NorFlashImageStorage::new(slot, 0, SLOT, 0xFF).unwrap();
    let journal = FlashJournal::new(area, 0, AREA, 0xFF).unwrap();
    let mut agent: Agent = Agent::new(config(version)).unwrap();
    let mut driver = Driver::new(
        &mut *cloud,
        FakeClock(0),
        &mut *app,
        NoHttp,
        storage,
        verifier(),
        &mut *boot,
        &mut *resets,
        journal,
    );
    let mut rx = vec![0u8; 4096];
    block_on(driver.run(&mut agent, &mut rx))
}

impl MqttClient for &mut Cloud {
    type Error = CloudError;
    async fn subscribe(&mut self, t: &str, q: Qos) -> Result<(), CloudError> {
        (**self).subscribe(t, q).await
    }
    async fn unsubscribe(&mut self, t: &str) -> Result<(), CloudError> {
        (**self).unsubscribe(t).await
    }
    async fn publish(&mut self, t: &str, p: &[u8], q: Qos) -> Result<(), CloudError> {
        (**self).publish(t, p, q).await
    }
    async fn receive<'b>(&mut self, buf: &'b mut [u8]) -> Result<MqttMessage<'b>, CloudError> {
        (**self).receive(buf).await
    }
}

impl Application for &mut App {
    async fn self_test(&mut self) -> bool {
        (**self).self_test().await
    }
}

fn chip() -> SimDevice<Vec<u8>> {
    SimDevice::new(vec![0xFF; (SLOT + AREA) as usize], SimConfig::new(16, 1024)).unwrap()
}

#[test]
fn full_update_reboot_self_test_and_confirm() {
    let chip = chip();
    let img = image();
    let mut cloud = Cloud::new(img.clone(), job("QUEUED", "", &img));
    let mut boot = Boot {
        state: PlatformImageState::Valid,
        staged: false,
    };
    let mut resets = Resets(0);
    let mut app = App {
        pass: true,
        tests: 0,
    };
    let old = AppVersion::new(1, 0, 0);
    let exit = boot_once(&chip, &mut cloud, &mut boot, &mut resets, &mut app, old);
    assert_eq!(exit, Exit::Reset);
    assert!(boot.staged);
    assert_eq!(resets.0, 1);
    // Blocks arrived in order: hashed on the fly, the image was not read back (the few reads
    // are the journal's).
    assert!(chip.stats().unwrap().bytes_read < u64::from(SIZE));
    assert_eq!(
        cloud.statuses().last().unwrap(),
        &r#"{"status":"IN_PROGRESS","statusDetails":{"self_test":"ready","updatedBy":"0x01000000"}}"#
    );
    // The slot holds the image.
    chip.inspect(|m| assert_eq!(&m[..SIZE as usize], &img[..]))
        .unwrap();

    // Reboot into 1.1.0 on trial.
    boot.state = PlatformImageState::PendingCommit;
    cloud.job = Some(job(
        "IN_PROGRESS",
        r#""statusDetails":{"self_test":"ready","updatedBy":"0x1000000"},"#,
        &img,
    ));
    cloud.log.clear();
    let exit = boot_once(
        &chip,
        &mut cloud,
        &mut boot,
        &mut resets,
        &mut app,
        AppVersion::new(1, 1, 0),
    );
    assert_eq!(exit, Exit::Mqtt(CloudError::Idle));
    assert_eq!(app.tests, 1);
    assert_eq!(boot.state, PlatformImageState::Valid);
    assert_eq!(
        cloud.statuses(),
        [
            r#"{"status":"IN_PROGRESS","statusDetails":{"self_test":"active","updatedBy":"0x01010000"}}"#,
            r#"{"status":"SUCCEEDED","statusDetails":{"reason":"accepted  v1.1.0","updatedBy":"  v1.0.0"}}"#,
        ]
    );
    assert_eq!(resets.0, 1, "no reset after the confirm");
}

#[test]
fn a_bad_signature_fails_the_job_and_keeps_the_old_image() {
    let chip = chip();
    let img = image();
    // Signed over other bytes.
    let mut cloud = Cloud::new(img.clone(), job("QUEUED", "", b"something else"));
    let mut boot = Boot {
        state: PlatformImageState::Valid,
        staged: false,
    };
    let mut resets = Resets(0);
    let mut app = App {
        pass: true,
        tests: 0,
    };
    let exit = boot_once(
        &chip,
        &mut cloud,
        &mut boot,
        &mut resets,
        &mut app,
        AppVersion::new(1, 0, 0),
    );
    assert_eq!(exit, Exit::Mqtt(CloudError::Idle));
    assert_eq!(
        cloud.statuses().last().unwrap(),
        &r#"{"status":"FAILED","statusDetails":{"reason":"0x000000e3: 0x00000203"}}"#
    );
    assert!(!boot.staged, "nothing handed to the bootloader");
    assert_eq!(
        boot.state,
        PlatformImageState::Invalid,
        "the PAL rejected the image"
    );
    assert_eq!(resets.0, 0);
    // The partial image was erased.
    chip.inspect(|m| assert!(m[..SIZE as usize].iter().all(|b| *b == 0xFF)))
        .unwrap();
}

#[test]
fn a_download_cut_in_the_middle_resumes_with_only_the_missing_blocks() {
    let chip = chip();
    let img = image();
    let mut cloud = Cloud::new(img.clone(), job("QUEUED", "", &img));
    cloud.cut_after_blocks = Some(6);
    let mut boot = Boot {
        state: PlatformImageState::Valid,
        staged: false,
    };
    let mut resets = Resets(0);
    let mut app = App {
        pass: true,
        tests: 0,
    };
    let v = AppVersion::new(1, 0, 0);
    let exit = boot_once(&chip, &mut cloud, &mut boot, &mut resets, &mut app, v);
    assert_eq!(exit, Exit::Mqtt(CloudError::PowerCut));
    assert_eq!(cloud.requests.len(), 2);

    // Power comes back: the job is IN_PROGRESS, blocks 0..6 are in the journal.
    cloud.job = Some(job("IN_PROGRESS", "", &img));
    cloud.inbox.clear();
    cloud.requests.clear();
    chip.reset_stats().unwrap();
    let exit = boot_once(&chip, &mut cloud, &mut boot, &mut resets, &mut app, v);
    assert_eq!(exit, Exit::Reset);
    // Blocks 0..6 came before the reboot: the signature check reads the image back.
    assert!(chip.stats().unwrap().bytes_read >= u64::from(SIZE));
    let first = &cloud.requests[0];
    assert_eq!(first.wanted(), [6, 7, 8, 9], "only the missing blocks");
    let all: Vec<u32> = cloud.requests.iter().flat_map(|r| r.wanted()).collect();
    assert_eq!(all, [6, 7, 8, 9]);
    assert!(boot.staged, "the resumed image verified");
    assert!(cloud.statuses().last().unwrap().contains("ready"));
}

#[test]
fn a_dropped_connection_mid_download_continues_in_the_same_boot() {
    let chip = chip();
    let img = image();
    let mut cloud = Cloud::new(img.clone(), job("QUEUED", "", &img));
    cloud.cut_after_blocks = Some(5);
    let mut boot = Boot {
        state: PlatformImageState::Valid,
        staged: false,
    };
    let mut resets = Resets(0);
    let mut app = App {
        pass: true,
        tests: 0,
    };
    let slot = chip.view::<16, 1024>(0, SLOT).unwrap();
    let area = chip.view::<16, 1024>(SLOT, AREA).unwrap();
    let mut agent: Agent = Agent::new(config(AppVersion::new(1, 0, 0))).unwrap();
    let mut driver = Driver::new(
        &mut cloud,
        FakeClock(0),
        &mut app,
        NoHttp,
        NorFlashImageStorage::new(slot, 0, SLOT, 0xFF).unwrap(),
        verifier(),
        &mut boot,
        &mut resets,
        FlashJournal::new(area, 0, AREA, 0xFF).unwrap(),
    );
    let mut rx = vec![0u8; 4096];
    assert_eq!(
        block_on(driver.run(&mut agent, &mut rx)),
        Exit::Mqtt(CloudError::PowerCut)
    );
    // Reconnected: the same agent and driver go on; in-order hashing state is kept.
    driver.mqtt.inbox.clear();
    assert_eq!(block_on(driver.run(&mut agent, &mut rx)), Exit::Reset);
    assert!(driver.mqtt.statuses().last().unwrap().contains("ready"));
    let all: Vec<u32> = driver
        .mqtt
        .requests
        .iter()
        .flat_map(|r| r.wanted())
        .collect();
    assert_eq!(all, [0, 1, 2, 3, 4, 5, 6, 7, 5, 6, 7, 8, 9]);
    assert!(boot.staged);
}

struct Http<'a>(&'a [u8], Vec<(u32, u32)>);

impl ota_core::driver::HttpRangeClient for Http<'_> {
    async fn get(
        &mut self,
        url: &str,
        start: u32,
        end: u32,
        buf: &mut [u8],
    ) -> Result<usize, ota_core::agent::HttpFailure> {
        assert_eq!(url, "https://bucket.example/ota.bin?X-Amz-Signature=abc");
        self.1.push((start, end));
        let body = &self.0[start as usize..=end as usize];
        buf[..body.len()].copy_from_slice(body);
        Ok(body.len())
    }
}

#[test]
fn the_http_data_path_downloads_with_range_requests() {
    let chip = chip();
    let img = image();
    let sig: Signature = key().sign(&img);
    let doc = job_doc(
        JOB,
        "QUEUED",
        "",
        &format!(
            r#"{{"protocols":["HTTP"],"files":[{{"filepath":"/fw","filesize":{SIZE},"fileid":0,"update_data_url":"https://bucket.example/ota.bin?X-Amz-Signature=abc","auth_scheme":"aws.s3.presigned","sig-sha256-ecdsa":"{}"}}]}}"#,
            b64(sig.to_der().as_bytes())
        ),
    );
    let mut cloud = Cloud::new(img.clone(), doc);
    let mut boot = Boot {
        state: PlatformImageState::Valid,
        staged: false,
    };
    let mut resets = Resets(0);
    let mut app = App {
        pass: true,
        tests: 0,
    };
    let slot = chip.view::<16, 1024>(0, SLOT).unwrap();
    let area = chip.view::<16, 1024>(SLOT, AREA).unwrap();
    let mut cfg = config(AppVersion::new(1, 0, 0));
    cfg.http_enabled = true;
    let mut agent: Agent = Agent::new(cfg).unwrap();
    let mut driver = Driver::new(
        &mut cloud,
        FakeClock(0),
        &mut app,
        Http(&img, Vec::new()),
        NorFlashImageStorage::new(slot, 0, SLOT, 0xFF).unwrap(),
        verifier(),
        &mut boot,
        &mut resets,
        FlashJournal::new(area, 0, AREA, 0xFF).unwrap(),
    );
    let mut rx = vec![0u8; 4096];
    assert_eq!(block_on(driver.run(&mut agent, &mut rx)), Exit::Reset);
    let ranges = driver.http.1.clone();
    assert_eq!(ranges.len(), 10);
    assert_eq!(ranges[0], (0, 1023));
    assert_eq!(ranges[9], (9216, SIZE - 1));
    assert!(driver.mqtt.requests.is_empty(), "no stream requests");
    assert!(boot.staged);
}
