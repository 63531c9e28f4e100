//! MQTT topics of AWS IoT Jobs and MQTT streams (spec §1.1, §1.2): builders for every topic
//! the device publishes or subscribes to, and a router that classifies incoming topics.
//!
//! Names are checked against the AWS rules before they are put in a topic, so that a bad
//! thing name, job id or stream name is an error value here rather than a dropped connection
//! later (the reference once sent `$next/get` without the thing name and AWS disconnected it,
//! issue #480). A built topic is at most [`MAX_TOPIC_LEN`] bytes, the AWS IoT limit.

use core::fmt;

/// AWS IoT Core's topic length limit in bytes (§1.2).
pub const MAX_TOPIC_LEN: usize = 256;
/// Longest thing name AWS IoT accepts (§1.2).
pub const MAX_THING_NAME_LEN: usize = 128;
/// Longest job id of the AWS IoT Jobs API (§1.2). The reference buffer allows 72; AWS never
/// produces more than 64.
pub const MAX_JOB_ID_LEN: usize = 64;
/// Longest stream id of AWS IoT `CreateStream`. The reference buffer allows only 44
/// (`AFR_OTA-` + UUID); a longer name fits as long as the whole topic fits in
/// [`MAX_TOPIC_LEN`].
pub const MAX_STREAM_NAME_LEN: usize = 128;

/// A topic built in place, no heap: 256 bytes of capacity plus the length.
pub type Topic = heapless::String<MAX_TOPIC_LEN>;

const PREFIX: &str = "$aws/things/";

/// Why a topic could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TopicError {
    /// Thing name empty, longer than 128 bytes, or not `[a-zA-Z0-9:_-]+`.
    InvalidThingName,
    /// Job id empty, longer than 64 bytes, or not `[a-zA-Z0-9_-]+`.
    InvalidJobId,
    /// Stream name empty, longer than 128 bytes, or not `[a-zA-Z0-9_-]+`.
    InvalidStreamName,
    /// The topic does not fit the output buffer (or [`MAX_TOPIC_LEN`]).
    TooLong {
        /// Bytes the topic needs.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
}

impl fmt::Display for TopicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidThingName => f.write_str("invalid thing name"),
            Self::InvalidJobId => f.write_str("invalid job id"),
            Self::InvalidStreamName => f.write_str("invalid stream name"),
            Self::TooLong { needed, available } => {
                write!(f, "topic needs {needed} bytes, {available} available")
            }
        }
    }
}

impl core::error::Error for TopicError {}

fn check(s: &str, max: usize, colon: bool) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || (colon && b == b':'))
}

/// Checks a thing name: 1..=128 bytes of `[a-zA-Z0-9:_-]` (§1.2).
pub fn validate_thing_name(thing: &str) -> Result<(), TopicError> {
    check(thing, MAX_THING_NAME_LEN, true)
        .then_some(())
        .ok_or(TopicError::InvalidThingName)
}

/// Checks a job id: 1..=64 bytes of `[a-zA-Z0-9_-]` (§1.2).
pub fn validate_job_id(job_id: &str) -> Result<(), TopicError> {
    check(job_id, MAX_JOB_ID_LEN, false)
        .then_some(())
        .ok_or(TopicError::InvalidJobId)
}

/// Checks a stream name: 1..=128 bytes of `[a-zA-Z0-9_-]` (AWS stream id rules).
pub fn validate_stream_name(stream: &str) -> Result<(), TopicError> {
    check(stream, MAX_STREAM_NAME_LEN, false)
        .then_some(())
        .ok_or(TopicError::InvalidStreamName)
}

/// MQTT quality of service levels the agent uses (§1.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Qos {
    /// QoS 0.
    AtMostOnce = 0,
    /// QoS 1.
    AtLeastOnce = 1,
}

