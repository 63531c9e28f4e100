//! Test harness: the agent, a fake cloud (Jobs + Streams) and a RAM PAL, all synchronous.
#![allow(
    dead_code,
    clippy::collapsible_match,
    clippy::collapsible_if,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::{BTreeSet, VecDeque};

use ota_core::agent::{Agent, Command, Completion, Config, Instant, Received, State};
use ota_core::wire::topic::Qos;
use ota_core::wire::version::AppVersion;
use ota_pal_traits::{JournalHeader, PalError, PlatformImageState};

pub const THING: &str = "thing1";

/// JOB_DOC_A of spec §2.6 (3 blocks of 4096, 10240 bytes, signature of 70 bytes).
pub const SIG: &str = "MEQCIF2QDvww1G/kpRGZ8FYvQrok1bSZvXjXefRk7sqNcyPTAiB4dvGt8fozIY5NC0vUDJ2MY42ZERYEcrbwA4n6q7vrBg==";

pub fn job_doc(job_id: &str, status: &str, status_details: &str, afr_ota: &str) -> String {
    format!(
        r#"{{"clientToken":"0:testclient","timestamp":1602795143,"execution":{{"jobId":"{job_id}","status":"{status}",{status_details}"queuedAt":1602795128,"lastUpdatedAt":1602795128,"versionNumber":1,"executionNumber":1,"jobDocument":{{"afr_ota":{afr_ota}}}}}}}"#
    )
}

pub fn file_json(size: u32, extra: &str) -> String {
    format!(
        r#"{{"filepath":"/test/demo","filesize":{size},"fileid":0,"certfile":"test.crt"{extra},"sig-sha256-ecdsa":"{SIG}"}}"#
    )
}

pub fn mqtt_job(job_id: &str, size: u32) -> String {
    job_doc(
        job_id,
        "QUEUED",
        "",
        &format!(
            r#"{{"protocols":["MQTT"],"streamname":"AFR_OTA-XYZ","files":[{}] }}"#,
            file_json(size, "")
        ),
    )
}

pub fn job_doc_a() -> String {
    r#"{"clientToken":"0:testclient","timestamp":1602795143,"execution":{"jobId":"AFR_OTA-testjob20","status":"QUEUED","queuedAt":1602795128,"lastUpdatedAt":1602795128,"versionNumber":1,"executionNumber":1,"jobDocument":{"afr_ota":{"protocols":["MQTT"],"streamname":"AFR_OTA-XYZ","files":[{"filepath":"/test/demo","filesize":10240,"fileid":0,"certfile":"test.crt","sig-sha256-ecdsa":"MEQCIF2QDvww1G/kpRGZ8FYvQrok1bSZvXjXefRk7sqNcyPTAiB4dvGt8fozIY5NC0vUDJ2MY42ZERYEcrbwA4n6q7vrBg=="}] }}}}"#.to_string()
}

pub fn self_test_doc(job_id: &str, updated_by: &str, extra: &str) -> String {
    job_doc(
        job_id,
        "IN_PROGRESS",
        &format!(r#""statusDetails":{{"self_test":"ready","updatedBy":"{updated_by}"}},"#),
        &format!(
            r#"{{"protocols":["MQTT"],"streamname":"AFR_OTA-XYZ","files":[{}] }}"#,
            file_json(10240, extra)
        ),
    )
}

pub fn topic(tail: &str) -> String {
    format!("$aws/things/{THING}/{tail}")
}

/// One thing the device did, as the tests read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ev {
    Sub(String, u8),
    Unsub(String),
    Pub(String, Vec<u8>, u8),
    Prepare {
        resume: bool,
        size: u32,
        index: u8,
        file_type: u32,
    },
    Verify,
    TrialBoot(u8),
    Confirm,
    Reject,
    Abort,
    ClearJournal,
    SelfTest,
    Reset,
    Http(u32, u32, u32),
    Write(u32),
}

