//! Job documents: the payload of `$next/get/accepted` and `notify-next` (spec §1.5, §2).
//!
//! [`parse`] turns one payload into a [`JobMessage`]:
//!
//! - no `execution` (`{"timestamp":N}`, `{"clientToken":..,"timestamp":N}`, or `"execution":
//!   null`): [`JobMessage::NoJob`], the reference's "empty job document" (§2.2);
//! - `execution.jobId` and `execution.jobDocument` present and `afr_ota` well formed:
//!   [`JobMessage::Ota`];
//! - `execution.jobId` and `execution.jobDocument` present but no `afr_ota`, or a malformed
//!   one: [`JobMessage::Custom`], carrying the raw document text and the reason it is not an
//!   OTA job (the reference's custom-job path, §2.2);
//! - anything else (not JSON, no `jobId`, no `jobDocument`, an invalid job id): `Err`.
//!
//! Differences from the reference agent, all deliberate (spec §12):
//!
//! - every entry of `afr_ota.files` is read (up to `MAX_FILES`, else
//!   [`JobErrorKind::TooManyFiles`]); the reference reads `files[0]` only. Keys 12–20 of §2.1
//!   are read per file and never at the top level of the document;
//! - strings are unescaped on demand ([`JsonStr`]); the reference passes `\/` through;
//! - JSON `null` is *absent* for optional keys (`filepath`, `certfile`, `update_data_url`,
//!   `auth_scheme`, `streamname`, the signature keys, `attr`, `fileType`, `updatedBy`,
//!   `statusDetails`) and [`JobErrorKind::WrongType`] for required ones (`filesize`, `fileid`,
//!   `protocols`, `files`); the reference turns `null` into the text `"null"` for strings and
//!   into a parse error for numbers. `self_test` stays a presence flag: `null` counts;
//! - the job id must be 1..=64 characters of `[A-Za-z0-9_-]` (the AWS limit) for OTA and
//!   custom jobs alike; the reference accepts up to 72 arbitrary bytes;
//! - a signature is validated (base64, at most [`MAX_SIGNATURE_LEN`] bytes, RSA-4096) at parse
//!   time under each of the four keys of [`SignatureKind::ALL`], and all present ones are kept.
//!
//! Memory: no heap and no recursion. [`parse`] uses one 512-byte stack buffer while it checks a
//! signature; the result borrows the payload and holds `MAX_FILES` [`FileDescription`]s inline.
//! Code size, measured with the release profile on `thumbv7em-none-eabihf` (a `staticlib` that
//! calls `parse::<1>`, unescapes a path and decodes a signature): about 8.5 KiB of `.text` and
//! 1.5 KiB of `.rodata` for scanner, number, base64 and job parser together.

use core::fmt;

use ota_pal_traits::{SignatureKind, MAX_JOB_ID_LEN};

use super::base64::{self, Base64Error};
use super::json::{self, JsonErrorKind, JsonStr, Kind, Value};
use super::number::{self, NumberError};

/// Largest decoded signature accepted: 512 bytes, an RSA-4096 signature (the reference stops
/// at 384, RSA-3072; spec §2.1 #18, §11 #9).
pub const MAX_SIGNATURE_LEN: usize = 512;

/// Number of signature keys recognised ([`SignatureKind::ALL`]).
const SIG_KEYS: usize = SignatureKind::ALL.len();

/// What went wrong reading a job document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobErrorKind {
    /// The payload is not strict JSON (spec §2.2: `JSON_Validate`).
    InvalidJson(JsonErrorKind),
    /// A required key is absent (`DocParseErrMalformedDoc`).
    MissingKey,
    /// A key holds the wrong JSON type (including `null` for a required key).
    WrongType,
    /// A number that `strtoul` would not consume whole (`NaN`, `1.5`, `-1`).
    InvalidNumber,
    /// A number above `u32::MAX`.
    NumberOutOfRange,
    /// The signature is not valid base64 (§2.5).
    InvalidBase64(Base64Error),
    /// The signature decodes to more than [`MAX_SIGNATURE_LEN`] bytes.
    SignatureTooLong,
    /// The job id is empty, longer than 64 characters or not `[A-Za-z0-9_-]`.
    JobIdInvalid,
    /// `afr_ota.files` has more entries than the caller's `MAX_FILES`.
    TooManyFiles,
    /// `afr_ota.files` is empty.
    NoFiles,
    /// `filesize` is 0 (`OtaJobParseErrZeroFileSize`, §2.3).
    ZeroFileSize,
}

/// A job-document error: what, at which key, and where in the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct JobError {
    /// What went wrong.
    pub kind: JobErrorKind,
    /// Dotted path of the offending key, e.g.
    /// `execution.jobDocument.afr_ota.files[].filesize`; empty for the payload itself.
    pub key: &'static str,
    /// Byte offset in the payload of the offending value, of the JSON error, or (for a missing
    /// key) of the object that should hold it.
    pub offset: Option<usize>,
}

impl JobError {
    const fn new(kind: JobErrorKind, key: &'static str, offset: Option<usize>) -> Self {
        Self { kind, key, offset }
    }

    /// A missing key; the offset is that of the object that should have held it.
    fn missing(key: &'static str, container: &Value<'_>) -> Self {
        Self::new(JobErrorKind::MissingKey, key, Some(container.offset()))
    }

    fn wrong_type(key: &'static str, value: &Value<'_>) -> Self {
        Self::new(JobErrorKind::WrongType, key, Some(value.offset()))
    }
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = if self.key.is_empty() {
            "payload"
        } else {
            self.key
        };
        write!(f, "{key}: ")?;
        match self.kind {
            JobErrorKind::InvalidJson(k) => write!(f, "invalid JSON ({k:?})")?,
            JobErrorKind::MissingKey => f.write_str("missing")?,
            JobErrorKind::WrongType => f.write_str("wrong JSON type")?,
            JobErrorKind::InvalidNumber => f.write_str("not an unsigned number")?,
            JobErrorKind::NumberOutOfRange => f.write_str("number larger than u32::MAX")?,
            JobErrorKind::InvalidBase64(e) => write!(f, "{e}")?,
            JobErrorKind::SignatureTooLong => {
                write!(f, "signature longer than {MAX_SIGNATURE_LEN} bytes")?
            }
            JobErrorKind::JobIdInvalid => f.write_str("not 1 to 64 characters of [A-Za-z0-9_-]")?,
            JobErrorKind::TooManyFiles => f.write_str("more files than this agent accepts")?,
            JobErrorKind::NoFiles => f.write_str("no file")?,
            JobErrorKind::ZeroFileSize => f.write_str("file size is 0")?,
        }
        if let Some(offset) = self.offset {
            write!(f, " at byte {offset}")?;
        }
        Ok(())
    }
}

impl core::error::Error for JobError {}

/// `execution.status` (AWS IoT Jobs `JobExecutionStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExecutionStatus {
    /// `QUEUED`
    Queued,
    /// `IN_PROGRESS`
    InProgress,
    /// `SUCCEEDED`
    Succeeded,
    /// `FAILED`
    Failed,
    /// `TIMED_OUT`
    TimedOut,
    /// `REJECTED`
    Rejected,
    /// `REMOVED`
    Removed,
    /// `CANCELED`
    Canceled,
}

impl ExecutionStatus {
    /// The status for its Jobs API name.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "QUEUED" => Self::Queued,
            "IN_PROGRESS" => Self::InProgress,
            "SUCCEEDED" => Self::Succeeded,
            "FAILED" => Self::Failed,
            "TIMED_OUT" => Self::TimedOut,
            "REJECTED" => Self::Rejected,
            "REMOVED" => Self::Removed,
            "CANCELED" => Self::Canceled,
            _ => return None,
        })
    }

    /// The Jobs API name.
    pub const fn name(&self) -> &'static str {
        match self {
            Self::Queued => "QUEUED",
            Self::InProgress => "IN_PROGRESS",
            Self::Succeeded => "SUCCEEDED",
            Self::Failed => "FAILED",
            Self::TimedOut => "TIMED_OUT",
            Self::Rejected => "REJECTED",
            Self::Removed => "REMOVED",
            Self::Canceled => "CANCELED",
        }
    }
}

