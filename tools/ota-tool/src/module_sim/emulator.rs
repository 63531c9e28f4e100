//! The emulator core, sans IO: line framing, the AT command interpreter, the OTA state machine
//! (states 0–5), the event queue and fault injection. Bytes in, bytes out; the cloud side is a
//! [`ModuleCloud`] polled by [`Emulator::tick`].

use std::collections::VecDeque;

use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey;

use super::cloud::{CloudEvent, JobKind, JobOutcome, ModuleCloud, Proposal};
use super::config::{Dialect, Fault, OtaEventParam, SimConfig};

/// Highest topic index (MaxTopic).
pub const MAX_TOPIC: u32 = 16;

/// An event in the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The event id (1 MSG, 2 STARTUP, 3 CONLOST, 5 OTA, 6 CONNECT/SHADOW, 8 SUBACK…).
    pub id: u16,
    /// The parameter; `None` prints no parameter (the CCM's OTA event text).
    pub param: Option<u32>,
    /// Mnemonic and detail text.
    pub text: String,
}

/// The OTA buffer and its job.
#[derive(Debug, Clone)]
struct OtaJob {
    proposal: Proposal,
    image: Vec<u8>,
}

/// The emulated module.
pub struct Emulator {
    cfg: SimConfig,
    cloud: Box<dyn ModuleCloud>,
    // Framing.
    rx: Vec<u8>,
    overflowed: bool,
    pem: Option<(String, String)>,
    // OTA.
    state: u8,
    job: Option<OtaJob>,
    waiting: VecDeque<Proposal>,
    read_ptr: usize,
    commit_pending: Option<String>,
    // Module.
    version: String,
    boots: u32,
    connected: bool,
    hota_cert: String,
    ota_cert: String,
    endpoint: String,
    root_ca: String,
    topic_root: String,
    qos: String,
    topics: Vec<String>,
    subscribed: Vec<bool>,
    messages: Vec<VecDeque<Vec<u8>>>,
    any_messages: VecDeque<(String, Vec<u8>)>,
    events: VecDeque<Event>,
    // Fault counters.
    reads: u32,
    counts: std::collections::HashMap<String, u32>,
    reset_done: bool,
    delay_ms: u64,
    log: Vec<String>,
}

fn hex_upper(data: &[u8]) -> String {
    let mut s = String::with_capacity(data.len() * 2);
    for b in data {
        s.push_str(&format!("{b:02X}"));
    }
    s
}

/// Escape a response string: `\` first, then LF (and CR in the v1.x dialect).
pub fn escape(s: &[u8], dialect: Dialect) -> String {
    let mut out = Vec::with_capacity(s.len());
    for &b in s {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\A"),
            b'\r' if dialect == Dialect::V13 => out.extend_from_slice(b"\\D"),
            b => out.push(b),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Unescape a parameter in one pass; `None` for an invalid escape (`ERR5`).
pub fn unescape(s: &[u8], dialect: Dialect) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut it = s.iter();
    while let Some(&b) = it.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        match it.next() {
            Some(b'\\') => out.push(b'\\'),
            Some(b'A') => out.push(b'\n'),
            Some(b'D') if dialect == Dialect::V13 => out.push(b'\r'),
            _ => return None,
        }
    }
    Some(out)
}

/// A reply: `Ok(detail)` prints `OK[ detail]`, `Err(n)` prints `ERR{n} {text}`.
type Reply = Result<String, u8>;

impl Emulator {
    /// A freshly booted module (a STARTUP event is queued).
    pub fn new(cfg: SimConfig, cloud: Box<dyn ModuleCloud>) -> Self {
        let version = cfg.version.clone();
        let mut e = Self {
            cfg,
            cloud,
            rx: Vec::new(),
            overflowed: false,
            pem: None,
            state: 0,
            job: None,
            waiting: VecDeque::new(),
            read_ptr: 0,
            commit_pending: None,
            version,
            boots: 0,
            connected: false,
            hota_cert: String::new(),
            ota_cert: String::new(),
            endpoint: String::new(),
            root_ca: String::new(),
            topic_root: String::new(),
            qos: "0".into(),
            topics: vec![String::new(); MAX_TOPIC as usize + 1],
            subscribed: vec![false; MAX_TOPIC as usize + 1],
            messages: vec![VecDeque::new(); MAX_TOPIC as usize + 1],
            any_messages: VecDeque::new(),
            events: VecDeque::new(),
            reads: 0,
            counts: Default::default(),
            reset_done: false,
            delay_ms: 0,
            log: Vec::new(),
        };
        e.boot();
        e
    }

    /// The configuration.
    pub fn config(&self) -> &SimConfig {
        &self.cfg
    }

    /// The OTA state code (0–5).
    pub fn ota_state(&self) -> u8 {
        self.state
    }