impl Ev {
    pub fn text(&self) -> String {
        match self {
            Ev::Sub(t, q) => format!("SUB qos{q} {t}"),
            Ev::Unsub(t) => format!("UNSUB {t}"),
            Ev::Pub(t, p, q) => match std::str::from_utf8(p) {
                Ok(s) if s.starts_with('{') => format!("PUB qos{q} {t} {s}"),
                _ => format!("PUB qos{q} {t} {}", hex(p)),
            },
            other => format!("{other:?}"),
        }
    }
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Encode a DataBlock as the service does (definite map c f i l p).
pub fn data_block(file_id: u32, index: u32, payload: &[u8]) -> Vec<u8> {
    use ciborium::value::Value;
    let map = Value::Map(vec![
        (Value::Text("c".into()), Value::Text("rdy".into())),
        (Value::Text("f".into()), Value::Integer(file_id.into())),
        (Value::Text("i".into()), Value::Integer(index.into())),
        (
            Value::Text("l".into()),
            Value::Integer((payload.len() as u64).into()),
        ),
        (Value::Text("p".into()), Value::Bytes(payload.to_vec())),
    ]);
    let mut out = Vec::new();
    ciborium::into_writer(&map, &mut out).unwrap();
    out
}

/// A decoded GetStream request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamReq {
    pub file_id: u32,
    pub block_size: u32,
    pub offset: u32,
    pub bitmap: Vec<u8>,
    pub n: u32,
}

impl StreamReq {
    pub fn decode(p: &[u8]) -> StreamReq {
        use ciborium::value::Value;
        let v: Value = ciborium::from_reader(p).unwrap();
        let m = v.as_map().unwrap();
        let get = |k: &str| {
            m.iter()
                .find(|(kk, _)| kk.as_text() == Some(k))
                .unwrap()
                .1
                .clone()
        };
        let int = |k: &str| -> u32 { u64::try_from(get(k).as_integer().unwrap()).unwrap() as u32 };
        StreamReq {
            file_id: int("f"),
            block_size: int("l"),
            offset: int("o"),
            bitmap: get("b").as_bytes().unwrap().clone(),
            n: int("n"),
        }
    }

    /// Wanted block indices, capped at n.
    pub fn wanted(&self) -> Vec<u32> {
        let mut out = Vec::new();
        for (byte, b) in self.bitmap.iter().enumerate() {
            for bit in 0..8 {
                if b & (1 << bit) != 0 {
                    out.push(self.offset + byte as u32 * 8 + bit);
                }
            }
        }
        out.truncate(self.n as usize);
        out
    }
}

pub struct Harness {
    pub agent: Agent,
    pub now: u64,
    pub log: Vec<Ev>,
    pub inbox: VecDeque<(String, Vec<u8>)>,
    // Cloud
    pub job: Option<String>,
    pub lose_get_next: u32,
    pub auto_ack: bool,
    pub serve_blocks: bool,
    pub image: Vec<u8>,
    pub block_size: u32,
    pub lose_blocks_once: BTreeSet<u32>,
    pub duplicate_blocks: u32,
    pub reverse_order: bool,
    pub requests: Vec<StreamReq>,
    pub http_ranges: Vec<(u32, u32)>,
    pub http_expire_after: Option<usize>,
    // PAL
    pub storage: Vec<u8>,
    pub written: Vec<u32>,
    pub platform: PlatformImageState,
    pub fail_write: Option<(u32, PalError)>,
    pub prepare_result: Result<(), PalError>,
    /// What a `PrepareFile { resume: true }` answers (storage that cannot continue a download).
    pub resume_result: Result<(), PalError>,
    pub verify_result: Result<(), PalError>,
    pub trial_result: Result<(), PalError>,
    pub confirm_result: Result<(), PalError>,
    pub self_test_pass: bool,
    pub auto_pal: bool,
    pub pending_pal: Option<Completion>,
    pub journal: Option<JournalHeader>,
    pub journal_blocks: Vec<u32>,
    pub resets: u32,
    pub file_images: Vec<(u32, Vec<u8>)>,
    pub verified: Vec<Vec<u8>>,
    /// The Jobs service answers QoS 0 progress updates too (as AWS does).
    pub ack_progress: bool,
    /// Every completion handed to the agent in this boot: (`log.len()` at that moment, the
    /// completion).
    pub completed: Vec<(usize, Completion)>,
}

