//! Drives the sans-IO agent with a sequence of events decoded from the fuzz input: job
//! documents (valid ones built from the input, and raw bytes) on the job topics, data blocks
//! (valid CBOR built from the input, and raw bytes), stream rejections, acks, timeouts, PAL
//! completions (the awaited one with Ok/Err, and stray ones), write failures, HTTP bodies and
//! failures, disconnect/connect, check-for-update, abort and reboots (a new agent restored
//! from the journal). The driver's contract is followed (drain after every input, answer
//! PAL commands, report written blocks), and after every step the machine must:
//! - never request a trial boot of a file without a `Verified(Ok)` for it since its
//!   `PrepareFile`;
//! - never publish `SUCCEEDED` after a `ConfirmImage` not answered `Ok`, nor in a
//!   `PendingCommit` boot without a `Confirmed(Ok)`;
//! - never write a block twice in one download, and keep the bitmap's received count equal
//!   to the blocks journalled while downloading;
//! - send no MQTT command while disconnected, and no payload over `PAYLOAD_LEN`.
#![no_main]

use std::collections::BTreeSet;

use libfuzzer_sys::fuzz_target;
use ota_core::agent::{
    Agent, Command, Completion, Config, HttpFailure, Instant, Received, State, PAYLOAD_LEN,
};
use ota_core::wire::version::AppVersion;
use ota_pal_traits::{JournalHeader, PalError, PalErrorKind, PlatformImageState};

const THING: &str = "thing1";
const BLOCK: u32 = 256;
const SIG: &str = "MEQCIF2QDvww1G/kpRGZ8FYvQrok1bSZvXjXefRk7sqNcyPTAiB4dvGt8fozIY5NC0vUDJ2MY42ZERYEcrbwA4n6q7vrBg==";

type A = Agent<16, 64>;

struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(*b)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes([self.byte()?, self.byte()?]))
    }
    fn bytes(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.0.len());
        let (b, rest) = self.0.split_at(n);
        self.0 = rest;
        b
    }
}

fn topic(tail: &str) -> String {
    format!("$aws/things/{THING}/{tail}")
}

fn cbor_uint(out: &mut Vec<u8>, major: u8, v: u64) {
    let m = major << 5;
    match v {
        0..=23 => out.push(m | v as u8),
        24..=0xff => out.extend([m | 24, v as u8]),
        0x100..=0xffff => {
            out.push(m | 25);
            out.extend((v as u16).to_be_bytes());
        }
        _ => {
            out.push(m | 26);
            out.extend((v as u32).to_be_bytes());
        }
    }
}

fn cbor_key(out: &mut Vec<u8>, k: &str) {
    cbor_uint(out, 3, k.len() as u64);
    out.extend(k.as_bytes());
}

/// A DataBlock as the service sends it (map c f i l p).
fn data_block(file_id: u32, index: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0xa5];
    cbor_key(&mut out, "c");
    cbor_key(&mut out, "rdy");
    cbor_key(&mut out, "f");
    cbor_uint(&mut out, 0, file_id.into());
    cbor_key(&mut out, "i");
    cbor_uint(&mut out, 0, index.into());
    cbor_key(&mut out, "l");
    cbor_uint(&mut out, 0, payload.len() as u64);
    cbor_key(&mut out, "p");
    cbor_uint(&mut out, 2, payload.len() as u64);
    out.extend(payload);
    out
}

/// A job document built from two input bytes and a size.
fn job_doc(sel: u8, size: u32, file_type: u8) -> String {
    let job = ["AFR_OTA-a", "AFR_OTA-b"][usize::from(sel & 1)];
    let protocol = ["MQTT", "HTTP", "MQTT\",\"HTTP", "XYZ"][usize::from(sel >> 1 & 3)];
    let details = if sel & 8 != 0 {
        r#""statusDetails":{"self_test":"ready","updatedBy":"0x1000000"},"#
    } else {
        ""
    };
    let status = if sel & 8 != 0 {
        "IN_PROGRESS"
    } else {
        "QUEUED"
    };
    let file = |id: u32, size: u32| {
        format!(
            r#"{{"filepath":"/f{id}","filesize":{size},"fileid":{id},"fileType":{file_type},"update_data_url":"https://x/{id}","sig-sha256-ecdsa":"{SIG}"}}"#
        )
    };
    let files = if sel & 16 != 0 {
        format!("{},{}", file(0, size), file(1, size / 2 + 1))
    } else {
        file(0, size)
    };
    format!(
        r#"{{"timestamp":1,"execution":{{"jobId":"{job}","status":"{status}",{details}"jobDocument":{{"afr_ota":{{"protocols":["{protocol}"],"streamname":"S","files":[{files}]}}}}}}}}"#
    )
}

