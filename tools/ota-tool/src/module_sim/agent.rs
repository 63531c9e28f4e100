//! The module's cloud side as an ota-core device: the PAL parts the real [`Agent`] runs on
//! inside [`super::mqtt::MqttCloud`], and the link between them and the emulator.
//!
//! The agent downloads a job's file into RAM ([`ModuleStorage`], at most [`CAPACITY`] bytes,
//! the emulated OTA buffer). The emulator gets its say through the PAL calls:
//!
//! | Agent step | PAL call | What the emulator sees / does |
//! |---|---|---|
//! | a job document is adopted | [`ModuleStorage::prepare`] | [`CloudEvent::Proposed`] (state 1 for file type 101, 2 for 202); the call waits for the host's `ACCEPT` ([`ModuleCloud::accept`]) or a refusal (`FLUSH`, [`ModuleCloud::report`] with `Failed`) |
//! | all blocks written | [`ModuleVerifier::finish`] | nothing: checks the job's `sig-sha256-ecdsa` with `HOTAcertificate` (202) or `OTAcertificate` (101) when the host set one, else accepts |
//! | verified | [`ModuleBoot::request_trial_boot`] | nothing yet: the image is staged; the agent publishes `self_test: ready` and resets |
//! | the "rebooted" agent runs the self test | [`ModuleApp::self_test`] | [`CloudEvent::Downloaded`] (state 4 for 101, 5 for 202), then waits for the outcome: `CLOSE` (202) or `APPLY` + the new firmware's `AT+CONNECT` (101) pass, `FLUSH` fails |
//! | the agent reports `FAILED` before that | (status publish) | [`CloudEvent::DownloadFailed`] |
//!
//! The agent's reset is internal to the cloud side: the emulated module does not reboot then
//! (it reboots on `APPLY`, as the real one). [`Downloaded`](CloudEvent::Downloaded) is sent
//! from the self test, not from the trial-boot request, so that the agent's checks after the
//! reset (the anti-rollback version check of a module image) are done before the host can
//! `APPLY`: a refused image never runs.
//!
//! Job statuses are the agent's own (`IN_PROGRESS` with `receive`, `self_test: ready` /
//! `active`, `SUCCEEDED accepted  v…`, `FAILED …`). The refusals this PAL adds are
//! `aborted: <pal>` statuses with main code `0xe4` (`RxFileCreateFailed`):
//!
//! | Reason | Status detail |
//! |---|---|
//! | the host refused the proposal (`FLUSH` in state 1/2) | `aborted: 0xe4000001` ([`SUB_DECLINED`]) |
//! | a module image (101) whose `filepath` names no version | `aborted: 0xe4000002` ([`SUB_NO_VERSION`]) |
//! | a job mixing module and host files | `aborted: 0xe4000003` ([`SUB_MIXED_JOB`]) |
//! | a file type other than 101 / 202 | `aborted: 0xe401xxxx`, `xxxx` = the file type ([`SUB_FILE_TYPE`]) |
//! | larger than [`CAPACITY`] | `aborted: 0xe5000000` (`RxFileTooLarge`) |

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex, MutexGuard};

use base64::Engine as _;
use ota_core::driver::Application;
use ota_core::wire::version::AppVersion;
use ota_pal_traits::{
    BootControl, FileInfo, ImageStorage, ImageVerifier, PalError, PalErrorKind, PlatformImageState,
    Reset, SignatureKind,
};
use rumqttc::AsyncClient;
use serde_json::Value as Json;
use tokio::sync::Notify;

#[cfg(doc)]
use ota_core::agent::Agent;

#[cfg(doc)]
use super::cloud::ModuleCloud;
use super::cloud::{CloudEvent, JobKind, JobOutcome, Proposal};
use super::emulator::verify_p256;

/// Largest file the emulated OTA buffer takes (4 MiB, the CCM's buffer is of that order; only
/// one image, module or host, is held at a time).
pub const CAPACITY: u32 = 4 * 1024 * 1024;

