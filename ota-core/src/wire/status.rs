//! Job execution status updates and the get-next-job request (spec §1.3, §1.4, §5, §6).
//!
//! The payloads are byte-identical to the reference agent's: the cloud and the next boot of
//! the device read them back (`updatedBy` is parsed to refuse downgrades, §6), and the AWS
//! console shows `reason` as is. They are written into a caller buffer; the reference uses 128
//! bytes ([`STATUS_MSG_BUF_LEN`]), which fits every update built here, and a buffer too small
//! is an error value, never a panic or a truncated message.
//!
//! One deliberate difference: the get-next request carries the intended client token
//! `<counter>:<thing>`; the reference drops the last digit of the counter (§1.3, §12). The
//! service only echoes the token, so both are wire compatible.

use core::fmt;

use super::topic::{validate_thing_name, Qos};
use super::version::AppVersion;
use super::writer::{Overflow, Writer};

/// The reference's status payload buffer (`OTA_STATUS_MSG_MAX_SIZE`, §1.2). Every
/// [`StatusUpdate`] fits in it.
pub const STATUS_MSG_BUF_LEN: usize = 128;

/// Longest client token the Jobs and Streams services accept (§1.2).
pub const MAX_CLIENT_TOKEN_LEN: usize = 64;

/// Thing name bytes kept in the get-next client token (`OTA_CLIENT_TOKEN_MAX_THINGNAME_LEN` =
/// 64 − 10 − 1, §1.2): with up to 10 counter digits and `:` the token stays ≤ 64 bytes.
pub const MAX_TOKEN_THING_LEN: usize = MAX_CLIENT_TOKEN_LEN - 10 - 1;

/// Longest get-next request: `{"clientToken":"` + 64 + `"}` = 82 bytes (the reference's
/// 83-byte buffer held a NUL too, §1.2).
pub const GET_NEXT_MSG_MAX_LEN: usize = 16 + MAX_CLIENT_TOKEN_LEN + 2;

/// The reference's progress frequency (`otaconfigOTA_UPDATE_STATUS_FREQUENCY`, §7).
pub const DEFAULT_STATUS_FREQUENCY: u32 = 64;

/// A status payload could not be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusError {
    /// The output buffer is too short; its content is unspecified.
    BufferTooSmall,
    /// The thing name is not a valid AWS thing name (it would also break the JSON).
    InvalidThingName,
}

impl fmt::Display for StatusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::BufferTooSmall => "buffer too small",
            Self::InvalidThingName => "invalid thing name",
        })
    }
}

impl core::error::Error for StatusError {}

impl From<Overflow> for StatusError {
    fn from(_: Overflow) -> Self {
        Self::BufferTooSmall
    }
}

/// Job execution status strings the agent sends (§1.4). The service refuses `REJECTED` after a
/// job started, so the reference reports rejections and aborts as `FAILED`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JobStatus {
    /// `IN_PROGRESS`.
    InProgress,
    /// `FAILED` (also the reference's `JobStatusFailedWithVal`).
    Failed,
    /// `SUCCEEDED`.
    Succeeded,
    /// `REJECTED` (reference: only reachable through the custom-job callback).
    Rejected,
}

impl JobStatus {
    /// The status as the Jobs service spells it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::InProgress => "IN_PROGRESS",
            Self::Failed => "FAILED",
            Self::Succeeded => "SUCCEEDED",
            Self::Rejected => "REJECTED",
        }
    }
}

/// The reason of a status update (`OtaJobReason_t`, §1.4), the text before `: 0x…`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JobReason {
    /// 0, `""`: receiving the file.
    Receiving,
    /// 1, `ready`: downloaded and verified, about to activate.
    Ready,
    /// 2, `active`: running the new image in self test.
    Active,
    /// 3, `accepted`: self test passed.
    Accepted,
    /// 4, `rejected`: the image or the job was refused.
    Rejected,
    /// 5, `aborted`: the download was given up.
    Aborted,
}