/// One job payload, classified (spec §1.5, §2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobMessage<'a, const MAX_FILES: usize> {
    /// No pending job (no `execution`): the reference's silent "empty job document".
    NoJob,
    /// An `afr_ota` job.
    Ota(JobDocument<'a, MAX_FILES>),
    /// A job that is not (or not a well-formed) OTA job: the application may claim it.
    Custom(CustomJob<'a>),
}

/// A job whose document is not an OTA document (spec §2.2, custom-job path).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CustomJob<'a> {
    /// `execution.jobId`, already checked (1..=64 of `[A-Za-z0-9_-]`, so it has no escapes).
    pub job_id: &'a str,
    /// Raw text of `execution.jobDocument`, exactly as received.
    pub document: &'a str,
    /// `execution.status`, if present and known.
    pub status: Option<ExecutionStatus>,
    /// Why this is not an OTA job: [`JobErrorKind::MissingKey`] on
    /// `execution.jobDocument.afr_ota` for a plain custom job, otherwise the first error found
    /// in the OTA part or in `execution.statusDetails` (what the reference reports as
    /// `0x0000000c: 0x00000004` when the application does not claim the job).
    pub reason: JobError,
}

/// The `protocols` array of an OTA job (spec §2.1 #10, §2.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Protocols<'a> {
    raw: &'a str,
    mqtt: bool,
    http: bool,
}

impl<'a> Protocols<'a> {
    /// Whether an element is exactly the string `"MQTT"` (the reference's quoted-substring
    /// search, §2.4, without its false positives).
    pub fn mqtt(&self) -> bool {
        self.mqtt
    }

    /// Whether an element is exactly the string `"HTTP"`.
    pub fn http(&self) -> bool {
        self.http
    }

    /// The raw array text, e.g. `["MQTT","HTTP"]`.
    pub fn raw(&self) -> &'a str {
        self.raw
    }
}

/// A file signature from a job document (spec §2.1 #18), validated at parse time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signature<'a> {
    /// The key it was found under.
    pub kind: SignatureKind,
    /// The base64 text.
    pub text: JsonStr<'a>,
}

impl Signature<'_> {
    /// Decode the signature into `buf` (at most [`MAX_SIGNATURE_LEN`] bytes are ever needed);
    /// JSON escapes are undone first, so `\n` line breaks and `\/` are fine.
    pub fn decode_into<'b>(&self, buf: &'b mut [u8]) -> Result<&'b [u8], Base64Error> {
        base64::decode_iter(ascii_bytes(self.text), buf)
    }

    /// Length of the decoded signature.
    pub fn decoded_len(&self) -> usize {
        base64::decoded_len_iter(ascii_bytes(self.text)).unwrap_or(0)
    }
}

/// The unescaped characters as bytes for the base64 decoder; a non-ASCII character becomes a
/// byte that is not base64 (`0xFF`).
fn ascii_bytes(s: JsonStr<'_>) -> impl Iterator<Item = u8> + Clone + '_ {
    s.chars()
        .map(|c| u8::try_from(c).ok().filter(u8::is_ascii).unwrap_or(0xFF))
}

/// One entry of `afr_ota.files` (spec §2.1 #12–20).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDescription<'a> {
    /// `filepath`: where the board stores the file; meaning is up to the PAL.
    pub file_path: Option<JsonStr<'a>>,
    /// `filesize` in bytes, never 0. The block-count and overflow limits are the state
    /// machine's (§2.3).
    pub file_size: u32,
    /// `fileid`: the file's id in the MQTT stream.
    pub file_id: u32,
    /// `certfile`: signer certificate path or label handed to the PAL.
    pub cert_file: Option<JsonStr<'a>>,
    /// `update_data_url`: presigned HTTPS URL (HTTP data path, §10).
    pub update_data_url: Option<JsonStr<'a>>,
    /// `auth_scheme`, e.g. `aws.s3.presigned`; not interpreted.
    pub auth_scheme: Option<JsonStr<'a>>,
    /// `attr`: file attributes handed to the PAL.
    pub attr: Option<u32>,
    /// `fileType` (camelCase only): 0 is firmware by convention.
    pub file_type: Option<u32>,
    signatures: [Option<JsonStr<'a>>; SIG_KEYS],
}

impl<'a> FileDescription<'a> {
    /// The signature under `kind`'s key, if present.
    pub fn signature(&self, kind: SignatureKind) -> Option<Signature<'a>> {
        self.signatures().find(|s| s.kind == kind)
    }

    /// Every signature present, in the order of [`SignatureKind::ALL`]: a board picks the one
    /// its verifier checks.
    pub fn signatures(&self) -> impl Iterator<Item = Signature<'a>> + '_ {
        SignatureKind::ALL
            .iter()
            .zip(self.signatures.iter())
            .filter_map(|(&kind, text)| text.map(|text| Signature { kind, text }))
    }
}

/// An OTA job document (`afr_ota`), with the execution fields the agent needs (spec §2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobDocument<'a, const MAX_FILES: usize> {
    /// `execution.jobId`: 1..=64 of `[A-Za-z0-9_-]`, so it has no escapes.
    pub job_id: &'a str,
    /// `execution.status`; `None` when absent or not a known status (the reference ignores it).
    pub status: Option<ExecutionStatus>,
    /// `execution.statusDetails.self_test`: present (with any value, `null` included) after the
    /// device rebooted into a new image (§2.1 #5, §6).
    pub self_test: Option<Value<'a>>,
    /// `execution.statusDetails.updatedBy`: the version that started the update (§6).
    pub updated_by: Option<u32>,
    /// `execution.versionNumber`; `None` when absent or not a u32 (the reference ignores it).
    pub version_number: Option<u32>,
    /// `execution.executionNumber`; `None` when absent or not a u32.
    pub execution_number: Option<u32>,
    /// `afr_ota.streamname`: the MQTT stream to download from.
    pub stream_name: Option<JsonStr<'a>>,
    /// `afr_ota.protocols`.
    pub protocols: Protocols<'a>,
    /// Every entry of `afr_ota.files`, in order.
    pub files: heapless::Vec<FileDescription<'a>, MAX_FILES>,
    /// Raw text of `execution.jobDocument`.
    pub document: &'a str,
}

impl<const MAX_FILES: usize> JobDocument<'_, MAX_FILES> {
    /// Whether the device is in the self test of this job (`self_test` present).
    pub fn in_self_test(&self) -> bool {
        self.self_test.is_some()
    }
}

mod key {
    pub const EXECUTION: &str = "execution";
    pub const JOB_ID: &str = "execution.jobId";
    pub const JOB_DOCUMENT: &str = "execution.jobDocument";
    pub const STATUS_DETAILS: &str = "execution.statusDetails";
    pub const UPDATED_BY: &str = "execution.statusDetails.updatedBy";
    pub const AFR_OTA: &str = "execution.jobDocument.afr_ota";
    pub const STREAM_NAME: &str = "execution.jobDocument.afr_ota.streamname";
    pub const PROTOCOLS: &str = "execution.jobDocument.afr_ota.protocols";
    pub const PROTOCOLS_ITEM: &str = "execution.jobDocument.afr_ota.protocols[]";
    pub const FILES: &str = "execution.jobDocument.afr_ota.files";
    pub const FILE: &str = "execution.jobDocument.afr_ota.files[]";
    pub const FILE_PATH: &str = "execution.jobDocument.afr_ota.files[].filepath";
    pub const FILE_SIZE: &str = "execution.jobDocument.afr_ota.files[].filesize";
    pub const FILE_ID: &str = "execution.jobDocument.afr_ota.files[].fileid";
    pub const CERT_FILE: &str = "execution.jobDocument.afr_ota.files[].certfile";
    pub const URL: &str = "execution.jobDocument.afr_ota.files[].update_data_url";
    pub const AUTH_SCHEME: &str = "execution.jobDocument.afr_ota.files[].auth_scheme";
    pub const ATTR: &str = "execution.jobDocument.afr_ota.files[].attr";
    pub const FILE_TYPE: &str = "execution.jobDocument.afr_ota.files[].fileType";
    /// In the order of `SignatureKind::ALL`.
    pub const SIGNATURES: [&str; 4] = [
        "execution.jobDocument.afr_ota.files[].sig-sha256-ecdsa",
        "execution.jobDocument.afr_ota.files[].sig-sha256-rsa",
        "execution.jobDocument.afr_ota.files[].sig-sha1-rsa",
        "execution.jobDocument.afr_ota.files[].sig-sha1-ecdsa",
    ];
}