pub fn image(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i * 31 + i / 4096) as u8).collect()
}

pub fn config() -> Config<'static> {
    Config::new(THING, AppVersion::new(1, 2, 3))
}

impl Harness {
    pub fn new(cfg: Config<'_>) -> Self {
        Harness {
            agent: Agent::new(cfg).unwrap(),
            now: 0,
            log: Vec::new(),
            inbox: VecDeque::new(),
            job: None,
            lose_get_next: 0,
            auto_ack: true,
            serve_blocks: true,
            image: image(10240),
            block_size: cfg.block_size,
            lose_blocks_once: BTreeSet::new(),
            duplicate_blocks: 1,
            reverse_order: false,
            requests: Vec::new(),
            http_ranges: Vec::new(),
            http_expire_after: None,
            storage: Vec::new(),
            written: Vec::new(),
            platform: PlatformImageState::Valid,
            fail_write: None,
            prepare_result: Ok(()),
            resume_result: Ok(()),
            verify_result: Ok(()),
            trial_result: Ok(()),
            confirm_result: Ok(()),
            self_test_pass: true,
            auto_pal: true,
            pending_pal: None,
            journal: None,
            journal_blocks: Vec::new(),
            resets: 0,
            file_images: Vec::new(),
            verified: Vec::new(),
            ack_progress: true,
            completed: Vec::new(),
        }
    }

    pub fn now(&self) -> Instant {
        Instant(self.now)
    }

    /// Start + connect, then run until quiet.
    pub fn boot(&mut self) {
        for b in self.journal_blocks.clone() {
            self.agent.restore_block(b);
        }
        let now = self.now();
        self.agent.start(now, self.platform, self.journal.clone());
        self.agent.connected(now);
        self.run();
    }

    /// A new agent (a reboot), keeping storage, journal and cloud.
    pub fn reboot(&mut self, cfg: Config<'_>) {
        self.agent = Agent::new(cfg).unwrap();
        self.inbox.clear();
        self.log.clear();
        self.completed.clear();
        self.written.clear();
        self.boot();
    }

    pub fn deliver(&mut self, t: &str, payload: &[u8]) {
        self.inbox.push_back((t.to_string(), payload.to_vec()));
        self.run();
    }

    pub fn advance(&mut self, ms: u64) {
        self.now += ms;
        if self.agent.poll_timeout().is_some_and(|t| t.0 <= self.now) {
            let now = self.now();
            self.agent.handle_timeout(now);
        }
        self.run();
    }

    /// Advance to the next deadline.
    pub fn fire(&mut self) {
        if let Some(t) = self.agent.poll_timeout() {
            self.now = self.now.max(t.0);
            let now = self.now();
            self.agent.handle_timeout(now);
            self.run();
        }
    }

    pub fn complete(&mut self, c: Completion) {
        let now = self.now();
        self.completed.push((self.log.len(), c));
        self.agent.complete(now, c);
        self.run();
    }

    pub fn run(&mut self) {
        for _ in 0..100_000 {
            self.drain();
            let Some((t, p)) = self.inbox.pop_front() else {
                return;
            };
            self.feed(&t, &p);
        }
        panic!("harness does not settle");
    }

    pub fn feed(&mut self, t: &str, p: &[u8]) {
        let now = self.now();
        let r = self.agent.handle_publish(now, t, p);
        let (index, offset, data) = match r {
            Received::Block {
                index,
                offset,
                data,
            } => (index, offset, data.to_vec()),
            _ => return,
        };
        self.write_block(index, offset, &data);
    }

