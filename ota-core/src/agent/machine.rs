//! The [`Agent`] state machine. See the [module docs](super) for the contract.

use heapless::{Deque, String, Vec};
use ota_pal_traits::{FileInfo, JournalHeader, PalError, PlatformImageState};
use sha2::{Digest, Sha256};

use super::{
    Command, Completion, Config, ConfigError, HttpFailure, Instant, Received, State, Statistics,
    MAX_FILES, MAX_WINDOW_BYTES, PATH_LEN, PAYLOAD_LEN,
};
use crate::wire::bitmap::BlockBitmap;
use crate::wire::cbor::{BlockError, DataBlock, RejectCode, StreamRejected, CLIENT_TOKEN};
use crate::wire::job::{self, CustomJob, JobDocument, JobErrorKind, JobMessage, MAX_SIGNATURE_LEN};
use crate::wire::json;
use crate::wire::status::{
    should_report_progress, write_get_next_request, JobReason, OtaErr, StatusUpdate,
};
use crate::wire::topic::{
    self, route, Incoming, Qos, Topic, TopicKind, MAX_JOB_ID_LEN, MAX_STREAM_NAME_LEN,
    MAX_THING_NAME_LEN,
};
use crate::wire::version::AppVersion;

/// `OtaJobParseErr_t` sub-codes reported as `0x0000000c: 0x<sub>` (module docs, item i).
const PARSE_ZERO_SIZE: u32 = 3;
const PARSE_NON_CONFORMING: u32 = 4;
const PARSE_BAD_MODEL: u32 = 5;
/// PAL main code of `SignatureCheckFailed`, used for a job without the verifier's key.
const SIGNATURE_CHECK_FAILED: u32 = 0xe3;
/// PAL main code `Uninitialized`: the reference's reason for a bad block (§6 table).
const BAD_BLOCK: u32 = 0xe0;
/// Depth of the command queue. Every input queues at most 12 commands.
const QUEUE: usize = 16;

/// Topics the agent subscribes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tk {
    NotifyNext,
    GetNextAccepted,
    GetNextRejected,
    UpdateAccepted,
    UpdateRejected,
    StreamData,
    StreamRejected,
}

/// A queued command, rendered by `poll_command`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    Sub(Tk),
    Unsub(Tk),
    GetNext,
    Status(StatusUpdate),
    StreamRequest,
    HttpGet(u32),
    Prepare { resume: bool },
    Verify,
    TrialBoot(u8),
    Confirm,
    Reject,
    Abort,
    ClearJournal,
    SelfTest,
    Reset,
}

impl Pending {
    fn is_mqtt(&self) -> bool {
        matches!(
            self,
            Self::Sub(_) | Self::Unsub(_) | Self::GetNext | Self::Status(_) | Self::StreamRequest
        )
    }
}

/// What to do once a final status is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Then {
    /// The job is over: look for the next one.
    Idle,
    /// Reset the device (activate the new image, or roll back).
    Reset,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PalOp {
    Prepare,
    Verify,
    TrialBoot(u8),
    Confirm,
    SelfTest,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Stopped,
    Idle,
    Requesting,
    Pal(PalOp),
    Downloading,
    AwaitAck {
        update: StatusUpdate,
        then: Then,
        attempts: u32,
    },
    Custom,
    Resetting,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JobKind {
    /// An `afr_ota` job being downloaded.
    Ota,
    /// The self test of an image this device installed.
    SelfTest,
    /// A job handed to the application.
    Custom,
}

/// What the agent keeps of each file of the job (for `FileInfo` and the trial boots).
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileSummary {
    size: u32,
    file_id: u32,
    file_type: u32,
    attributes: u32,
    path: String<PATH_LEN>,
    cert: String<PATH_LEN>,
}

#[derive(Debug, Clone)]
struct Job {
    id: String<MAX_JOB_ID_LEN>,
    kind: JobKind,
    stream: String<MAX_STREAM_NAME_LEN>,
    http: bool,
    updated_by: u32,
    files: Vec<FileSummary, MAX_FILES>,
    file_index: u8,
    /// `PrepareFile` was issued for `file_index` (storage holds a partial file).
    file_started: bool,
    /// Job topics subscription queued since the last (re)connect.
    subscribed: bool,
    /// Stream topics subscription queued since the last (re)connect.
    stream_subscribed: bool,
    /// Malformed-document sub-code for an unclaimed custom job.
    custom_sub: u32,
}

impl Job {
    fn new(id: &str, kind: JobKind) -> Option<Self> {
        Some(Self {
            id: String::try_from(id).ok()?,
            kind,
            stream: String::new(),
            http: false,
            updated_by: 0,
            files: Vec::new(),
            file_index: 0,
            file_started: false,
            subscribed: false,
            stream_subscribed: false,
            custom_sub: PARSE_NON_CONFORMING,
        })
    }

    fn file(&self) -> Option<&FileSummary> {
        self.files.get(usize::from(self.file_index))
    }
}

fn info(index: u8, f: &FileSummary) -> FileInfo<'_> {
    FileInfo {
        index,
        path: f.path.as_str(),
        size: f.size,
        file_type: f.file_type,
        attributes: f.attributes,
        cert_path: f.cert.as_str(),
    }
}

fn empty_header() -> JournalHeader {
    JournalHeader {
        job_id: String::new(),
        file_index: 0,
        file_size: 0,
        block_size: 0,
        signature_digest: [0; 32],
    }
}

/// The OTA agent state machine (sans-IO). See the [module docs](super).
///
/// `BITMAP_BYTES` bounds the file size (`8 × BITMAP_BYTES` blocks; the default 512 covers the
/// 16 MiB AWS limit at 4 KiB blocks); `URL_LEN` bounds the presigned URL of the HTTP data path
/// (0 disables it in practice).
///
/// RAM (measured; `tests/agent_size.rs` prints the host figures): `size_of::<Agent>()` is
/// **4,912 bytes** on `thumbv7em-none-eabihf` (5,024 on a 64-bit host); `Agent<128, 0>` (1,024
/// blocks, MQTT only) is 2,992 bytes. The parts: the bitmap (`BITMAP_BYTES` + 8), the decoded
/// signature (512), the URL (`URL_LEN`), one topic (260) and one payload (256) scratch
/// buffer, the job (id, stream name, up to 4 file summaries with 64-byte paths), two journal
/// headers, the subscribed job/stream names and a 16-entry command queue. The driver's
/// receive buffer is the caller's.
#[derive(Debug)]
pub struct Agent<const BITMAP_BYTES: usize = 512, const URL_LEN: usize = 1536> {
    cfg: Config<'static>,
    thing: String<MAX_THING_NAME_LEN>,
    phase: Phase,
    connected: bool,
    platform: PlatformImageState,
    deadline: Option<Instant>,
    self_test_deadline: Option<Instant>,
    backoff_ms: u32,
    momentum: u32,
    outstanding: u32,
    in_flight: Option<u32>,
    get_next_counter: u32,
    /// Progress updates (QoS 0) whose `update/accepted` has not arrived yet: the Jobs service
    /// answers every update, and answers come in order, so the first that many answers after
    /// a final status belong to earlier progress reports (capped, reset on reconnect).
    progress_unanswered: u32,
    job: Option<Job>,
    bitmap: BlockBitmap<BITMAP_BYTES>,
    signature: [u8; MAX_SIGNATURE_LEN],
    signature_len: usize,
    url: String<URL_LEN>,
    header: JournalHeader,
    restored: Option<JournalHeader>,
    /// The `PrepareFile` in flight continues a journalled download (`resume: true`).
    preparing_resume: bool,
    committed_job: String<MAX_JOB_ID_LEN>,
    sub_job: String<MAX_JOB_ID_LEN>,
    sub_stream: String<MAX_STREAM_NAME_LEN>,
    queue: Deque<Pending, QUEUE>,
    topic: Topic,
    payload: [u8; PAYLOAD_LEN],
    stats: Statistics,
}