impl JobReason {
    /// The reason text of the reference.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Receiving => "",
            Self::Ready => "ready",
            Self::Active => "active",
            Self::Accepted => "accepted",
            Self::Rejected => "rejected",
            Self::Aborted => "aborted",
        }
    }
}

/// The agent error codes (`OtaErr_t`, §5) that the reference reports as sub-reasons in
/// `FAILED` updates, e.g. `rejected: 0x00000010` for [`OtaErr::SameFirmwareVersion`] (§6).
/// The values are part of the wire format: dashboards and fleet tooling match on them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum OtaErr {
    /// 0: no error (`rejected: 0x00000000` when the application rejects the image).
    None = 0,
    /// 1.
    Uninitialized = 1,
    /// 2.
    Panic = 2,
    /// 3.
    InvalidArg = 3,
    /// 4.
    AgentStopped = 4,
    /// 5.
    SignalEventFailed = 5,
    /// 6.
    RequestJobFailed = 6,
    /// 7.
    InitFileTransferFailed = 7,
    /// 8.
    RequestFileBlockFailed = 8,
    /// 9.
    CleanupControlFailed = 9,
    /// 10.
    CleanupDataFailed = 10,
    /// 11.
    UpdateJobStatusFailed = 11,
    /// 12: malformed job document (`0x0000000c: 0x00000004`).
    JobParserError = 12,
    /// 13: no usable data protocol (`aborted: 0x0000000d`).
    InvalidDataProtocol = 13,
    /// 14: too many unanswered requests.
    MomentumAbort = 14,
    /// 15: the running image is older than the updater (`rejected: 0x0000000f`).
    DowngradeNotAllowed = 15,
    /// 16: the running image is the updater's version (`rejected: 0x00000010`).
    SameFirmwareVersion = 16,
    /// 17: self-test job but the platform is not pending commit (`rejected: 0x00000011`).
    ImageStateMismatch = 17,
    /// 18.
    NoActiveJob = 18,
    /// 19: the application aborted the job (`aborted: 0x00000013`).
    UserAbort = 19,
    /// 20.
    FailedToEncodeCbor = 20,
    /// 21.
    FailedToDecodeCbor = 21,
    /// 22.
    ActivateFailed = 22,
    /// 23.
    FileSizeOverflow = 23,
    /// 24.
    EmptyJobDocument = 24,
}

impl OtaErr {
    /// The numeric code sent on the wire.
    pub const fn code(self) -> u32 {
        self as u32
    }
}

impl From<OtaErr> for u32 {
    fn from(e: OtaErr) -> Self {
        e.code()
    }
}

/// A job status update (§1.4), published to `$aws/things/<thing>/jobs/<jobId>/update`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusUpdate {
    /// `IN_PROGRESS` with `"receive":"<received>/<total>"`; see [`should_report_progress`].
    Progress {
        /// Blocks received so far.
        received: u32,
        /// Blocks in the file.
        total: u32,
    },
    /// `IN_PROGRESS` with `"self_test":"ready"` and `updatedBy` = the running version, sent
    /// before activating the new image.
    SelfTestReady {
        /// The version running now (the updater).
        running: AppVersion,
    },
    /// `IN_PROGRESS` with `"self_test":"active"`, sent by the new image when self test starts.
    SelfTestActive {
        /// The version running now (the new image).
        running: AppVersion,
    },
    /// `SUCCEEDED` with `"reason":"accepted  v<running>","updatedBy":"  v<updater>"` (two
    /// spaces, as the reference). For a non-firmware file the reference prints the file type
    /// as `running` (`v0.0.<fileType>`, §6).
    Succeeded {
        /// The accepted version.
        running: AppVersion,
        /// The version that performed the update (the job's `updatedBy`).
        updater: AppVersion,
    },
    /// `FAILED` with `"reason":"0x%08x: 0x%08x"` (e.g. a PAL status as main and sub code).
    FailedWithVal {
        /// Main code.
        reason: u32,
        /// Sub code.
        sub_reason: u32,
    },
    /// `FAILED` with `"reason":"<reason>: 0x%08x"`, e.g. `rejected: 0x00000010`.
    Failed {
        /// Reason text.
        reason: JobReason,
        /// Sub code, often an [`OtaErr`] or a PAL status.
        sub_reason: u32,
    },
    /// `REJECTED` with `"reason":"<reason>: 0x%08x"`.
    Rejected {
        /// Reason text.
        reason: JobReason,
        /// Sub code.
        sub_reason: u32,
    },
}