/// Sub-code of `RxFileCreateFailed`: the host refused the proposal (`FLUSH`).
pub const SUB_DECLINED: u32 = 0x00_0001;
/// Sub-code of `RxFileCreateFailed`: a module image whose `filepath` is not a version.
pub const SUB_NO_VERSION: u32 = 0x00_0002;
/// Sub-code of `RxFileCreateFailed`: a job mixing module (101) and host (202) files.
pub const SUB_MIXED_JOB: u32 = 0x00_0003;
/// Sub-code base of `RxFileCreateFailed` for a refused file type (`| fileType & 0xffff`).
pub const SUB_FILE_TYPE: u32 = 0x01_0000;

/// Parse a module version as the agent counts it: `[v]MAJOR.MINOR.BUILD` (missing parts are
/// 0, anything after the third number or after a `-`/`+`/space is ignored). `None` when the
/// text does not start with a number that fits.
pub fn parse_version(text: &str) -> Option<AppVersion> {
    let t = text.trim();
    let t = t.strip_prefix(['v', 'V']).unwrap_or(t);
    let t = t.split([' ', '-', '+']).next().unwrap_or_default();
    let mut parts = t.split('.');
    let major: u8 = parts.next()?.parse().ok()?;
    let minor: u8 = match parts.next() {
        Some(p) => p.parse().ok()?,
        None => 0,
    };
    let build: u16 = match parts.next() {
        Some(p) => p.parse().ok()?,
        None => 0,
    };
    Some(AppVersion::new(major, minor, build))
}

/// State shared by the emulator's side ([`super::mqtt::MqttCloud`], any thread) and the
/// agent's thread.
#[derive(Default)]
pub struct LinkState {
    /// The first `AT+CONNECT` came: start the MQTT session.
    pub connect: bool,
    /// The `MqttCloud` was dropped: end the agent's thread.
    pub shutdown: bool,
    /// Jobs the host accepted and `prepare` has not taken yet.
    pub accepted: HashSet<String>,
    /// Outcomes the host reported and the agent has not taken yet.
    pub outcomes: HashMap<String, JobOutcome>,
    /// `HOTAcertificate` (PEM; empty: not set).
    pub hota_cert: String,
    /// `OTAcertificate` (PEM; empty: not set).
    pub ota_cert: String,
    /// The session's client, for the host's own publishes and subscriptions.
    pub client: Option<AsyncClient>,
    /// Topics the host subscribed to (subscribed again after a reconnect).
    pub subscriptions: Vec<String>,
    /// The host's publishes made before the session was up, sent once it is.
    pub unsent: Vec<(String, Vec<u8>)>,
}

/// The emulator ↔ agent link: shared state, a wake-up for the agent's waits, and the event
/// channel to the emulator.
pub struct Link {
    state: Mutex<LinkState>,
    wake: Notify,
    events: std_mpsc::Sender<CloudEvent>,
}

impl Link {
    /// A link sending the emulator's events to `events`.
    pub fn new(events: std_mpsc::Sender<CloudEvent>) -> Self {
        Self {
            state: Mutex::new(LinkState::default()),
            wake: Notify::new(),
            events,
        }
    }

    /// Lock the shared state (a poisoned lock is taken as is).
    pub fn lock(&self) -> MutexGuard<'_, LinkState> {
        match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Change the shared state and wake every waiter.
    pub fn update(&self, f: impl FnOnce(&mut LinkState)) {
        f(&mut self.lock());
        self.wake.notify_waiters();
    }

    /// Send an event to the emulator.
    pub fn emit(&self, ev: CloudEvent) {
        let _ = self.events.send(ev);
    }

    /// A sender of events to the emulator (for the MQTT tap).
    pub fn events(&self) -> std_mpsc::Sender<CloudEvent> {
        self.events.clone()
    }

    /// Wait until `f` returns `Some`; `None` once the link is shut down.
    pub async fn wait_for<T>(&self, mut f: impl FnMut(&mut LinkState) -> Option<T>) -> Option<T> {
        loop {
            let notified = self.wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut s = self.lock();
                if s.shutdown {
                    return None;
                }
                if let Some(v) = f(&mut s) {
                    return Some(v);
                }
            }
            notified.await;
        }
    }

    /// Resolves once the link is shut down.
    pub async fn closed(&self) {
        self.wait_for(|_| None::<()>).await;
    }
}