impl<const BITMAP_BYTES: usize, const URL_LEN: usize> Agent<BITMAP_BYTES, URL_LEN> {
    /// A new agent for `config` (checked: thing name, block size).
    pub fn new(config: Config<'_>) -> Result<Self, ConfigError> {
        topic::validate_thing_name(config.thing_name).map_err(|_| ConfigError::InvalidThingName)?;
        if !(256..=131_072).contains(&config.block_size) {
            return Err(ConfigError::InvalidBlockSize);
        }
        let thing =
            String::try_from(config.thing_name).map_err(|_| ConfigError::InvalidThingName)?;
        let cfg = Config {
            thing_name: "",
            ..config
        };
        let bitmap = BlockBitmap::new(0).map_err(|_| ConfigError::InvalidBlockSize)?;
        Ok(Self {
            cfg,
            thing,
            phase: Phase::Stopped,
            connected: false,
            platform: PlatformImageState::Unknown,
            deadline: None,
            self_test_deadline: None,
            backoff_ms: cfg.get_next_backoff_ms,
            momentum: 0,
            outstanding: 0,
            in_flight: None,
            get_next_counter: 0,
            progress_unanswered: 0,
            job: None,
            bitmap,
            signature: [0; MAX_SIGNATURE_LEN],
            signature_len: 0,
            url: String::new(),
            header: empty_header(),
            restored: None,
            preparing_resume: false,
            committed_job: String::new(),
            sub_job: String::new(),
            sub_stream: String::new(),
            queue: Deque::new(),
            topic: Topic::new(),
            payload: [0; PAYLOAD_LEN],
            stats: Statistics::default(),
        })
    }

    // ----- inputs -------------------------------------------------------------------------

    /// Record a block the journal reports as durably written. Call for every block **before**
    /// [`start`](Self::start); blocks past the bitmap capacity are ignored.
    pub fn restore_block(&mut self, index: u32) {
        if self.phase != Phase::Stopped {
            return;
        }
        if self.bitmap.block_count() == 0 {
            let cap = u32::try_from(BlockBitmap::<BITMAP_BYTES>::capacity()).unwrap_or(u32::MAX);
            if let Ok(b) = BlockBitmap::new(cap) {
                self.bitmap = b;
            }
        }
        let _ = self.bitmap.mark_received(index);
    }

    /// Start the agent with the platform's image state (spec §4.3 `start`) and the header of
    /// the journal, if any. In `PendingCommit` the self-test timer starts: no self-test job
    /// within [`Config::self_test_timeout_ms`] → [`Command::Reset`] (§6).
    pub fn start(
        &mut self,
        now: Instant,
        platform: PlatformImageState,
        journal: Option<JournalHeader>,
    ) {
        if self.phase != Phase::Stopped {
            return;
        }
        self.platform = platform;
        if platform == PlatformImageState::PendingCommit {
            self.self_test_deadline = Some(now.after_ms(self.cfg.self_test_timeout_ms));
        }
        self.restored = journal.filter(|h| {
            h.block_size == self.cfg.block_size
                && u64::from(h.file_size.div_ceil(h.block_size.max(1)))
                    <= BlockBitmap::<BITMAP_BYTES>::capacity()
                && h.file_size > 0
        });
        if self.restored.is_none() {
            if let Ok(b) = BlockBitmap::new(0) {
                self.bitmap = b;
            }
        }
        self.phase = Phase::Idle;
        if self.connected {
            self.on_connected(now);
        }
    }

    /// The MQTT session is up (first time or after a reconnect): subscribe and (re)ask for the
    /// job, which resumes a download in progress (refresh path, §4.6).
    pub fn connected(&mut self, now: Instant) {
        self.connected = true;
        if self.phase != Phase::Stopped {
            self.on_connected(now);
        }
    }

    fn on_connected(&mut self, now: Instant) {
        self.progress_unanswered = 0;
        self.sub_job.clear();
        self.sub_stream.clear();
        if let Some(job) = self.job.as_mut() {
            job.subscribed = false;
            job.stream_subscribed = false;
        }
        self.push(Pending::Sub(Tk::NotifyNext));
        self.push(Pending::Sub(Tk::GetNextAccepted));
        self.push(Pending::Sub(Tk::GetNextRejected));
        match self.phase {
            Phase::Idle | Phase::Requesting | Phase::Downloading => {
                self.ensure_job_subscribed();
                self.send_get_next(now);
            }
            Phase::AwaitAck { update, .. } => {
                self.ensure_job_subscribed();
                self.push(Pending::Status(update));
                self.deadline = Some(now.after_ms(self.cfg.request_timeout_ms));
            }
            _ => self.ensure_job_subscribed(),
        }
    }

    /// The MQTT session dropped: queued MQTT commands are discarded and retries pause until
    /// [`connected`](Self::connected).
    pub fn disconnected(&mut self, _now: Instant) {
        self.connected = false;
        let n = self.queue.len();
        for _ in 0..n {
            if let Some(p) = self.queue.pop_front() {
                if !p.is_mqtt() {
                    let _ = self.queue.push_back(p);
                }
            }
        }
        if matches!(
            self.phase,
            Phase::Requesting | Phase::Downloading | Phase::AwaitAck { .. }
        ) {
            self.deadline = None;
        }
    }

    /// Ask for a job now (`OTA_CheckForUpdate`); only when no job is active.
    pub fn check_for_update(&mut self, now: Instant) {
        if self.connected && self.phase == Phase::Idle {
            self.send_get_next(now);
        }
    }

    /// The application aborts the job being downloaded: `FAILED aborted: 0x00000013`.
    /// Returns false when there is nothing to abort (or a PAL operation is running).
    pub fn abort_job(&mut self, now: Instant) -> bool {
        let downloading = self.job.as_ref().is_some_and(|j| j.kind == JobKind::Ota)
            && matches!(self.phase, Phase::Downloading | Phase::Requesting);
        if downloading {
            self.fail(
                now,
                StatusUpdate::Failed {
                    reason: JobReason::Aborted,
                    sub_reason: OtaErr::UserAbort.code(),
                },
            );
        }
        downloading
    }

