//! The OTA lifecycle as a deterministic, sans-IO state machine (spec §4, §6).
//!
//! [`Agent`] does no I/O, reads no clock and never blocks: the caller feeds it **events** (a
//! received MQTT publish, a block durably written, the result of a PAL operation, the current
//! time) and drains **commands** (subscribe, publish, prepare the file, verify, request a trial
//! boot, reset...). Same inputs, same outputs: the scenario tests and the proptests drive it
//! with nothing but byte slices and integers.
//!
//! # Driver contract
//!
//! 1. [`Agent::restore_block`] for every block a [`DownloadJournal`](ota_pal_traits::DownloadJournal)
//!    reports, then [`Agent::start`] with the platform image state and the journal header.
//! 2. [`Agent::connected`] once the MQTT session is up (and after every reconnect);
//!    [`Agent::disconnected`] when it drops (queued MQTT commands are discarded, PAL work kept).
//! 3. After **every** input, drain [`Agent::poll_command`] until it returns `None`, executing
//!    each command in order before polling the next. Commands that need PAL work
//!    ([`Command::needs_completion`]) are answered with [`Agent::complete`] once done.
//! 4. Feed each incoming publish to [`Agent::handle_publish`]. A returned
//!    [`Received::Block`] must be written to storage **and** recorded in the journal, then
//!    reported with [`Agent::block_written`] before the next publish is handed over.
//! 5. Sleep until [`Agent::poll_timeout`] (or the next message), then call
//!    [`Agent::handle_timeout`].
//!
//! # Lifecycle
//!
//! States are [`State`]; arrows are labelled with the input (event) that takes them and, after
//! `/`, the main commands the agent emits. Every state but `Stopped` goes to `Offline` on
//! [`Agent::disconnected`] and back on [`Agent::connected`] (which re-subscribes and re-asks
//! for the job, or re-publishes a pending final status). While offline no MQTT command is
//! emitted and retry timers pause; PAL work already queued continues.
//!
//! ```text
//!  Agent::new ──► Stopped ──start(platform, journal)──► Offline ──connected / Subscribe ×3,
//!                                                                  Publish $next/get
//!                                                                          │
//!                         ┌──── timeout / $next/get again (backoff) ───┐   ▼
//!                         └──────────────────────────────────────► RequestingJob
//!                                                                          │
//!        no job ({"timestamp":…}) ─────────────────────────────────► WaitingForJob ◄───────────┐
//!        notify-next / get/accepted with a job:                            │                   │
//!          custom job ─────────────► CustomJob ─custom_job_result─► AwaitingAck                │
//!          afr_ota, in self test ──► WaitingForPal(RunSelfTest) ─SelfTest(ok)─► WaitingForPal  │
//!                                      (Publish self_test:"active")           (ConfirmImage)   │
//!                                       SelfTest(false) / RejectImage,        Confirmed(r) ────┤
//!                                       FAILED rejected ──► AwaitingAck       ok: SUCCEEDED,   │
//!          afr_ota, new / resumed ──► WaitingForPal(PrepareFile)               err: FAILED ──► AwaitingAck
//!          invalid / unusable ──► FAILED … ──► AwaitingAck                                     │
//!                                      │ Prepared(Ok) / Subscribe stream, Publish get/cbor     │
//!                                      ▼ (or HttpGet)                                          │
//!        ┌──── block: Received::Block ─► block_written(Ok) / progress, next request ──┐       │
//!        └──► Downloading ◄───────────────────────────────────────────────────────────┘       │
//!               │  timeout / re-request (momentum); > max_retries: FAILED aborted 0x0e ──┐     │
//!               │  job cancelled/replaced, write error, abort_job / AbortFile, FAILED ───┤     │
//!               │ all blocks written / VerifyFile                                        ▼     │
//!               ▼                                                                  AwaitingAck │
//!          WaitingForPal(VerifyFile) ── Verified(Err) / RejectImage, AbortFile, FAILED ──►  │   │
//!               │ Verified(Ok): next file → $next/get → PrepareFile (multi-file jobs)       │   │
//!               │ last file, firmware: RequestTrialBoot per firmware file                  │   │
//!               │ no firmware: ClearJournal, SUCCEEDED ──────────────────────────────────►  │   │
//!               ▼                                                                           │   │
//!          WaitingForPal(RequestTrialBoot) ─ TrialBootRequested(Err) / RejectImage, FAILED ►│   │
//!               │ TrialBootRequested(Ok) / ClearJournal, self_test:"ready" (QoS 1)          │   │
//!               ▼                                                                           ▼   │
//!          AwaitingAck ── update/accepted (or max_retries re-publishes) ──► then: Idle ─────────┘
//!                                                                            or Reset ──► Resetting
//!   PendingCommit at start and no self-test job within self_test_timeout_ms ──► Resetting
//!   PendingCommit and a job not in self test ──► Resetting (the bootloader rolls back)
//! ```
//!
//! # Status payloads
//!
//! Every status goes to `$aws/things/<thing>/jobs/<jobId>/update`. Progress is QoS 0 and not
//! waited for; every other status is *final*: QoS 1, and the agent waits in `AwaitingAck` for
//! `update/accepted`, re-publishing on [`Config::request_timeout_ms`] up to
//! [`Config::max_retries`] times. `<v>` is `0x%08x` of a packed version, `v<a.b.c>` is written
//! with two leading spaces (`"  v1.2.3"`), `<pal>` is `0x%08x` of a
//! [`PalError::status`](ota_pal_traits::PalError::status), `<main>`/`<sub>` its two halves.
//!
//! | Payload (`{"status":…,"statusDetails":{…}}`) | QoS | When | Then |
//! |---|---|---|---|
//! | `IN_PROGRESS`, `"receive":"<n>/<total>"` | 0 | block `n` written, `n == 1` or `n % progress_frequency == 0` | — |
//! | `IN_PROGRESS`, `"self_test":"ready","updatedBy":"<v running>"` | 1 | every firmware file's trial boot requested | reset |
//! | `IN_PROGRESS`, `"self_test":"active","updatedBy":"<v running>"` | 1 (not waited for) | self-test job in `PendingCommit`, version check passed | run self test |
//! | `SUCCEEDED`, `"reason":"accepted  v<running>","updatedBy":"  v<updater>"` | 1 | self test passed **and** the confirm returned `Ok`; or the same job again after that in this boot | idle |
//! | `SUCCEEDED`, `"reason":"accepted  v0.0.<fileType>","updatedBy":"  v<updater>"` | 1 | every file of a job without firmware verified | idle |
//! | `FAILED`, `"reason":"rejected: 0x00000000"` | 1 | the application's self test failed (image rejected) | reset |
//! | `FAILED`, `"reason":"rejected: 0x0000000f"` / `0x00000010` | 1 | self test: updater newer than / same as the running version (image rejected) | reset |
//! | `FAILED`, `"reason":"rejected: 0x00000011"` | 1 | self-test job but the platform is not `PendingCommit` | reset |
//! | `FAILED`, `"reason":"rejected: <pal>"` | 1 | the confirm failed | reset (roll back) |
//! | `FAILED`, `"reason":"aborted: <pal>"` | 1 | `PrepareFile` failed | idle |
//! | `FAILED`, `"reason":"aborted: 0x0000000d"` | 1 | no usable data protocol | idle |
//! | `FAILED`, `"reason":"aborted: 0x0000000e"` | 1 | more than `max_retries` block requests unanswered | idle |
//! | `FAILED`, `"reason":"aborted: 0x00000013"` | 1 | [`Agent::abort_job`] | idle |
//! | `FAILED`, `"reason":"0x0000000c: 0x0000000<k>"` | 1 | malformed / zero-size / too large document (`k` = `OtaJobParseErr_t`), or a custom job the application declined | idle |
//! | `FAILED`, `"reason":"0x000000e3: 0x00000000"` | 1 | no signature under the verifier's key | idle |
//! | `FAILED`, `"reason":"0x000000e0: 0x00000000"` | 1 | a block of the wrong size or index | idle |
//! | `FAILED`, `"reason":"0x000000<main>: 0x00<sub>"` | 1 | a block write / journal write failed, the signature check failed, or the trial-boot request failed | idle |
//! | whatever the application returns | its QoS | [`Agent::custom_job_result`] with `Some(update)` | idle |
//!
//! # Differences from the reference agent (each pinned by a scenario test in `tests/`)
//!
//! - **a.** A lost `$next/get` reply is retried with exponential backoff
//!   ([`Config::get_next_backoff_ms`] doubling up to [`Config::get_next_backoff_max_ms`]);
//!   `$next/get/rejected`, `update/rejected` and `rejected/cbor` are handled. The agent
//!   subscribes to `$next/get/accepted|rejected`, `<jobId>/update/accepted|rejected` and
//!   `streams/<s>/rejected/cbor` itself, so it works with a plain broker and with AWS alike.
//!   The get-next client token carries the whole counter (`0:thing1`, the intended format of
//!   spec §1.3, not the reference's off-by-one `:thing1`).
//! - **b.** `n` blocks per request ([`Config::blocks_per_request`], capped so that
//!   `n × (block + 64)` fits [`Config::rx_buffer_len`]), re-requested when the blocks of the
//!   current request have landed or on timeout, with the window form of the request (`o` +
//!   a slice of the bitmap starting at the first wanted block), so a 4096-block file fits a
//!   256-byte request buffer.
//! - **c.** Running out of retries ([`Config::max_retries`] unanswered requests) fails the
//!   job with `aborted: 0x0000000e` (`OtaErr::MomentumAbort`) and the agent stays alive,
//!   waiting for the next job (the reference reports `aborted: 0x00000000` and stops).
//! - **d.** A cancelled or replaced job is detected: a job document naming another job or no
//!   job while downloading, `update/rejected` with `TerminalStateReached`, `ResourceNotFound`
//!   or `InvalidStateTransition`, and a stream `ResourceNotFound` (which triggers a job
//!   re-check). The partial image is discarded ([`Command::AbortFile`], which also clears the
//!   journal).
//! - **e.** Multi-file jobs: each entry of `afr_ota.files` in turn (up to [`MAX_FILES`]), each
//!   with its own [`FileInfo`]. The agent re-reads the job document between files (it keeps
//!   only the current file's signature). Firmware files (`fileType` ==
//!   [`Config::firmware_file_type`]) get one [`Command::RequestTrialBoot`] each, in file order,
//!   after **all** files verified. A job without firmware ends `SUCCEEDED` with the
//!   reference's reason `accepted  v0.0.<fileType>` (fileType of the last file; kept for
//!   dashboard compatibility).
//! - **f.** Resume after reboot: when the same job comes back not in self test and the journal
//!   header matches (job id, file index, size, block size, SHA-256 of the signature), the
//!   agent issues `PrepareFile { resume: true }` and the first request asks only for the
//!   missing blocks. Storage that cannot continue (its `resume` fails, e.g. TF-M drops a
//!   half-written candidate at reset) gets a fresh `PrepareFile { resume: false }` and the
//!   file is downloaded again instead of failing the job. Limit: on flash that cannot program a write unit twice (ECC flash), the
//!   block whose write was cut by the power loss is not in the journal and is written again
//!   after the reboot; this works on plain NOR only.
//! - **g.** Final statuses (`self_test:"ready"`, `SUCCEEDED`, every `FAILED`) are published
//!   QoS 1 and the agent waits for the Jobs service's `update/accepted` (re-publishing on
//!   timeout, at most [`Config::max_retries`] times) before it resets or reports done. The
//!   image is confirmed **before** `SUCCEEDED` is published (reference issue #506); a failed
//!   confirm reports `FAILED rejected: 0x<pal status>` and resets to roll back. The Jobs
//!   service also answers the QoS 0 progress reports, in order, without anything that ties an
//!   answer to its request: the agent counts the progress reports not yet answered (up to 4)
//!   and does not take their answers for the ack of a final status. A lost progress report
//!   (QoS 0) therefore costs at most one re-publish of the final status, never an early reset.
//! - **h.** HTTP data path (`"HTTP"` in `protocols`, `update_data_url` present,
//!   [`Config::http_enabled`]): whole-block `Range` requests (`start = k·BLOCK`,
//!   `end = min(start + BLOCK, size) − 1`) for the first wanted block, the same validation and
//!   write path; [`HttpFailure::Expired`] re-requests the job document and, for the same job,
//!   replaces the URL and continues from the bitmap. MQTT is preferred when both are listed.
//! - **i.** Validation reports instead of staying silent: a malformed `afr_ota` document not
//!   claimed by the application → `FAILED 0x0000000c: 0x00000004`; zero file size →
//!   `0x0000000c: 0x00000003`; more blocks than the bitmap holds, a path over [`PATH_LEN`] or a
//!   URL over `URL_LEN` → `0x0000000c: 0x00000005` (the `OtaJobParseErr_t` codes); no usable
//!   protocol → `aborted: 0x0000000d` (no stuck state); no signature under the verifier's key
//!   → `0x000000e3: 0x00000000` (SignatureCheckFailed before downloading).
//!
//! Other decisions: a verification failure rejects the staged image
//! ([`Command::RejectImage`]), discards it ([`Command::AbortFile`]) and reports
//! `0x000000<main>: 0x00<sub>` of the PAL error; a failed block write reports the PAL error the
//! same way. The version check of §6 applies when the job holds a firmware file (the
//! reference's `fileid == 0` condition is dropped: it is an artefact of single-file jobs).
//! [`Command::AbortFile`] is only issued for a partial or failed file, never after a trial boot
//! was requested (the reference calls `pal.abort` after every job).

