//! A scripted fake ExpressLink module: `embedded_io_async::Read + Write` over in-memory buffers.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::{BTreeSet, VecDeque};
use std::string::String;
use std::vec::Vec;

use ota_expresslink::{encode_read_reply, ChecksumWidth, Clock, Dialect};

/// What the proposal is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Module,
    Host,
}

/// The fake module's state and fault switches.
#[derive(Debug)]
pub struct Fake {
    pub dialect: Dialect,
    pub width: ChecksumWidth,
    /// MaxOTARead: the most bytes one READ returns.
    pub max_read: usize,
    pub ota: u8,
    pub kind: Kind,
    pub image: Vec<u8>,
    pub ptr: usize,
    pub meta: String,
    /// `OTA?` polls in state 3 before the download "finishes".
    pub progress_polls: u32,
    /// `OTA?` polls in state 5 after CLOSE before the state goes to 0.
    pub close_polls: u32,
    pub closing: bool,
    pub apply_bad_signature: bool,
    /// Commands after APPLY that get no reply (the module is rebooting); noise comes with the first.
    pub reboot_silence: u32,
    pub events: VecDeque<String>,
    /// Indices (0-based) of READ commands with data whose checksum is corrupted.
    pub corrupt_reads: BTreeSet<usize>,
    /// Indices of READ commands with data whose data is corrupted (one hex digit).
    pub corrupt_data: BTreeSet<usize>,
    /// Indices (0-based over all commands) whose reply is dropped.
    pub drop_replies: BTreeSet<usize>,
    /// Indices whose reply arrives late (after the driver's first read attempt timed out).
    pub late_replies: BTreeSet<usize>,
    /// Put a blank line and noise before every reply.
    pub blank_before: bool,
    /// Answer `CONF? TechSpec` with ERR11 (the driver must judge by the line ends).
    pub no_techspec: bool,
    pub log: Vec<String>,
    pub out: VecDeque<u8>,
    cmd: Vec<u8>,
    n_cmd: usize,
    n_read: usize,
    held: Option<(Vec<u8>, u32)>,
    silence: u32,
    pub connected: bool,
    pub applied: bool,
    pub flushed: bool,
    pub closed: bool,
    pub topics: Vec<(u32, String)>,
    pub sent: Vec<(u32, String)>,
    pub inbox: VecDeque<String>,
}

impl Fake {
    pub fn new(dialect: Dialect) -> Self {
        Self {
            dialect,
            width: if dialect == Dialect::Legacy {
                ChecksumWidth::Two
            } else {
                ChecksumWidth::Four
            },
            max_read: 2048,
            ota: 0,
            kind: Kind::Host,
            image: Vec::new(),
            ptr: 0,
            meta: String::new(),
            progress_polls: 2,
            close_polls: 1,
            closing: false,
            apply_bad_signature: false,
            reboot_silence: 1,
            events: VecDeque::new(),
            corrupt_reads: BTreeSet::new(),
            corrupt_data: BTreeSet::new(),
            drop_replies: BTreeSet::new(),
            late_replies: BTreeSet::new(),
            blank_before: false,
            no_techspec: false,
            log: Vec::new(),
            out: VecDeque::new(),
            cmd: Vec::new(),
            n_cmd: 0,
            n_read: 0,
            held: None,
            silence: 0,
            connected: false,
            applied: false,
            flushed: false,
            closed: false,
            topics: Vec::new(),
            sent: Vec::new(),
            inbox: VecDeque::new(),
        }
    }

    /// A job proposal arrives: state 1 or 2 and an OTA event.
    pub fn propose(&mut self, kind: Kind, meta: &str, image: &[u8]) {
        self.kind = kind;
        self.meta = meta.into();
        self.image = image.to_vec();
        self.ota = if kind == Kind::Module { 1 } else { 2 };
        self.push_ota_event();
    }