    /// The application's answer to a [`Received::CustomJob`]: `Some(update)` claims the job
    /// and publishes `update`; `None` declines it, which fails it with
    /// `0x0000000c: 0x0000000<n>` (§2.2).
    pub fn custom_job_result(&mut self, now: Instant, update: Option<StatusUpdate>) {
        if self.phase != Phase::Custom {
            return;
        }
        let sub = self
            .job
            .as_ref()
            .map_or(PARSE_NON_CONFORMING, |j| j.custom_sub);
        let update = update.unwrap_or(StatusUpdate::FailedWithVal {
            reason: OtaErr::JobParserError.code(),
            sub_reason: sub,
        });
        self.publish_final(now, update, Then::Idle);
    }

    /// Handle one incoming publish. Topics that are not the agent's are ignored.
    pub fn handle_publish<'a>(
        &mut self,
        now: Instant,
        topic: &str,
        payload: &'a [u8],
    ) -> Received<'a> {
        self.stats.packets_received = self.stats.packets_received.wrapping_add(1);
        let Ok(incoming) = route(topic, &self.thing) else {
            return self.drop_packet();
        };
        match incoming {
            Incoming::NotifyNext | Incoming::GetNextAccepted => self.on_job_payload(now, payload),
            Incoming::GetNextRejected => {
                if self.phase == Phase::Requesting && self.job.is_none() {
                    self.deadline = Some(now.after_ms(self.backoff_ms));
                }
                Received::Nothing
            }
            Incoming::UpdateAccepted { job_id } => {
                self.on_update_accepted(now, job_id);
                Received::Nothing
            }
            Incoming::UpdateRejected { job_id } => {
                self.on_update_rejected(now, job_id, payload);
                Received::Nothing
            }
            Incoming::StreamData { stream } => self.on_stream_data(now, stream, payload),
            Incoming::StreamRejected { stream } => {
                self.on_stream_rejected(now, stream, payload);
                Received::Nothing
            }
        }
    }

    /// An HTTP range body for block `index` (HTTP data path, §10).
    pub fn handle_http_block<'a>(
        &mut self,
        now: Instant,
        index: u32,
        data: &'a [u8],
    ) -> Received<'a> {
        self.stats.packets_received = self.stats.packets_received.wrapping_add(1);
        let http = self.job.as_ref().is_some_and(|j| j.http);
        if !http {
            return self.drop_packet();
        }
        let Some(file_id) = self.current_file().map(|f| f.file_id) else {
            return self.drop_packet();
        };
        let block = DataBlock {
            file_id,
            block_index: index,
            block_size: u32::try_from(data.len()).unwrap_or(u32::MAX),
            payload: data,
        };
        self.ingest(now, block)
    }

    /// An HTTP range request failed. [`HttpFailure::Expired`] re-reads the job document for
    /// a fresh URL (§2.3 step 4); other failures are retried on the request timeout.
    pub fn http_failed(&mut self, now: Instant, failure: HttpFailure) {
        let http = self.job.as_ref().is_some_and(|j| j.http);
        if !http || self.phase != Phase::Downloading {
            return;
        }
        if failure == HttpFailure::Expired {
            self.send_get_next(now);
        }
    }

    /// The block handed out by [`Received::Block`] was written to storage and recorded in the
    /// journal (`Ok`), or could not be (`Err`: the job fails with the PAL status).
    pub fn block_written(&mut self, now: Instant, index: u32, result: Result<(), PalError>) {
        if self.in_flight != Some(index) {
            return;
        }
        self.in_flight = None;
        if self.phase != Phase::Downloading {
            return;
        }
        if let Err(e) = result {
            self.fail(now, pal_failure(e));
            return;
        }
        if !matches!(self.bitmap.mark_received(index), Ok(true)) {
            return;
        }
        self.stats.blocks_written = self.stats.blocks_written.wrapping_add(1);
        self.momentum = 0;
        self.deadline = Some(now.after_ms(self.cfg.request_timeout_ms));
        let received = self.bitmap.received();
        if should_report_progress(received, self.cfg.progress_frequency) {
            self.push(Pending::Status(StatusUpdate::Progress {
                received,
                total: self.bitmap.block_count(),
            }));
        }
        if self.bitmap.is_complete() {
            self.deadline = None;
            self.pal(PalOp::Verify, Pending::Verify);
            return;
        }
        self.outstanding = self.outstanding.saturating_sub(1);
        if self.outstanding == 0 {
            self.request_blocks(now);
        }
    }

    /// The result of a PAL command ([`Command::needs_completion`]). A completion that does not
    /// match the operation the agent waits for is ignored.
    pub fn complete(&mut self, now: Instant, completion: Completion) {
        let Phase::Pal(op) = self.phase else {
            return;
        };
        match (op, completion) {
            (PalOp::Prepare, Completion::Prepared(r)) => self.on_prepared(now, r),
            (PalOp::Verify, Completion::Verified(r)) => self.on_verified(now, r),
            (PalOp::TrialBoot(i), Completion::TrialBootRequested(r)) => {
                self.on_trial_boot(now, i, r)
            }
            (PalOp::Confirm, Completion::Confirmed(r)) => self.on_confirmed(now, r),
            (PalOp::SelfTest, Completion::SelfTest(passed)) => {
                if passed {
                    self.pal(PalOp::Confirm, Pending::Confirm);
                } else {
                    self.push(Pending::Reject);
                    self.publish_final(
                        now,
                        StatusUpdate::Failed {
                            reason: JobReason::Rejected,
                            sub_reason: OtaErr::None.code(),
                        },
                        Then::Reset,
                    );
                }
            }
            _ => {}
        }
    }

    /// Time passed: call when `now >= poll_timeout()` (calling early is harmless).
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.self_test_deadline.is_some_and(|d| d <= now) {
            self.self_test_deadline = None;
            self.deadline = None;
            self.push(Pending::Reset);
            self.phase = Phase::Resetting;
            return;
        }
        if self.deadline.is_none_or(|d| d > now) {
            return;
        }
        self.deadline = None;
        if !self.connected {
            // Retries pause while offline (a deadline set by an input handled offline);
            // `connected` restarts them.
            return;
        }
        match self.phase {
            Phase::Requesting => {
                self.backoff_ms = self
                    .backoff_ms
                    .saturating_mul(2)
                    .min(self.cfg.get_next_backoff_max_ms)
                    .max(1);
                self.push(Pending::GetNext);
                self.deadline = Some(now.after_ms(self.backoff_ms));
            }
            Phase::Downloading => {
                self.momentum = self.momentum.saturating_add(1);
                if self.momentum > self.cfg.max_retries {
                    self.fail(
                        now,
                        StatusUpdate::Failed {
                            reason: JobReason::Aborted,
                            sub_reason: OtaErr::MomentumAbort.code(),
                        },
                    );
                } else {
                    self.request_blocks(now);
                }
            }
            Phase::AwaitAck {
                update,
                then,
                attempts,
            } => {
                if attempts >= self.cfg.max_retries {
                    self.after_ack(now, then);
                } else {
                    self.phase = Phase::AwaitAck {
                        update,
                        then,
                        attempts: attempts + 1,
                    };
                    self.push(Pending::Status(update));
                    self.deadline = Some(now.after_ms(self.cfg.request_timeout_ms));
                }
            }
            _ => {}
        }
    }

    // ----- outputs ------------------------------------------------------------------------

    /// The next command, rendered into the agent's scratch buffers. Drain after every input.
    pub fn poll_command(&mut self) -> Option<Command<'_>> {
        loop {
            let p = self.queue.pop_front()?;
            if let Some(kind) = self.render(p) {
                return self.command(kind);
            }
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) wants to be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match (self.deadline, self.self_test_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// What the agent is doing.
    pub fn state(&self) -> State {
        match self.phase {
            Phase::Stopped => State::Stopped,
            Phase::Resetting => State::Resetting,
            Phase::Pal(_) => State::WaitingForPal,
            _ if !self.connected => State::Offline,
            Phase::Idle => State::WaitingForJob,
            Phase::Requesting => State::RequestingJob,
            Phase::Downloading => State::Downloading,
            Phase::AwaitAck { .. } => State::AwaitingAck,
            Phase::Custom => State::CustomJob,
        }
    }

    /// Counters.
    pub fn statistics(&self) -> Statistics {
        self.stats
    }

    /// The id of the active job, if any.
    pub fn job_id(&self) -> Option<&str> {
        self.job.as_ref().map(|j| j.id.as_str())
    }

    /// The block bitmap of the current file (for tests and diagnostics).
    pub fn bitmap(&self) -> &BlockBitmap<BITMAP_BYTES> {
        &self.bitmap
    }

    /// The block in flight (handed out, not yet reported written).
    pub fn block_in_flight(&self) -> Option<u32> {
        self.in_flight
    }

    // ----- internals ----------------------------------------------------------------------

    fn push(&mut self, p: Pending) {
        // Offline nothing can be sent: `connected` re-subscribes and re-sends what the phase
        // needs (the job request, the pending final status), as `disconnected` expects.
        if !self.connected && p.is_mqtt() {
            return;
        }
        // The queue is sized for the longest burst of one input; if it ever overflowed the
        // command would be lost and recovered by a timeout, never a panic.
        let _ = self.queue.push_back(p);
    }

    fn drop_packet(&mut self) -> Received<'static> {
        self.stats.packets_dropped = self.stats.packets_dropped.wrapping_add(1);
        Received::Nothing
    }

    fn pal(&mut self, op: PalOp, p: Pending) {
        self.deadline = None;
        self.phase = Phase::Pal(op);
        self.push(p);
    }

    fn current_file(&self) -> Option<&FileSummary> {
        self.job.as_ref().and_then(Job::file)
    }

    fn send_get_next(&mut self, now: Instant) {
        self.backoff_ms = self.cfg.get_next_backoff_ms.max(1);
        self.phase = Phase::Requesting;
        self.push(Pending::GetNext);
        self.deadline = Some(now.after_ms(self.backoff_ms));
    }

    fn ensure_job_subscribed(&mut self) {
        // Offline the flags are still set: `on_connected` clears them and subscribes again.
        let Some(job) = self.job.as_mut() else {
            return;
        };
        let subscribe_job = !job.subscribed;
        job.subscribed = true;
        let unsub_job = subscribe_job && !self.sub_job.is_empty() && self.sub_job != job.id;
        let subscribe_stream =
            job.kind == JobKind::Ota && !job.http && !job.stream_subscribed && job.file_started;
        if subscribe_stream {
            job.stream_subscribed = true;
        }
        let unsub_stream =
            subscribe_stream && !self.sub_stream.is_empty() && self.sub_stream != job.stream;
        if unsub_job {
            self.push(Pending::Unsub(Tk::UpdateAccepted));
            self.push(Pending::Unsub(Tk::UpdateRejected));
        }
        if subscribe_job {
            self.push(Pending::Sub(Tk::UpdateAccepted));
            self.push(Pending::Sub(Tk::UpdateRejected));
        }
        if unsub_stream {
            self.push(Pending::Unsub(Tk::StreamData));
            self.push(Pending::Unsub(Tk::StreamRejected));
        }
        if subscribe_stream {
            self.push(Pending::Sub(Tk::StreamData));
            self.push(Pending::Sub(Tk::StreamRejected));
        }
    }

    fn unsubscribe_all_job_topics(&mut self) {
        if !self.sub_stream.is_empty() {
            self.push(Pending::Unsub(Tk::StreamData));
            self.push(Pending::Unsub(Tk::StreamRejected));
        }
        if !self.sub_job.is_empty() {
            self.push(Pending::Unsub(Tk::UpdateAccepted));
            self.push(Pending::Unsub(Tk::UpdateRejected));
        }
    }

    /// Publish a final status and wait for `update/accepted` before `then` (item g).
    fn publish_final(&mut self, now: Instant, update: StatusUpdate, then: Then) {
        self.ensure_job_subscribed();
        self.push(Pending::Status(update));
        self.phase = Phase::AwaitAck {
            update,
            then,
            attempts: 0,
        };
        self.deadline = Some(now.after_ms(self.cfg.request_timeout_ms));
    }

    /// Fail the current job: discard a partial file, publish `update`, then go idle.
    fn fail(&mut self, now: Instant, update: StatusUpdate) {
        self.in_flight = None;
        if let Some(job) = self.job.as_mut() {
            if job.file_started {
                job.file_started = false;
                self.push(Pending::Abort);
            }
        }
        self.publish_final(now, update, Then::Idle);
    }

    /// Drop the current job without a status (cancelled, replaced, or gone).
    fn cancel_job(&mut self) {
        self.in_flight = None;
        if let Some(job) = self.job.take() {
            if job.file_started {
                self.push(Pending::Abort);
            }
        }
        self.unsubscribe_all_job_topics();
        self.deadline = None;
        self.phase = Phase::Idle;
    }

    fn after_ack(&mut self, now: Instant, then: Then) {
        self.deadline = None;
        match then {
            Then::Idle => {
                self.job = None;
                self.unsubscribe_all_job_topics();
                if self.connected {
                    self.send_get_next(now);
                } else {
                    self.phase = Phase::Idle;
                }
            }
            Then::Reset => {
                self.push(Pending::Reset);
                self.phase = Phase::Resetting;
            }
        }
    }

    fn on_update_accepted(&mut self, now: Instant, job_id: &str) {
        if self.job.as_ref().is_none_or(|j| j.id != job_id) {
            return;
        }
        if self.progress_unanswered > 0 {
            // The answer to an earlier progress report, not to the final status.
            self.progress_unanswered -= 1;
            return;
        }
        if let Phase::AwaitAck { then, .. } = self.phase {
            self.after_ack(now, then);
        }
    }

    fn on_update_rejected(&mut self, now: Instant, job_id: &str, payload: &[u8]) {
        if self.job.as_ref().is_none_or(|j| j.id != job_id) {
            return;
        }
        let code = json::parse(payload)
            .ok()
            .and_then(|v| v.get("code"))
            .and_then(|v| v.as_str())
            .and_then(|s| s.as_plain());
        let gone = matches!(
            code,
            Some("TerminalStateReached" | "ResourceNotFound" | "InvalidStateTransition")
        );
        if !gone {
            // Throttling, version mismatch, internal errors: the retry timer re-publishes.
            return;
        }
        match self.phase {
            // Nothing more can be recorded for this job: carry on.
            Phase::AwaitAck { then, .. } => self.after_ack(now, then),
            Phase::Downloading | Phase::Requesting | Phase::Custom => {
                self.cancel_job();
                if self.connected {
                    self.send_get_next(now);
                }
            }
            _ => {}
        }
    }

    fn on_stream_rejected(&mut self, now: Instant, stream: &str, payload: &[u8]) {
        let ours = self
            .job
            .as_ref()
            .is_some_and(|j| !j.http && j.stream == stream);
        if !ours || self.phase != Phase::Downloading {
            self.stats.packets_dropped = self.stats.packets_dropped.wrapping_add(1);
            return;
        }
        if let Ok(r) = StreamRejected::decode(payload) {
            if r.code == RejectCode::ResourceNotFound {
                // The stream is gone: is the job still there? (item d)
                self.push(Pending::GetNext);
                let _ = now;
            }
        }
    }

    fn on_stream_data<'a>(
        &mut self,
        now: Instant,
        stream: &str,
        payload: &'a [u8],
    ) -> Received<'a> {
        let ours = self
            .job
            .as_ref()
            .is_some_and(|j| !j.http && j.stream == stream);
        if !ours {
            return self.drop_packet();
        }
        match DataBlock::decode(payload) {
            Ok(block) => self.ingest(now, block),
            Err(_) => self.drop_packet(),
        }
    }

    /// Validate a block against the current file (§3.5) and hand it out for writing.
    fn ingest<'a>(&mut self, now: Instant, block: DataBlock<'a>) -> Received<'a> {
        if self.phase != Phase::Downloading || self.in_flight.is_some() {
            return self.drop_packet();
        }
        let Some((file_id, size)) = self.current_file().map(|f| (f.file_id, f.size)) else {
            return self.drop_packet();
        };
        match block.validate(file_id, size, self.cfg.block_size) {
            Ok(()) => {}
            Err(BlockError::WrongFile { .. }) => return self.drop_packet(),
            Err(_) => {
                // Reference: a block of the wrong size or index fails the job (§6 table).
                self.fail(
                    now,
                    StatusUpdate::FailedWithVal {
                        reason: BAD_BLOCK,
                        sub_reason: 0,
                    },
                );
                return self.drop_packet();
            }
        }
        if !self.bitmap.is_wanted(block.block_index) {
            self.stats.duplicates = self.stats.duplicates.wrapping_add(1);
            return self.drop_packet();
        }
        let Some(offset) = block.file_offset(self.cfg.block_size) else {
            return self.drop_packet();
        };
        self.in_flight = Some(block.block_index);
        Received::Block {
            index: block.block_index,
            offset,
            data: block.payload,
        }
    }

    fn request_blocks(&mut self, now: Instant) {
        let http = self.job.as_ref().is_some_and(|j| j.http);
        if http {
            match self.bitmap.first_wanted() {
                Some(k) => self.push(Pending::HttpGet(k)),
                None => return,
            }
            self.outstanding = 1;
        } else {
            self.push(Pending::StreamRequest);
            self.outstanding = self
                .cfg
                .effective_blocks_per_request()
                .min(self.bitmap.remaining())
                .max(1);
        }
        self.stats.block_requests = self.stats.block_requests.wrapping_add(1);
        self.deadline = Some(now.after_ms(self.cfg.request_timeout_ms));
    }

    // ----- job documents ------------------------------------------------------------------

    fn on_job_payload<'a>(&mut self, now: Instant, payload: &'a [u8]) -> Received<'a> {
        if !matches!(
            self.phase,
            Phase::Idle | Phase::Requesting | Phase::Downloading
        ) {
            return self.drop_packet();
        }
        match job::parse::<MAX_FILES>(payload) {
            Err(_) => self.drop_packet(),
            Ok(JobMessage::NoJob) => {
                if self.job.is_some() {
                    // Cancelled (or the last file vanished): discard (item d).
                    self.cancel_job();
                } else if self.phase == Phase::Requesting {
                    self.phase = Phase::Idle;
                    self.deadline = None;
                }
                Received::Nothing
            }
            Ok(JobMessage::Custom(c)) => self.on_custom(c),
            Ok(JobMessage::Ota(doc)) => {
                self.on_ota(now, &doc);
                Received::Nothing
            }
        }
    }

    fn on_custom<'a>(&mut self, c: CustomJob<'a>) -> Received<'a> {
        if self.job.as_ref().is_some_and(|j| j.id == c.job_id) {
            // Our own job now reads as malformed: ignore this copy.
            return self.drop_packet();
        }
        if self.job.is_some() {
            self.cancel_job();
        }
        let Some(mut job) = Job::new(c.job_id, JobKind::Custom) else {
            return self.drop_packet();
        };
        job.custom_sub = if c.reason.kind == JobErrorKind::ZeroFileSize {
            PARSE_ZERO_SIZE
        } else {
            PARSE_NON_CONFORMING
        };
        self.job = Some(job);
        self.ensure_job_subscribed();
        self.phase = Phase::Custom;
        self.deadline = None;
        Received::CustomJob {
            job_id: c.job_id,
            document: c.document,
        }
    }

    fn on_ota(&mut self, now: Instant, doc: &JobDocument<'_, MAX_FILES>) {
        if doc.in_self_test() {
            self.on_self_test_doc(now, doc);
            return;
        }
        if self.platform == PlatformImageState::PendingCommit {
            // Running an image on trial but the job is not in self test (§6): reset.
            self.cancel_job();
            self.push(Pending::Reset);
            self.phase = Phase::Resetting;
            self.self_test_deadline = None;
            return;
        }
        let same = self
            .job
            .as_ref()
            .is_some_and(|j| j.kind == JobKind::Ota && j.id == doc.job_id);
        if same {
            self.continue_job(now, doc);
            return;
        }
        if self.job.is_some() {
            self.cancel_job();
        }
        self.adopt(now, doc);
    }

    fn adopt(&mut self, now: Instant, doc: &JobDocument<'_, MAX_FILES>) {
        let Some(mut job) = Job::new(doc.job_id, JobKind::Ota) else {
            return;
        };
        job.updated_by = doc.updated_by.unwrap_or(0);
        let mut bad_model = false;
        for f in &doc.files {
            let path = f.file_path.and_then(|p| p.to_string::<PATH_LEN>());
            let cert = f.cert_file.and_then(|p| p.to_string::<PATH_LEN>());
            let too_long = (f.file_path.is_some() && path.is_none())
                || (f.cert_file.is_some() && cert.is_none());
            bad_model |= too_long;
            let _ = job.files.push(FileSummary {
                size: f.file_size,
                file_id: f.file_id,
                file_type: f.file_type.unwrap_or(0),
                attributes: f.attr.unwrap_or(0),
                path: path.unwrap_or_default(),
                cert: cert.unwrap_or_default(),
            });
        }
        // Resume at the journalled file only if that file is unchanged (size, signature);
        // otherwise start from the first file.
        if let Some(h) = &self.restored {
            let same_file = doc.files.get(usize::from(h.file_index)).is_some_and(|f| {
                f.file_size == h.file_size
                    && file_digest(f, self.cfg.signature_kind) == Some(h.signature_digest)
            });
            if h.job_id == doc.job_id && same_file {
                job.file_index = h.file_index;
            }
        }
        self.job = Some(job);
        if bad_model {
            self.fail(now, parse_failure(PARSE_BAD_MODEL));
            return;
        }
        self.begin_file(now, doc);
    }

    /// Start (or resume) file `job.file_index` of `doc`.
    fn begin_file(&mut self, now: Instant, doc: &JobDocument<'_, MAX_FILES>) {
        let Some(job) = self.job.as_mut() else {
            return;
        };
        let idx = job.file_index;
        let Some(f) = doc.files.get(usize::from(idx)) else {
            return;
        };
        // Protocol (§2.4; MQTT preferred).
        let stream = doc
            .stream_name
            .and_then(|s| s.to_string::<MAX_STREAM_NAME_LEN>())
            .filter(|s| topic::validate_stream_name(s).is_ok());
        let mqtt = doc.protocols.mqtt() && stream.is_some();
        let http =
            !mqtt && self.cfg.http_enabled && doc.protocols.http() && f.update_data_url.is_some();
        if !mqtt && !http {
            self.fail(
                now,
                StatusUpdate::Failed {
                    reason: JobReason::Aborted,
                    sub_reason: OtaErr::InvalidDataProtocol.code(),
                },
            );
            return;
        }
        job.http = http;
        job.stream = stream.unwrap_or_default();
        // Signature under the verifier's key (item i).
        let Some(sig) = f.signature(self.cfg.signature_kind) else {
            self.fail(
                now,
                StatusUpdate::FailedWithVal {
                    reason: SIGNATURE_CHECK_FAILED,
                    sub_reason: 0,
                },
            );
            return;
        };
        let Ok(decoded) = sig.decode_into(&mut self.signature) else {
            self.fail(now, parse_failure(PARSE_NON_CONFORMING));
            return;
        };
        self.signature_len = decoded.len();
        let digest: [u8; 32] = Sha256::digest(decoded).into();
        if f.file_size == 0 {
            self.fail(now, parse_failure(PARSE_ZERO_SIZE));
            return;
        }
        let blocks = f.file_size.div_ceil(self.cfg.block_size);
        if u64::from(blocks) > BlockBitmap::<BITMAP_BYTES>::capacity() {
            self.fail(now, parse_failure(PARSE_BAD_MODEL));
            return;
        }
        self.url.clear();
        if http {
            let url = f.update_data_url.and_then(|u| u.to_string::<URL_LEN>());
            match url {
                Some(u) => self.url = u,
                None => {
                    self.fail(now, parse_failure(PARSE_BAD_MODEL));
                    return;
                }
            }
        }
        let header = JournalHeader {
            job_id: job.id.clone(),
            file_index: idx,
            file_size: f.file_size,
            block_size: self.cfg.block_size,
            signature_digest: digest,
        };
        let resume = self.restored.as_ref() == Some(&header);
        // Whatever was restored is spent: a fresh `PrepareFile` rewrites the journal
        // (`DownloadJournal::begin`) and the bitmap that held the restored blocks is replaced,
        // so keeping the old header would resume a later job onto blocks it never wrote.
        self.restored = None;
        let bitmap = if resume {
            let len = blocks.div_ceil(8) as usize;
            self.bitmap
                .as_bytes()
                .get(..len)
                .and_then(|b| BlockBitmap::from_bytes(blocks, b).ok())
        } else {
            None
        };
        let resume = resume && bitmap.is_some();
        match bitmap.or_else(|| BlockBitmap::new(blocks).ok()) {
            Some(b) => self.bitmap = b,
            None => {
                self.fail(now, parse_failure(PARSE_BAD_MODEL));
                return;
            }
        }
        self.header = header;
        self.in_flight = None;
        self.momentum = 0;
        if let Some(job) = self.job.as_mut() {
            job.file_started = true;
        }
        self.ensure_job_subscribed();
        self.preparing_resume = resume;
        self.pal(PalOp::Prepare, Pending::Prepare { resume });
    }

    /// A job document for the job we already run: next file, or refresh (§2.3 step 4, §4.6).
    fn continue_job(&mut self, now: Instant, doc: &JobDocument<'_, MAX_FILES>) {
        let Some(job) = self.job.as_ref() else {
            return;
        };
        if !job.file_started {
            self.begin_file(now, doc);
            return;
        }
        let idx = usize::from(job.file_index);
        let Some(f) = doc.files.get(idx) else {
            self.cancel_and_adopt(now, doc);
            return;
        };
        let digest = file_digest(f, self.cfg.signature_kind);
        if f.file_size != self.header.file_size || digest != Some(self.header.signature_digest) {
            // Same job id, different file: start over on the new document.
            self.cancel_and_adopt(now, doc);
            return;
        }
        if job.http {
            match f.update_data_url.and_then(|u| u.to_string::<URL_LEN>()) {
                Some(u) => self.url = u,
                None => {
                    self.cancel_and_adopt(now, doc);
                    return;
                }
            }
        }
        self.ensure_job_subscribed();
        // A block handed to the driver stays in flight: its `block_written` still counts.
        self.phase = Phase::Downloading;
        self.request_blocks(now);
    }

    fn cancel_and_adopt(&mut self, now: Instant, doc: &JobDocument<'_, MAX_FILES>) {
        self.cancel_job();
        self.adopt(now, doc);
    }

    fn on_self_test_doc(&mut self, now: Instant, doc: &JobDocument<'_, MAX_FILES>) {
        if self.job.is_some() {
            self.cancel_job();
        }
        let Some(mut job) = Job::new(doc.job_id, JobKind::SelfTest) else {
            return;
        };
        job.updated_by = doc.updated_by.unwrap_or(0);
        self.job = Some(job);
        let running = self.cfg.app_version;
        let updater = AppVersion::from_u32(doc.updated_by.unwrap_or(0));
        if self.committed_job == doc.job_id {
            // Confirmed in this boot, but the SUCCEEDED was not recorded: say it again.
            self.publish_final(
                now,
                StatusUpdate::Succeeded { running, updater },
                Then::Idle,
            );
            return;
        }
        if self.platform != PlatformImageState::PendingCommit {
            self.self_test_deadline = None;
            self.publish_final(
                now,
                StatusUpdate::Failed {
                    reason: JobReason::Rejected,
                    sub_reason: OtaErr::ImageStateMismatch.code(),
                },
                Then::Reset,
            );
            return;
        }
        let fw = self.cfg.firmware_file_type;
        let has_firmware = doc.files.iter().any(|f| f.file_type.unwrap_or(0) == fw);
        if !self.cfg.allow_downgrade && has_firmware {
            let err = if updater == running {
                Some(OtaErr::SameFirmwareVersion)
            } else if updater > running {
                Some(OtaErr::DowngradeNotAllowed)
            } else {
                None
            };
            if let Some(err) = err {
                self.self_test_deadline = None;
                self.push(Pending::Reject);
                self.publish_final(
                    now,
                    StatusUpdate::Failed {
                        reason: JobReason::Rejected,
                        sub_reason: err.code(),
                    },
                    Then::Reset,
                );
                return;
            }
        }
        self.self_test_deadline = None;
        self.ensure_job_subscribed();
        self.push(Pending::Status(StatusUpdate::SelfTestActive { running }));
        self.pal(PalOp::SelfTest, Pending::SelfTest);
    }

    // ----- PAL completions ----------------------------------------------------------------

    fn on_prepared(&mut self, now: Instant, r: Result<(), PalError>) {
        let was_resume = core::mem::replace(&mut self.preparing_resume, false);
        if r.is_err() && was_resume {
            // The storage cannot continue the journalled download (e.g. TF-M drops a half
            // written candidate at reset): start this file afresh instead of failing the job.
            // A fresh `PrepareFile` erases the receive area and rewrites the journal.
            if let Ok(fresh) = BlockBitmap::new(self.bitmap.block_count()) {
                self.bitmap = fresh;
                self.in_flight = None;
                self.pal(PalOp::Prepare, Pending::Prepare { resume: false });
                return;
            }
        }
        match r {
            Ok(()) => {
                self.phase = Phase::Downloading;
                self.momentum = 0;
                if self.bitmap.is_complete() {
                    self.pal(PalOp::Verify, Pending::Verify);
                } else {
                    self.request_blocks(now);
                }
            }
            Err(e) => {
                if let Some(job) = self.job.as_mut() {
                    job.file_started = false;
                }
                self.push(Pending::Abort);
                self.publish_final(
                    now,
                    StatusUpdate::Failed {
                        reason: JobReason::Aborted,
                        sub_reason: e.status(),
                    },
                    Then::Idle,
                );
            }
        }
    }

    fn on_verified(&mut self, now: Instant, r: Result<(), PalError>) {
        if let Err(e) = r {
            self.push(Pending::Reject);
            self.fail(now, pal_failure(e));
            return;
        }
        let Some(job) = self.job.as_mut() else {
            return;
        };
        job.file_started = false;
        let next = job.file_index.saturating_add(1);
        if usize::from(next) < job.files.len() {
            // The next file's signature and URL come from a fresh copy of the job document.
            job.file_index = next;
            self.send_get_next(now);
            self.deadline = Some(now.after_ms(self.cfg.request_timeout_ms));
            return;
        }
        match self.next_firmware(0) {
            Some(i) => self.pal(PalOp::TrialBoot(i), Pending::TrialBoot(i)),
            None => {
                let last_type = job_last_type(self.job.as_ref());
                let updater = AppVersion::from_u32(self.job.as_ref().map_or(0, |j| j.updated_by));
                self.push(Pending::ClearJournal);
                self.publish_final(
                    now,
                    StatusUpdate::Succeeded {
                        running: AppVersion::new(0, 0, last_type),
                        updater,
                    },
                    Then::Idle,
                );
            }
        }
    }

    fn next_firmware(&self, from: u8) -> Option<u8> {
        let job = self.job.as_ref()?;
        let fw = self.cfg.firmware_file_type;
        job.files
            .iter()
            .enumerate()
            .skip(usize::from(from))
            .find(|(_, f)| f.file_type == fw)
            .and_then(|(i, _)| u8::try_from(i).ok())
    }

    fn on_trial_boot(&mut self, now: Instant, i: u8, r: Result<(), PalError>) {
        if let Err(e) = r {
            self.push(Pending::Reject);
            self.push(Pending::ClearJournal);
            self.fail(now, pal_failure(e));
            return;
        }
        match self.next_firmware(i.saturating_add(1)) {
            Some(j) => self.pal(PalOp::TrialBoot(j), Pending::TrialBoot(j)),
            None => {
                self.push(Pending::ClearJournal);
                self.publish_final(
                    now,
                    StatusUpdate::SelfTestReady {
                        running: self.cfg.app_version,
                    },
                    Then::Reset,
                );
            }
        }
    }

    fn on_confirmed(&mut self, now: Instant, r: Result<(), PalError>) {
        let running = self.cfg.app_version;
        match r {
            Ok(()) => {
                self.platform = PlatformImageState::Valid;
                if let Some(job) = self.job.as_ref() {
                    self.committed_job = job.id.clone();
                }
                let updater = AppVersion::from_u32(self.job.as_ref().map_or(0, |j| j.updated_by));
                self.publish_final(
                    now,
                    StatusUpdate::Succeeded { running, updater },
                    Then::Idle,
                );
            }
            Err(e) => self.publish_final(
                now,
                StatusUpdate::Failed {
                    reason: JobReason::Rejected,
                    sub_reason: e.status(),
                },
                Then::Reset,
            ),
        }
    }

    // ----- rendering ----------------------------------------------------------------------

    /// Render `p` into the scratch buffers; `None` when it no longer applies.
    fn render(&mut self, p: Pending) -> Option<Rendered> {
        match p {
            Pending::Sub(tk) | Pending::Unsub(tk) => {
                let sub = matches!(p, Pending::Sub(_));
                let job_id = if sub {
                    self.job.as_ref().map(|j| j.id.clone())
                } else {
                    Some(self.sub_job.clone())
                };
                let stream = if sub {
                    self.job.as_ref().map(|j| j.stream.clone())
                } else {
                    Some(self.sub_stream.clone())
                };
                let job_id = job_id.unwrap_or_default();
                let stream = stream.unwrap_or_default();
                let kind = match tk {
                    Tk::NotifyNext => TopicKind::NotifyNext,
                    Tk::GetNextAccepted => TopicKind::GetNextAccepted,
                    Tk::GetNextRejected => TopicKind::GetNextRejected,
                    Tk::UpdateAccepted => TopicKind::JobUpdateAccepted { job_id: &job_id },
                    Tk::UpdateRejected => TopicKind::JobUpdateRejected { job_id: &job_id },
                    Tk::StreamData => TopicKind::StreamData { stream: &stream },
                    Tk::StreamRejected => TopicKind::StreamRejected { stream: &stream },
                };
                let qos = kind.qos();
                self.topic = kind.build(&self.thing).ok()?;
                match (sub, tk) {
                    (true, Tk::UpdateRejected) => self.sub_job = job_id,
                    (true, Tk::StreamRejected) => self.sub_stream = stream,
                    (false, Tk::UpdateRejected) => self.sub_job.clear(),
                    (false, Tk::StreamRejected) => self.sub_stream.clear(),
                    _ => {}
                }
                Some(if sub {
                    Rendered::Subscribe(qos)
                } else {
                    Rendered::Unsubscribe
                })
            }
            Pending::GetNext => {
                self.topic = TopicKind::GetNext.build(&self.thing).ok()?;
                let n =
                    write_get_next_request(self.get_next_counter, &self.thing, &mut self.payload)
                        .ok()?;
                self.get_next_counter = self.get_next_counter.wrapping_add(1);
                self.stats.job_requests = self.stats.job_requests.wrapping_add(1);
                Some(Rendered::Publish(n, Qos::AtLeastOnce))
            }
            Pending::Status(update) => {
                let job = self.job.as_ref()?;
                self.topic = TopicKind::JobUpdate { job_id: &job.id }
                    .build(&self.thing)
                    .ok()?;
                let n = update.write(&mut self.payload).ok()?;
                if matches!(update, StatusUpdate::Progress { .. }) {
                    self.progress_unanswered = (self.progress_unanswered + 1).min(4);
                }
                Some(Rendered::Publish(n, update.qos()))
            }
            Pending::StreamRequest => {
                let job = self.job.as_ref()?;
                let file_id = job.file()?.file_id;
                self.topic = TopicKind::StreamGet {
                    stream: &job.stream,
                }
                .build(&self.thing)
                .ok()?;
                let n_blocks = self
                    .cfg
                    .effective_blocks_per_request()
                    .min(self.bitmap.remaining())
                    .max(1);
                let (offset, window) = self.bitmap.window_limited(MAX_WINDOW_BYTES, n_blocks)?;
                let req = crate::wire::cbor::StreamRequest {
                    client_token: CLIENT_TOKEN,
                    file_id,
                    block_size: self.cfg.block_size,
                    block_offset: offset,
                    bitmap: window,
                    number_of_blocks: n_blocks,
                };
                let n = req.encode(&mut self.payload).ok()?;
                Some(Rendered::Publish(n, Qos::AtMostOnce))
            }
            Pending::HttpGet(k) => {
                if !self.bitmap.is_wanted(k) {
                    return None;
                }
                let size = self.header.file_size;
                let start = k.checked_mul(self.cfg.block_size)?;
                let end = start
                    .saturating_add(self.cfg.block_size)
                    .min(size)
                    .checked_sub(1)?;
                Some(Rendered::Http(k, start, end))
            }
            Pending::Prepare { resume } => Some(Rendered::Prepare(resume)),
            Pending::Verify => Some(Rendered::Verify),
            Pending::TrialBoot(i) => Some(Rendered::TrialBoot(i)),
            Pending::Confirm => Some(Rendered::Plain(PlainCmd::Confirm)),
            Pending::Reject => Some(Rendered::Plain(PlainCmd::Reject)),
            Pending::Abort => Some(Rendered::Plain(PlainCmd::Abort)),
            Pending::ClearJournal => Some(Rendered::Plain(PlainCmd::ClearJournal)),
            Pending::SelfTest => Some(Rendered::Plain(PlainCmd::SelfTest)),
            Pending::Reset => Some(Rendered::Plain(PlainCmd::Reset)),
        }
    }

    fn command(&self, r: Rendered) -> Option<Command<'_>> {
        Some(match r {
            Rendered::Subscribe(qos) => Command::Subscribe {
                topic: self.topic.as_str(),
                qos,
            },
            Rendered::Unsubscribe => Command::Unsubscribe {
                topic: self.topic.as_str(),
            },
            Rendered::Publish(n, qos) => Command::Publish {
                topic: self.topic.as_str(),
                payload: self.payload.get(..n)?,
                qos,
            },
            Rendered::Http(index, start, end) => Command::HttpGet {
                url: self.url.as_str(),
                index,
                start,
                end,
            },
            Rendered::Prepare(resume) => Command::PrepareFile {
                file: info(self.header.file_index, self.current_file()?),
                resume,
                journal: &self.header,
            },
            Rendered::Verify => Command::VerifyFile {
                file: info(self.header.file_index, self.current_file()?),
                signature: self.signature.get(..self.signature_len)?,
            },
            Rendered::TrialBoot(i) => Command::RequestTrialBoot {
                file: info(i, self.job.as_ref()?.files.get(usize::from(i))?),
            },
            Rendered::Plain(c) => match c {
                PlainCmd::Confirm => Command::ConfirmImage,
                PlainCmd::Reject => Command::RejectImage,
                PlainCmd::Abort => Command::AbortFile,
                PlainCmd::ClearJournal => Command::ClearJournal,
                PlainCmd::SelfTest => Command::RunSelfTest,
                PlainCmd::Reset => Command::Reset,
            },
        })
    }
}