/// The device around the agent: PAL, journal and the invariants' bookkeeping.
struct Device {
    agent: A,
    now: u64,
    connected: bool,
    platform: PlatformImageState,
    /// The PAL command the agent waits for (its completion kind).
    pending: Option<u8>,
    fail_writes: bool,
    journal: Option<JournalHeader>,
    journal_blocks: BTreeSet<u32>,
    // Invariant state, per boot.
    current_file: Option<u8>,
    verifying: Option<u8>,
    verified_ok: BTreeSet<u8>,
    written: BTreeSet<u32>,
    confirm: Option<bool>,
    confirmed_ever: bool,
}

fn config() -> Config<'static> {
    let mut c = Config::new(THING, AppVersion::new(1, 2, 3));
    c.block_size = BLOCK;
    c.blocks_per_request = 2;
    c.rx_buffer_len = 4096;
    c.http_enabled = true;
    c.max_retries = 3;
    c
}

impl Device {
    fn boot(
        platform: PlatformImageState,
        journal: Option<JournalHeader>,
        blocks: BTreeSet<u32>,
    ) -> Self {
        let mut agent = A::new(config()).unwrap();
        for b in &blocks {
            agent.restore_block(*b);
        }
        agent.start(Instant(0), platform, journal.clone());
        let mut d = Device {
            agent,
            now: 0,
            connected: false,
            platform,
            pending: None,
            fail_writes: false,
            journal,
            journal_blocks: blocks,
            current_file: None,
            verifying: None,
            verified_ok: BTreeSet::new(),
            written: BTreeSet::new(),
            confirm: None,
            confirmed_ever: false,
        };
        d.connect();
        d
    }

    fn connect(&mut self) {
        self.connected = true;
        self.agent.connected(Instant(self.now));
        self.drain();
    }

    fn complete(&mut self, c: Completion) {
        match c {
            Completion::Verified(r) if self.pending == Some(1) => {
                if let (Ok(()), Some(f)) = (r, self.verifying) {
                    self.verified_ok.insert(f);
                }
                self.verifying = None;
            }
            Completion::Confirmed(Ok(())) if self.pending == Some(3) => {
                if self.confirm.is_some() {
                    self.confirm = Some(true);
                }
                self.confirmed_ever = true;
            }
            _ => {}
        }
        let kind = completion_kind(&c);
        if self.pending == Some(kind) {
            self.pending = None;
        }
        self.agent.complete(Instant(self.now), c);
        self.drain();
    }