mod machine;

pub use machine::Agent;

use ota_pal_traits::{FileInfo, JournalHeader, PalError, SignatureKind};

use crate::wire::topic::Qos;
use crate::wire::version::AppVersion;

/// Most files per job the agent accepts (spec §2.1 reads one; AWS allows several).
pub const MAX_FILES: usize = 4;

/// Longest `filepath` / `certfile` kept per file (longer fails the job, `0x0000000c: 0x00000005`).
pub const PATH_LEN: usize = 64;

/// Size of the outgoing payload scratch buffer: enough for a status update (128 B, §1.2), the
/// get-next request (≤ 82 B) and a GetStream request with a bitmap window of
/// [`MAX_WINDOW_BYTES`] (1,600 blocks).
pub const PAYLOAD_LEN: usize = 256;

/// Largest bitmap window put in one GetStream request.
pub const MAX_WINDOW_BYTES: usize = 200;

/// A point in time, in milliseconds since an arbitrary epoch chosen by the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant(pub u64);

impl Instant {
    /// `self + ms`, saturating.
    pub const fn after_ms(self, ms: u32) -> Self {
        Self(self.0.saturating_add(ms as u64))
    }
}

/// Agent configuration (spec §7); [`Config::new`] gives the reference defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config<'a> {
    /// The AWS IoT thing name (1..=128 of `[a-zA-Z0-9:_-]`).
    pub thing_name: &'a str,
    /// The version of the running application (reported as `updatedBy`, checked in self test).
    pub app_version: AppVersion,
    /// Block size in bytes; the service accepts 256..=131072 (default 4096).
    pub block_size: u32,
    /// Blocks asked for per GetStream request (`n`, default 1); see [`Config::rx_buffer_len`].
    pub blocks_per_request: u32,
    /// Bytes of incoming data the MQTT client can hold while blocks are in flight. `n` is
    /// capped to `rx_buffer_len / (block_size + 64)` (64 B covers the CBOR map and topic), and
    /// to 128 KiB of data (the service's per-request cap); it is always at least 1.
    pub rx_buffer_len: u32,
    /// How long to wait for a block, a job document or an `update/accepted` (default 10 s).
    pub request_timeout_ms: u32,
    /// Unanswered requests before the job fails (default 32, `otaconfigMAX_NUM_REQUEST_MOMENTUM`).
    pub max_retries: u32,
    /// First retry delay for a lost `$next/get` reply (default 5 s).
    pub get_next_backoff_ms: u32,
    /// Largest retry delay for `$next/get` (default 5 min).
    pub get_next_backoff_max_ms: u32,
    /// Time allowed after a boot in `PendingCommit` to get the self-test job (default 16 s).
    pub self_test_timeout_ms: u32,
    /// Progress report every this many blocks, plus the first (default 64).
    pub progress_frequency: u32,
    /// Skip the anti-rollback version check (default false).
    pub allow_downgrade: bool,
    /// `fileType` of firmware images (default 0; e.g. 141 on TRAVEO).
    pub firmware_file_type: u32,
    /// Use the HTTP data path when a job offers it (default false).
    pub http_enabled: bool,
    /// The signature key the verifier checks (default `sig-sha256-ecdsa`).
    pub signature_kind: SignatureKind,
}