/// What the agent's thread learnt of a job from its document (the Jobs messages are peeked at
/// on their way to the agent, [`Local::observe_job`]).
#[derive(Debug, Clone, Default)]
pub struct JobSeen {
    /// `execution.jobId`.
    pub job_id: String,
    /// `afr_ota.files`, in order: (file type, file path, the file's JSON, its decoded
    /// `sig-sha256-ecdsa`).
    pub files: Vec<(u32, String, String, Option<Vec<u8>>)>,
}

/// The module's bootloader, emulated: which module version runs, and a staged or running trial.
#[derive(Debug, Clone, Default)]
pub struct BootState {
    /// The committed module version.
    pub running: AppVersion,
    /// Staged by `request_trial_boot`; runs on trial after the next reset.
    pub staged: Option<Trial>,
    /// Running on trial (self test pending).
    pub trial: Option<Trial>,
}

/// An image on trial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trial {
    /// Module or host image.
    pub kind: JobKind,
    /// The job.
    pub job_id: String,
    /// The module version the trial runs (the new one for 101, the running one for 202).
    pub version: AppVersion,
}

impl BootState {
    /// The version the agent runs now.
    pub fn app_version(&self) -> AppVersion {
        self.trial.as_ref().map_or(self.running, |t| t.version)
    }

    /// The reset: a staged image runs on trial; an unconfirmed trial is dropped (roll back).
    pub fn reboot(&mut self) {
        self.trial = self.staged.take();
    }
}

/// State of the agent's thread, shared by its PAL parts.
pub struct Local {
    /// The link to the emulator.
    pub link: Arc<Link>,
    /// The last job document seen.
    pub job: RefCell<Option<JobSeen>>,
    /// The OTA buffer.
    pub image: RefCell<Vec<u8>>,
    /// The bootloader.
    pub boot: RefCell<BootState>,
    /// Jobs whose image was handed to the emulator ([`CloudEvent::Downloaded`]).
    pub delivered: RefCell<HashSet<String>>,
}

impl Local {
    /// A module running `version`.
    pub fn new(link: Arc<Link>, version: AppVersion) -> Rc<Self> {
        Rc::new(Self {
            link,
            job: RefCell::new(None),
            image: RefCell::new(Vec::new()),
            boot: RefCell::new(BootState {
                running: version,
                ..BootState::default()
            }),
            delivered: RefCell::new(HashSet::new()),
        })
    }

    /// Record a job execution (`notify-next` / `$next/get/accepted` payload). Returns the file
    /// type of its first file when it holds one.
    pub fn observe_job(&self, payload: &[u8]) -> Option<u32> {
        let v: Json = serde_json::from_slice(payload).ok()?;
        let exec = &v["execution"];
        let id = exec["jobId"].as_str()?;
        let files = exec["jobDocument"]["afr_ota"]["files"].as_array()?;
        let files: Vec<_> = files
            .iter()
            .map(|f| {
                (
                    f["fileType"]
                        .as_u64()
                        .and_then(|t| u32::try_from(t).ok())
                        .unwrap_or(0),
                    f["filepath"].as_str().unwrap_or_default().to_string(),
                    f.to_string(),
                    f["sig-sha256-ecdsa"]
                        .as_str()
                        .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok()),
                )
            })
            .collect();
        let first = files.first().map(|f| f.0);
        *self.job.borrow_mut() = Some(JobSeen {
            job_id: id.to_string(),
            files,
        });
        first
    }

    fn job(&self) -> Option<JobSeen> {
        self.job.borrow().clone()
    }
}

fn refused(sub: u32) -> PalError {
    PalError::with_sub(PalErrorKind::RxFileCreateFailed, sub)
}

/// The emulated OTA buffer: the file in RAM, at most [`CAPACITY`] bytes. `prepare` is where
/// the host accepts or refuses the job.
pub struct ModuleStorage {
    /// Shared thread state.
    pub local: Rc<Local>,
    /// The file type the running agent treats as firmware (its job kind).
    pub firmware_type: u32,
}

impl ImageStorage for ModuleStorage {
    fn capacity(&self) -> u32 {
        CAPACITY
    }