    fn eol(&self) -> &'static str {
        if self.dialect == Dialect::Legacy {
            "\n"
        } else {
            "\r\n"
        }
    }

    fn push_ota_event(&mut self) {
        let ev = if self.dialect == Dialect::Legacy {
            "5 OTA event New Image verified".to_string()
        } else {
            "5 0 OTA".to_string()
        };
        self.events.push_back(ev);
    }

    pub fn commands(&self) -> Vec<&str> {
        self.log.iter().map(String::as_str).collect()
    }

    pub fn position(&self, cmd: &str) -> Option<usize> {
        self.log.iter().position(|c| c == cmd)
    }

    fn ota_word(&self) -> String {
        let legacy = self.dialect == Dialect::Legacy;
        match (self.ota, legacy) {
            (0, true) => "No OTA in progress".into(),
            (0, false) => "IDLE".into(),
            (1, true) => self.meta.clone(),
            (1, false) => "OTA PENDING".into(),
            (2, true) => self.meta.clone(),
            (2, false) => "HOTA PENDING".into(),
            (3, _) => "OTA IN PROGRESS".into(),
            (4, _) => "READY TO REBOOT".into(),
            (5, true) => self.image.len().to_string(),
            (5, false) => "HOTA AVAILABLE".into(),
            _ => String::new(),
        }
    }

    fn respond(&mut self, line: &str) -> String {
        let Some(rest) = line.strip_prefix("AT") else {
            return "ERR2 PARSE ERROR".into();
        };
        if rest.is_empty() {
            return "OK".into();
        }
        let Some(rest) = rest.strip_prefix('+') else {
            return "ERR2 PARSE ERROR".into();
        };
        let (head, param) = match rest.split_once(' ') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        };
        let word: String = head.chars().take_while(|c| !c.is_ascii_digit()).collect();
        let suffix: Option<u32> = head[word.len()..].parse().ok();
        match (word.to_ascii_uppercase().as_str(), param) {
            ("CONF?", Some("TechSpec")) if self.no_techspec => "ERR11 UNKNOWN KEY".into(),
            ("CONF?", Some("TechSpec")) => {
                if self.dialect == Dialect::Legacy {
                    "OK v0.5".into()
                } else {
                    "OK v1.3".into()
                }
            }
            ("CONF?", Some(k)) if k.eq_ignore_ascii_case("HOTAcertificate pem") => {
                let eol = self.eol();
                if self.dialect == Dialect::Legacy {
                    format!("OK pem{eol}-----BEGIN CERTIFICATE-----{eol}-----END CERTIFICATE-----")
                } else {
                    format!("OK2 pem{eol}-----BEGIN CERTIFICATE-----{eol}-----END CERTIFICATE-----")
                }
            }
            ("CONF", Some(p)) => {
                if let Some((k, v)) = p.split_once('=') {
                    if let Some(i) = k.strip_prefix("Topic") {
                        self.topics.push((i.parse().unwrap(), v.into()));
                    }
                    "OK".into()
                } else {
                    "ERR4 PARAMETER ERROR".into()
                }
            }
            ("CONNECT", None) => {
                self.connected = true;
                "OK 1 CONNECTED".into()
            }
            ("SEND", Some(msg)) => match suffix {
                Some(i) if i > 0 && self.topics.iter().any(|(t, _)| *t == i) => {
                    self.sent.push((i, msg.into()));
                    "OK".into()
                }
                Some(0) | None => "ERR7 OUT OF RANGE".into(),
                Some(_) => "ERR8 PARAMETER UNDEFINED".into(),
            },
            ("SUBSCRIBE", None) => "OK".into(),
            ("GET", None) => match self.inbox.pop_front() {
                Some(m) => format!("OK {m}"),
                None => "OK".into(),
            },
            ("EVENT?", None) => {
                let ev = if self.dialect == Dialect::Legacy {
                    self.events.pop_back()
                } else {
                    self.events.pop_front()
                };
                match ev {
                    Some(e) => format!("OK {e}"),
                    None => "OK".into(),
                }
            }
            ("OTA?", None) => {
                if self.ota == 3 {
                    if self.progress_polls == 0 {
                        self.ota = if self.kind == Kind::Module { 4 } else { 5 };
                        self.push_ota_event();
                    } else {
                        self.progress_polls -= 1;
                    }
                } else if self.closing {
                    if self.close_polls == 0 {
                        self.ota = 0;
                        self.closing = false;
                    } else {
                        self.close_polls -= 1;
                    }
                }
                format!("OK {} {}", self.ota, self.ota_word())
            }
            ("OTA", Some(p)) => self.ota_cmd(p),
            _ => "ERR3 COMMAND NOT FOUND".into(),
        }
    }

    fn ota_cmd(&mut self, p: &str) -> String {
        let (verb, arg) = match p.split_once(' ') {
            Some((v, a)) => (v, Some(a)),
            None => (p, None),
        };
        match verb {
            "ACCEPT" if self.ota == 1 || self.ota == 2 => {
                self.ota = 3;
                "OK".into()
            }
            "ACCEPT" => "ERR21 INVALID OTA UPDATE".into(),
            "FLUSH" => {
                self.ota = 0;
                self.flushed = true;
                "OK".into()
            }
            "CLOSE" if self.ota == 5 => {
                self.closed = true;
                self.closing = true;
                "OK".into()
            }
            "CLOSE" => "ERR21 INVALID OTA UPDATE".into(),
            "APPLY" if self.ota == 4 => {
                if self.apply_bad_signature {
                    return "ERR23 INVALID SIGNATURE".into();
                }
                self.applied = true;
                self.ota = 0;
                self.events.clear();
                self.events.push_back("2 0 STARTUP".into());
                self.connected = false;
                self.silence = self.reboot_silence;
                "OK".into()
            }
            "APPLY" => "ERR19 HOST IMAGE NOT AVAILABLE".into(),
            _ if self.ota != 5 => "ERR19 HOST OTA IMAGE NOT AVAILABLE".into(),
            "SEEK" => {
                let a: usize = match arg.map(str::parse) {
                    None => 0,
                    Some(Ok(a)) => a,
                    Some(Err(_)) => return "ERR4 PARAMETER ERROR".into(),
                };
                if a > self.image.len() {
                    return "ERR20 INVALID ADDRESS".into();
                }
                self.ptr = a;
                format!("OK {a:X}")
            }
            "READ" => {
                let n: usize = match arg.map(str::parse) {
                    Some(Ok(n)) if n > 0 => n,
                    _ => return "ERR4 PARAMETER ERROR".into(),
                };
                let count = n.min(self.max_read).min(self.image.len() - self.ptr);
                let data = &self.image[self.ptr..self.ptr + count];
                let mut buf = vec![0u8; 2 * count + 32];
                let len = encode_read_reply(data, self.width, &mut buf).unwrap();
                buf.truncate(len);
                self.ptr += count;
                if count > 0 {
                    let k = self.n_read;
                    self.n_read += 1;
                    if self.corrupt_reads.contains(&k) {
                        let last = buf.len() - 1;
                        buf[last] = if buf[last] == b'0' { b'1' } else { b'0' };
                    }
                    if self.corrupt_data.contains(&k) {
                        let at = buf.iter().position(|&b| b == b' ').unwrap() + 1;
                        let at = at + buf[at..].iter().position(|&b| b == b' ').unwrap() + 1;
                        buf[at] = if buf[at] == b'0' { b'1' } else { b'0' };
                    }
                }
                String::from_utf8(buf).unwrap()
            }
            _ => "ERR4 PARAMETER ERROR".into(),
        }
    }

    fn on_line(&mut self, raw: Vec<u8>) {
        let line = String::from_utf8_lossy(&raw).into_owned();
        let idx = self.n_cmd;
        self.n_cmd += 1;
        self.log.push(line.clone());
        if self.silence > 0 {
            self.silence -= 1;
            self.out.extend(b"\x00\xff\xff");
            return;
        }
        let reply = self.respond(&line);
        if self.drop_replies.contains(&idx) {
            return;
        }
        let mut bytes = Vec::new();
        if self.blank_before {
            bytes.extend_from_slice(b"\x00");
            bytes.extend_from_slice(self.eol().as_bytes());
        }
        bytes.extend_from_slice(reply.as_bytes());
        bytes.extend_from_slice(self.eol().as_bytes());
        if self.late_replies.contains(&idx) {
            self.held = Some((bytes, 1));
        } else {
            self.out.extend(bytes);
        }
    }
}