    /// The running module firmware version.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// How many times the module booted (1 after power-on).
    pub fn boots(&self) -> u32 {
        self.boots
    }

    /// Whether the module is connected.
    pub fn connected(&self) -> bool {
        self.connected
    }

    /// The EVENT pin: HIGH while the queue is not empty.
    pub fn event_pin(&self) -> bool {
        !self.events.is_empty()
    }

    /// The events queued, oldest first.
    pub fn events(&self) -> impl Iterator<Item = &Event> {
        self.events.iter()
    }

    /// How long the transport should hold back the bytes just returned by [`Emulator::feed`]
    /// (the `late` fault); reset to 0 by the call.
    pub fn take_delay_ms(&mut self) -> u64 {
        std::mem::take(&mut self.delay_ms)
    }

    /// Take the log lines written since the last call (one per notable action).
    pub fn take_log(&mut self) -> Vec<String> {
        std::mem::take(&mut self.log)
    }

    fn boot(&mut self) {
        self.boots += 1;
        self.events.clear();
        self.connected = false;
        for t in self.topics.iter_mut() {
            t.clear();
        }
        for s in self.subscribed.iter_mut() {
            *s = false;
        }
        for m in self.messages.iter_mut() {
            m.clear();
        }
        self.any_messages.clear();
        self.qos = "0".into();
        self.read_ptr = 0;
        self.rx.clear();
        self.overflowed = false;
        self.pem = None;
        self.push_event(2, Some(0), "STARTUP");
    }

    /// A module reset (`AT+RESET`, the RST pin or a power cycle): queues cleared, non-persistent
    /// keys and subscriptions dropped, STARTUP queued. The OTA state and buffer survive when
    /// `persist_ota` is set (the read pointer goes back to 0 either way); without it the job is
    /// reported FAILED.
    pub fn reset(&mut self) {
        self.cloud.disconnect();
        if !self.cfg.persist_ota {
            if let Some(j) = self.job.take() {
                // The job is gone with the OTA state: say so, or it stays open in the cloud.
                self.cloud.report(
                    &j.proposal.job_id,
                    JobOutcome::Failed("module reset: OTA state lost".into()),
                );
            }
            self.state = 0;
        }
        self.log.push("module reset".into());
        self.boot();
    }

    fn push_event(&mut self, id: u16, param: Option<u32>, text: &str) {
        if self.events.len() >= self.cfg.event_depth.max(1) {
            self.events.pop_front();
        }
        self.events.push_back(Event {
            id,
            param,
            text: text.to_string(),
        });
    }

    fn ota_event(&mut self, ccm_text: &str) {
        let param = match self.cfg.ota_event_param {
            OtaEventParam::Zero => Some(0),
            OtaEventParam::State => Some(u32::from(self.state)),
            OtaEventParam::Absent => None,
        };
        let text = match self.cfg.dialect {
            Dialect::Ccm => format!("OTA event {ccm_text}"),
            Dialect::V13 => "OTA".to_string(),
        };
        self.push_event(5, param, &text);
    }

    /// Poll the cloud and apply what arrived (proposals, finished downloads, messages).
    pub fn tick(&mut self) {
        for ev in self.cloud.poll() {
            match ev {
                CloudEvent::Proposed(p) => {
                    self.log.push(format!(
                        "job {} proposed (file type {})",
                        p.job_id,
                        p.kind.file_type()
                    ));
                    self.waiting.push_back(p);
                }
                CloudEvent::Downloaded { job_id, image } => self.downloaded(&job_id, image),
                CloudEvent::DownloadFailed { job_id, reason } => {
                    if self.state == 3 && self.job_id() == Some(job_id.as_str()) {
                        self.fail_job(&format!("download failed: {reason}"));
                    }
                }
                CloudEvent::Message { topic, payload } => self.message(topic, payload),
            }
        }
        if self.state == 0 && self.job.is_none() {
            if let Some(p) = self.waiting.pop_front() {
                self.state = match p.kind {
                    JobKind::Module => 1,
                    JobKind::Host => 2,
                };
                self.job = Some(OtaJob {
                    proposal: p,
                    image: Vec::new(),
                });
                self.read_ptr = 0;
                self.ota_event("Update proposed");
            }
        }
    }

    fn job_id(&self) -> Option<&str> {
        self.job.as_ref().map(|j| j.proposal.job_id.as_str())
    }

    fn fail_job(&mut self, reason: &str) {
        if let Some(j) = self.job.take() {
            self.log
                .push(format!("job {} FAILED: {reason}", j.proposal.job_id));
            self.cloud
                .report(&j.proposal.job_id, JobOutcome::Failed(reason.to_string()));
        }
        self.state = 0;
        self.read_ptr = 0;
        self.ota_event("Update failed");
    }