/// A topic of §1.1 the device publishes to or subscribes to. Build it with
/// [`build`](Self::build) or [`write`](Self::write).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TopicKind<'a> {
    /// `$aws/things/<thing>/jobs/notify-next` (subscribe).
    NotifyNext,
    /// `$aws/things/<thing>/jobs/$next/get` (publish the get-next request, §1.3).
    GetNext,
    /// `$aws/things/<thing>/jobs/$next/get/accepted` (subscribe: plain brokers only deliver
    /// it to subscribers, unlike AWS).
    GetNextAccepted,
    /// `$aws/things/<thing>/jobs/$next/get/rejected` (subscribe; the reference ignores it).
    GetNextRejected,
    /// `$aws/things/<thing>/jobs/<jobId>/update` (publish status updates, §1.4).
    JobUpdate {
        /// The job id.
        job_id: &'a str,
    },
    /// `$aws/things/<thing>/jobs/<jobId>/update/accepted` (subscribe).
    JobUpdateAccepted {
        /// The job id.
        job_id: &'a str,
    },
    /// `$aws/things/<thing>/jobs/<jobId>/update/rejected` (subscribe).
    JobUpdateRejected {
        /// The job id.
        job_id: &'a str,
    },
    /// `$aws/things/<thing>/streams/<stream>/get/cbor` (publish GetStream requests, §3.1).
    StreamGet {
        /// The stream name (`afr_ota.streamname`).
        stream: &'a str,
    },
    /// `$aws/things/<thing>/streams/<stream>/data/cbor` (subscribe: data blocks, §3.3).
    StreamData {
        /// The stream name.
        stream: &'a str,
    },
    /// `$aws/things/<thing>/streams/<stream>/rejected/cbor` (subscribe: stream errors, §3.4;
    /// the reference never subscribes and only sees timeouts).
    StreamRejected {
        /// The stream name.
        stream: &'a str,
    },
}

impl<'a> TopicKind<'a> {
    /// The topic as at most 5 string parts after validation.
    fn parts(&self, thing: &'a str) -> Result<[&'a str; 5], TopicError> {
        validate_thing_name(thing)?;
        let jobs = |tail: &'a str| Ok([PREFIX, thing, "/jobs/", tail, ""]);
        let job = |id: &'a str, tail: &'a str| {
            validate_job_id(id)?;
            Ok([PREFIX, thing, "/jobs/", id, tail])
        };
        let stream = |s: &'a str, tail: &'a str| {
            validate_stream_name(s)?;
            Ok([PREFIX, thing, "/streams/", s, tail])
        };
        match *self {
            Self::NotifyNext => jobs("notify-next"),
            Self::GetNext => jobs("$next/get"),
            Self::GetNextAccepted => jobs("$next/get/accepted"),
            Self::GetNextRejected => jobs("$next/get/rejected"),
            Self::JobUpdate { job_id } => job(job_id, "/update"),
            Self::JobUpdateAccepted { job_id } => job(job_id, "/update/accepted"),
            Self::JobUpdateRejected { job_id } => job(job_id, "/update/rejected"),
            Self::StreamGet { stream: s } => stream(s, "/get/cbor"),
            Self::StreamData { stream: s } => stream(s, "/data/cbor"),
            Self::StreamRejected { stream: s } => stream(s, "/rejected/cbor"),
        }
    }

    /// Writes the topic for `thing` into `buf` and returns its length. Fails on an invalid
    /// name, or when the topic is longer than `buf` or than [`MAX_TOPIC_LEN`].
    pub fn write(&self, thing: &str, buf: &mut [u8]) -> Result<usize, TopicError> {
        let parts = self.parts(thing)?;
        let needed: usize = parts.iter().map(|p| p.len()).sum();
        let available = buf.len().min(MAX_TOPIC_LEN);
        if needed > available {
            return Err(TopicError::TooLong { needed, available });
        }
        let mut at = 0;
        for p in parts {
            let end = at + p.len();
            if let Some(dst) = buf.get_mut(at..end) {
                dst.copy_from_slice(p.as_bytes());
            }
            at = end;
        }
        Ok(at)
    }