/// Parse a `$next/get/accepted` or `notify-next` payload (spec §1.5, §2). See the module docs
/// for the classification and the differences from the reference agent.
///
/// ```
/// use ota_core::wire::job::{parse, JobMessage};
/// let msg = parse::<1>(br#"{"clientToken":"0:t","timestamp":1602795143}"#).unwrap();
/// assert_eq!(msg, JobMessage::NoJob);
/// ```
pub fn parse<'a, const MAX_FILES: usize>(
    payload: &'a [u8],
) -> Result<JobMessage<'a, MAX_FILES>, JobError> {
    let root = json::parse(payload)
        .map_err(|e| JobError::new(JobErrorKind::InvalidJson(e.kind), "", Some(e.offset)))?;
    if root.kind() != Kind::Object {
        return Err(JobError::wrong_type("", &root));
    }
    let Some(execution) = present(root.get("execution")) else {
        return Ok(JobMessage::NoJob);
    };
    if execution.kind() != Kind::Object {
        return Err(JobError::wrong_type(key::EXECUTION, &execution));
    }
    let id_value = execution
        .get("jobId")
        .ok_or_else(|| JobError::missing(key::JOB_ID, &execution))?;
    let id = id_value
        .as_str()
        .ok_or(JobError::wrong_type(key::JOB_ID, &id_value))?;
    let job_id = valid_job_id(id).ok_or(JobError::new(
        JobErrorKind::JobIdInvalid,
        key::JOB_ID,
        Some(id.offset()),
    ))?;
    let document = execution
        .get("jobDocument")
        .ok_or_else(|| JobError::missing(key::JOB_DOCUMENT, &execution))?;
    if document.kind() != Kind::Object {
        return Err(JobError::wrong_type(key::JOB_DOCUMENT, &document));
    }
    let status = execution
        .get("status")
        .and_then(|v| v.as_str())
        .and_then(|s| s.as_plain())
        .and_then(ExecutionStatus::from_name);
    match parse_ota(execution, document, job_id, status) {
        Ok(doc) => Ok(JobMessage::Ota(doc)),
        Err(reason) => Ok(JobMessage::Custom(CustomJob {
            job_id,
            document: document.raw(),
            status,
            reason,
        })),
    }
}

fn valid_job_id(id: JsonStr<'_>) -> Option<&str> {
    let s = id.escaped();
    let ok = (1..=MAX_JOB_ID_LEN).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    ok.then_some(s)
}

/// `None` for an absent key or JSON `null`.
fn present(value: Option<Value<'_>>) -> Option<Value<'_>> {
    value.filter(|v| !v.is_null())
}

fn optional_str<'a>(
    obj: Value<'a>,
    name: &str,
    path: &'static str,
) -> Result<Option<JsonStr<'a>>, JobError> {
    match present(obj.get(name)) {
        None => Ok(None),
        Some(v) => v.as_str().map(Some).ok_or(JobError::wrong_type(path, &v)),
    }
}

/// A u32 from a JSON number or a quoted number (§2.2). `null` and other types are WrongType.
fn number_value(v: Value<'_>, path: &'static str) -> Result<u32, JobError> {
    let text = match v.kind() {
        Kind::Number => v.raw(),
        // Quoted numbers are read from the escaped text, like the reference (an escape inside
        // a number is junk).
        Kind::String => v.as_str().map(|s| s.escaped()).unwrap_or(""),
        _ => return Err(JobError::wrong_type(path, &v)),
    };
    number::parse_u32(text).map_err(|e| {
        let kind = match e {
            NumberError::OutOfRange => JobErrorKind::NumberOutOfRange,
            NumberError::Empty | NumberError::InvalidDigit => JobErrorKind::InvalidNumber,
        };
        JobError::new(kind, path, Some(v.offset()))
    })
}

fn optional_number(
    obj: Value<'_>,
    name: &str,
    path: &'static str,
) -> Result<Option<u32>, JobError> {
    present(obj.get(name))
        .map(|v| number_value(v, path))
        .transpose()
}

fn required_number(obj: Value<'_>, name: &str, path: &'static str) -> Result<u32, JobError> {
    let v = obj.get(name).ok_or_else(|| JobError::missing(path, &obj))?;
    number_value(v, path)
}

fn parse_ota<'a, const MAX_FILES: usize>(
    execution: Value<'a>,
    document: Value<'a>,
    job_id: &'a str,
    status: Option<ExecutionStatus>,
) -> Result<JobDocument<'a, MAX_FILES>, JobError> {
    let (self_test, updated_by) = match present(execution.get("statusDetails")) {
        None => (None, None),
        Some(details) if details.kind() == Kind::Object => (
            details.get("self_test"),
            optional_number(details, "updatedBy", key::UPDATED_BY)?,
        ),
        Some(details) => return Err(JobError::wrong_type(key::STATUS_DETAILS, &details)),
    };
    let lenient_number = |name| {
        execution
            .get(name)
            .and_then(|v| number_value(v, key::EXECUTION).ok())
    };

    let afr_ota = present(document.get("afr_ota"))
        .ok_or_else(|| JobError::missing(key::AFR_OTA, &document))?;
    if afr_ota.kind() != Kind::Object {
        return Err(JobError::wrong_type(key::AFR_OTA, &afr_ota));
    }
    let stream_name = optional_str(afr_ota, "streamname", key::STREAM_NAME)?;

    let protocols_value = afr_ota
        .get("protocols")
        .ok_or_else(|| JobError::missing(key::PROTOCOLS, &afr_ota))?;
    let protocols_array = protocols_value
        .as_array()
        .ok_or(JobError::wrong_type(key::PROTOCOLS, &protocols_value))?;
    let mut protocols = Protocols {
        raw: protocols_value.raw(),
        mqtt: false,
        http: false,
    };
    for element in protocols_array.iter() {
        let name = element
            .as_str()
            .ok_or(JobError::wrong_type(key::PROTOCOLS_ITEM, &element))?;
        protocols.mqtt |= name.eq_str("MQTT");
        protocols.http |= name.eq_str("HTTP");
    }

    let files_value = afr_ota
        .get("files")
        .ok_or_else(|| JobError::missing(key::FILES, &afr_ota))?;
    let files_array = files_value
        .as_array()
        .ok_or(JobError::wrong_type(key::FILES, &files_value))?;
    let mut files = heapless::Vec::new();
    for entry in files_array.iter() {
        let file = parse_file(entry)?;
        files.push(file).map_err(|_| {
            JobError::new(JobErrorKind::TooManyFiles, key::FILES, Some(entry.offset()))
        })?;
    }
    if files.is_empty() {
        return Err(JobError::new(
            JobErrorKind::NoFiles,
            key::FILES,
            Some(files_value.offset()),
        ));
    }

    Ok(JobDocument {
        job_id,
        status,
        self_test,
        updated_by,
        version_number: lenient_number("versionNumber"),
        execution_number: lenient_number("executionNumber"),
        stream_name,
        protocols,
        files,
        document: document.raw(),
    })
}