    fn downloaded(&mut self, job_id: &str, image: Vec<u8>) {
        if self.state != 3 || self.job_id() != Some(job_id) {
            return;
        }
        let Some(job) = self.job.as_mut() else {
            return;
        };
        job.image = image;
        let kind = job.proposal.kind;
        // Host images are checked against HOTAcertificate, module images against
        // OTAcertificate, when that key is set and the job has a signature (P-256 here; the
        // real CCM uses its vendor's scheme for module images).
        let (cert, what) = match kind {
            JobKind::Host => (
                &self.hota_cert,
                "host image signature check (HOTAcertificate)",
            ),
            JobKind::Module => (
                &self.ota_cert,
                "module image signature check (OTAcertificate)",
            ),
        };
        if !cert.is_empty() {
            if let Some(sig) = &job.proposal.signature {
                if !verify_p256(cert, &job.image, sig) {
                    self.fail_job(&format!("{what} failed"));
                    return;
                }
            }
        }
        self.state = match kind {
            JobKind::Module => 4,
            JobKind::Host => 5,
        };
        self.read_ptr = 0;
        self.log.push(format!(
            "job {job_id}: {} bytes downloaded, state {}",
            self.job.as_ref().map_or(0, |j| j.image.len()),
            self.state
        ));
        self.ota_event("New Image verified");
    }

    fn message(&mut self, topic: String, payload: Vec<u8>) {
        let idx = (1..=MAX_TOPIC as usize).find(|&i| {
            self.subscribed.get(i).copied().unwrap_or(false)
                && self.topics.get(i).is_some_and(|t| *t == topic)
        });
        if let Some(i) = idx {
            if let Some(q) = self.messages.get_mut(i) {
                q.push_back(payload.clone());
            }
            self.any_messages.push_back((topic, payload));
            self.push_event(1, Some(i as u32), "MSG");
        }
    }