impl<'a> Config<'a> {
    /// The reference defaults for `thing_name` running `app_version`.
    pub const fn new(thing_name: &'a str, app_version: AppVersion) -> Self {
        Self {
            thing_name,
            app_version,
            block_size: 4096,
            blocks_per_request: 1,
            rx_buffer_len: 4096 + 1500 + 30,
            request_timeout_ms: 10_000,
            max_retries: 32,
            get_next_backoff_ms: 5_000,
            get_next_backoff_max_ms: 300_000,
            self_test_timeout_ms: 16_000,
            progress_frequency: 64,
            allow_downgrade: false,
            firmware_file_type: 0,
            http_enabled: false,
            signature_kind: SignatureKind::SHA256_ECDSA,
        }
    }

    /// `n` as actually used: see [`Config::rx_buffer_len`].
    pub fn effective_blocks_per_request(&self) -> u32 {
        let per_block = self.block_size.saturating_add(64).max(1);
        let by_rx = self.rx_buffer_len / per_block;
        let by_service = 131_072 / self.block_size.max(1);
        self.blocks_per_request.min(by_rx).min(by_service).max(1)
    }
}

/// Why [`Agent::new`] refused a configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigError {
    /// The thing name is empty, too long or has characters AWS refuses.
    InvalidThingName,
    /// The block size is outside 256..=131072.
    InvalidBlockSize,
}