fn version(w: &mut Writer<'_>, v: AppVersion) -> Result<(), Overflow> {
    w.str("  v")?
        .dec(v.major.into())?
        .str(".")?
        .dec(v.minor.into())?
        .str(".")?
        .dec(v.build.into())?;
    Ok(())
}

impl StatusUpdate {
    /// The job status string of this update.
    pub const fn status(&self) -> JobStatus {
        match self {
            Self::Progress { .. } | Self::SelfTestReady { .. } | Self::SelfTestActive { .. } => {
                JobStatus::InProgress
            }
            Self::Succeeded { .. } => JobStatus::Succeeded,
            Self::FailedWithVal { .. } | Self::Failed { .. } => JobStatus::Failed,
            Self::Rejected { .. } => JobStatus::Rejected,
        }
    }

    /// The QoS the reference publishes it with: 0 for progress, 1 for everything else (§1.4).
    pub const fn qos(&self) -> Qos {
        match self {
            Self::Progress { .. } => Qos::AtMostOnce,
            _ => Qos::AtLeastOnce,
        }
    }

    /// Writes the JSON payload into `buf` and returns its length.
    pub fn write(&self, buf: &mut [u8]) -> Result<usize, StatusError> {
        let mut w = Writer::new(buf);
        w.str("{\"status\":\"")?
            .str(self.status().as_str())?
            .str("\",\"statusDetails\":{")?;
        match *self {
            Self::Progress { received, total } => {
                w.str("\"receive\":\"")?
                    .dec(received)?
                    .str("/")?
                    .dec(total)?
                    .str("\"")?;
            }
            Self::SelfTestReady { running } | Self::SelfTestActive { running } => {
                let state = if matches!(self, Self::SelfTestReady { .. }) {
                    JobReason::Ready
                } else {
                    JobReason::Active
                };
                w.str("\"self_test\":\"")?
                    .str(state.as_str())?
                    .str("\",\"updatedBy\":\"")?
                    .hex08(running.to_u32())?
                    .str("\"")?;
            }
            Self::Succeeded { running, updater } => {
                w.str("\"reason\":\"")?.str(JobReason::Accepted.as_str())?;
                version(&mut w, running)?;
                w.str("\",\"updatedBy\":\"")?;
                version(&mut w, updater)?;
                w.str("\"")?;
            }
            Self::FailedWithVal { reason, sub_reason } => {
                w.str("\"reason\":\"")?
                    .hex08(reason)?
                    .str(": ")?
                    .hex08(sub_reason)?
                    .str("\"")?;
            }
            Self::Failed { reason, sub_reason } | Self::Rejected { reason, sub_reason } => {
                w.str("\"reason\":\"")?
                    .str(reason.as_str())?
                    .str(": ")?
                    .hex08(sub_reason)?
                    .str("\"")?;
            }
        }
        w.str("}}")?;
        Ok(w.len())
    }
}

/// The reference's progress rule (§1.4): report after the first block and then every
/// `frequency` blocks (`received == 1 || received % frequency == 0`); nothing otherwise. A
/// `frequency` of 0 reports the first block only (the reference would divide by zero).
pub const fn should_report_progress(received: u32, frequency: u32) -> bool {
    received == 1 || (frequency != 0 && received % frequency == 0)
}

