//! Power loss through the DRIVER: one full update (a multi-block file over the MQTT stream, the
//! signature check, the trial-boot request) on `ota_pal_traits::sim` flash
//! (`NorFlashImageStorage` + `FlashJournal`), a RAM boot control and a real ECDSA P-256
//! verifier, repeated with the power cut at EVERY flash operation in turn
//! (`SimDevice::cut_power_at(n, seed)`). After each cut the device "reboots": a new `Agent`,
//! the journal restored through `restore_block`, `Driver::run` again, until the trial boot is
//! requested. Every run must end with the exact image staged (byte-compare), then self-test
//! and confirm; no run may ever request a trial boot of an image that did not pass
//! verification in that same boot.
//!
//! `cargo test -p ota-core --test power_loss_through_the_driver -- --nocapture` prints the
//! number of cuts tried.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

mod common;
use common::{b64, data_block, job_doc, topic, FakeClock, StreamReq, THING};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use ota_core::agent::{Agent, Config};
use ota_core::driver::{Application, Driver, Exit, MqttClient, MqttMessage, NoHttp};
use ota_core::wire::topic::Qos;
use ota_core::wire::version::AppVersion;
use ota_pal_traits::sim::{block_on, SimConfig, SimDevice};
use ota_pal_traits::{
    BootControl, FileInfo, FlashJournal, ImageVerifier, NorFlashImageStorage, PalError,
    PalErrorKind, PlatformImageState, Reset, Sha256EcdsaP256Verifier, SignatureKind,
};
use p256::ecdsa::{signature::Signer, Signature, SigningKey};

const BLOCK: u32 = 1024;
/// Seven blocks, the last one short.
const SIZE: u32 = 7 * BLOCK - 200;
const SLOT: u32 = 16 * 1024;
const AREA: u32 = 8 * 1024;
const JOB: &str = "AFR_OTA-powerloss";
/// Tearing seeds tried per cut operation.
const SEEDS: u64 = 8;

type Chip = SimDevice<Vec<u8>>;

/// What the PAL saw, in order, across every boot of one run.
#[derive(Clone, PartialEq)]
enum Log {
    Boot,
    VerifyBegin,
    Verified(bool),
    /// A trial boot was requested; the slot's bytes at that moment.
    TrialBoot(Vec<u8>),
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Log::Boot => write!(f, "Boot"),
            Log::VerifyBegin => write!(f, "VerifyBegin"),
            Log::Verified(ok) => write!(f, "Verified({ok})"),
            Log::TrialBoot(_) => write!(f, "TrialBoot"),
        }
    }
}

type Shared = Rc<RefCell<Vec<Log>>>;

#[derive(Debug, PartialEq)]
enum CloudError {
    Idle,
    PowerLost,
}

/// Jobs + Streams behind an in-memory MQTT client. A powered-off device sends and receives
/// nothing: every call fails once the chip lost power, so nothing the agent decides after
/// the cut (a `FAILED` status, say) reaches the cloud.
struct Cloud<'c> {
    chip: &'c Chip,
    inbox: VecDeque<(String, Vec<u8>)>,
    statuses: Vec<String>,
    job: Option<String>,
    image: Vec<u8>,
    signature: String,
}

impl Cloud<'_> {
    fn doc(&self, status: &str, details: &str) -> String {
        job_doc(
            JOB,
            status,
            details,
            &format!(
                r#"{{"protocols":["MQTT"],"streamname":"AFR_OTA-S","files":[{{"filepath":"/fw","filesize":{SIZE},"fileid":0,"certfile":"c","sig-sha256-ecdsa":"{}"}}]}}"#,
                self.signature
            ),
        )
    }

    fn powered(&self) -> Result<(), CloudError> {
        if self.chip.is_powered().unwrap() {
            Ok(())
        } else {
            Err(CloudError::PowerLost)
        }
    }
}

