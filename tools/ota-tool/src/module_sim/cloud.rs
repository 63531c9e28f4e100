//! The module's cloud side behind a trait, and an in-process implementation fed directly.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// Which image a job carries (the AWS IoT OTA file type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    /// File type 101: the module's own firmware (state 1, then 4, then APPLY).
    Module,
    /// File type 202: a host image, read out by the host in state 5.
    Host,
}

impl JobKind {
    /// The OTA file type code.
    pub fn file_type(self) -> u32 {
        match self {
            Self::Module => 101,
            Self::Host => 202,
        }
    }

    /// The kind for a file type code (101 / 202), `None` for others.
    pub fn from_file_type(t: u32) -> Option<Self> {
        match t {
            101 => Some(Self::Module),
            202 => Some(Self::Host),
            _ => None,
        }
    }
}

/// A job the cloud proposes to the module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    /// The job id (reported back in [`ModuleCloud::accept`] and [`ModuleCloud::report`]).
    pub job_id: String,
    /// Module or host image.
    pub kind: JobKind,
    /// The new module version (101) shown in `OTA?` state 1 and taken after APPLY.
    pub version: String,
    /// Operator metadata (202) shown in `OTA?` state 2 (v0.5 detail; v1.3 with `DOC`).
    pub metadata: String,
    /// The job's signature over the image (DER or raw P-256), if any. The module checks it
    /// against `HOTAcertificate` for host images when that key is set.
    pub signature: Option<Vec<u8>>,
}

/// How a job ended, as the module reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    /// CLOSE (host image) or CONNECT after APPLY (module image).
    Succeeded,
    /// FLUSH, a failed download or a failed check; the reason is given.
    Failed(String),
}

/// What the cloud tells the module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloudEvent {
    /// A job was proposed.
    Proposed(Proposal),
    /// An accepted job's image was downloaded in full.
    Downloaded {
        /// The job.
        job_id: String,
        /// The image bytes.
        image: Vec<u8>,
    },
    /// An accepted job's download failed.
    DownloadFailed {
        /// The job.
        job_id: String,
        /// Why.
        reason: String,
    },
    /// A message arrived on a topic the module subscribed to.
    Message {
        /// The full topic.
        topic: String,
        /// The payload.
        payload: Vec<u8>,
    },
}

/// The module's cloud connection: jobs proposed, images downloaded, job status reported,
/// plain messaging. Calls never block; [`ModuleCloud::poll`] is called often.
pub trait ModuleCloud: Send {
    /// Connect as the thing (`AT+CONNECT`). An error becomes `ERR14`.
    fn connect(&mut self, thing: &str) -> Result<(), String>;
    /// Disconnect (`AT+DISCONNECT`, reset).
    fn disconnect(&mut self) {}
    /// Whatever arrived since the last call.
    fn poll(&mut self) -> Vec<CloudEvent>;
    /// The host accepted the job: start the download.
    fn accept(&mut self, job_id: &str);
    /// Report the job's final status.
    fn report(&mut self, job_id: &str, outcome: JobOutcome);
    /// Publish a message (`AT+SEND#`).
    fn publish(&mut self, topic: &str, payload: &[u8]) -> Result<(), String> {
        let _ = (topic, payload);
        Ok(())
    }
    /// Subscribe to a topic (`AT+SUBSCRIBE#`).
    fn subscribe(&mut self, topic: &str) {
        let _ = topic;
    }
    /// A configuration key the cloud side uses changed (`HOTAcertificate`, `OTAcertificate`:
    /// the PEM key images are checked with, empty when cleared).
    fn configure(&mut self, key: &str, value: &str) {
        let _ = (key, value);
    }
}