    /// Feed UART bytes from the host; returns the bytes the module sends back.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for &b in bytes {
            let eol = b == b'\n' || (b == b'\r' && self.cfg.dialect == Dialect::V13);
            if !eol {
                if self.rx.len() >= self.cfg.max_line() {
                    self.overflowed = true;
                } else {
                    self.rx.push(b);
                }
                continue;
            }
            let line = std::mem::take(&mut self.rx);
            if std::mem::take(&mut self.overflowed) {
                out.extend(self.reply(Err(1)));
                continue;
            }
            if line.is_empty() {
                continue;
            }
            self.tick();
            out.extend(self.line(&line));
        }
        out
    }

    fn eol(&self) -> &'static str {
        match self.cfg.dialect {
            Dialect::Ccm => "\n",
            Dialect::V13 => "\r\n",
        }
    }

    fn err_text(&self, n: u8) -> &'static str {
        let ccm = self.cfg.dialect == Dialect::Ccm;
        match n {
            1 => "OVERFLOW",
            2 => "PARSE ERROR",
            3 => "COMMAND NOT FOUND",
            4 => "PARAMETER ERROR",
            5 => "INVALID ESCAPE",
            6 => "NO CONNECTION",
            7 if ccm => "TOPIC OUT OF RANGE",
            7 => "OUT OF RANGE",
            8 if ccm => "TOPIC UNDEFINED",
            8 => "PARAMETER UNDEFINED",
            9 => "INVALID KEY LENGTH",
            10 => "INVALID KEY NAME",
            11 => "UNKNOWN KEY",
            12 => "KEY READONLY",
            13 => "KEY WRITEONLY",
            // v1.3 puts a hint first (2 = network); v0.5/CCM has none.
            14 if ccm => "UNABLE TO CONNECT",
            14 => "2 UNABLE TO CONNECT",
            15 => "TIME NOT AVAILABLE",
            19 => "HOST IMAGE NOT AVAILABLE",
            20 => "INVALID ADDRESS",
            21 => "INVALID OTA UPDATE",
            22 => "INVALID QUERY",
            23 => "INVALID SIGNATURE",
            25 => "NOT ALLOWED",
            _ => "ERROR",
        }
    }

    fn reply(&self, r: Reply) -> Vec<u8> {
        let s = match r {
            Ok(d) if d.is_empty() => "OK".to_string(),
            Ok(d) => format!("OK {d}"),
            Err(n) => format!("ERR{n} {}", self.err_text(n)),
        };
        format!("{s}{}", self.eol()).into_bytes()
    }

    /// Count an occurrence of `verb` and return the injected error code for it, if any.
    fn injected(&mut self, verb: &str) -> Option<u8> {
        let n = {
            let c = self.counts.entry(verb.to_string()).or_insert(0);
            *c += 1;
            *c
        };
        self.cfg.faults.iter().find_map(|f| match f {
            Fault::Err { verb: v, code, nth } if v == verb && (*nth == 0 || *nth == n) => {
                Some(*code)
            }
            _ => None,
        })
    }

    fn line(&mut self, line: &[u8]) -> Vec<u8> {
        // PEM entry mode after `CONF key=pem`: collect until the END line.
        if let Some((key, mut acc)) = self.pem.take() {
            let l = String::from_utf8_lossy(line)
                .trim_end_matches('\r')
                .to_string();
            acc.push_str(&l);
            acc.push('\n');
            if l.starts_with("-----END") {
                let r = self.set_key(&key, acc.trim_end().as_bytes());
                return self.reply(r);
            }
            self.pem = Some((key, acc));
            return Vec::new();
        }
        let mut line = line;
        if self.cfg.dialect == Dialect::V13 {
            // Bytes before `AT` and stray CR are ignored.
            while let Some(rest) = line.strip_prefix(b"\r") {
                line = rest;
            }
        }
        let upper: Vec<u8> = line.iter().map(u8::to_ascii_uppercase).collect();
        if upper == b"AT" {
            return self.reply(Ok(String::new()));
        }
        if !upper.starts_with(b"AT+") {
            return self.reply(Err(2));
        }
        let body = line.get(3..).unwrap_or_default();
        // Command word, decimal suffix, `?`, then one space or the end.
        let word_len = body
            .iter()
            .take_while(|c| c.is_ascii_alphabetic() || **c == b'_' || **c == b'!')
            .count();
        let word: String =
            String::from_utf8_lossy(body.get(..word_len).unwrap_or_default()).to_ascii_uppercase();
        let rest = body.get(word_len..).unwrap_or_default();
        let digits = rest.iter().take_while(|c| c.is_ascii_digit()).count();
        let suffix: Option<u32> = if digits > 0 {
            match std::str::from_utf8(rest.get(..digits).unwrap_or_default())
                .ok()
                .and_then(|s| s.parse().ok())
            {
                Some(n) => Some(n),
                None => return self.reply(Err(4)),
            }
        } else {
            None
        };
        let rest = rest.get(digits..).unwrap_or_default();
        let (query, rest) = match rest.strip_prefix(b"?") {
            Some(r) => (true, r),
            None => (false, rest),
        };
        let param: Option<&[u8]> = match rest {
            [] => None,
            [b' ', p @ ..] => Some(p),
            _ => return self.reply(Err(2)),
        };
        let cmd = if query { format!("{word}?") } else { word };
        self.command(&cmd, suffix, param)
    }

    fn no_suffix(&self, suffix: Option<u32>) -> Result<(), u8> {
        match suffix {
            Some(_) => Err(4),
            None => Ok(()),
        }
    }

    fn topic_index(&self, suffix: Option<u32>) -> Result<usize, u8> {
        match suffix {
            None => Err(4),
            Some(0) => Err(7),
            Some(n) if n > MAX_TOPIC => Err(if self.cfg.dialect == Dialect::Ccm {
                4
            } else {
                7
            }),
            Some(n) => Ok(n as usize),
        }
    }

    fn command(&mut self, cmd: &str, suffix: Option<u32>, param: Option<&[u8]>) -> Vec<u8> {
        let v13 = self.cfg.dialect == Dialect::V13;
        let r: Reply = match cmd {
            "CONNECT" => self.no_suffix(suffix).and_then(|_| self.connect()),
            "CONNECT!" if v13 => self.no_suffix(suffix).map(|_| {
                let hint = match self.connect() {
                    Ok(_) => 0,
                    Err(_) => 2,
                };
                self.push_event(6, Some(hint), "CONNECT");
                String::new()
            }),
            "CONNECT?" => self.no_suffix(suffix).map(|_| {
                let c = u8::from(self.connected);
                if v13 {
                    let word = if self.connected {
                        "CONNECTED"
                    } else {
                        "DISCONNECTED"
                    };
                    format!("{c} 0 {word} CUSTOMER")
                } else {
                    c.to_string()
                }
            }),
            "DISCONNECT" => self.no_suffix(suffix).map(|_| {
                if self.connected {
                    self.connected = false;
                    self.cloud.disconnect();
                    self.push_event(3, Some(0), "CONLOST");
                }
                String::new()
            }),
            "RESET" | "FACTORY_RESET" => self.no_suffix(suffix).map(|_| {
                if cmd == "FACTORY_RESET" {
                    self.hota_cert.clear();
                    self.cloud.configure("HOTAcertificate", "");
                    self.endpoint.clear();
                }
                self.reset();
                String::new()
            }),
            "SLEEP" => Ok(String::new()),
            "TIME?" => Err(15),
            "CONF" => {
                let r = self.no_suffix(suffix).and_then(|_| self.conf(param));
                if self.pem.is_some() {
                    return Vec::new();
                }
                r
            }
            "CONF?" => {
                return match self.no_suffix(suffix).and_then(|_| self.conf_query(param)) {
                    Ok(lines) => lines,
                    Err(n) => self.reply(Err(n)),
                }
            }
            "SEND" => self.send(suffix, param),
            "SUBSCRIBE" => self.topic_index(suffix).and_then(|i| {
                if !self.connected {
                    return Err(6);
                }
                let topic = self.topics.get(i).cloned().unwrap_or_default();
                if topic.is_empty() {
                    return Err(8);
                }
                self.cloud.subscribe(&self.full_topic(&topic));
                if let Some(s) = self.subscribed.get_mut(i) {
                    *s = true;
                }
                if v13 {
                    self.push_event(8, Some(i as u32), "SUBACK");
                }
                Ok(String::new())
            }),
            "UNSUBSCRIBE" => self.topic_index(suffix).map(|i| {
                if let Some(s) = self.subscribed.get_mut(i) {
                    *s = false;
                }
                String::new()
            }),
            "GET" => return self.get(suffix),
            "EVENT?" => self.no_suffix(suffix).map(|_| {
                let ev = match self.cfg.dialect {
                    Dialect::Ccm => self.events.pop_back(),
                    Dialect::V13 => self.events.pop_front(),
                };
                match ev {
                    None => String::new(),
                    Some(e) => match e.param {
                        Some(p) => format!("{} {} {}", e.id, p, e.text),
                        None => format!("{} {}", e.id, e.text),
                    },
                }
            }),
            "OTA?" => self.no_suffix(suffix).map(|_| self.ota_query(param)),
            "OTA" => match self.no_suffix(suffix) {
                Err(n) => Err(n),
                Ok(()) => return self.ota(param),
            },
            "" => Err(3),
            c if c.ends_with('?') && !v13 => Err(22),
            _ => Err(3),
        };
        self.reply(r)
    }

    fn full_topic(&self, topic: &str) -> String {
        if self.cfg.dialect == Dialect::Ccm && !self.topic_root.is_empty() {
            if let Some(abs) = topic.strip_prefix('/') {
                return abs.to_string();
            }
            return format!("{}/{}", self.topic_root.trim_end_matches('/'), topic);
        }
        topic.to_string()
    }

    fn connect(&mut self) -> Reply {
        if self.connected {
            return Ok(if self.cfg.dialect == Dialect::V13 {
                "1 CONNECTED".into()
            } else {
                "CONNECTED".into()
            });
        }
        if let Some(code) = self.injected("connect") {
            return Err(code);
        }
        let thing = self.cfg.thing.clone();
        match self.cloud.connect(&thing) {
            Ok(()) => {
                self.connected = true;
                self.log.push(format!("connected as {thing}"));
                if let Some(job_id) = self.commit_pending.take() {
                    // The new firmware's self-test passed on its first connection: commit.
                    self.log.push(format!(
                        "module firmware {} committed; job {job_id} SUCCEEDED",
                        self.version
                    ));
                    self.cloud.report(&job_id, JobOutcome::Succeeded);
                }
                self.tick();
                Ok("1 CONNECTED".into())
            }
            Err(e) => {
                self.log.push(format!("connect failed: {e}"));
                Err(14)
            }
        }
    }

    fn send(&mut self, suffix: Option<u32>, param: Option<&[u8]>) -> Reply {
        let Some(i) = suffix else {
            // `SEND {topic} msg` (v0.5/CCM only).
            if self.cfg.dialect == Dialect::V13 {
                return Err(4);
            }
            let p = param.unwrap_or_default();
            let sp = p.iter().position(|c| *c == b' ').ok_or(4u8)?;
            let topic = String::from_utf8_lossy(p.get(..sp).unwrap_or_default()).into_owned();
            let msg = unescape(p.get(sp + 1..).unwrap_or_default(), self.cfg.dialect).ok_or(5u8)?;
            if !self.connected {
                return Err(6);
            }
            let t = self.full_topic(&topic);
            return self
                .cloud
                .publish(&t, &msg)
                .map(|_| String::new())
                .map_err(|_| 6);
        };
        let i = self.topic_index(Some(i))?;
        let msg = unescape(param.unwrap_or_default(), self.cfg.dialect).ok_or(5u8)?;
        if !self.connected {
            return Err(6);
        }
        let topic = self.topics.get(i).cloned().unwrap_or_default();
        if topic.is_empty() {
            return Err(8);
        }
        let t = self.full_topic(&topic);
        self.cloud
            .publish(&t, &msg)
            .map(|_| String::new())
            .map_err(|_| 6)
    }

    fn get(&mut self, suffix: Option<u32>) -> Vec<u8> {
        let v13 = self.cfg.dialect == Dialect::V13;
        match suffix {
            None | Some(0) => match self.any_messages.pop_front() {
                None => self.reply(Ok(String::new())),
                Some((topic, msg)) => {
                    // Drop it from its topic queue too.
                    if let Some(i) = (1..self.topics.len()).find(|&i| self.topics[i] == topic) {
                        if let Some(q) = self.messages.get_mut(i) {
                            q.pop_front();
                        }
                    }
                    let m = escape(&msg, self.cfg.dialect);
                    if v13 {
                        let eol = self.eol();
                        format!("OK1 {topic}{eol}{m}{eol}").into_bytes()
                    } else {
                        self.reply(Ok(format!("{topic} {m}")))
                    }
                }
            },
            Some(n) => match self.topic_index(Some(n)) {
                Err(e) => self.reply(Err(e)),
                Ok(i) => {
                    let msg = self.messages.get_mut(i).and_then(VecDeque::pop_front);
                    match msg {
                        None => self.reply(Ok(String::new())),
                        Some(m) => {
                            if let Some(pos) = self.any_messages.iter().position(|(_, p)| *p == m) {
                                self.any_messages.remove(pos);
                            }
                            let m = escape(&m, self.cfg.dialect);
                            self.reply(Ok(m))
                        }
                    }
                }
            },
        }
    }

    fn conf(&mut self, param: Option<&[u8]>) -> Reply {
        let p = param.ok_or(4u8)?;
        let eq = p.iter().position(|c| *c == b'=').ok_or(4u8)?;
        let key = String::from_utf8_lossy(p.get(..eq).unwrap_or_default()).into_owned();
        if key.is_empty() || key.len() > 16 {
            return Err(9);
        }
        if !key.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(10);
        }
        let raw = p.get(eq + 1..).unwrap_or_default();
        if raw.eq_ignore_ascii_case(b"pem")
            && (key == "HOTAcertificate" || key == "OTAcertificate" || key == "RootCA")
        {
            // No reply until the END line (see `command`).
            self.pem = Some((key, String::new()));
            return Ok(String::new());
        }
        let value = unescape(raw, self.cfg.dialect).ok_or(5u8)?;
        self.set_key(&key, &value)
    }

    fn set_key(&mut self, key: &str, value: &[u8]) -> Reply {
        let v = String::from_utf8_lossy(value).into_owned();
        let ccm = self.cfg.dialect == Dialect::Ccm;
        if let Some(n) = key.strip_prefix("Topic").filter(|n| !n.is_empty()) {
            let i: u32 = n.parse().map_err(|_| 11u8)?;
            if i == 0 || i > MAX_TOPIC {
                return Err(7);
            }
            if let Some(t) = self.topics.get_mut(i as usize) {
                *t = v;
            }
            if let Some(s) = self.subscribed.get_mut(i as usize) {
                *s = false;
            }
            return Ok(String::new());
        }
        match key {
            "HOTAcertificate" | "OTAcertificate" => {
                self.cloud.configure(key, &v);
                if key == "HOTAcertificate" {
                    self.hota_cert = v;
                } else {
                    self.ota_cert = v;
                }
            }
            "Endpoint" if !ccm => self.endpoint = v,
            "EndPoint" if ccm => self.endpoint = v,
            "RootCA" => self.root_ca = v,
            "TopicRoot" if ccm => self.topic_root = v,
            "QoS" => {
                if v != "0" && v != "1" {
                    return Err(4);
                }
                self.qos = v;
            }
            "Version" | "TechSpec" | "About" | "ThingName" => return Err(12),
            _ => return Err(11),
        }
        Ok(String::new())
    }

    fn conf_query(&mut self, param: Option<&[u8]>) -> Result<Vec<u8>, u8> {
        let p = String::from_utf8_lossy(param.ok_or(4u8)?).into_owned();
        let (key, pem) = match p.split_once(' ') {
            Some((k, f)) if f.eq_ignore_ascii_case("pem") => (k.to_string(), true),
            Some(_) => return Err(4),
            None => (p.clone(), false),
        };
        let ccm = self.cfg.dialect == Dialect::Ccm;
        let value = if let Some(n) = key.strip_prefix("Topic").filter(|n| !n.is_empty()) {
            let i: u32 = n.parse().map_err(|_| 11u8)?;
            if i == 0 || i > MAX_TOPIC {
                return Err(7);
            }
            self.topics.get(i as usize).cloned().unwrap_or_default()
        } else {
            match key.as_str() {
                "Version" => self.version.clone(),
                "TechSpec" => match self.cfg.dialect {
                    Dialect::Ccm => "v0.5".into(),
                    Dialect::V13 => "v1.3".into(),
                },
                "About" => "AIROC CCM IFW56810 emulator (ota module-sim)".into(),
                "ThingName" => self.cfg.thing.clone(),
                "HOTAcertificate" => self.hota_cert.clone(),
                "OTAcertificate" if ccm => self.ota_cert.clone(),
                "OTAcertificate" => return Err(13),
                "Endpoint" if !ccm => self.endpoint.clone(),
                "EndPoint" if ccm => self.endpoint.clone(),
                "RootCA" => self.root_ca.clone(),
                "TopicRoot" if ccm => self.topic_root.clone(),
                "QoS" => self.qos.clone(),
                "MaxOTARead" => self.cfg.max_ota_read().to_string(),
                _ => return Err(11),
            }
        };
        let eol = self.eol();
        if pem {
            let lines: Vec<&str> = value.lines().collect();
            let head = if ccm {
                "OK pem".to_string()
            } else {
                format!("OK{} pem", lines.len())
            };
            let mut out = format!("{head}{eol}");
            for l in lines {
                out.push_str(l);
                out.push_str(eol);
            }
            return Ok(out.into_bytes());
        }
        Ok(self.reply(Ok(escape(value.as_bytes(), self.cfg.dialect))))
    }

    fn ota_query(&mut self, param: Option<&[u8]>) -> String {
        let doc = param.is_some_and(|p| p.eq_ignore_ascii_case(b"DOC"));
        let (version, metadata, size) = match &self.job {
            Some(j) => (
                j.proposal.version.clone(),
                j.proposal.metadata.clone(),
                j.image.len(),
            ),
            None => Default::default(),
        };
        match self.cfg.dialect {
            Dialect::Ccm => match self.state {
                0 => "0".into(),
                1 => format!("1 {version}"),
                2 => format!("2 {metadata}"),
                3 => "3 OTA in progress".into(),
                4 => format!("4 {version}"),
                _ => format!("5 {size}"),
            },
            Dialect::V13 => {
                let word = match self.state {
                    0 => "IDLE",
                    1 => "OTA PENDING",
                    2 => "HOTA PENDING",
                    3 => "OTA IN PROGRESS",
                    4 => "READY TO REBOOT",
                    _ => "HOTA AVAILABLE",
                };
                let mut s = format!("{} {word}", self.state);
                if doc && (self.state == 1 || self.state == 2) {
                    let j = serde_json::json!({
                        "fileType": if self.state == 1 { 101 } else { 202 },
                        "version": version,
                        "metadata": metadata,
                    });
                    s.push(' ');
                    s.push_str(&j.to_string());
                }
                s
            }
        }
    }

    fn ota(&mut self, param: Option<&[u8]>) -> Vec<u8> {
        let p = String::from_utf8_lossy(param.unwrap_or_default()).into_owned();
        let (verb, arg) = match p.split_once(' ') {
            Some((v, a)) => (v.to_ascii_uppercase(), Some(a.to_string())),
            None => (p.to_ascii_uppercase(), None),
        };
        let lower = verb.to_ascii_lowercase();
        if matches!(
            verb.as_str(),
            "ACCEPT" | "READ" | "SEEK" | "APPLY" | "CLOSE" | "FLUSH"
        ) {
            if let Some(code) = self.injected(&lower) {
                return self.reply(Err(code));
            }
        }
        let r: Reply = match verb.as_str() {
            "ACCEPT" => match self.state {
                1 | 2 => {
                    self.state = 3;
                    if let Some(id) = self.job_id().map(str::to_string) {
                        self.log.push(format!("job {id} accepted, downloading"));
                        self.cloud.accept(&id);
                    }
                    Ok(String::new())
                }
                _ => Err(21),
            },
            "FLUSH" => {
                if self.job.is_some() {
                    self.fail_job("flushed by the host");
                }
                self.state = 0;
                Ok(String::new())
            }
            "CLOSE" => match self.state {
                5 => {
                    if let Some(j) = self.job.take() {
                        self.log
                            .push(format!("job {} SUCCEEDED (host CLOSE)", j.proposal.job_id));
                        self.cloud.report(&j.proposal.job_id, JobOutcome::Succeeded);
                    }
                    self.state = 0;
                    self.read_ptr = 0;
                    Ok(String::new())
                }
                _ => Err(19),
            },
            "APPLY" => match self.state {
                4 => return self.apply(),
                _ => Err(19),
            },
            "SEEK" => self.seek(arg.as_deref()),
            "READ" => return self.read(arg.as_deref()),
            _ => Err(4),
        };
        self.reply(r)
    }

    fn host_image(&self) -> Result<&[u8], u8> {
        match (&self.job, self.state) {
            (Some(j), 5) => Ok(&j.image),
            _ => Err(19),
        }
    }

    fn seek(&mut self, arg: Option<&str>) -> Reply {
        let addr: usize = match arg {
            None => 0,
            Some(a) => a.parse().map_err(|_| 4u8)?,
        };
        let len = self.host_image()?.len();
        if addr > len {
            return Err(20);
        }
        self.read_ptr = addr;
        Ok(format!("{addr:X}"))
    }

    fn read(&mut self, arg: Option<&str>) -> Vec<u8> {
        let n: usize = match arg.and_then(|a| a.parse().ok()) {
            Some(n) if n > 0 => n,
            _ => return self.reply(Err(4)),
        };
        let start = self.read_ptr;
        // Fault: the module resets when a read starts at or past the offset (once).
        let reset_at = self.cfg.faults.iter().find_map(|f| match f {
            Fault::ResetAt(o) => Some(*o),
            _ => None,
        });
        if let (Some(o), false, Ok(_)) = (reset_at, self.reset_done, self.host_image()) {
            if start as u64 >= o && start > 0 {
                self.reset_done = true;
                self.reset();
                return Vec::new();
            }
        }
        let image = match self.host_image() {
            Ok(i) => i,
            Err(e) => return self.reply(Err(e)),
        };
        let n = n.min(self.cfg.max_ota_read());
        let end = (start + n).min(image.len());
        let data = image.get(start..end).unwrap_or_default().to_vec();
        self.read_ptr = end;
        if data.is_empty() {
            return self.reply(Ok("0".into()));
        }
        self.reads += 1;
        let nth = self.reads;
        let mut hex = hex_upper(&data);
        let sum: u32 = data.iter().map(|b| u32::from(*b)).sum();
        let mut ck = match self.cfg.checksum_digits {
            2 => format!("{:02X}", sum & 0xFF),
            _ => format!("{:04X}", sum & 0xFFFF),
        };
        let mut drop = false;
        for f in &self.cfg.faults {
            match f {
                Fault::CorruptChecksum(k) if *k == nth => {
                    let v = u32::from_str_radix(&ck, 16).unwrap_or(0) ^ 1;
                    ck = match self.cfg.checksum_digits {
                        2 => format!("{:02X}", v & 0xFF),
                        _ => format!("{:04X}", v & 0xFFFF),
                    };
                }
                Fault::CorruptData(k) if *k == nth => {
                    // Change one data hex digit (the checksum then no longer matches).
                    let c = if hex.starts_with('0') { "1" } else { "0" };
                    hex.replace_range(0..1, c);
                }
                Fault::DropResponse(k) if *k == nth => drop = true,
                _ => {}
            }
        }
        if drop {
            self.log.push(format!("READ #{nth}: reply dropped (fault)"));
            return Vec::new();
        }
        let mut body = format!("OK {:02X} {hex} {ck}", data.len());
        let mut out = Vec::new();
        let mut eol = true;
        for f in self.cfg.faults.clone() {
            match &f {
                Fault::Truncate(k) if *k == nth => body.truncate(4 + hex.len() / 2),
                Fault::NoEol(k) if *k == nth => eol = false,
                Fault::Late(k, ms) if *k == nth => self.delay_ms = *ms,
                Fault::BlankLine(k) if *k == nth => {
                    out.extend_from_slice(b"\0\xff");
                    out.extend_from_slice(self.eol().as_bytes());
                }
                _ => {}
            }
        }
        out.extend_from_slice(body.as_bytes());
        if eol {
            out.extend_from_slice(self.eol().as_bytes());
        }
        out
    }

    fn apply(&mut self) -> Vec<u8> {
        let Some(job) = self.job.take() else {
            return self.reply(Err(19));
        };
        let mut out = self.reply(Ok(String::new()));
        // The module installs the image and reboots: buffer emptied, state 0, STARTUP queued;
        // the job succeeds once the new firmware connects (self-test), as on the CCM.
        self.state = 0;
        self.version = job.proposal.version.clone();
        self.commit_pending = Some(job.proposal.job_id.clone());
        self.log.push(format!(
            "APPLY: {} bytes installed, rebooting into {}",
            job.image.len(),
            self.version
        ));
        self.cloud.disconnect();
        self.boot();
        if self.cfg.startup_noise {
            out.extend_from_slice(b"\0\xff");
        }
        out
    }
}

/// Check a P-256 ECDSA/SHA-256 signature (DER or raw 64 bytes) with an SPKI PEM public key.
pub fn verify_p256(pem: &str, data: &[u8], sig: &[u8]) -> bool {
    let Ok(key) = VerifyingKey::from_public_key_pem(pem) else {
        return false;
    };
    let sig = match Signature::from_der(sig) {
        Ok(s) => s,
        Err(_) => match Signature::from_slice(sig) {
            Ok(s) => s,
            Err(_) => return false,
        },
    };
    key.verify(data, &sig).is_ok()
}