/// What the machine is doing, for logs and tests (spec §4.1, simplified).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// [`Agent::start`] not called yet.
    Stopped,
    /// Started, MQTT not connected.
    Offline,
    /// No job; waiting for `notify-next` or a `$next/get` reply.
    WaitingForJob,
    /// `$next/get` sent, waiting for the reply (retried with backoff).
    RequestingJob,
    /// Waiting for a PAL operation ([`Agent::complete`]).
    WaitingForPal,
    /// Receiving blocks.
    Downloading,
    /// A final status is published; waiting for `update/accepted`.
    AwaitingAck,
    /// A custom job was handed to the application; waiting for [`Agent::custom_job_result`].
    CustomJob,
    /// A reset was requested.
    Resetting,
}

/// Counters (spec §4.5 `OTA_GetStatistics`, extended).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Statistics {
    /// Publishes handed to [`Agent::handle_publish`] (and HTTP bodies).
    pub packets_received: u32,
    /// Blocks durably written.
    pub blocks_written: u32,
    /// Messages dropped: unexpected, undecodable, duplicate or foreign blocks.
    pub packets_dropped: u32,
    /// Duplicate blocks (also counted in `packets_dropped`).
    pub duplicates: u32,
    /// GetStream requests and HTTP range requests issued.
    pub block_requests: u32,
    /// `$next/get` requests published.
    pub job_requests: u32,
}