    pub fn write_block(&mut self, index: u32, offset: u32, data: &[u8]) {
        let now = self.now();
        if let Some((k, e)) = self.fail_write {
            if k == index {
                self.agent.block_written(now, index, Err(e));
                return;
            }
        }
        let end = offset as usize + data.len();
        if self.storage.len() < end {
            self.storage.resize(end, 0xFF);
        }
        self.storage[offset as usize..end].copy_from_slice(data);
        self.written.push(index);
        self.journal_blocks.push(index);
        self.log.push(Ev::Write(index));
        self.agent.block_written(now, index, Ok(()));
    }

    pub fn drain(&mut self) {
        loop {
            let Some(cmd) = self.agent.poll_command() else {
                return;
            };
            let mut completion = None;
            let ev = match cmd {
                Command::Subscribe { topic, qos } => Ev::Sub(topic.into(), qos as u8),
                Command::Unsubscribe { topic } => Ev::Unsub(topic.into()),
                Command::Publish {
                    topic,
                    payload,
                    qos,
                } => {
                    assert!(payload.len() <= 256);
                    Ev::Pub(topic.into(), payload.to_vec(), qos as u8)
                }
                Command::PrepareFile {
                    file,
                    resume,
                    journal,
                } => {
                    if !resume {
                        self.storage.clear();
                        self.journal = Some(journal.clone());
                        self.journal_blocks.clear();
                    }
                    completion = Some(Completion::Prepared(if resume {
                        self.resume_result
                    } else {
                        self.prepare_result
                    }));
                    Ev::Prepare {
                        resume,
                        size: file.size,
                        index: file.index,
                        file_type: file.file_type,
                    }
                }
                Command::VerifyFile { file, signature } => {
                    assert!(!signature.is_empty());
                    assert_eq!(file.size as usize, self.storage.len());
                    self.verified.push(self.storage.clone());
                    completion = Some(Completion::Verified(self.verify_result));
                    Ev::Verify
                }
                Command::RequestTrialBoot { file } => {
                    completion = Some(Completion::TrialBootRequested(self.trial_result));
                    Ev::TrialBoot(file.index)
                }
                Command::ConfirmImage => {
                    completion = Some(Completion::Confirmed(self.confirm_result));
                    Ev::Confirm
                }
                Command::RejectImage => Ev::Reject,
                Command::AbortFile => {
                    self.storage.clear();
                    self.journal = None;
                    self.journal_blocks.clear();
                    Ev::Abort
                }
                Command::ClearJournal => {
                    self.journal = None;
                    self.journal_blocks.clear();
                    Ev::ClearJournal
                }
                Command::RunSelfTest => {
                    completion = Some(Completion::SelfTest(self.self_test_pass));
                    Ev::SelfTest
                }
                Command::Reset => {
                    self.resets += 1;
                    Ev::Reset
                }
                Command::HttpGet {
                    url,
                    index,
                    start,
                    end,
                } => {
                    let _ = url;
                    Ev::Http(index, start, end)
                }
            };
            self.log.push(ev.clone());
            self.cloud(&ev);
            if let Some(c) = completion {
                if self.auto_pal {
                    let now = self.now();
                    self.completed.push((self.log.len(), c));
                    self.agent.complete(now, c);
                } else {
                    self.pending_pal = Some(c);
                }
            }
        }
    }