    async fn prepare(&mut self, file: &FileInfo<'_>) -> Result<(), PalError> {
        let kind = JobKind::from_file_type(file.file_type)
            .ok_or_else(|| refused(SUB_FILE_TYPE | (file.file_type & 0xffff)))?;
        if file.file_type != self.firmware_type {
            return Err(refused(SUB_MIXED_JOB));
        }
        if file.size > CAPACITY {
            return Err(PalError::new(PalErrorKind::RxFileTooLarge));
        }
        let job = self
            .local
            .job()
            .ok_or(PalError::new(PalErrorKind::Uninitialized))?;
        let (_, path, metadata, signature) = job
            .files
            .get(usize::from(file.index))
            .cloned()
            .ok_or(PalError::new(PalErrorKind::Uninitialized))?;
        if kind == JobKind::Module && parse_version(&path).is_none() {
            return Err(refused(SUB_NO_VERSION));
        }
        let id = job.job_id.clone();
        self.local.delivered.borrow_mut().remove(&id);
        let link = self.local.link.clone();
        link.update(|s| {
            s.accepted.remove(&id);
            s.outcomes.remove(&id);
        });
        link.emit(CloudEvent::Proposed(Proposal {
            job_id: id.clone(),
            kind,
            // A module job names its version by its file path (like the CCM image name).
            version: path,
            metadata,
            signature,
        }));
        let accepted = link
            .wait_for(|s| {
                if s.accepted.remove(&id) {
                    return Some(true);
                }
                match s.outcomes.remove(&id) {
                    Some(JobOutcome::Failed(_)) => Some(false),
                    Some(o) => {
                        // Not an answer to a proposal: keep it for later.
                        s.outcomes.insert(id.clone(), o);
                        None
                    }
                    None => None,
                }
            })
            .await;
        if accepted != Some(true) {
            return Err(refused(SUB_DECLINED));
        }
        *self.local.image.borrow_mut() = vec![0; file.size as usize];
        Ok(())
    }

    async fn write(&mut self, offset: u32, data: &[u8]) -> Result<(), PalError> {
        let mut image = self.local.image.borrow_mut();
        let start = offset as usize;
        image
            .get_mut(start..start + data.len())
            .ok_or(PalError::new(PalErrorKind::FileClose))?
            .copy_from_slice(data);
        Ok(())
    }

    async fn read(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), PalError> {
        let image = self.local.image.borrow();
        let start = offset as usize;
        buf.copy_from_slice(
            image
                .get(start..start + buf.len())
                .ok_or(PalError::new(PalErrorKind::FileClose))?,
        );
        Ok(())
    }

    async fn abort(&mut self) -> Result<(), PalError> {
        self.local.image.borrow_mut().clear();
        Ok(())
    }
}

/// The module's check of a downloaded image: the job's `sig-sha256-ecdsa` (DER or raw P-256)
/// against `HOTAcertificate` for host images (202) or `OTAcertificate` for module images (101)
/// when the host has set that key (the emulator core checks the same on `Downloaded`, for
/// every cloud); with the key empty the image is accepted. A real CCM checks its own module
/// images with its vendor's key, which the emulator does not have.
pub struct ModuleVerifier {
    /// Shared thread state.
    pub local: Rc<Local>,
    /// The file being checked.
    pub kind: Option<JobKind>,
}

impl ImageVerifier for ModuleVerifier {
    fn kind(&self) -> SignatureKind {
        SignatureKind::SHA256_ECDSA
    }

    fn needs_image_bytes(&self) -> bool {
        // The whole file is in RAM: `finish` checks it there.
        false
    }

    fn begin(&mut self, file: &FileInfo<'_>) {
        self.kind = JobKind::from_file_type(file.file_type);
    }

    fn update(&mut self, _data: &[u8]) {}

    async fn finish(&mut self, signature: &[u8]) -> Result<(), PalError> {
        let cert = {
            let s = self.local.link.lock();
            match self.kind {
                Some(JobKind::Host) => s.hota_cert.clone(),
                Some(JobKind::Module) => s.ota_cert.clone(),
                None => String::new(),
            }
        };
        if cert.is_empty() {
            return Ok(());
        }
        if verify_p256(&cert, &self.local.image.borrow(), signature) {
            Ok(())
        } else {
            Err(PalError::new(PalErrorKind::SignatureCheckFailed))
        }
    }
}

/// The module's bootloader ([`BootState`]).
pub struct ModuleBoot {
    /// Shared thread state.
    pub local: Rc<Local>,
}