    /// Builds the topic for `thing` as a [`Topic`] (no heap).
    pub fn build(&self, thing: &str) -> Result<Topic, TopicError> {
        let parts = self.parts(thing)?;
        let needed: usize = parts.iter().map(|p| p.len()).sum();
        let too_long = TopicError::TooLong {
            needed,
            available: MAX_TOPIC_LEN,
        };
        let mut topic = Topic::new();
        for p in parts {
            topic.push_str(p).map_err(|_| too_long)?;
        }
        Ok(topic)
    }

    /// The QoS to publish or subscribe with. Matches the reference where it uses the topic
    /// (§1.1): notify-next, `$next/get` and job updates 1 (but progress updates 0, see
    /// [`StatusUpdate::qos`](super::status::StatusUpdate::qos)), stream topics 0. For the
    /// replies the reference does not subscribe to, we use 1 for Jobs and 0 for streams.
    pub fn qos(&self) -> Qos {
        match self {
            Self::NotifyNext
            | Self::GetNext
            | Self::GetNextAccepted
            | Self::GetNextRejected
            | Self::JobUpdate { .. }
            | Self::JobUpdateAccepted { .. }
            | Self::JobUpdateRejected { .. } => Qos::AtLeastOnce,
            Self::StreamGet { .. } | Self::StreamData { .. } | Self::StreamRejected { .. } => {
                Qos::AtMostOnce
            }
        }
    }
}

/// An incoming message's topic, classified for the agent (§1.1, §1.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Incoming<'a> {
    /// `jobs/notify-next`: a job document or `{"timestamp":N}`.
    NotifyNext,
    /// `jobs/$next/get/accepted`: the reply to our get-next request.
    GetNextAccepted,
    /// `jobs/$next/get/rejected`: our get-next request was refused.
    GetNextRejected,
    /// `jobs/<jobId>/update/accepted`.
    UpdateAccepted {
        /// The job id, borrowed from the topic.
        job_id: &'a str,
    },
    /// `jobs/<jobId>/update/rejected`.
    UpdateRejected {
        /// The job id, borrowed from the topic.
        job_id: &'a str,
    },
    /// `streams/<stream>/data/cbor`: a data block.
    StreamData {
        /// The stream name, borrowed from the topic.
        stream: &'a str,
    },
    /// `streams/<stream>/rejected/cbor`: a GetStream rejection.
    StreamRejected {
        /// The stream name, borrowed from the topic.
        stream: &'a str,
    },
}

impl<'a> From<Incoming<'a>> for TopicKind<'a> {
    /// The topic an incoming kind arrives on (to subscribe to it).
    fn from(i: Incoming<'a>) -> Self {
        match i {
            Incoming::NotifyNext => Self::NotifyNext,
            Incoming::GetNextAccepted => Self::GetNextAccepted,
            Incoming::GetNextRejected => Self::GetNextRejected,
            Incoming::UpdateAccepted { job_id } => Self::JobUpdateAccepted { job_id },
            Incoming::UpdateRejected { job_id } => Self::JobUpdateRejected { job_id },
            Incoming::StreamData { stream } => Self::StreamData { stream },
            Incoming::StreamRejected { stream } => Self::StreamRejected { stream },
        }
    }
}

/// Why [`route`] did not classify a topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteError<'a> {
    /// A `$aws/things/<other>/...` topic of another thing (e.g. through a `+` wildcard
    /// subscription); carries that thing's name.
    OtherThing(&'a str),
    /// Not a topic the OTA agent handles (including our own outgoing topics).
    Unknown,
}

impl fmt::Display for RouteError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OtherThing(thing) => write!(f, "topic of another thing: {thing}"),
            Self::Unknown => f.write_str("not an OTA topic"),
        }
    }
}

impl core::error::Error for RouteError<'_> {}

