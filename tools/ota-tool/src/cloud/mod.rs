//! The local stand-in for AWS IoT Jobs + MQTT Streams (+ presigned HTTP URLs), sans IO.
//!
//! [`Cloud::handle_publish`] takes a message a device published and gives the messages the
//! service publishes in return; the admin methods (create, cancel) give the `notify-next`
//! messages they cause. Time is an argument (Unix seconds). Transports (the embedded broker, an
//! MQTT client on an external broker) and the HTTP servers live in other modules.

pub mod cbor;
pub mod jobs;
pub mod presign;
pub mod streams;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;

use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value as Json};

use jobs::{AdminError, ExecStatus, Job, Jobs, NotifyNext, Reply};
use presign::Presigner;
use streams::{Encoding, StreamFile, StreamReply, Streams};

/// A message the service publishes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    /// Topic.
    pub topic: String,
    /// Payload.
    pub payload: Vec<u8>,
    /// QoS (0 or 1).
    pub qos: u8,
    /// A Jobs reply (`.../accepted`, `.../rejected`) to the publisher of the request: AWS
    /// delivers it to that client even when it did not subscribe.
    pub reply_to_requester: bool,
}

/// Topic filters the service needs on an external broker.
pub const REQUEST_FILTERS: [&str; 8] = [
    "$aws/things/+/jobs/get",
    "$aws/things/+/jobs/start-next",
    "$aws/things/+/jobs/+/get",
    "$aws/things/+/jobs/+/update",
    "$aws/things/+/streams/+/get/cbor",
    "$aws/things/+/streams/+/get/json",
    "$aws/things/+/streams/+/describe/cbor",
    "$aws/things/+/streams/+/describe/json",
];

/// A data protocol of an OTA job (`afr_ota.protocols`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Protocol {
    /// MQTT streams.
    #[serde(rename = "MQTT")]
    Mqtt,
    /// Presigned HTTP URL.
    #[serde(rename = "HTTP")]
    Http,
}

impl Protocol {
    /// The spelling of the job document.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mqtt => "MQTT",
            Self::Http => "HTTP",
        }
    }
}

/// One file of an OTA update (as `aws iot create-ota-update --files`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OtaFile {
    /// The image, base64 in the admin API.
    #[serde(with = "b64")]
    pub data: Vec<u8>,
    /// `filepath`: where the device stores it (`null` when absent, as the cloud sends).
    pub filepath: Option<String>,
    /// `fileType` (0 = firmware); left out when absent.
    pub file_type: Option<u32>,
    /// `certfile`: the signer certificate path on the device.
    pub cert_file: Option<String>,
    /// `sig-sha256-ecdsa`: base64 DER signature.
    pub signature: Option<String>,
}

/// An OTA update request (the admin API's `POST /jobs` body).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OtaUpdate {
    /// `otaUpdateId`; the job is `AFR_OTA-<id>`. Generated when absent.
    pub id: Option<String>,
    /// Target things.
    #[serde(default)]
    pub things: Vec<String>,
    /// Target groups (expanded when the job is created).
    #[serde(default)]
    pub groups: Vec<String>,
    /// Data protocols.
    pub protocols: Vec<Protocol>,
    /// Files; file ids are their indexes.
    pub files: Vec<OtaFile>,
}

mod b64 {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(s)
            .map_err(serde::de::Error::custom)
    }
}