    /// Execute every command, checking the invariants on each.
    fn drain(&mut self) {
        while let Some(cmd) = self.agent.poll_command() {
            if std::env::var_os("AGENT_EVENTS_DEBUG").is_some() {
                eprintln!("  {cmd:?}");
            }
            let mqtt = matches!(
                cmd,
                Command::Subscribe { .. } | Command::Unsubscribe { .. } | Command::Publish { .. }
            );
            assert!(
                !(mqtt && !self.connected),
                "MQTT command while offline: {cmd:?}"
            );
            match cmd {
                Command::Publish { payload, topic, .. } => {
                    assert!(payload.len() <= PAYLOAD_LEN);
                    if topic.ends_with("/update")
                        && payload.windows(20).any(|w| w == br#""status":"SUCCEEDED""#)
                    {
                        assert_ne!(
                            self.confirm,
                            Some(false),
                            "SUCCEEDED before the confirm passed"
                        );
                        if self.platform == PlatformImageState::PendingCommit {
                            assert!(self.confirmed_ever, "SUCCEEDED on trial without a confirm");
                        }
                    }
                }
                Command::PrepareFile {
                    file,
                    resume,
                    journal,
                } => {
                    if !resume {
                        self.journal = Some(journal.clone());
                        self.journal_blocks.clear();
                    }
                    self.written.clear();
                    self.verified_ok.remove(&file.index);
                    self.current_file = Some(file.index);
                    self.pending = Some(0);
                }
                Command::VerifyFile { .. } => {
                    self.verifying = self.current_file;
                    self.written.clear();
                    self.pending = Some(1);
                }
                Command::RequestTrialBoot { file } => {
                    assert!(
                        self.verified_ok.contains(&file.index),
                        "trial boot of file {} without a passed verification",
                        file.index
                    );
                    self.pending = Some(2);
                }
                Command::ConfirmImage => {
                    self.confirm = Some(false);
                    self.pending = Some(3);
                }
                Command::RunSelfTest => self.pending = Some(4),
                Command::AbortFile => {
                    self.journal = None;
                    self.journal_blocks.clear();
                    self.written.clear();
                    self.verified_ok.clear();
                }
                Command::ClearJournal => {
                    self.journal = None;
                    self.journal_blocks.clear();
                }
                _ => {}
            }
        }
        self.check();
    }

    fn check(&self) {
        let b = self.agent.bitmap();
        let ones: u32 = b.as_bytes().iter().map(|x| x.count_ones()).sum();
        assert_eq!(b.remaining(), ones);
        if self.agent.state() == State::Downloading {
            assert_eq!(
                b.received() as usize,
                self.journal_blocks.len(),
                "bitmap received count != blocks journalled"
            );
        }
    }

    fn publish(&mut self, t: &str, payload: &[u8]) {
        let now = Instant(self.now);
        let block = match self.agent.handle_publish(now, t, payload) {
            Received::Block {
                index,
                offset,
                data,
            } => Some((index, offset, data.len())),
            Received::CustomJob { .. } => {
                self.agent.custom_job_result(now, None);
                None
            }
            Received::Nothing => None,
        };
        if let Some((index, _, _)) = block {
            self.write(index);
        }
        self.drain();
    }

    fn write(&mut self, index: u32) {
        let now = Instant(self.now);
        if self.fail_writes {
            self.agent
                .block_written(now, index, Err(PalError::new(PalErrorKind::FileClose)));
            return;
        }
        assert!(self.written.insert(index), "block {index} written twice");
        self.journal_blocks.insert(index);
        self.agent.block_written(now, index, Ok(()));
    }
}

fn completion_kind(c: &Completion) -> u8 {
    match c {
        Completion::Prepared(_) => 0,
        Completion::Verified(_) => 1,
        Completion::TrialBootRequested(_) => 2,
        Completion::Confirmed(_) => 3,
        Completion::SelfTest(_) => 4,
    }
}

fn completion(kind: u8, ok: bool) -> Completion {
    let r = if ok {
        Ok(())
    } else {
        Err(PalError::with_sub(PalErrorKind::SignatureCheckFailed, 1))
    };
    match kind % 5 {
        0 => Completion::Prepared(r),
        1 => Completion::Verified(r),
        2 => Completion::TrialBootRequested(r),
        3 => Completion::Confirmed(r),
        _ => Completion::SelfTest(ok),
    }
}

const PLATFORMS: [PlatformImageState; 4] = [
    PlatformImageState::Valid,
    PlatformImageState::PendingCommit,
    PlatformImageState::Invalid,
    PlatformImageState::Unknown,
];

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let first = input.byte().unwrap_or(0);
    let mut d = Device::boot(PLATFORMS[usize::from(first & 3)], None, BTreeSet::new());
    let mut steps = 0;
    while let Some(op) = input.byte() {
        steps += 1;
        if steps > 400 {
            break;
        }
        let now = Instant(d.now);
        if std::env::var_os("AGENT_EVENTS_DEBUG").is_some() {
            eprintln!("op {} state {:?}", op % 16, d.agent.state());
        }
        match op % 16 {
            0 | 1 => {
                let (Some(sel), Some(size), Some(ft)) = (input.byte(), input.u16(), input.byte())
                else {
                    break;
                };
                let doc = job_doc(sel, u32::from(size % 6000), ft % 3);
                let t = if op & 16 != 0 {
                    "jobs/notify-next"
                } else {
                    "jobs/$next/get/accepted"
                };
                d.publish(&topic(t), doc.as_bytes());
            }
            2 | 3 | 4 => {
                // A data block of the file, mostly well-formed.
                let (Some(k), Some(shape)) = (input.byte(), input.byte()) else {
                    break;
                };
                let k = u32::from(k % 24);
                let size = d.journal.as_ref().map_or(4000, |j| j.file_size);
                let good = size.saturating_sub(k * BLOCK).min(BLOCK) as usize;
                let len = match shape % 8 {
                    0 => 0,
                    1 => good + 1,
                    2 => good.saturating_sub(1),
                    _ => good,
                };
                let file = u32::from(shape & 8 != 0 && shape & 16 != 0);
                let payload = vec![shape; len];
                d.publish(
                    &topic("streams/S/data/cbor"),
                    &data_block(file, k, &payload),
                );
            }
            5 => {
                // Raw bytes on one of the agent's topics.
                let (Some(t), Some(n)) = (input.byte(), input.byte()) else {
                    break;
                };
                let topics = [
                    "jobs/notify-next",
                    "jobs/$next/get/accepted",
                    "jobs/$next/get/rejected",
                    "streams/S/data/cbor",
                    "streams/S/rejected/cbor",
                    "jobs/AFR_OTA-a/update/accepted",
                    "jobs/AFR_OTA-a/update/rejected",
                    "jobs/AFR_OTA-b/update/rejected",
                ];
                let payload = input.bytes(usize::from(n)).to_vec();
                d.publish(&topic(topics[usize::from(t) % topics.len()]), &payload);
            }
            6 => {
                let Some(ms) = input.u16() else { break };
                d.now += u64::from(ms) * 8;
                if d.agent.poll_timeout().is_some_and(|t| t.0 <= d.now) {
                    d.agent.handle_timeout(Instant(d.now));
                    d.drain();
                }
            }
            7 => {
                // Jump to the next deadline.
                if let Some(t) = d.agent.poll_timeout() {
                    d.now = d.now.max(t.0);
                    d.agent.handle_timeout(Instant(d.now));
                    d.drain();
                }
            }
            8 => {
                // Answer the awaited PAL command (or a stray one).
                let Some(b) = input.byte() else { break };
                let kind = if b & 0x80 == 0 {
                    d.pending.unwrap_or(b)
                } else {
                    b
                };
                d.complete(completion(kind, b & 1 == 0));
            }
            9 => {
                d.connected = false;
                d.agent.disconnected(now);
                d.drain();
            }
            10 => d.connect(),
            11 => d.fail_writes = !d.fail_writes,
            12 => {
                let Some(b) = input.byte() else { break };
                for j in ["AFR_OTA-a", "AFR_OTA-b"] {
                    let t = topic(&format!(
                        "jobs/{j}/update/{}",
                        if b & 1 == 0 { "accepted" } else { "rejected" }
                    ));
                    let p: &[u8] = if b & 1 == 0 {
                        b"{}"
                    } else {
                        br#"{"code":"TerminalStateReached"}"#
                    };
                    d.publish(&t, p);
                }
            }
            13 => {
                let Some(b) = input.byte() else { break };
                match b % 3 {
                    0 => d.agent.check_for_update(now),
                    1 => {
                        d.agent.abort_job(now);
                    }
                    _ => {
                        // HTTP: a body for a block, or a failure.
                        if b & 8 != 0 {
                            let f = if b & 16 != 0 {
                                HttpFailure::Expired
                            } else {
                                HttpFailure::Other
                            };
                            d.agent.http_failed(now, f);
                        } else {
                            let k = u32::from(b >> 5);
                            let size = d.journal.as_ref().map_or(4000, |j| j.file_size);
                            let len = size.saturating_sub(k * BLOCK).min(BLOCK) as usize;
                            let body = vec![b; len];
                            if let Received::Block { index, .. } =
                                d.agent.handle_http_block(now, k, &body)
                            {
                                d.write(index);
                            }
                        }
                    }
                }
                d.drain();
            }
            14 => {
                // Reboot: a new agent restored from the journal.
                let Some(p) = input.byte() else { break };
                let journal = d.journal.clone();
                let blocks = d.journal_blocks.clone();
                d = Device::boot(PLATFORMS[usize::from(p & 3)], journal, blocks);
            }
            _ => {
                // A stray completion of any kind.
                let Some(b) = input.byte() else { break };
                d.complete(completion(b, b & 1 == 0));
            }
        }
    }
});