#[derive(Debug, Clone, Copy)]
enum PlainCmd {
    Confirm,
    Reject,
    Abort,
    ClearJournal,
    SelfTest,
    Reset,
}

#[derive(Debug, Clone, Copy)]
enum Rendered {
    Subscribe(Qos),
    Unsubscribe,
    Publish(usize, Qos),
    Http(u32, u32, u32),
    Prepare(bool),
    Verify,
    TrialBoot(u8),
    Plain(PlainCmd),
}

fn parse_failure(sub: u32) -> StatusUpdate {
    StatusUpdate::FailedWithVal {
        reason: OtaErr::JobParserError.code(),
        sub_reason: sub,
    }
}

/// `0x000000<main>: 0x00<sub>` of a PAL error, the reference's closeFile format (§6).
fn pal_failure(e: PalError) -> StatusUpdate {
    StatusUpdate::FailedWithVal {
        reason: e.status() >> 24,
        sub_reason: e.sub(),
    }
}

fn job_last_type(job: Option<&Job>) -> u16 {
    job.and_then(|j| j.files.last())
        .map_or(0, |f| u16::try_from(f.file_type).unwrap_or(u16::MAX))
}

/// SHA-256 of the decoded signature under `kind`: the journal's identity of a file image.
fn file_digest(
    f: &job::FileDescription<'_>,
    kind: ota_pal_traits::SignatureKind,
) -> Option<[u8; 32]> {
    let sig = f.signature(kind)?;
    let mut buf = [0u8; MAX_SIGNATURE_LEN];
    let decoded = sig.decode_into(&mut buf).ok()?;
    Some(Sha256::digest(decoded).into())
}