/// The UART end the driver holds.
#[derive(Debug)]
pub struct FakeUart(pub Fake);

impl embedded_io_async::ErrorType for FakeUart {
    type Error = core::convert::Infallible;
}

impl embedded_io_async::Write for FakeUart {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        for &b in buf {
            if b == b'\n' {
                let line = core::mem::take(&mut self.0.cmd);
                self.0.on_line(line);
            } else {
                self.0.cmd.push(b);
            }
        }
        Ok(buf.len())
    }

    async fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

impl embedded_io_async::Read for FakeUart {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        if self.0.out.is_empty() {
            match self.0.held.take() {
                Some((bytes, 0)) => self.0.out.extend(bytes),
                Some((bytes, n)) => {
                    // Not yet: this read attempt times out.
                    self.0.held = Some((bytes, n - 1));
                    core::future::pending::<()>().await;
                }
                None => core::future::pending::<()>().await,
            }
        }
        let n = buf.len().min(self.0.out.len());
        for (slot, b) in buf.iter_mut().zip(self.0.out.drain(..n)) {
            *slot = b;
        }
        Ok(n)
    }
}

/// A virtual clock: every delay completes at once and is added up.
#[derive(Debug, Default)]
pub struct TestClock {
    pub elapsed_ms: u64,
    pub delays: u64,
}

impl Clock for TestClock {
    async fn delay_ms(&mut self, ms: u32) {
        self.elapsed_ms += u64::from(ms);
        self.delays += 1;
    }
}

/// A pseudo-random image of `len` bytes (xorshift32, fixed seed): the same on every run.
pub fn image(len: usize) -> Vec<u8> {
    let mut x = 0x1234_5678u32;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// The host-image file entry (file type 202) of a job for a file of `size` bytes.
pub fn file(size: u32) -> ota_pal_traits::FileInfo<'static> {
    ota_pal_traits::FileInfo {
        index: 0,
        path: "host.bin",
        size,
        file_type: 202,
        attributes: 0,
        cert_path: "",
    }
}