/// A random version-4 UUID, lower-case with hyphens (36 characters, as OTA update and stream
/// ids are).
pub fn uuid_v4() -> String {
    let mut b = [0u8; 16];
    OsRng.fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The service.
#[derive(Debug, Default)]
pub struct Cloud {
    /// Jobs and executions.
    pub jobs: Jobs,
    /// Streams.
    pub streams: Streams,
    /// Thing groups.
    pub groups: BTreeMap<String, Vec<String>>,
    /// Signs HTTP URLs; without it HTTP jobs cannot be created.
    pub presigner: Option<Presigner>,
    /// The stream of each OTA job (HTTP URLs point into it too).
    ota_streams: BTreeMap<String, String>,
}

fn render(presigner: Option<&Presigner>, stream: Option<&String>, job: &Job, now: u64) -> Json {
    let mut doc = job.document.clone();
    let (Some(p), Some(stream)) = (presigner, stream) else {
        return doc;
    };
    let ota = &mut doc["afr_ota"];
    let http = ota["protocols"]
        .as_array()
        .is_some_and(|a| a.iter().any(|x| x == "HTTP"));
    if !http {
        return doc;
    }
    if let Some(files) = ota["files"].as_array_mut() {
        for f in files {
            let id = f["fileid"].as_u64().and_then(|i| u8::try_from(i).ok());
            if let (Some(id), Some(o)) = (id, f.as_object_mut()) {
                o.insert("update_data_url".into(), json!(p.url(stream, id, now)));
                o.insert("auth_scheme".into(), json!("aws.s3.presigned"));
            }
        }
    }
    doc
}

impl Cloud {
    /// A service signing HTTP URLs with `presigner` (if any).
    pub fn new(presigner: Option<Presigner>) -> Self {
        Self {
            presigner,
            ..Self::default()
        }
    }

    fn notify_out(notify: Vec<NotifyNext>) -> impl Iterator<Item = Outgoing> {
        notify.into_iter().map(|(thing, payload)| Outgoing {
            topic: format!("$aws/things/{thing}/jobs/notify-next"),
            payload: serde_json::to_vec(&payload).unwrap_or_default(),
            qos: 1,
            reply_to_requester: false,
        })
    }

    fn reply_out(base: &str, reply: Reply) -> Vec<Outgoing> {
        let kind = if reply.accepted {
            "accepted"
        } else {
            "rejected"
        };
        let mut out = vec![Outgoing {
            topic: format!("{base}/{kind}"),
            payload: serde_json::to_vec(&reply.payload).unwrap_or_default(),
            qos: 1,
            reply_to_requester: true,
        }];
        out.extend(Self::notify_out(reply.notify));
        out
    }

    /// Handles a message a device published; gives what the service publishes in return
    /// (nothing for topics it does not serve).
    pub fn handle_publish(&mut self, topic: &str, payload: &[u8], now: u64) -> Vec<Outgoing> {
        let Some(rest) = topic.strip_prefix("$aws/things/") else {
            return Vec::new();
        };
        let parts: Vec<&str> = rest.split('/').collect();
        let p = self.presigner.as_ref();
        let s = &self.ota_streams;
        let r = |j: &Job, now: u64| render(p, s.get(&j.job_id), j, now);
        match parts.as_slice() {
            [thing, "jobs", "get"] => {
                let reply = self.jobs.get_pending(thing, payload, now);
                Self::reply_out(topic, reply)
            }
            [thing, "jobs", "start-next"] => {
                let reply = self.jobs.start_next(thing, payload, now, &r);
                Self::reply_out(topic, reply)
            }
            [thing, "jobs", "$next", "get"] => {
                let reply = self.jobs.get_next(thing, payload, now, &r);
                Self::reply_out(topic, reply)
            }
            [thing, "jobs", job_id, "get"] => {
                let reply = self.jobs.describe(thing, job_id, payload, now, &r);
                Self::reply_out(topic, reply)
            }
            [thing, "jobs", job_id, "update"] if *job_id != "$next" => {
                let reply = self.jobs.update(thing, job_id, payload, now, &r);
                Self::reply_out(topic, reply)
            }
            [thing, "streams", stream, "get", enc @ ("cbor" | "json")] => {
                let enc = if *enc == "cbor" {
                    Encoding::Cbor
                } else {
                    Encoding::Json
                };
                let base = format!("$aws/things/{thing}/streams/{stream}");
                match self.streams.handle_get(stream, enc, payload) {
                    StreamReply::Data(msgs) => msgs
                        .into_iter()
                        .map(|payload| Outgoing {
                            topic: format!("{base}/data/{}", enc.as_str()),
                            payload,
                            qos: 0,
                            reply_to_requester: false,
                        })
                        .collect(),
                    StreamReply::Rejected(payload) => vec![Outgoing {
                        topic: format!("{base}/rejected/{}", enc.as_str()),
                        payload,
                        qos: 0,
                        reply_to_requester: false,
                    }],
                }
            }
            [thing, "streams", stream, "describe", enc @ ("cbor" | "json")] => {
                let e = if *enc == "cbor" {
                    Encoding::Cbor
                } else {
                    Encoding::Json
                };
                let base = format!("$aws/things/{thing}/streams/{stream}");
                let (kind, payload) = match self.streams.handle_describe(stream, e, payload) {
                    Ok(p) => ("description", p),
                    Err(p) => ("rejected", p),
                };
                vec![Outgoing {
                    topic: format!("{base}/{kind}/{enc}"),
                    payload,
                    qos: 0,
                    reply_to_requester: false,
                }]
            }
            _ => Vec::new(),
        }
    }

    /// Expands things and groups into a target list.
    fn targets(&self, things: &[String], groups: &[String]) -> Result<Vec<String>, AdminError> {
        let mut out = things.to_vec();
        for g in groups {
            let members = self
                .groups
                .get(g)
                .ok_or_else(|| AdminError::Invalid(format!("no thing group '{g}'")))?;
            out.extend(members.iter().cloned());
        }
        Ok(out)
    }

    /// Creates an OTA update: a stream with the files, and a job `AFR_OTA-<id>` whose document
    /// has the cloud's shape (§2.6). Gives the job id and the notify-next messages.
    pub fn create_ota_update(
        &mut self,
        req: OtaUpdate,
        now: u64,
    ) -> Result<(String, Vec<Outgoing>), AdminError> {
        if req.files.is_empty() {
            return Err(AdminError::Invalid("an OTA update needs a file".into()));
        }
        if req.files.len() > 256 {
            return Err(AdminError::Invalid(
                "at most 256 files (file ids 0-255)".into(),
            ));
        }
        if req.protocols.is_empty() {
            return Err(AdminError::Invalid("an OTA update needs a protocol".into()));
        }
        let http = req.protocols.contains(&Protocol::Http);
        let mqtt = req.protocols.contains(&Protocol::Mqtt);
        if http && self.presigner.is_none() {
            return Err(AdminError::Invalid(
                "HTTP needs the server's HTTP data endpoint".into(),
            ));
        }
        if let Some(f) = req.files.iter().find(|f| f.data.is_empty()) {
            return Err(AdminError::Invalid(format!(
                "file {:?} is empty",
                f.filepath
            )));
        }
        let targets = self.targets(&req.things, &req.groups)?;
        let id = req.id.clone().unwrap_or_else(uuid_v4);
        let job_id = format!("AFR_OTA-{id}");
        if self.jobs.job(&job_id).is_some() {
            return Err(AdminError::AlreadyExists(job_id));
        }
        let stream = format!("AFR_OTA-{}", uuid_v4());
        let files: Vec<Json> = req
            .files
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let mut m = Map::new();
                m.insert("filepath".into(), json!(f.filepath));
                m.insert("filesize".into(), json!(f.data.len()));
                m.insert("fileid".into(), json!(i));
                m.insert("certfile".into(), json!(f.cert_file));
                if let Some(t) = f.file_type {
                    m.insert("fileType".into(), json!(t));
                }
                m.insert("update_data_url".into(), Json::Null);
                m.insert("auth_scheme".into(), Json::Null);
                m.insert("sig-sha256-ecdsa".into(), json!(f.signature));
                Json::Object(m)
            })
            .collect();
        let mut ota = Map::new();
        ota.insert(
            "protocols".into(),
            json!(req.protocols.iter().map(|p| p.as_str()).collect::<Vec<_>>()),
        );
        if mqtt {
            ota.insert("streamname".into(), json!(stream));
        }
        ota.insert("files".into(), Json::Array(files));
        let document = json!({ "afr_ota": Json::Object(ota) });
        let mut streams = self.ota_streams.clone();
        streams.insert(job_id.clone(), stream.clone());
        let p = self.presigner.as_ref();
        let r = |j: &Job, now: u64| render(p, streams.get(&j.job_id), j, now);
        let notify = self.jobs.create(&job_id, document, &targets, now, &r)?;
        self.ota_streams = streams;
        self.streams.insert(
            stream,
            req.files
                .into_iter()
                .enumerate()
                .map(|(i, f)| StreamFile {
                    file_id: i as u8,
                    data: Arc::new(f.data),
                })
                .collect(),
        );
        Ok((job_id, Self::notify_out(notify).collect()))
    }

    /// Creates a plain (non-OTA) job with any JSON document.
    pub fn create_job(
        &mut self,
        job_id: &str,
        document: Json,
        things: &[String],
        groups: &[String],
        now: u64,
    ) -> Result<Vec<Outgoing>, AdminError> {
        let targets = self.targets(things, groups)?;
        let p = self.presigner.as_ref();
        let s = &self.ota_streams;
        let r = |j: &Job, now: u64| render(p, s.get(&j.job_id), j, now);
        let notify = self.jobs.create(job_id, document, &targets, now, &r)?;
        Ok(Self::notify_out(notify).collect())
    }

    /// Cancels a job (`force`: IN_PROGRESS executions too).
    pub fn cancel_job(
        &mut self,
        job_id: &str,
        force: bool,
        now: u64,
    ) -> Result<Vec<Outgoing>, AdminError> {
        let p = self.presigner.as_ref();
        let s = &self.ota_streams;
        let r = |j: &Job, now: u64| render(p, s.get(&j.job_id), j, now);
        let notify = self.jobs.cancel(job_id, force, now, &r)?;
        Ok(Self::notify_out(notify).collect())
    }

    /// Times out executions whose step timeout passed.
    pub fn tick(&mut self, now: u64) -> Vec<Outgoing> {
        let p = self.presigner.as_ref();
        let s = &self.ota_streams;
        let r = |j: &Job, now: u64| render(p, s.get(&j.job_id), j, now);
        let notify = self.jobs.tick(now, &r);
        Self::notify_out(notify).collect()
    }

    /// The file an HTTP download URL names.
    pub fn http_file(&self, stream: &str, file_id: u8) -> Option<Arc<Vec<u8>>> {
        self.streams.file(stream, file_id).map(|f| f.data.clone())
    }

    /// A summary of every job (admin `GET /jobs`).
    pub fn list_json(&self) -> Json {
        Json::Array(
            self.jobs
                .jobs()
                .map(|j| {
                    let execs = self.jobs.executions_of(&j.job_id);
                    let mut counts = Map::new();
                    for st in ExecStatus::ALL {
                        let n = execs.iter().filter(|e| e.status == st).count();
                        if n > 0 {
                            counts.insert(st.as_str().into(), json!(n));
                        }
                    }
                    json!({
                        "jobId": j.job_id,
                        "status": j.state.as_str(),
                        "createdAt": j.created_at,
                        "targets": j.targets,
                        "executions": counts,
                    })
                })
                .collect(),
        )
    }

    /// One job with its executions and document (admin `GET /jobs/<id>`).
    pub fn show_json(&self, job_id: &str, now: u64) -> Option<Json> {
        let j = self.jobs.job(job_id)?;
        let execs: Vec<Json> = self
            .jobs
            .executions_of(job_id)
            .into_iter()
            .map(|e| self.jobs.execution_json(e, None))
            .collect();
        Some(json!({
            "jobId": j.job_id,
            "status": j.state.as_str(),
            "createdAt": j.created_at,
            "targets": j.targets,
            "stream": self.ota_streams.get(job_id),
            "document": render(self.presigner.as_ref(), self.ota_streams.get(job_id), j, now),
            "executions": execs,
        }))
    }
}