impl MqttClient for &mut Cloud<'_> {
    type Error = CloudError;

    async fn subscribe(&mut self, _topic: &str, _qos: Qos) -> Result<(), CloudError> {
        self.powered()
    }

    async fn unsubscribe(&mut self, _topic: &str) -> Result<(), CloudError> {
        self.powered()
    }

    async fn publish(&mut self, t: &str, payload: &[u8], _qos: Qos) -> Result<(), CloudError> {
        self.powered()?;
        if t.ends_with("$next/get") {
            let doc = self
                .job
                .clone()
                .unwrap_or_else(|| r#"{"timestamp":1}"#.into());
            self.inbox
                .push_back((topic("jobs/$next/get/accepted"), doc.into_bytes()));
        } else if t.ends_with("/update") {
            let text = String::from_utf8(payload.to_vec()).unwrap();
            if text.contains("SUCCEEDED") || text.contains("FAILED") {
                self.job = None;
            } else if text.contains(r#""self_test":"ready""#) {
                self.job = Some(self.doc(
                    "IN_PROGRESS",
                    r#""statusDetails":{"self_test":"ready","updatedBy":"0x1000000"},"#,
                ));
            } else if text.contains("IN_PROGRESS") && !text.contains("self_test") {
                self.job = Some(self.doc("IN_PROGRESS", ""));
            }
            self.statuses.push(text);
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

    async fn receive<'b>(&mut self, buf: &'b mut [u8]) -> Result<MqttMessage<'b>, CloudError> {
        self.powered()?;
        let (t, p) = self.inbox.pop_front().ok_or(CloudError::Idle)?;
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

/// The real verifier, logging what it was asked and what it answered.
struct LoggingVerifier {
    inner: Sha256EcdsaP256Verifier,
    log: Shared,
}

impl ImageVerifier for LoggingVerifier {
    fn kind(&self) -> SignatureKind {
        self.inner.kind()
    }
    fn needs_image_bytes(&self) -> bool {
        self.inner.needs_image_bytes()
    }
    fn begin(&mut self, file: &FileInfo<'_>) {
        self.log.borrow_mut().push(Log::VerifyBegin);
        self.inner.begin(file);
    }
    fn update(&mut self, data: &[u8]) {
        self.inner.update(data);
    }
    async fn finish(&mut self, signature: &[u8]) -> Result<(), PalError> {
        let r = self.inner.finish(signature).await;
        self.log.borrow_mut().push(Log::Verified(r.is_ok()));
        r
    }
}

/// A bootloader whose flags survive power loss (as a bootloader's trailer does); it works
/// only while the chip is powered.
struct Boot<'c> {
    chip: &'c Chip,
    state: PlatformImageState,
    staged: bool,
    confirmed: bool,
    log: Shared,
}

impl Boot<'_> {
    fn powered(&self) -> Result<(), PalError> {
        if self.chip.is_powered().unwrap() {
            Ok(())
        } else {
            Err(PalError::new(PalErrorKind::Uninitialized))
        }
    }
}

impl BootControl for &mut Boot<'_> {
    async fn platform_state(&mut self) -> Result<PlatformImageState, PalError> {
        self.powered()?;
        Ok(self.state)
    }
    async fn request_trial_boot(&mut self, _file: &FileInfo<'_>) -> Result<(), PalError> {
        self.powered()?;
        let slot = self.chip.inspect(|m| m[..SIZE as usize].to_vec()).unwrap();
        self.log.borrow_mut().push(Log::TrialBoot(slot));
        self.staged = true;
        Ok(())
    }
    async fn confirm(&mut self) -> Result<(), PalError> {
        self.powered()?;
        if self.state != PlatformImageState::PendingCommit {
            return Err(PalError::new(PalErrorKind::CommitFailed));
        }
        self.state = PlatformImageState::Valid;
        self.confirmed = true;
        Ok(())
    }
    async fn reject(&mut self) -> Result<(), PalError> {
        self.powered()?;
        self.staged = false;
        self.state = PlatformImageState::Invalid;
        Ok(())
    }
}

struct NoReset;

impl Reset for NoReset {
    fn reset(&mut self) {}
}

fn image() -> Vec<u8> {
    (0..SIZE)
        .map(|i| (i.wrapping_mul(31) ^ (i >> 5)) as u8)
        .collect()
}

fn config(version: AppVersion) -> Config<'static> {
    let mut cfg = Config::new(THING, version);
    cfg.block_size = BLOCK;
    cfg.blocks_per_request = 3;
    cfg.rx_buffer_len = 3 * (BLOCK + 64);
    cfg
}

/// One boot: a new agent and driver over the persistent chip, bootloader and cloud.
fn boot_once(
    chip: &Chip,
    cloud: &mut Cloud<'_>,
    boot: &mut Boot<'_>,
    key: &SigningKey,
    version: AppVersion,
) -> Exit<CloudError> {
    boot.log.borrow_mut().push(Log::Boot);
    // The session is new: whatever the broker had queued for the old one is gone.
    cloud.inbox.clear();
    let slot = chip.view::<16, 1024>(0, SLOT).unwrap();
    let area = chip.view::<16, 1024>(SLOT, AREA).unwrap();
    let storage = NorFlashImageStorage::new(slot, 0, SLOT, 0xFF).unwrap();
    let journal = FlashJournal::new(area, 0, AREA, 0xFF).unwrap();
    let point = key.verifying_key().to_encoded_point(true);
    let verifier = LoggingVerifier {
        inner: Sha256EcdsaP256Verifier::from_sec1(point.as_bytes()).unwrap(),
        log: boot.log.clone(),
    };
    let mut agent: Agent = Agent::new(config(version)).unwrap();
    let mut driver = Driver::new(
        &mut *cloud,
        FakeClock(0),
        App,
        NoHttp,
        storage,
        verifier,
        &mut *boot,
        NoReset,
        journal,
    );
    let mut rx = vec![0u8; 4096];
    block_on(driver.run(&mut agent, &mut rx))
}

/// How one update went.
struct Outcome {
    /// Flash writes + erases of the whole update (without a cut).
    ops: u64,
    boots: u32,
    /// Boots that started by rolling back an unconfirmed trial image.
    rollbacks: u32,
}