impl BootControl for ModuleBoot {
    async fn platform_state(&mut self) -> Result<PlatformImageState, PalError> {
        Ok(if self.local.boot.borrow().trial.is_some() {
            PlatformImageState::PendingCommit
        } else {
            PlatformImageState::Valid
        })
    }

    async fn request_trial_boot(&mut self, file: &FileInfo<'_>) -> Result<(), PalError> {
        let kind = JobKind::from_file_type(file.file_type)
            .ok_or(PalError::new(PalErrorKind::BootInfoCreateFailed))?;
        let job = self
            .local
            .job()
            .ok_or(PalError::new(PalErrorKind::BootInfoCreateFailed))?;
        let mut boot = self.local.boot.borrow_mut();
        let version = match kind {
            JobKind::Module => job
                .files
                .get(usize::from(file.index))
                .and_then(|f| parse_version(&f.1))
                .ok_or(PalError::new(PalErrorKind::BootInfoCreateFailed))?,
            JobKind::Host => boot.running,
        };
        boot.staged = Some(Trial {
            kind,
            job_id: job.job_id,
            version,
        });
        Ok(())
    }

    async fn confirm(&mut self) -> Result<(), PalError> {
        let mut boot = self.local.boot.borrow_mut();
        let t = boot
            .trial
            .take()
            .ok_or(PalError::new(PalErrorKind::CommitFailed))?;
        boot.running = t.version;
        Ok(())
    }

    async fn reject(&mut self) -> Result<(), PalError> {
        // A staged image is dropped; an image on trial is not confirmed, so the next reset
        // rolls it back.
        self.local.boot.borrow_mut().staged = None;
        Ok(())
    }
}

/// The agent's reset: the emulated bootloader runs ([`BootState::reboot`]) and the driver run
/// ends; the agent's thread starts a new agent.
pub struct ModuleReset {
    /// Shared thread state.
    pub local: Rc<Local>,
}

impl Reset for ModuleReset {
    fn reset(&mut self) {
        self.local.boot.borrow_mut().reboot();
    }
}

/// The self test of the image on trial: hand it to the emulator and wait for the host.
pub struct ModuleApp {
    /// Shared thread state.
    pub local: Rc<Local>,
}

impl Application for ModuleApp {
    async fn self_test(&mut self) -> bool {
        let Some(trial) = self.local.boot.borrow().trial.clone() else {
            return false;
        };
        let id = trial.job_id;
        let link = self.local.link.clone();
        // The host may have dropped the job already (a module reset without persistence).
        let early = link.lock().outcomes.remove(&id);
        if let Some(o) = early {
            return o == JobOutcome::Succeeded;
        }
        self.local.delivered.borrow_mut().insert(id.clone());
        let image = self.local.image.borrow().clone();
        link.emit(CloudEvent::Downloaded {
            job_id: id.clone(),
            image,
        });
        let outcome = link.wait_for(|s| s.outcomes.remove(&id)).await;
        outcome == Some(JobOutcome::Succeeded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_leniently() {
        assert_eq!(parse_version("2.0.0"), Some(AppVersion::new(2, 0, 0)));
        assert_eq!(parse_version("v2.5.7"), Some(AppVersion::new(2, 5, 7)));
        assert_eq!(parse_version("3"), Some(AppVersion::new(3, 0, 0)));
        assert_eq!(parse_version("1.2.3-beta2"), Some(AppVersion::new(1, 2, 3)));
        assert_eq!(parse_version("X.Y.Z beta2"), None);
        assert_eq!(parse_version("host.bin"), None);
        assert_eq!(parse_version("300.0.0"), None);
    }

    #[test]
    fn boot_state_trial_commit_and_roll_back() {
        let mut b = BootState {
            running: AppVersion::new(1, 0, 0),
            ..BootState::default()
        };
        let t = Trial {
            kind: JobKind::Module,
            job_id: "j".into(),
            version: AppVersion::new(2, 0, 0),
        };
        b.staged = Some(t.clone());
        b.reboot();
        assert_eq!(b.app_version(), AppVersion::new(2, 0, 0));
        // Not confirmed: the next reset rolls back.
        b.reboot();
        assert_eq!(b.app_version(), AppVersion::new(1, 0, 0));
        assert!(b.trial.is_none());
    }
}