/// Classifies an incoming topic for `thing` (the reference demos' routing contract, §1.1, done
/// with an exact thing name check instead of an offset). Job ids and stream names must follow
/// the same rules as when building topics.
pub fn route<'a>(topic: &'a str, thing: &str) -> Result<Incoming<'a>, RouteError<'a>> {
    let rest = topic.strip_prefix(PREFIX).ok_or(RouteError::Unknown)?;
    let (name, rest) = rest.split_once('/').ok_or(RouteError::Unknown)?;
    if name != thing {
        return Err(if validate_thing_name(name).is_ok() {
            RouteError::OtherThing(name)
        } else {
            RouteError::Unknown
        });
    }
    if let Some(jobs) = rest.strip_prefix("jobs/") {
        match jobs {
            "notify-next" => return Ok(Incoming::NotifyNext),
            "$next/get/accepted" => return Ok(Incoming::GetNextAccepted),
            "$next/get/rejected" => return Ok(Incoming::GetNextRejected),
            _ => {}
        }
        let (job_id, tail) = jobs.split_once('/').ok_or(RouteError::Unknown)?;
        validate_job_id(job_id).map_err(|_| RouteError::Unknown)?;
        return match tail {
            "update/accepted" => Ok(Incoming::UpdateAccepted { job_id }),
            "update/rejected" => Ok(Incoming::UpdateRejected { job_id }),
            _ => Err(RouteError::Unknown),
        };
    }
    if let Some(streams) = rest.strip_prefix("streams/") {
        let (stream, tail) = streams.split_once('/').ok_or(RouteError::Unknown)?;
        validate_stream_name(stream).map_err(|_| RouteError::Unknown)?;
        return match tail {
            "data/cbor" => Ok(Incoming::StreamData { stream }),
            "rejected/cbor" => Ok(Incoming::StreamRejected { stream }),
            _ => Err(RouteError::Unknown),
        };
    }
    Err(RouteError::Unknown)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use proptest::prelude::*;
    use std::string::String;

    const T: &str = "ota_utest";

    #[test]
    fn every_topic_exactly() {
        let cases: [(TopicKind<'_>, &str, Qos); 10] = [
            (
                TopicKind::NotifyNext,
                "$aws/things/ota_utest/jobs/notify-next",
                Qos::AtLeastOnce,
            ),
            (
                TopicKind::GetNext,
                "$aws/things/ota_utest/jobs/$next/get",
                Qos::AtLeastOnce,
            ),
            (
                TopicKind::GetNextAccepted,
                "$aws/things/ota_utest/jobs/$next/get/accepted",
                Qos::AtLeastOnce,
            ),
            (
                TopicKind::GetNextRejected,
                "$aws/things/ota_utest/jobs/$next/get/rejected",
                Qos::AtLeastOnce,
            ),
            (
                TopicKind::JobUpdate {
                    job_id: "AFR_OTA-testjob20",
                },
                "$aws/things/ota_utest/jobs/AFR_OTA-testjob20/update",
                Qos::AtLeastOnce,
            ),
            (
                TopicKind::JobUpdateAccepted {
                    job_id: "AFR_OTA-testjob20",
                },
                "$aws/things/ota_utest/jobs/AFR_OTA-testjob20/update/accepted",
                Qos::AtLeastOnce,
            ),
            (
                TopicKind::JobUpdateRejected {
                    job_id: "AFR_OTA-testjob20",
                },
                "$aws/things/ota_utest/jobs/AFR_OTA-testjob20/update/rejected",
                Qos::AtLeastOnce,
            ),
            (
                TopicKind::StreamGet {
                    stream: "AFR_OTA-XYZ",
                },
                "$aws/things/ota_utest/streams/AFR_OTA-XYZ/get/cbor",
                Qos::AtMostOnce,
            ),
            (
                TopicKind::StreamData {
                    stream: "AFR_OTA-XYZ",
                },
                "$aws/things/ota_utest/streams/AFR_OTA-XYZ/data/cbor",
                Qos::AtMostOnce,
            ),
            (
                TopicKind::StreamRejected {
                    stream: "AFR_OTA-XYZ",
                },
                "$aws/things/ota_utest/streams/AFR_OTA-XYZ/rejected/cbor",
                Qos::AtMostOnce,
            ),
        ];
        for (kind, expected, qos) in cases {
            assert_eq!(kind.build(T).unwrap().as_str(), expected);
            let mut buf = [0u8; 300];
            let n = kind.write(T, &mut buf).unwrap();
            assert_eq!(&buf[..n], expected.as_bytes());
            assert_eq!(kind.qos(), qos);
            // one byte short: an error, not a truncated topic
            let mut short = std::vec![0u8; expected.len() - 1];
            assert_eq!(
                kind.write(T, &mut short),
                Err(TopicError::TooLong {
                    needed: expected.len(),
                    available: expected.len() - 1
                })
            );
        }
    }

    #[test]
    fn name_limits() {
        let t128: String = "a".repeat(128);
        let t129: String = "a".repeat(129);
        let topic = TopicKind::GetNext.build(&t128).unwrap();
        assert_eq!(topic.len(), 12 + 128 + 15);
        assert_eq!(
            TopicKind::GetNext.build(&t129),
            Err(TopicError::InvalidThingName)
        );
        for bad in ["", "a/b", "a+b", "a#", "a b", "é"] {
            assert_eq!(
                TopicKind::NotifyNext.build(bad),
                Err(TopicError::InvalidThingName),
                "{bad:?}"
            );
        }
        assert!(TopicKind::NotifyNext.build("aA0:_-").is_ok());
        // job id: 64 ok, 65 rejected, no ':'
        let j64 = "j".repeat(64);
        let j65 = "j".repeat(65);
        let max = TopicKind::JobUpdateAccepted { job_id: &j64 }
            .build(&t128)
            .unwrap();
        assert!(max.len() <= MAX_TOPIC_LEN);
        for bad in [j65.as_str(), "", "a:b", "$next", "a/b"] {
            assert_eq!(
                TopicKind::JobUpdate { job_id: bad }.build(T),
                Err(TopicError::InvalidJobId)
            );
        }
        // stream: 128 valid, but too long for a 128-char thing; fits for a short one
        let s128 = "s".repeat(128);
        assert!(TopicKind::StreamRejected { stream: &s128 }.build(T).is_ok());
        assert_eq!(
            TopicKind::StreamRejected { stream: &s128 }.build(&t128),
            Err(TopicError::TooLong {
                needed: 12 + 128 + 9 + 128 + 14,
                available: 256
            })
        );
        assert_eq!(
            TopicKind::StreamData { stream: "a:b" }.build(T),
            Err(TopicError::InvalidStreamName)
        );
        // the reference's longest stream name with the longest thing name fits
        let s44 = "s".repeat(44);
        assert!(TopicKind::StreamRejected { stream: &s44 }
            .build(&t128)
            .is_ok());
    }

    #[test]
    fn router_table() {
        use Incoming::*;
        let ok: [(&str, Incoming<'_>); 7] = [
            ("$aws/things/ota_utest/jobs/notify-next", NotifyNext),
            (
                "$aws/things/ota_utest/jobs/$next/get/accepted",
                GetNextAccepted,
            ),
            (
                "$aws/things/ota_utest/jobs/$next/get/rejected",
                GetNextRejected,
            ),
            (
                "$aws/things/ota_utest/jobs/AFR_OTA-1/update/accepted",
                UpdateAccepted {
                    job_id: "AFR_OTA-1",
                },
            ),
            (
                "$aws/things/ota_utest/jobs/AFR_OTA-1/update/rejected",
                UpdateRejected {
                    job_id: "AFR_OTA-1",
                },
            ),
            (
                "$aws/things/ota_utest/streams/AFR_OTA-XYZ/data/cbor",
                StreamData {
                    stream: "AFR_OTA-XYZ",
                },
            ),
            (
                "$aws/things/ota_utest/streams/AFR_OTA-XYZ/rejected/cbor",
                StreamRejected {
                    stream: "AFR_OTA-XYZ",
                },
            ),
        ];
        for (topic, expected) in ok {
            assert_eq!(route(topic, T), Ok(expected), "{topic}");
        }
        let other = [
            (
                "$aws/things/thing2/jobs/notify-next",
                RouteError::OtherThing("thing2"),
            ),
            (
                "$aws/things/ota_utest2/jobs/notify-next",
                RouteError::OtherThing("ota_utest2"),
            ),
            (
                "$aws/things/ota_ute/jobs/notify-next",
                RouteError::OtherThing("ota_ute"),
            ),
            ("$aws/things/+/jobs/notify-next", RouteError::Unknown),
            ("$aws/things/ota_utest/jobs/$next/get", RouteError::Unknown),
            (
                "$aws/things/ota_utest/jobs/AFR_OTA-1/update",
                RouteError::Unknown,
            ),
            (
                "$aws/things/ota_utest/jobs/AFR_OTA-1/update/accepted/x",
                RouteError::Unknown,
            ),
            (
                "$aws/things/ota_utest/jobs/$next/update/accepted",
                RouteError::Unknown,
            ),
            (
                "$aws/things/ota_utest/jobs//update/accepted",
                RouteError::Unknown,
            ),
            ("$aws/things/ota_utest/jobs/notify", RouteError::Unknown),
            (
                "$aws/things/ota_utest/jobs/start-next/accepted",
                RouteError::Unknown,
            ),
            (
                "$aws/things/ota_utest/streams/S/get/cbor",
                RouteError::Unknown,
            ),
            (
                "$aws/things/ota_utest/streams/S/data/json",
                RouteError::Unknown,
            ),
            (
                "$aws/things/ota_utest/streams//data/cbor",
                RouteError::Unknown,
            ),
            ("$aws/things/ota_utest/shadow/update", RouteError::Unknown),
            ("$aws/things/ota_utest", RouteError::Unknown),
            ("$aws/things/", RouteError::Unknown),
            ("things/ota_utest/jobs/notify-next", RouteError::Unknown),
            ("", RouteError::Unknown),
        ];
        for (topic, expected) in other {
            assert_eq!(route(topic, T), Err(expected), "{topic}");
        }
    }

    fn incoming() -> impl Strategy<Value = (String, String, String, u8)> {
        (
            "[a-zA-Z0-9:_-]{1,128}",
            "[a-zA-Z0-9_-]{1,64}",
            "[a-zA-Z0-9_-]{1,128}",
            0u8..7,
        )
    }

    proptest! {
        #[test]
        fn build_then_route((thing, job_id, stream, k) in incoming(), other in "[a-zA-Z0-9:_-]{1,128}") {
            let inc = match k {
                0 => Incoming::NotifyNext,
                1 => Incoming::GetNextAccepted,
                2 => Incoming::GetNextRejected,
                3 => Incoming::UpdateAccepted { job_id: &job_id },
                4 => Incoming::UpdateRejected { job_id: &job_id },
                5 => Incoming::StreamData { stream: &stream },
                _ => Incoming::StreamRejected { stream: &stream },
            };
            match TopicKind::from(inc).build(&thing) {
                Ok(topic) => {
                    prop_assert!(topic.len() <= MAX_TOPIC_LEN);
                    prop_assert_eq!(route(&topic, &thing), Ok(inc));
                    if other != thing {
                        prop_assert_eq!(route(&topic, &other), Err(RouteError::OtherThing(&thing)));
                    }
                }
                Err(TopicError::TooLong { needed, .. }) => {
                    // only stream topics of long names can overflow
                    prop_assert!(k >= 5 && needed > MAX_TOPIC_LEN);
                }
                Err(e) => prop_assert!(false, "unexpected {:?}", e),
            }
        }

        #[test]
        fn route_never_panics(topic in "\\PC{0,300}", thing in "\\PC{0,20}") {
            let _ = route(&topic, &thing);
        }
    }
}