/// Run the update from a blank device, with the power cut at the `cut`-th flash operation
/// (none with `None`), rebooting after each cut or reset, until the new image is confirmed.
/// The bootloader is MCUboot-like: a staged image runs on trial at the next start
/// (`PendingCommit`); an image still on trial at a start is rolled back. Panics on any broken
/// invariant.
fn update(cut: Option<u64>, seed: u64) -> Outcome {
    let key = SigningKey::from_slice(&[0x5a; 32]).unwrap();
    let img = image();
    let sig: Signature = key.sign(&img);
    let chip =
        SimDevice::new(vec![0xFF; (SLOT + AREA) as usize], SimConfig::new(16, 1024)).unwrap();
    let log: Shared = Rc::new(RefCell::new(Vec::new()));
    let mut cloud = Cloud {
        chip: &chip,
        inbox: VecDeque::new(),
        statuses: Vec::new(),
        job: None,
        image: img.clone(),
        signature: b64(sig.to_der().as_bytes()),
    };
    cloud.job = Some(cloud.doc("QUEUED", ""));
    let mut boot = Boot {
        chip: &chip,
        state: PlatformImageState::Valid,
        staged: false,
        confirmed: false,
        log: log.clone(),
    };
    if let Some(n) = cut {
        chip.cut_power_at(n, seed).unwrap();
    }
    let (old, new) = (AppVersion::new(1, 0, 0), AppVersion::new(1, 1, 0));
    let mut boots = 0;
    let mut power_losses = 0;
    let mut rollbacks = 0;
    loop {
        boots += 1;
        assert!(
            boots <= 8,
            "cut {cut:?}: not confirmed after {boots} boots: {:?}",
            cloud.statuses
        );
        chip.power_on().unwrap();
        // The bootloader.
        if boot.staged {
            boot.staged = false;
            boot.state = PlatformImageState::PendingCommit;
        } else if boot.state == PlatformImageState::PendingCommit {
            boot.state = PlatformImageState::Valid;
            rollbacks += 1;
        }
        let version = if boot.state == PlatformImageState::PendingCommit || boot.confirmed {
            new
        } else {
            old
        };
        match boot_once(&chip, &mut cloud, &mut boot, &key, version) {
            Exit::Mqtt(CloudError::PowerLost) => power_losses += 1,
            Exit::Reset => {}
            Exit::Mqtt(CloudError::Idle) => {
                assert!(
                    boot.confirmed && boot.state == PlatformImageState::Valid,
                    "cut {cut:?}: idle without the new image confirmed: {:?}",
                    cloud.statuses
                );
                break;
            }
        }
        assert!(
            !cloud.statuses.iter().any(|s| s.contains("FAILED")),
            "cut {cut:?}: {:?}",
            cloud.statuses
        );
    }
    let ops = chip.stats().unwrap().mutating();
    assert_eq!(
        power_losses,
        u32::from(cut.is_some_and(|n| n <= ops)),
        "cut {cut:?}: the cut fired once"
    );

    // The log: every trial boot follows a passed verification in the same boot, and stages
    // exactly the image.
    let log = log.borrow().clone();
    let mut verified = false;
    let mut trial_boots = 0;
    for e in &log {
        match e {
            Log::Boot | Log::VerifyBegin => verified = false,
            Log::Verified(ok) => verified = *ok,
            Log::TrialBoot(slot) => {
                trial_boots += 1;
                assert!(
                    verified,
                    "cut {cut:?}: trial boot without a passed verification"
                );
                assert!(slot == &img, "cut {cut:?}: trial boot of other bytes");
            }
        }
    }
    assert!(trial_boots >= 1, "cut {cut:?}");
    assert!(
        !log.contains(&Log::Verified(false)),
        "cut {cut:?}: a verification failed: {log:?}"
    );
    assert!(
        cloud.statuses.last().unwrap().contains("SUCCEEDED"),
        "cut {cut:?}: {:?}",
        cloud.statuses
    );
    chip.inspect(|m| assert!(m[..SIZE as usize] == img[..], "cut {cut:?}"))
        .unwrap();
    Outcome {
        ops,
        boots,
        rollbacks,
    }
}

#[test]
fn a_power_cut_at_every_flash_operation_of_an_update_resumes_to_the_exact_image() {
    let clean = update(None, 0);
    assert_eq!((clean.boots, clean.rollbacks), (2, 0));
    assert!(clean.ops > 14, "{} flash operations", clean.ops);
    let (mut extra_boots, mut rollbacks) = (0, 0);
    let mut cuts = 0;
    for n in 1..=clean.ops {
        // Each cut tears its operation differently per seed.
        for seed in 0..SEEDS {
            let o = update(Some(n), n * 1000 + seed);
            extra_boots += o.boots - clean.boots;
            rollbacks += o.rollbacks;
            cuts += 1;
        }
    }
    println!(
        "power cuts tried: {cuts} ({} flash writes/erases of the update, through the \
         confirm, x {SEEDS} tearing seeds); {extra_boots} extra boots, {rollbacks} rollbacks of \
         an unannounced trial image",
        clean.ops
    );
}