/// A command for the driver, borrowing the agent's scratch buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command<'a> {
    /// Subscribe to `topic`.
    Subscribe {
        /// The topic filter (no wildcards).
        topic: &'a str,
        /// QoS.
        qos: Qos,
    },
    /// Unsubscribe from `topic`.
    Unsubscribe {
        /// The topic filter.
        topic: &'a str,
    },
    /// Publish `payload` on `topic`.
    Publish {
        /// The topic.
        topic: &'a str,
        /// The payload.
        payload: &'a [u8],
        /// QoS.
        qos: Qos,
    },
    /// Prepare storage (`ImageStorage::prepare` and `DownloadJournal::begin(journal)`), or with
    /// `resume` keep what is stored (`ImageStorage::resume`, journal untouched). Also start the
    /// verifier (`ImageVerifier::begin`). Answer with [`Completion::Prepared`].
    PrepareFile {
        /// The file.
        file: FileInfo<'a>,
        /// Continue a journalled download.
        resume: bool,
        /// The journal header of this download.
        journal: &'a JournalHeader,
    },
    /// Every block is written: check the signature (`verify_stored_image`). Answer with
    /// [`Completion::Verified`].
    VerifyFile {
        /// The file.
        file: FileInfo<'a>,
        /// The decoded signature.
        signature: &'a [u8],
    },
    /// `BootControl::request_trial_boot`. Answer with [`Completion::TrialBootRequested`].
    RequestTrialBoot {
        /// The verified firmware file.
        file: FileInfo<'a>,
    },
    /// `BootControl::confirm`. Answer with [`Completion::Confirmed`].
    ConfirmImage,
    /// `BootControl::reject`. Fire and forget (errors are ignored).
    RejectImage,
    /// `ImageStorage::abort` and `DownloadJournal::clear`: discard the partial file. Fire and
    /// forget (errors are ignored).
    AbortFile,
    /// `DownloadJournal::clear` after the files were handed over. Fire and forget.
    ClearJournal,
    /// Run the application's self test of the new image. Answer with
    /// [`Completion::SelfTest`].
    RunSelfTest,
    /// Reset the device (`Reset::reset`).
    Reset,
    /// HTTP GET of `url` with `Range: bytes=start-end` (inclusive); feed the body to
    /// [`Agent::handle_http_block`] or report [`Agent::http_failed`].
    HttpGet {
        /// The presigned URL.
        url: &'a str,
        /// Block index.
        index: u32,
        /// First byte.
        start: u32,
        /// Last byte (inclusive).
        end: u32,
    },
}