/// Writes the get-next-job request `{"clientToken":"<counter>:<thing>"}` (§1.3) and returns
/// its length (at most [`GET_NEXT_MSG_MAX_LEN`]). The thing name is cut to its first
/// [`MAX_TOKEN_THING_LEN`] bytes so the token stays within 64 bytes. Unlike the reference, the
/// whole counter is written (counter 0 gives `{"clientToken":"0:thing1"}`).
pub fn write_get_next_request(
    counter: u32,
    thing: &str,
    buf: &mut [u8],
) -> Result<usize, StatusError> {
    validate_thing_name(thing).map_err(|_| StatusError::InvalidThingName)?;
    // Valid thing names are ASCII, so any byte index is a char boundary.
    let short = thing.get(..MAX_TOKEN_THING_LEN).unwrap_or(thing);
    let mut w = Writer::new(buf);
    w.str("{\"clientToken\":\"")?
        .dec(counter)?
        .str(":")?
        .str(short)?
        .str("\"}")?;
    Ok(w.len())
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::String;

    fn write(u: StatusUpdate) -> String {
        let mut buf = [0u8; STATUS_MSG_BUF_LEN];
        let n = u.write(&mut buf).unwrap();
        let s = String::from_utf8(buf[..n].to_vec()).unwrap();
        // exact length needed: one byte less fails
        let mut short = std::vec![0u8; n - 1];
        assert_eq!(u.write(&mut short), Err(StatusError::BufferTooSmall));
        s
    }

    const V123: AppVersion = AppVersion::new(1, 2, 3);
    const V122: AppVersion = AppVersion::new(1, 2, 2);

    #[test]
    fn reference_payloads_of_1_4() {
        use JobReason::*;
        let cases = [
            (
                StatusUpdate::Progress {
                    received: 1,
                    total: 3,
                },
                r#"{"status":"IN_PROGRESS","statusDetails":{"receive":"1/3"}}"#,
                Qos::AtMostOnce,
            ),
            (
                StatusUpdate::SelfTestReady { running: V123 },
                r#"{"status":"IN_PROGRESS","statusDetails":{"self_test":"ready","updatedBy":"0x01020003"}}"#,
                Qos::AtLeastOnce,
            ),
            (
                StatusUpdate::SelfTestActive { running: V123 },
                r#"{"status":"IN_PROGRESS","statusDetails":{"self_test":"active","updatedBy":"0x01020003"}}"#,
                Qos::AtLeastOnce,
            ),
            (
                StatusUpdate::Succeeded {
                    running: V123,
                    updater: V122,
                },
                r#"{"status":"SUCCEEDED","statusDetails":{"reason":"accepted  v1.2.3","updatedBy":"  v1.2.2"}}"#,
                Qos::AtLeastOnce,
            ),
            (
                StatusUpdate::Succeeded {
                    running: AppVersion::from_u32(2),
                    updater: V122,
                },
                r#"{"status":"SUCCEEDED","statusDetails":{"reason":"accepted  v0.0.2","updatedBy":"  v1.2.2"}}"#,
                Qos::AtLeastOnce,
            ),
            (
                StatusUpdate::FailedWithVal {
                    reason: 0xe3,
                    sub_reason: 0x1234,
                },
                r#"{"status":"FAILED","statusDetails":{"reason":"0x000000e3: 0x00001234"}}"#,
                Qos::AtLeastOnce,
            ),
            (
                StatusUpdate::FailedWithVal {
                    reason: 0xe0,
                    sub_reason: 0,
                },
                r#"{"status":"FAILED","statusDetails":{"reason":"0x000000e0: 0x00000000"}}"#,
                Qos::AtLeastOnce,
            ),
            (
                StatusUpdate::FailedWithVal {
                    reason: OtaErr::JobParserError.code(),
                    sub_reason: 4,
                },
                r#"{"status":"FAILED","statusDetails":{"reason":"0x0000000c: 0x00000004"}}"#,
                Qos::AtLeastOnce,
            ),
            (
                StatusUpdate::Failed {
                    reason: Rejected,
                    sub_reason: OtaErr::SameFirmwareVersion.code(),
                },
                r#"{"status":"FAILED","statusDetails":{"reason":"rejected: 0x00000010"}}"#,
                Qos::AtLeastOnce,
            ),
            (
                StatusUpdate::Failed {
                    reason: Rejected,
                    sub_reason: OtaErr::DowngradeNotAllowed.code(),
                },
                r#"{"status":"FAILED","statusDetails":{"reason":"rejected: 0x0000000f"}}"#,
                Qos::AtLeastOnce,
            ),
            (
                StatusUpdate::Failed {
                    reason: Rejected,
                    sub_reason: OtaErr::ImageStateMismatch.into(),
                },
                r#"{"status":"FAILED","statusDetails":{"reason":"rejected: 0x00000011"}}"#,
                Qos::AtLeastOnce,
            ),
            (
                StatusUpdate::Failed {
                    reason: Rejected,
                    sub_reason: 0xeb00_0000,
                },
                r#"{"status":"FAILED","statusDetails":{"reason":"rejected: 0xeb000000"}}"#,
                Qos::AtLeastOnce,
            ),
            (
                StatusUpdate::Failed {
                    reason: Aborted,
                    sub_reason: OtaErr::UserAbort.code(),
                },
                r#"{"status":"FAILED","statusDetails":{"reason":"aborted: 0x00000013"}}"#,
                Qos::AtLeastOnce,
            ),
            (
                StatusUpdate::Failed {
                    reason: Aborted,
                    sub_reason: OtaErr::InvalidDataProtocol.code(),
                },
                r#"{"status":"FAILED","statusDetails":{"reason":"aborted: 0x0000000d"}}"#,
                Qos::AtLeastOnce,
            ),
            (
                StatusUpdate::Failed {
                    reason: Aborted,
                    sub_reason: 0xe400_0000,
                },
                r#"{"status":"FAILED","statusDetails":{"reason":"aborted: 0xe4000000"}}"#,
                Qos::AtLeastOnce,
            ),
            (
                StatusUpdate::Failed {
                    reason: Rejected,
                    sub_reason: OtaErr::None.code(),
                },
                r#"{"status":"FAILED","statusDetails":{"reason":"rejected: 0x00000000"}}"#,
                Qos::AtLeastOnce,
            ),
            (
                StatusUpdate::Rejected {
                    reason: Rejected,
                    sub_reason: 1,
                },
                r#"{"status":"REJECTED","statusDetails":{"reason":"rejected: 0x00000001"}}"#,
                Qos::AtLeastOnce,
            ),
        ];
        for (u, expected, qos) in cases {
            assert_eq!(write(u), expected);
            assert_eq!(u.qos(), qos);
        }
    }

    #[test]
    fn worst_cases_fit_the_reference_buffer() {
        let max = AppVersion::from_u32(u32::MAX);
        for u in [
            StatusUpdate::Progress {
                received: u32::MAX,
                total: u32::MAX,
            },
            StatusUpdate::Succeeded {
                running: max,
                updater: max,
            },
            StatusUpdate::Failed {
                reason: JobReason::Accepted,
                sub_reason: u32::MAX,
            },
            StatusUpdate::Rejected {
                reason: JobReason::Rejected,
                sub_reason: u32::MAX,
            },
        ] {
            let s = write(u);
            assert!(s.len() <= STATUS_MSG_BUF_LEN, "{s}");
        }
        let mut empty = [0u8; 0];
        assert_eq!(
            StatusUpdate::Progress {
                received: 1,
                total: 1
            }
            .write(&mut empty),
            Err(StatusError::BufferTooSmall)
        );
    }

    #[test]
    fn progress_frequency_rule() {
        let sent: std::vec::Vec<u32> = (0..=200)
            .filter(|r| should_report_progress(*r, DEFAULT_STATUS_FREQUENCY))
            .collect();
        assert_eq!(sent, [0, 1, 64, 128, 192]);
        // unit-test config: frequency 2
        assert!(should_report_progress(1, 2) && should_report_progress(2, 2));
        assert!(!should_report_progress(3, 2));
        assert!(should_report_progress(1, 0) && !should_report_progress(2, 0));
    }

    fn get_next(counter: u32, thing: &str) -> String {
        let mut buf = [0u8; GET_NEXT_MSG_MAX_LEN];
        let n = write_get_next_request(counter, thing, &mut buf).unwrap();
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    #[test]
    fn get_next_request_without_the_off_by_one() {
        assert_eq!(get_next(0, "thing1"), r#"{"clientToken":"0:thing1"}"#);
        assert_eq!(get_next(12, "thing1"), r#"{"clientToken":"12:thing1"}"#);
        assert_eq!(get_next(123, "thing1"), r#"{"clientToken":"123:thing1"}"#);
        assert_eq!(
            get_next(0, "840d8ee419b8"),
            r#"{"clientToken":"0:840d8ee419b8"}"#
        );
    }

    #[test]
    fn get_next_truncates_long_thing_names() {
        let t128 = "t".repeat(128);
        for counter in [0, 9, 10, u32::MAX] {
            let s = get_next(counter, &t128);
            let token = s
                .strip_prefix(r#"{"clientToken":""#)
                .and_then(|s| s.strip_suffix(r#""}"#))
                .unwrap();
            assert!(token.len() <= MAX_CLIENT_TOKEN_LEN, "{token}");
            let (c, name) = token.split_once(':').unwrap();
            assert_eq!(c, std::format!("{counter}"));
            assert_eq!(name, &t128[..MAX_TOKEN_THING_LEN]);
            assert!(s.len() <= GET_NEXT_MSG_MAX_LEN);
        }
        assert_eq!(get_next(u32::MAX, &t128).len(), GET_NEXT_MSG_MAX_LEN);
        assert_eq!(MAX_TOKEN_THING_LEN, 53);
    }

    #[test]
    fn get_next_errors() {
        let mut buf = [0u8; 25];
        assert_eq!(
            write_get_next_request(0, "thing1", &mut buf),
            Err(StatusError::BufferTooSmall)
        );
        let mut buf = [0u8; 26];
        assert_eq!(write_get_next_request(0, "thing1", &mut buf), Ok(26));
        let mut buf = [0u8; 128];
        for bad in ["", "a\"b", "a\\b", "é", &"t".repeat(129)] {
            assert_eq!(
                write_get_next_request(0, bad, &mut buf),
                Err(StatusError::InvalidThingName)
            );
        }
    }

    #[test]
    fn ota_err_codes() {
        use OtaErr::*;
        let all = [
            None,
            Uninitialized,
            Panic,
            InvalidArg,
            AgentStopped,
            SignalEventFailed,
            RequestJobFailed,
            InitFileTransferFailed,
            RequestFileBlockFailed,
            CleanupControlFailed,
            CleanupDataFailed,
            UpdateJobStatusFailed,
            JobParserError,
            InvalidDataProtocol,
            MomentumAbort,
            DowngradeNotAllowed,
            SameFirmwareVersion,
            ImageStateMismatch,
            NoActiveJob,
            UserAbort,
            FailedToEncodeCbor,
            FailedToDecodeCbor,
            ActivateFailed,
            FileSizeOverflow,
            EmptyJobDocument,
        ];
        for (i, e) in all.iter().enumerate() {
            assert_eq!(e.code(), i as u32);
        }
    }
}