/// Shared state of a [`LocalCloud`]; the test (or the CLI) keeps a handle to it.
#[derive(Debug, Default)]
pub struct LocalState {
    /// Jobs not yet proposed, with their images.
    pub queue: VecDeque<(Proposal, Vec<u8>)>,
    /// The job proposed and not finished (its image is delivered after accept).
    pub current: Option<(Proposal, Vec<u8>)>,
    /// Job ids accepted.
    pub accepted: Vec<String>,
    /// Downloads started and not yet delivered.
    downloading: Option<(String, u32)>,
    /// Polls a download takes after accept (0: delivered on the next poll).
    pub download_polls: u32,
    /// Reports, in order.
    pub reports: Vec<(String, JobOutcome)>,
    /// Messages published by the module.
    pub published: Vec<(String, Vec<u8>)>,
    /// Topics subscribed.
    pub subscribed: Vec<String>,
    /// Messages to deliver to the module.
    pub inbox: VecDeque<(String, Vec<u8>)>,
    /// Connected.
    pub connected: bool,
    /// Make `connect` fail with this text.
    pub refuse_connect: Option<String>,
}

/// An in-process cloud fed directly with jobs and their image bytes: jobs are proposed one at a
/// time once the module is connected, downloads complete on the next poll after accept.
#[derive(Debug, Clone, Default)]
pub struct LocalCloud {
    /// The shared state.
    pub state: Arc<Mutex<LocalState>>,
}

impl LocalCloud {
    /// An empty cloud.
    pub fn new() -> Self {
        Self::default()
    }

    /// Queue a job with its image.
    pub fn push_job(&self, proposal: Proposal, image: Vec<u8>) {
        self.lock().queue.push_back((proposal, image));
    }

    /// Queue a message for the module.
    pub fn push_message(&self, topic: &str, payload: &[u8]) {
        self.lock()
            .inbox
            .push_back((topic.to_string(), payload.to_vec()));
    }

    /// The reports so far.
    pub fn reports(&self) -> Vec<(String, JobOutcome)> {
        self.lock().reports.clone()
    }

    /// Lock the shared state.
    pub fn lock(&self) -> std::sync::MutexGuard<'_, LocalState> {
        match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }
}

impl ModuleCloud for LocalCloud {
    fn connect(&mut self, _thing: &str) -> Result<(), String> {
        let mut s = self.lock();
        if let Some(e) = s.refuse_connect.clone() {
            return Err(e);
        }
        s.connected = true;
        Ok(())
    }

    fn disconnect(&mut self) {
        self.lock().connected = false;
    }

    fn poll(&mut self) -> Vec<CloudEvent> {
        let mut s = self.lock();
        let mut out = Vec::new();
        if !s.connected {
            return out;
        }
        if let Some((id, left)) = s.downloading.take() {
            if left > 0 {
                s.downloading = Some((id.clone(), left - 1));
            } else if let Some((p, img)) = &s.current {
                if p.job_id == id {
                    out.push(CloudEvent::Downloaded {
                        job_id: id,
                        image: img.clone(),
                    });
                }
            }
        }
        if s.current.is_none() {
            if let Some(job) = s.queue.pop_front() {
                out.push(CloudEvent::Proposed(job.0.clone()));
                s.current = Some(job);
            }
        }
        while let Some((topic, payload)) = s.inbox.pop_front() {
            out.push(CloudEvent::Message { topic, payload });
        }
        out
    }

    fn accept(&mut self, job_id: &str) {
        let mut s = self.lock();
        s.accepted.push(job_id.to_string());
        s.downloading = Some((job_id.to_string(), s.download_polls));
    }

    fn report(&mut self, job_id: &str, outcome: JobOutcome) {
        let mut s = self.lock();
        if s.current.as_ref().is_some_and(|(p, _)| p.job_id == job_id) {
            s.current = None;
        }
        s.reports.push((job_id.to_string(), outcome));
    }

    fn publish(&mut self, topic: &str, payload: &[u8]) -> Result<(), String> {
        self.lock()
            .published
            .push((topic.to_string(), payload.to_vec()));
        Ok(())
    }

    fn subscribe(&mut self, topic: &str) {
        self.lock().subscribed.push(topic.to_string());
    }
}