    /// The fake cloud's reaction to what the device did.
    fn cloud(&mut self, ev: &Ev) {
        match ev {
            Ev::Pub(t, p, _) if *t == topic("jobs/$next/get") => {
                if self.lose_get_next > 0 {
                    self.lose_get_next -= 1;
                    return;
                }
                let doc = self
                    .job
                    .clone()
                    .unwrap_or_else(|| r#"{"clientToken":"0:thing1","timestamp":1}"#.to_string());
                let _ = p;
                self.inbox
                    .push_back((topic("jobs/$next/get/accepted"), doc.into_bytes()));
            }
            Ev::Pub(t, p, q) if t.ends_with("/update") => {
                if self.auto_ack && (*q == 1 || self.ack_progress) {
                    let job = t
                        .trim_start_matches(&topic("jobs/"))
                        .trim_end_matches("/update");
                    let text = String::from_utf8_lossy(p);
                    let terminal = text.contains(r#""status":"SUCCEEDED""#)
                        || text.contains(r#""status":"FAILED""#);
                    let current = self
                        .job
                        .as_ref()
                        .is_some_and(|d| d.contains(&format!(r#""jobId":"{job}""#)));
                    if terminal && current {
                        self.job = None;
                    }
                    self.inbox.push_back((
                        topic(&format!("jobs/{job}/update/accepted")),
                        br#"{"timestamp":1}"#.to_vec(),
                    ));
                }
            }
            Ev::Pub(t, p, _) if t.ends_with("/get/cbor") => {
                let req = StreamReq::decode(p);
                self.requests.push(req.clone());
                if !self.serve_blocks {
                    return;
                }
                let stream = t
                    .trim_start_matches(&topic("streams/"))
                    .trim_end_matches("/get/cbor");
                let mut blocks = req.wanted();
                if self.reverse_order {
                    blocks.reverse();
                }
                for k in blocks {
                    if self.lose_blocks_once.remove(&k) {
                        continue;
                    }
                    let image = self
                        .file_images
                        .iter()
                        .find(|(f, _)| *f == req.file_id)
                        .map(|(_, i)| i.clone())
                        .unwrap_or_else(|| self.image.clone());
                    let start = (k * req.block_size) as usize;
                    if start >= image.len() {
                        continue;
                    }
                    let end = (start + req.block_size as usize).min(image.len());
                    let msg = data_block(req.file_id, k, &image[start..end]);
                    for _ in 0..self.duplicate_blocks {
                        self.inbox.push_back((
                            topic(&format!("streams/{stream}/data/cbor")),
                            msg.clone(),
                        ));
                    }
                }
            }
            Ev::Http(index, start, end) => {
                self.http_ranges.push((*start, *end));
                if let Some(n) = self.http_expire_after {
                    if self.http_ranges.len() > n {
                        self.http_expire_after = None;
                        let now = self.now();
                        self.agent
                            .http_failed(now, ota_core::agent::HttpFailure::Expired);
                        return;
                    }
                }
                let data = self.image[*start as usize..=*end as usize].to_vec();
                let now = self.now();
                let r = self.agent.handle_http_block(now, *index, &data);
                if let Received::Block {
                    index,
                    offset,
                    data,
                } = r
                {
                    let d = data.to_vec();
                    self.write_block(index, offset, &d);
                }
            }
            _ => {}
        }
    }

    pub fn texts(&self) -> Vec<String> {
        self.log.iter().map(Ev::text).collect()
    }

    /// Published payloads (as text) on a topic ending with `suffix`.
    pub fn pubs(&self, suffix: &str) -> Vec<String> {
        self.log
            .iter()
            .filter_map(|e| match e {
                Ev::Pub(t, p, _) if t.ends_with(suffix) => {
                    Some(String::from_utf8(p.clone()).unwrap_or_else(|_| hex(p)))
                }
                _ => None,
            })
            .collect()
    }

    pub fn statuses(&self) -> Vec<String> {
        self.pubs("/update")
    }

    pub fn count(&self, ev: &Ev) -> usize {
        self.log.iter().filter(|e| *e == ev).count()
    }

    pub fn state(&self) -> State {
        self.agent.state()
    }
}

pub fn qos(q: Qos) -> u8 {
    q as u8
}

/// Standard base64 (with padding) of `data`: signatures in the job documents the driver-level
/// tests build.
pub fn b64(data: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A driver clock that only moves when the driver sleeps: sleeping jumps to the deadline, so the
/// driver-level tests run without waiting and without reading the wall clock.
pub struct FakeClock(pub u64);

impl ota_core::driver::Clock for FakeClock {
    fn now(&mut self) -> Instant {
        Instant(self.0)
    }
    async fn sleep_until(&mut self, at: Instant) {
        self.0 = self.0.max(at.0);
    }
}