fn parse_file(entry: Value<'_>) -> Result<FileDescription<'_>, JobError> {
    if entry.kind() != Kind::Object {
        return Err(JobError::wrong_type(key::FILE, &entry));
    }
    let file_size = required_number(entry, "filesize", key::FILE_SIZE)?;
    if file_size == 0 {
        let offset = entry.get("filesize").map(|v| v.offset());
        return Err(JobError::new(
            JobErrorKind::ZeroFileSize,
            key::FILE_SIZE,
            offset,
        ));
    }
    let mut signatures = [None; SIG_KEYS];
    for ((slot, kind), path) in signatures
        .iter_mut()
        .zip(SignatureKind::ALL.iter())
        .zip(key::SIGNATURES)
    {
        let Some(text) = optional_str(entry, kind.key(), path)? else {
            continue;
        };
        let mut scratch = [0u8; MAX_SIGNATURE_LEN];
        let signature = Signature { kind: *kind, text };
        signature.decode_into(&mut scratch).map_err(|e| {
            let kind = match e {
                Base64Error::BufferTooSmall => JobErrorKind::SignatureTooLong,
                other => JobErrorKind::InvalidBase64(other),
            };
            JobError::new(kind, path, Some(text.offset()))
        })?;
        *slot = Some(text);
    }
    Ok(FileDescription {
        file_path: optional_str(entry, "filepath", key::FILE_PATH)?,
        file_size,
        file_id: required_number(entry, "fileid", key::FILE_ID)?,
        cert_file: optional_str(entry, "certfile", key::CERT_FILE)?,
        update_data_url: optional_str(entry, "update_data_url", key::URL)?,
        auth_scheme: optional_str(entry, "auth_scheme", key::AUTH_SCHEME)?,
        attr: optional_number(entry, "attr", key::ATTR)?,
        file_type: optional_number(entry, "fileType", key::FILE_TYPE)?,
        signatures,
    })
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use ota_pal_traits::SignatureKind;
    use proptest::prelude::*;
    use std::string::{String, ToString};
    use std::vec::Vec;

    const SIG_A: &str = "MEQCIF2QDvww1G/kpRGZ8FYvQrok1bSZvXjXefRk7sqNcyPTAiB4dvGt8fozIY5NC0vUDJ2MY42ZERYEcrbwA4n6q7vrBg==";

    const JOB_DOC_A: &str = r#"{"clientToken":"0:testclient","timestamp":1602795143,"execution":{"jobId":"AFR_OTA-testjob20","status":"QUEUED","queuedAt":1602795128,"lastUpdatedAt":1602795128,"versionNumber":1,"executionNumber":1,"jobDocument":{"afr_ota":{"protocols":["MQTT"],"streamname":"AFR_OTA-XYZ","files":[{"filepath":"/test/demo","filesize":10240,"fileid":0,"certfile":"test.crt","sig-sha256-ecdsa":"MEQCIF2QDvww1G/kpRGZ8FYvQrok1bSZvXjXefRk7sqNcyPTAiB4dvGt8fozIY5NC0vUDJ2MY42ZERYEcrbwA4n6q7vrBg=="}] }}}}"#;
    const JOB_DOC_SELF_TEST: &str = r#"{"clientToken":"0:testclient","timestamp":1602795143,"execution":{"jobId":"AFR_OTA-testjob20","status":"IN_PROGRESS","statusDetails":{"self_test":"ready","updatedBy":"0x1000000"},"queuedAt":1602795128,"lastUpdatedAt":1602795128,"versionNumber":1,"executionNumber":1,"jobDocument":{"afr_ota":{"protocols":["MQTT"],"streamname":"AFR_OTA-XYZ","files":[{"filepath":"/test/demo","filesize":10240,"fileid":0,"certfile":"test.crt","sig-sha256-ecdsa":"MEQCIF2QDvww1G/kpRGZ8FYvQrok1bSZvXjXefRk7sqNcyPTAiB4dvGt8fozIY5NC0vUDJ2MY42ZERYEcrbwA4n6q7vrBg=="}] }}}}"#;
    const JOB_DOC_HTTP: &str = r#"{"clientToken":"0:testclient","timestamp":1602795143,"execution":{"jobId":"AFR_OTA-testjob22","status":"QUEUED","queuedAt":1602795128,"lastUpdatedAt":1602795128,"versionNumber":1,"executionNumber":1,"jobDocument":{"afr_ota":{"protocols":["HTTP"],"files":[{"filepath":"/test/demo","filesize":10240,"fileid":0,"certfile":"test.crt","update_data_url":"https://dummy-url.com/ota.bin","auth_scheme":"aws.s3.presigned","sig-sha256-ecdsa":"MEQCIF2QDvww1G/kpRGZ8FYvQrok1bSZvXjXefRk7sqNcyPTAiB4dvGt8fozIY5NC0vUDJ2MY42ZERYEcrbwA4n6q7vrBg=="}] }}}}"#;
    const JOB_DOC_EMPTY: &str = r#"{"clientToken":"0:testclient","timestamp":1602795143}"#;
    const CLOUD_JOB_DOCUMENT: &str = r#"{"afr_ota":{"protocols":["MQTT"],"streamname":"AFR_OTA-6e01bdb2-5057-4606-8966-b1bf8028416f","files":[{"filepath":null,"filesize":366816,"fileid":0,"certfile":"foobar","update_data_url":null,"auth_scheme":null,"sig-sha256-ecdsa":"MEUCIQCuwPQBzaKu9Rp4v4BwGa7T4h3JK71KwDJ3LZoSvYdCsQIgclDeaFE+5NeJL3cydMiuKM909bprNXfCZcneIuiSZrk="}]}}"#;

    /// `base` with `from` replaced once (the spec's "same envelope, one change each").
    fn variant(base: &str, from: &str, to: &str) -> &'static str {
        assert!(base.contains(from), "{from:?} not in base");
        base.replacen(from, to, 1).leak()
    }

    fn ota(text: &str) -> JobDocument<'_, 4> {
        match parse::<4>(text.as_bytes()) {
            Ok(JobMessage::Ota(doc)) => doc,
            other => panic!("expected an OTA job, got {other:?}"),
        }
    }

    fn custom_reason(text: &str) -> JobError {
        match parse::<4>(text.as_bytes()) {
            Ok(JobMessage::Custom(job)) => job.reason,
            other => panic!("expected a custom job, got {other:?}"),
        }
    }

    fn err(text: &str) -> JobError {
        match parse::<4>(text.as_bytes()) {
            Err(e) => e,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    fn cloud_envelope(document: &str) -> &'static str {
        std::format!(
            r#"{{"timestamp":1,"execution":{{"jobId":"AFR_OTA-cloud","status":"QUEUED","queuedAt":1,"lastUpdatedAt":1,"versionNumber":2,"executionNumber":3,"jobDocument":{document}}}}}"#
        )
        .leak()
    }

    #[test]
    fn job_doc_a_is_an_mqtt_ota_job_with_one_file() {
        let doc = ota(JOB_DOC_A);
        assert_eq!(doc.job_id, "AFR_OTA-testjob20");
        assert_eq!(doc.status, Some(ExecutionStatus::Queued));
        assert!(!doc.in_self_test());
        assert_eq!(doc.updated_by, None);
        assert_eq!(doc.version_number, Some(1));
        assert_eq!(doc.execution_number, Some(1));
        assert_eq!(doc.stream_name.unwrap(), "AFR_OTA-XYZ");
        assert!(doc.protocols.mqtt());
        assert!(!doc.protocols.http());
        assert_eq!(doc.protocols.raw(), r#"["MQTT"]"#);
        assert!(doc.document.starts_with(r#"{"afr_ota":"#));
        assert!(doc.document.ends_with("}] }}"));
        assert_eq!(doc.files.len(), 1);
        let file = &doc.files[0];
        assert_eq!(file.file_path.unwrap(), "/test/demo");
        assert_eq!(file.file_size, 10240);
        assert_eq!(file.file_id, 0);
        assert_eq!(file.cert_file.unwrap(), "test.crt");
        assert_eq!(file.update_data_url, None);
        assert_eq!(file.auth_scheme, None);
        assert_eq!(file.attr, None);
        assert_eq!(file.file_type, None);
        assert_eq!(file.signatures().count(), 1);
        let sig = file.signature(SignatureKind::SHA256_ECDSA).unwrap();
        assert_eq!(sig.text, SIG_A);
        assert!(file.signature(SignatureKind::SHA256_RSA).is_none());
    }

    #[test]
    fn job_doc_a_signature_decodes_to_70_bytes() {
        let doc = ota(JOB_DOC_A);
        let sig = doc.files[0].signature(SignatureKind::SHA256_ECDSA).unwrap();
        let mut buf = [0u8; MAX_SIGNATURE_LEN];
        let der = sig.decode_into(&mut buf).unwrap();
        assert_eq!(der.len(), 70);
        assert_eq!(sig.decoded_len(), 70);
        assert_eq!(&der[..2], &[0x30, 0x44], "a DER SEQUENCE of 68 bytes");
    }

    #[test]
    fn self_test_document_sets_the_flag_and_updated_by() {
        let doc = ota(JOB_DOC_SELF_TEST);
        assert_eq!(doc.status, Some(ExecutionStatus::InProgress));
        assert!(doc.in_self_test());
        assert_eq!(doc.self_test.unwrap().raw(), r#""ready""#);
        assert_eq!(doc.updated_by, Some(0x0100_0000));
    }

    #[test]
    fn self_test_same_version_and_downgrade_read_updated_by() {
        let same = variant(JOB_DOC_SELF_TEST, "0x1000000", "0x1000001");
        assert_eq!(ota(same).updated_by, Some(0x0100_0001));
        let down = variant(JOB_DOC_SELF_TEST, "0x1000000", "0x2000000");
        assert_eq!(ota(down).updated_by, Some(0x0200_0000));
    }

    #[test]
    fn self_test_flag_is_presence_whatever_the_value() {
        for value in ["null", "true", "0", "{}", r#""""#] {
            let text = variant(JOB_DOC_SELF_TEST, r#""ready""#, value);
            assert!(ota(text).in_self_test(), "{value}");
        }
    }

    #[test]
    fn self_test_file_type_255_and_different_file_type_2() {
        let t255 = variant(
            JOB_DOC_SELF_TEST,
            r#""fileid":0,"#,
            r#""fileid":0,"fileType":255,"#,
        );
        assert_eq!(ota(t255).files[0].file_type, Some(255));
        let t2 = variant(JOB_DOC_A, r#""fileid":0,"#, r#""fileid":0,"fileType":2,"#);
        assert_eq!(ota(t2).files[0].file_type, Some(2));
    }

    #[test]
    fn serverfile_id_1_is_read_per_file() {
        let text = variant(JOB_DOC_SELF_TEST, r#""fileid":0"#, r#""fileid":1"#);
        assert_eq!(ota(text).files[0].file_id, 1);
    }

    #[test]
    fn http_document_carries_url_and_auth_scheme() {
        let doc = ota(JOB_DOC_HTTP);
        assert_eq!(doc.job_id, "AFR_OTA-testjob22");
        assert!(doc.protocols.http());
        assert!(!doc.protocols.mqtt());
        assert_eq!(doc.stream_name, None);
        let file = &doc.files[0];
        assert_eq!(
            file.update_data_url.unwrap(),
            "https://dummy-url.com/ota.bin"
        );
        assert_eq!(file.auth_scheme.unwrap(), "aws.s3.presigned");
    }

    #[test]
    fn one_block_http_document_accepts_a_quoted_file_size() {
        let text = variant(JOB_DOC_HTTP, r#""filesize":10240"#, r#""filesize": "1024""#);
        assert_eq!(ota(text).files[0].file_size, 1024);
    }

    #[test]
    fn empty_documents_mean_no_job() {
        assert_eq!(parse::<4>(JOB_DOC_EMPTY.as_bytes()), Ok(JobMessage::NoJob));
        assert_eq!(
            parse::<4>(br#"{"timestamp":1602795143}"#),
            Ok(JobMessage::NoJob)
        );
        assert_eq!(parse::<4>(b"{}"), Ok(JobMessage::NoJob));
        assert_eq!(
            parse::<4>(br#"{"timestamp":1,"execution":null}"#),
            Ok(JobMessage::NoJob)
        );
    }

    #[test]
    fn job_doc_b_has_its_own_id() {
        let text = variant(JOB_DOC_A, "testjob20", "testjob21");
        assert_eq!(ota(text).job_id, "AFR_OTA-testjob21");
    }

    #[test]
    fn invalid_json_is_an_error_with_offset() {
        let e = err("not a json");
        assert_eq!(
            e.kind,
            JobErrorKind::InvalidJson(JsonErrorKind::UnexpectedByte)
        );
        assert_eq!(e.offset, Some(0));
        assert_eq!(e.key, "");
        let cut = &JOB_DOC_A[..JOB_DOC_A.len() - 1];
        assert_eq!(
            err(cut).kind,
            JobErrorKind::InvalidJson(JsonErrorKind::UnexpectedEnd)
        );
        assert_eq!(err("[]").kind, JobErrorKind::WrongType);
    }

    #[test]
    fn invalid_protocol_parses_but_selects_no_protocol() {
        let doc = ota(variant(JOB_DOC_A, r#"["MQTT"]"#, r#"["XYZ"]"#));
        assert!(!doc.protocols.mqtt() && !doc.protocols.http());
        for junk in [r#"["junkMQTT"]"#, r#"["HTTPjunk"]"#, r#"["mqtt"]"#, "[]"] {
            let doc = ota(variant(JOB_DOC_A, r#"["MQTT"]"#, junk));
            assert!(!doc.protocols.mqtt() && !doc.protocols.http(), "{junk}");
        }
        let both = ota(variant(JOB_DOC_A, r#"["MQTT"]"#, r#"["HTTP","MQTT"]"#));
        assert!(both.protocols.mqtt() && both.protocols.http());
    }

    #[test]
    fn protocols_must_be_an_array_of_strings() {
        let reason = custom_reason(variant(JOB_DOC_A, r#"["MQTT"]"#, r#""MQTT""#));
        assert_eq!(
            (reason.kind, reason.key),
            (JobErrorKind::WrongType, key::PROTOCOLS)
        );
        let reason = custom_reason(variant(JOB_DOC_A, r#"["MQTT"]"#, r#"["MQTT",1]"#));
        assert_eq!(
            (reason.kind, reason.key),
            (JobErrorKind::WrongType, key::PROTOCOLS_ITEM)
        );
    }

    #[test]
    fn invalid_base64_signature_makes_a_custom_job_naming_the_key() {
        let text = variant(JOB_DOC_A, SIG_A, "Zg===");
        let reason = custom_reason(text);
        assert_eq!(
            reason.kind,
            JobErrorKind::InvalidBase64(Base64Error::InvalidPaddingSymbol)
        );
        assert_eq!(
            reason.key,
            "execution.jobDocument.afr_ota.files[].sig-sha256-ecdsa"
        );
        assert_eq!(reason.offset, text.find("Zg==="));
        assert_eq!(
            reason.to_string(),
            std::format!(
                "execution.jobDocument.afr_ota.files[].sig-sha256-ecdsa: invalid base64 padding at byte {}",
                text.find("Zg===").unwrap()
            )
        );
    }

    #[test]
    fn missing_filesize_makes_a_custom_job() {
        let text = variant(JOB_DOC_A, r#""filesize":10240,"#, "");
        let reason = custom_reason(text);
        assert_eq!(
            (reason.kind, reason.key),
            (JobErrorKind::MissingKey, key::FILE_SIZE)
        );
        match parse::<4>(text.as_bytes()).unwrap() {
            JobMessage::Custom(job) => {
                assert_eq!(job.job_id, "AFR_OTA-testjob20");
                assert_eq!(job.status, Some(ExecutionStatus::Queued));
                assert!(job.document.starts_with(r#"{"afr_ota""#));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn nan_file_size_and_file_id_are_invalid_numbers() {
        let text = variant(
            JOB_DOC_A,
            r#""filesize":10240,"fileid":0"#,
            r#""filesize":"NaN","fileid":"NaN""#,
        );
        let reason = custom_reason(text);
        assert_eq!(
            (reason.kind, reason.key),
            (JobErrorKind::InvalidNumber, key::FILE_SIZE)
        );
        let text = variant(JOB_DOC_A, r#""fileid":0"#, r#""fileid":"NaN""#);
        assert_eq!(custom_reason(text).key, key::FILE_ID);
    }

    #[test]
    fn oversized_and_fractional_numbers_are_rejected() {
        let text = variant(JOB_DOC_A, "10240", "19223372036854775808");
        let reason = custom_reason(text);
        assert_eq!(
            (reason.kind, reason.key),
            (JobErrorKind::NumberOutOfRange, key::FILE_SIZE)
        );
        assert_eq!(
            custom_reason(variant(JOB_DOC_A, "10240", "4294967296")).kind,
            JobErrorKind::NumberOutOfRange
        );
        for bad in ["10240.0", "1e4", "-1"] {
            assert_eq!(
                custom_reason(variant(JOB_DOC_A, "10240", bad)).kind,
                JobErrorKind::InvalidNumber,
                "{bad}"
            );
        }
    }

    #[test]
    fn filesize_overflow_value_parses_the_limit_is_the_state_machines() {
        let doc = ota(variant(JOB_DOC_A, "10240", "4294963220"));
        assert_eq!(doc.files[0].file_size, 4_294_963_220);
    }

    #[test]
    fn zero_file_size_is_an_error() {
        let reason = custom_reason(variant(JOB_DOC_A, r#""filesize":10240"#, r#""filesize":0"#));
        assert_eq!(
            (reason.kind, reason.key),
            (JobErrorKind::ZeroFileSize, key::FILE_SIZE)
        );
    }

    #[test]
    fn missing_job_document_or_job_id_is_an_error() {
        let no_doc = variant(
            JOB_DOC_A,
            r#""jobDocument":{"afr_ota":"#,
            r#""other":{"afr_ota":"#,
        );
        let e = err(no_doc);
        assert_eq!(
            (e.kind, e.key),
            (JobErrorKind::MissingKey, key::JOB_DOCUMENT)
        );
        let no_id = variant(JOB_DOC_A, r#""jobId":"AFR_OTA-testjob20","#, "");
        let e = err(no_id);
        assert_eq!((e.kind, e.key), (JobErrorKind::MissingKey, key::JOB_ID));
        let execution_at = no_id.find(r#"{"status""#).unwrap();
        assert_eq!(e.offset, Some(execution_at));
        assert_eq!(
            e.to_string(),
            std::format!("execution.jobId: missing at byte {execution_at}")
        );
    }

    #[test]
    fn job_ids_longer_than_64_or_with_other_characters_are_rejected() {
        for len in [117, 73, 65] {
            let id = "a".repeat(len);
            let e = err(variant(JOB_DOC_A, "AFR_OTA-testjob20", &id));
            assert_eq!(
                (e.kind, e.key),
                (JobErrorKind::JobIdInvalid, key::JOB_ID),
                "{len}"
            );
        }
        let id64 = "A".repeat(64);
        assert_eq!(
            ota(variant(JOB_DOC_A, "AFR_OTA-testjob20", &id64)).job_id,
            id64
        );
        for bad in ["", "a b", "a/b", "a\\u0041", "é"] {
            let e = err(variant(JOB_DOC_A, "AFR_OTA-testjob20", bad));
            assert_eq!(e.kind, JobErrorKind::JobIdInvalid, "{bad:?}");
        }
        let e = err(variant(JOB_DOC_A, r#""AFR_OTA-testjob20""#, "20"));
        assert_eq!((e.kind, e.key), (JobErrorKind::WrongType, key::JOB_ID));
    }

    #[test]
    fn cloud_generated_document_with_nulls() {
        let text = cloud_envelope(CLOUD_JOB_DOCUMENT);
        let doc = ota(text);
        assert_eq!(doc.document, CLOUD_JOB_DOCUMENT);
        assert_eq!(doc.version_number, Some(2));
        assert_eq!(doc.execution_number, Some(3));
        assert_eq!(
            doc.stream_name.unwrap(),
            "AFR_OTA-6e01bdb2-5057-4606-8966-b1bf8028416f"
        );
        let file = &doc.files[0];
        assert_eq!(file.file_path, None);
        assert_eq!(file.update_data_url, None);
        assert_eq!(file.auth_scheme, None);
        assert_eq!(file.cert_file.unwrap(), "foobar");
        assert_eq!(file.file_size, 366_816);
        let mut buf = [0u8; MAX_SIGNATURE_LEN];
        let sig = file.signature(SignatureKind::SHA256_ECDSA).unwrap();
        assert_eq!(sig.decode_into(&mut buf).unwrap().len(), 71);
        // Other real shapes: a null certfile, fileType 0 and 202, an unsigned "sig--": null.
        let other = CLOUD_JOB_DOCUMENT.replace(
            r#""certfile":"foobar""#,
            r#""certfile":null,"fileType":202,"sig--":null"#,
        );
        let doc = ota(cloud_envelope(&other));
        assert_eq!(doc.files[0].cert_file, None);
        assert_eq!(doc.files[0].file_type, Some(202));
        assert_eq!(doc.files[0].signatures().count(), 1);
    }

    #[test]
    fn null_is_absent_for_optional_keys_and_an_error_for_required_ones() {
        let text = variant(
            JOB_DOC_A,
            r#""fileid":0,"#,
            r#""fileid":0,"fileType":null,"attr":null,"#,
        );
        let file = &ota(text).files[0];
        assert_eq!((file.file_type, file.attr), (None, None));
        let text = variant(JOB_DOC_SELF_TEST, r#""0x1000000""#, "null");
        assert_eq!(ota(text).updated_by, None);
        let text = variant(
            JOB_DOC_A,
            r#""streamname":"AFR_OTA-XYZ""#,
            r#""streamname":null"#,
        );
        assert_eq!(ota(text).stream_name, None);
        let text = variant(JOB_DOC_A, SIG_A, "X").replace(r#""X""#, "null");
        assert_eq!(ota(&text).files[0].signatures().count(), 0);
        let reason = custom_reason(variant(
            JOB_DOC_A,
            r#""filesize":10240"#,
            r#""filesize": null"#,
        ));
        assert_eq!(
            (reason.kind, reason.key),
            (JobErrorKind::WrongType, key::FILE_SIZE)
        );
        let reason = custom_reason(variant(JOB_DOC_A, r#""fileid":0"#, r#""fileid":null"#));
        assert_eq!(
            (reason.kind, reason.key),
            (JobErrorKind::WrongType, key::FILE_ID)
        );
        let reason = custom_reason(variant(
            JOB_DOC_A,
            r#""certfile":"test.crt""#,
            r#""certfile":7"#,
        ));
        assert_eq!(
            (reason.kind, reason.key),
            (JobErrorKind::WrongType, key::CERT_FILE)
        );
    }

    #[test]
    fn escapes_in_path_and_url_are_undone() {
        let text = variant(JOB_DOC_HTTP, r#""/test/demo""#, r#""\/test\/d\u00e9mo""#).replace(
            "https://dummy-url.com/ota.bin",
            r"https:\/\/dummy-url.com\/ota.bin?a=1\u0026b=2",
        );
        let doc = ota(&text);
        let file = &doc.files[0];
        let path = file.file_path.unwrap();
        assert_eq!(path, "/test/démo");
        assert_eq!(path.escaped(), r"\/test\/d\u00e9mo");
        let mut buf = [0u8; 64];
        assert_eq!(
            file.update_data_url.unwrap().unescape_into(&mut buf),
            Ok("https://dummy-url.com/ota.bin?a=1&b=2")
        );
    }

    #[test]
    fn escaped_signature_text_is_decoded_after_unescaping() {
        let escaped = SIG_A.replace('/', r"\/");
        let text = variant(JOB_DOC_A, SIG_A, &std::format!(r"{escaped}\n"));
        let file = &ota(text).files[0];
        let mut buf = [0u8; MAX_SIGNATURE_LEN];
        assert_eq!(
            file.signatures()
                .next()
                .unwrap()
                .decode_into(&mut buf)
                .unwrap()
                .len(),
            70
        );
    }

    #[test]
    fn several_signature_keys_are_all_kept() {
        let text = variant(
            JOB_DOC_A,
            r#""certfile":"test.crt","#,
            r#""certfile":"test.crt","sig-sha256-rsa":"Rk9PQg==","sig-sha1-ecdsa":"Zm9v","#,
        );
        let file = &ota(text).files[0];
        let kinds: Vec<SignatureKind> = file.signatures().map(|s| s.kind).collect();
        assert_eq!(
            kinds,
            [
                SignatureKind::SHA256_ECDSA,
                SignatureKind::SHA256_RSA,
                SignatureKind::SHA1_ECDSA
            ]
        );
        let mut buf = [0u8; 8];
        assert_eq!(
            file.signature(SignatureKind::SHA256_RSA)
                .unwrap()
                .decode_into(&mut buf),
            Ok(&b"FOOB"[..])
        );
    }

    #[test]
    fn signatures_up_to_512_bytes_are_accepted_and_longer_ones_rejected() {
        let rsa4096 = base64::tests::encode(&[0x5A; 512]);
        let text = variant(JOB_DOC_A, SIG_A, &rsa4096);
        assert_eq!(
            ota(text).files[0]
                .signatures()
                .next()
                .unwrap()
                .decoded_len(),
            512
        );
        let too_long = base64::tests::encode(&[0x5A; 513]);
        let reason = custom_reason(variant(JOB_DOC_A, SIG_A, &too_long));
        assert_eq!(reason.kind, JobErrorKind::SignatureTooLong);
    }

    #[test]
    fn every_file_of_a_multi_file_job_is_read() {
        let files = r#"[{"filepath":"a","filesize":1,"fileid":0},{"filepath":"b","filesize":"0x10","fileid":1,"fileType":202,"attr":"017"},{"filesize":3,"fileid":2}]"#;
        let text = variant(JOB_DOC_A, r#"[{"filepath":"/test/demo","#, "[{\"x\":").replace(
            r#"[{"x":"filesize":10240,"fileid":0,"certfile":"test.crt","sig-sha256-ecdsa":"MEQCIF2QDvww1G/kpRGZ8FYvQrok1bSZvXjXefRk7sqNcyPTAiB4dvGt8fozIY5NC0vUDJ2MY42ZERYEcrbwA4n6q7vrBg=="}]"#,
            files,
        );
        let doc = ota(&text);
        let sizes: Vec<u32> = doc.files.iter().map(|f| f.file_size).collect();
        assert_eq!(sizes, [1, 16, 3]);
        assert_eq!(doc.files[1].file_type, Some(202));
        assert_eq!(doc.files[1].attr, Some(0o17));
        assert_eq!(doc.files[2].file_path, None);
        match parse::<2>(text.as_bytes()) {
            Ok(JobMessage::Custom(job)) => {
                assert_eq!(
                    (job.reason.kind, job.reason.key),
                    (JobErrorKind::TooManyFiles, key::FILES)
                );
            }
            other => panic!("{other:?}"),
        }
        let none = text.replace(files, "[]");
        assert_eq!(custom_reason(&none).kind, JobErrorKind::NoFiles);
        let not_object = text.replace(files, "[1]");
        assert_eq!(custom_reason(&not_object).key, key::FILE);
    }

    #[test]
    fn file_keys_at_top_level_are_not_read() {
        let text = variant(JOB_DOC_A, r#""filesize":10240,"#, "").replacen(
            r#""timestamp""#,
            r#""filesize":10240,"timestamp""#,
            1,
        );
        assert_eq!(custom_reason(&text).key, key::FILE_SIZE);
    }

    #[test]
    fn a_document_without_afr_ota_is_a_custom_job_with_its_raw_text() {
        let text = br#"{"timestamp":1,"execution":{"jobId":"reboot-7","status":"QUEUED","jobDocument":{"operation":"reboot","args":[1, "\/x"]}}}"#;
        match parse::<4>(text) {
            Ok(JobMessage::Custom(job)) => {
                assert_eq!(job.job_id, "reboot-7");
                assert_eq!(job.document, r#"{"operation":"reboot","args":[1, "\/x"]}"#);
                assert_eq!(
                    (job.reason.kind, job.reason.key),
                    (JobErrorKind::MissingKey, key::AFR_OTA)
                );
            }
            other => panic!("{other:?}"),
        }
        let e = err(r#"{"execution":{"jobId":"j","jobDocument":"text"}}"#);
        assert_eq!(
            (e.kind, e.key),
            (JobErrorKind::WrongType, key::JOB_DOCUMENT)
        );
    }

    #[test]
    fn unknown_keys_and_statuses_are_ignored() {
        let text = variant(
            JOB_DOC_A,
            r#""status":"QUEUED""#,
            r#""status":"PAUSED","extra":{"a":[1]}"#,
        );
        assert_eq!(ota(text).status, None);
        let text = variant(JOB_DOC_A, r#""versionNumber":1"#, r#""versionNumber":"x""#);
        assert_eq!(ota(text).version_number, None);
    }

    #[test]
    fn invalid_updated_by_and_status_details_are_reasons() {
        let text = variant(JOB_DOC_SELF_TEST, "0x1000000", "v1.0.0");
        assert_eq!(custom_reason(text).key, key::UPDATED_BY);
        let text = variant(
            JOB_DOC_SELF_TEST,
            r#"{"self_test":"ready","updatedBy":"0x1000000"}"#,
            "[]",
        );
        assert_eq!(custom_reason(text).key, key::STATUS_DETAILS);
    }

    // --- Property tests -------------------------------------------------------------------

    #[derive(Debug, Clone)]
    struct FileModel {
        path: Option<String>,
        size: u32,
        size_form: u8,
        id: u32,
        cert: Option<String>,
        url: Option<String>,
        auth: Option<String>,
        attr: Option<u32>,
        file_type: Option<u32>,
        sigs: [Option<Vec<u8>>; 4],
    }

    #[derive(Debug, Clone)]
    struct DocModel {
        job_id: String,
        status: Option<ExecutionStatus>,
        self_test: bool,
        updated_by: Option<u32>,
        stream: Option<String>,
        protocols: Vec<&'static str>,
        files: Vec<FileModel>,
        seed: u64,
        escape_all: bool,
    }

    fn text() -> impl Strategy<Value = String> {
        "[ -~é😀/\\\\\"\\n\\t]{0,24}"
    }

    fn file_model() -> impl Strategy<Value = FileModel> {
        let sig = proptest::option::of(proptest::collection::vec(any::<u8>(), 1..80));
        (
            (proptest::option::of(text()), 1u32.., 0u8..3, any::<u32>()),
            (
                proptest::option::of(text()),
                proptest::option::of(text()),
                proptest::option::of(text()),
            ),
            (
                proptest::option::of(any::<u32>()),
                proptest::option::of(any::<u32>()),
            ),
            [sig.clone(), sig.clone(), sig.clone(), sig],
        )
            .prop_map(
                |((path, size, size_form, id), (cert, url, auth), (attr, file_type), sigs)| {
                    FileModel {
                        path,
                        size,
                        size_form,
                        id,
                        cert,
                        url,
                        auth,
                        attr,
                        file_type,
                        sigs,
                    }
                },
            )
    }

    fn doc_model() -> impl Strategy<Value = DocModel> {
        let statuses = prop_oneof![
            Just(None),
            Just(Some(ExecutionStatus::Queued)),
            Just(Some(ExecutionStatus::InProgress)),
            Just(Some(ExecutionStatus::Canceled)),
        ];
        (
            "[A-Za-z0-9_-]{1,64}",
            statuses,
            any::<bool>(),
            proptest::option::of(any::<u32>()),
            proptest::option::of(text()),
            proptest::sample::subsequence(std::vec!["MQTT", "HTTP", "XYZ"], 0..=3),
            proptest::collection::vec(file_model(), 1..=4),
            any::<u64>(),
            any::<bool>(),
        )
            .prop_map(
                |(
                    job_id,
                    status,
                    self_test,
                    updated_by,
                    stream,
                    protocols,
                    files,
                    seed,
                    escape_all,
                )| DocModel {
                    job_id,
                    status,
                    self_test,
                    updated_by,
                    stream,
                    protocols,
                    files,
                    seed,
                    escape_all,
                },
            )
    }

    /// Serializer with random member order and whitespace, driven by a small PRNG.
    struct Writer {
        out: String,
        seed: u64,
        escape_all: bool,
    }

    impl Writer {
        fn next(&mut self) -> u64 {
            self.seed = self
                .seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            self.seed >> 33
        }

        fn ws(&mut self) {
            const WS: [&str; 5] = ["", "", " ", "\n  ", "\t\r\n"];
            let i = (self.next() % 5) as usize;
            self.out.push_str(WS[i]);
        }

        fn string(&mut self, s: &str) {
            self.out.push('"');
            for c in s.chars() {
                match c {
                    '"' => self.out.push_str("\\\""),
                    '\\' => self.out.push_str("\\\\"),
                    '/' if self.escape_all => self.out.push_str("\\/"),
                    '\n' => self.out.push_str("\\n"),
                    c if (c as u32) < 0x20 || (self.escape_all && !c.is_ascii()) => {
                        let mut units = [0u16; 2];
                        for u in c.encode_utf16(&mut units) {
                            self.out.push_str(&std::format!("\\u{u:04X}"));
                        }
                    }
                    c => self.out.push(c),
                }
            }
            self.out.push('"');
        }

        /// An object whose members are (key, serializer) pairs, shuffled.
        fn object(&mut self, mut members: Vec<Member<'_>>) {
            for i in (1..members.len()).rev() {
                let j = (self.next() % (i as u64 + 1)) as usize;
                members.swap(i, j);
            }
            self.out.push('{');
            for (n, (k, v)) in members.iter().enumerate() {
                if n > 0 {
                    self.out.push(',');
                }
                self.ws();
                self.string(k);
                self.ws();
                self.out.push(':');
                self.ws();
                v(self);
                self.ws();
            }
            self.out.push('}');
        }
    }

    type Member<'m> = (&'static str, std::boxed::Box<dyn Fn(&mut Writer) + 'm>);

    fn str_member<'m>(k: &'static str, v: &'m Option<String>) -> Option<Member<'m>> {
        v.as_ref().map(|s| {
            (
                k,
                std::boxed::Box::new(move |w: &mut Writer| w.string(s)) as _,
            )
        })
    }

    fn serialize(m: &DocModel) -> String {
        let mut w = Writer {
            out: String::new(),
            seed: m.seed,
            escape_all: m.escape_all,
        };
        fn file_members(f: &FileModel) -> Vec<Member<'_>> {
            let mut v: Vec<Member<'_>> = Vec::new();
            v.extend(str_member("filepath", &f.path));
            let size = f.size;
            let form = f.size_form;
            v.push((
                "filesize",
                std::boxed::Box::new(move |w: &mut Writer| match form {
                    0 => w.out.push_str(&size.to_string()),
                    1 => w.out.push_str(&std::format!("\"{size}\"")),
                    _ => w.out.push_str(&std::format!("\"0x{size:x}\"")),
                }),
            ));
            let id = f.id;
            v.push((
                "fileid",
                std::boxed::Box::new(move |w: &mut Writer| w.out.push_str(&id.to_string())),
            ));
            v.extend(str_member("certfile", &f.cert));
            v.extend(str_member("update_data_url", &f.url));
            v.extend(str_member("auth_scheme", &f.auth));
            if let Some(a) = f.attr {
                v.push((
                    "attr",
                    std::boxed::Box::new(move |w: &mut Writer| w.out.push_str(&a.to_string())),
                ));
            }
            if let Some(t) = f.file_type {
                v.push((
                    "fileType",
                    std::boxed::Box::new(move |w: &mut Writer| w.out.push_str(&t.to_string())),
                ));
            }
            for (kind, sig) in SignatureKind::ALL.iter().zip(f.sigs.iter()) {
                if let Some(bytes) = sig {
                    let b64 = base64::tests::encode(bytes);
                    v.push((
                        kind.key(),
                        std::boxed::Box::new(move |w: &mut Writer| w.string(&b64)),
                    ));
                }
            }
            v
        }
        let afr_ota = |w: &mut Writer| {
            let mut v: Vec<Member<'_>> = Vec::new();
            v.extend(str_member("streamname", &m.stream));
            v.push((
                "protocols",
                std::boxed::Box::new(|w: &mut Writer| {
                    w.out.push('[');
                    for (i, p) in m.protocols.iter().enumerate() {
                        if i > 0 {
                            w.out.push(',');
                        }
                        w.ws();
                        w.string(p);
                    }
                    w.out.push(']');
                }),
            ));
            v.push((
                "files",
                std::boxed::Box::new(|w: &mut Writer| {
                    w.out.push('[');
                    for (i, f) in m.files.iter().enumerate() {
                        if i > 0 {
                            w.out.push(',');
                        }
                        w.ws();
                        w.object(file_members(f));
                    }
                    w.out.push(']');
                }),
            ));
            w.object(v);
        };
        let execution = |w: &mut Writer| {
            let mut v: Vec<Member<'_>> = Vec::new();
            v.push((
                "jobId",
                std::boxed::Box::new(|w: &mut Writer| w.string(&m.job_id)),
            ));
            if let Some(s) = m.status {
                v.push((
                    "status",
                    std::boxed::Box::new(move |w: &mut Writer| w.string(s.name())),
                ));
            }
            if m.self_test || m.updated_by.is_some() {
                v.push((
                    "statusDetails",
                    std::boxed::Box::new(|w: &mut Writer| {
                        let mut d: Vec<Member<'_>> = Vec::new();
                        if m.self_test {
                            d.push((
                                "self_test",
                                std::boxed::Box::new(|w: &mut Writer| w.string("ready")),
                            ));
                        }
                        if let Some(u) = m.updated_by {
                            d.push((
                                "updatedBy",
                                std::boxed::Box::new(move |w: &mut Writer| {
                                    w.string(&std::format!("0x{u:x}"))
                                }),
                            ));
                        }
                        w.object(d);
                    }),
                ));
            }
            v.push((
                "jobDocument",
                std::boxed::Box::new(|w: &mut Writer| {
                    w.object(std::vec![("afr_ota", std::boxed::Box::new(afr_ota) as _)]);
                }),
            ));
            w.object(v);
        };
        w.ws();
        w.object(std::vec![
            (
                "clientToken",
                std::boxed::Box::new(|w: &mut Writer| w.string("0:thing")) as _
            ),
            (
                "timestamp",
                std::boxed::Box::new(|w: &mut Writer| w.out.push_str("1602795143"))
            ),
            ("execution", std::boxed::Box::new(execution)),
        ]);
        w.ws();
        w.out
    }

    fn same_str(got: Option<JsonStr<'_>>, want: &Option<String>) -> bool {
        match (got, want) {
            (None, None) => true,
            (Some(g), Some(w)) => g.eq_str(w),
            _ => false,
        }
    }

    proptest! {
        #[test]
        fn generated_documents_parse_back_to_their_model(m in doc_model()) {
            let text = serialize(&m);
            let doc = match parse::<4>(text.as_bytes()) {
                Ok(JobMessage::Ota(doc)) => doc,
                other => return Err(TestCaseError::fail(std::format!("{other:?}\n{text}"))),
            };
            prop_assert_eq!(doc.job_id, m.job_id.as_str());
            prop_assert_eq!(doc.status, m.status);
            prop_assert_eq!(doc.in_self_test(), m.self_test);
            prop_assert_eq!(doc.updated_by, m.updated_by);
            prop_assert!(same_str(doc.stream_name, &m.stream));
            prop_assert_eq!(doc.protocols.mqtt(), m.protocols.contains(&"MQTT"));
            prop_assert_eq!(doc.protocols.http(), m.protocols.contains(&"HTTP"));
            prop_assert_eq!(doc.files.len(), m.files.len());
            for (f, fm) in doc.files.iter().zip(m.files.iter()) {
                prop_assert!(same_str(f.file_path, &fm.path));
                prop_assert_eq!(f.file_size, fm.size);
                prop_assert_eq!(f.file_id, fm.id);
                prop_assert!(same_str(f.cert_file, &fm.cert));
                prop_assert!(same_str(f.update_data_url, &fm.url));
                prop_assert!(same_str(f.auth_scheme, &fm.auth));
                prop_assert_eq!(f.attr, fm.attr);
                prop_assert_eq!(f.file_type, fm.file_type);
                for (kind, sig) in SignatureKind::ALL.iter().zip(fm.sigs.iter()) {
                    let mut buf = [0u8; MAX_SIGNATURE_LEN];
                    let got = f.signature(*kind).map(|s| s.decode_into(&mut buf).map(<[u8]>::to_vec));
                    prop_assert_eq!(got, sig.clone().map(Ok));
                }
                if let Some(p) = f.file_path {
                    let mut buf = [0u8; 128];
                    prop_assert_eq!(p.unescape_into(&mut buf).ok(), fm.path.as_deref());
                }
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..512)) {
            exercise(&input);
        }

        #[test]
        fn mutated_job_documents_never_panic(cut in 0usize..700, at in 0usize..700, byte: u8) {
            let mut bytes = JOB_DOC_HTTP.as_bytes().to_vec();
            let at = at % bytes.len();
            bytes[at] = byte;
            bytes.truncate(cut.max(1));
            exercise(&bytes);
        }
    }

    /// Everything a caller can do with a parse result (shared shape with the fuzz target).
    fn exercise(input: &[u8]) {
        let mut buf = [0u8; 1024];
        match parse::<4>(input) {
            Ok(JobMessage::Ota(doc)) => {
                let _ = doc
                    .stream_name
                    .map(|s| s.unescape_into(&mut buf).map(str::len));
                for f in &doc.files {
                    for s in [f.file_path, f.cert_file, f.update_data_url, f.auth_scheme]
                        .into_iter()
                        .flatten()
                    {
                        let _ = s.unescape_into(&mut buf);
                        let _ = s.unescaped_len();
                    }
                    for sig in f.signatures() {
                        assert!(sig.decode_into(&mut buf).is_ok(), "validated at parse time");
                    }
                }
            }
            Ok(JobMessage::Custom(job)) => {
                let _ = std::format!("{}", job.reason);
            }
            Ok(JobMessage::NoJob) => {}
            Err(e) => {
                let _ = std::format!("{e}");
            }
        }
    }
}