impl Command<'_> {
    /// Whether the agent waits for [`Agent::complete`] after this command.
    pub fn needs_completion(&self) -> bool {
        matches!(
            self,
            Self::PrepareFile { .. }
                | Self::VerifyFile { .. }
                | Self::RequestTrialBoot { .. }
                | Self::ConfirmImage
                | Self::RunSelfTest
        )
    }
}

/// The result of a PAL command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    /// [`Command::PrepareFile`] done.
    Prepared(Result<(), PalError>),
    /// [`Command::VerifyFile`] done.
    Verified(Result<(), PalError>),
    /// [`Command::RequestTrialBoot`] done.
    TrialBootRequested(Result<(), PalError>),
    /// [`Command::ConfirmImage`] done.
    Confirmed(Result<(), PalError>),
    /// [`Command::RunSelfTest`] done: `true` when the new image passed.
    SelfTest(bool),
}

/// What [`Agent::handle_publish`] found in a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received<'a> {
    /// Nothing for the application (handled or dropped).
    Nothing,
    /// A new block: write `data` at `offset`, record `index` in the journal, then call
    /// [`Agent::block_written`].
    Block {
        /// Block index.
        index: u32,
        /// Byte offset in the file.
        offset: u32,
        /// The block, borrowed from the payload.
        data: &'a [u8],
    },
    /// A job that is not an OTA job (or a malformed one): the application may claim it and
    /// must answer with [`Agent::custom_job_result`].
    CustomJob {
        /// `execution.jobId`.
        job_id: &'a str,
        /// Raw `execution.jobDocument`.
        document: &'a str,
    },
}

/// Why an HTTP range request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpFailure {
    /// The presigned URL expired (HTTP 403): re-read the job document for a fresh URL.
    Expired,
    /// Anything else (connection, 5xx): retried on the request timeout.
    Other,
}
