//! Emulator settings: dialect, OTA event parameter, limits and faults.

use anyhow::{bail, Context, Result};

/// Which guide the module follows in what it emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// PG v0.5 and the AIROC CCM: LF out, LF-only in, 2-digit READ checksum (sum mod 256),
    /// `EVENT?` returns the most recent event (LIFO), OTA event with no parameter, the v0.5
    /// `OTA?` details (version / metadata / size), `TechSpec` v0.5.
    Ccm,
    /// PG v1.3: CR LF out, CR or LF in, 4-digit READ checksum (sum mod 65536), FIFO events
    /// dropping the oldest when full, `OK 5 0 OTA`, `OTA?` description words (+ `DOC` JSON),
    /// `TechSpec` v1.3.
    V13,
}

impl std::str::FromStr for Dialect {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "ccm" | "v0.5" | "0.5" => Ok(Self::Ccm),
            "v1.3" | "1.3" | "v1" | "latest" => Ok(Self::V13),
            o => bail!("unknown dialect '{o}' (ccm or v1.3)"),
        }
    }
}

/// What the OTA event (id 5) carries as its parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtaEventParam {
    /// 0, as the guide says (`OK 5 0 OTA`).
    Zero,
    /// The OTA state code (Espressif practice).
    State,
    /// No parameter (the CCM text: `OK 5 OTA event New Image verified`).
    Absent,
}

impl std::str::FromStr for OtaEventParam {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "0" | "zero" => Ok(Self::Zero),
            "state" => Ok(Self::State),
            "absent" | "none" => Ok(Self::Absent),
            o => bail!("unknown OTA event parameter '{o}' (zero, state or absent)"),
        }
    }
}

/// An injected fault. READ counts are 1-based and count READ replies that carry data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// `corrupt-checksum=N`: the Nth READ reply's checksum is off by one bit.
    CorruptChecksum(u32),
    /// `corrupt-data=N`: one data hex digit of the Nth READ reply is changed.
    CorruptData(u32),
    /// `short-read=BYTES`: MaxOTARead lowered to BYTES (at most 2048).
    ShortRead(usize),
    /// `drop-response=N`: no reply at all to the Nth READ (the pointer still moved).
    DropResponse(u32),
    /// `truncate=N`: the Nth READ reply is cut in the middle of its data (EOL kept).
    Truncate(u32),
    /// `no-eol=N`: the Nth READ reply comes without its EOL (it runs into the next reply).
    NoEol(u32),
    /// `blank-line=N`: an unsolicited blank line (and NUL/0xFF noise) before the Nth READ
    /// reply.
    BlankLine(u32),
    /// `late=N:MS`: the Nth READ reply is sent MS milliseconds late (after a command timeout,
    /// or just under the 120 s ceiling).
    Late(u32, u64),
    /// `reset-at=OFFSET`: the module resets (no reply; STARTUP queued) on the first READ that
    /// starts at or past OFFSET.
    ResetAt(u64),
    /// `err=VERB:CODE[@N]`: answer `ERR{CODE}` to the Nth (default: every) `VERB`, one of
    /// accept, read, seek, apply, close, flush, connect.
    Err {
        /// The verb, lower case.
        verb: String,
        /// The error code (19, 20, 21, 23…).
        code: u8,
        /// Which occurrence (1-based); 0 for every one.
        nth: u32,
    },
}

impl std::str::FromStr for Fault {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        let (k, v) = s
            .split_once('=')
            .with_context(|| format!("--fault {s}: expected KIND=VALUE"))?;
        let num = |v: &str| -> Result<u64> {
            v.parse()
                .with_context(|| format!("--fault {s}: '{v}' is not a number"))
        };
        Ok(match k {
            "corrupt-checksum" => Self::CorruptChecksum(num(v)? as u32),
            "corrupt-data" => Self::CorruptData(num(v)? as u32),
            "short-read" => Self::ShortRead(num(v)? as usize),
            "drop-response" => Self::DropResponse(num(v)? as u32),
            "reset-at" => Self::ResetAt(num(v)?),
            "truncate" => Self::Truncate(num(v)? as u32),
            "late" => {
                let (n, ms) = v
                    .split_once(':')
                    .with_context(|| format!("--fault {s}: expected late=N:MS"))?;
                Self::Late(num(n)? as u32, num(ms)?)
            }
            "no-eol" => Self::NoEol(num(v)? as u32),
            "blank-line" => Self::BlankLine(num(v)? as u32),
            "err" => {
                let (verb, rest) = v
                    .split_once(':')
                    .with_context(|| format!("--fault {s}: expected err=VERB:CODE[@N]"))?;
                let (code, nth) = match rest.split_once('@') {
                    Some((c, n)) => (num(c)?, num(n)?),
                    None => (num(rest)?, 0),
                };
                let verb = verb.to_ascii_lowercase();
                if !matches!(
                    verb.as_str(),
                    "accept" | "read" | "seek" | "apply" | "close" | "flush" | "connect"
                ) {
                    bail!("--fault {s}: unknown verb '{verb}'");
                }
                Self::Err {
                    verb,
                    code: u8::try_from(code).context("error code too large")?,
                    nth: nth as u32,
                }
            }
            o => bail!(
                "unknown fault '{o}' (corrupt-checksum, corrupt-data, short-read, drop-response, truncate, no-eol, late, blank-line, reset-at, err)"
            ),
        })
    }
}

/// Emulator settings.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The dialect emitted.
    pub dialect: Dialect,
    /// The module's thing name.
    pub thing: String,
    /// The module firmware version at power-on.
    pub version: String,
    /// What the OTA event carries as its parameter.
    pub ota_event_param: OtaEventParam,
    /// READ checksum width: 2 (CCM text, sum mod 256) or 4 (v1.3, sum mod 65536).
    pub checksum_digits: u8,
    /// MaxOTARead (the CCM's is 2048).
    pub max_ota_read: usize,
    /// Event queue depth.
    pub event_depth: usize,
    /// The OTA state and buffer survive a reset (undocumented; a switch, spec §3.3).
    pub persist_ota: bool,
    /// Send NUL/0xFF noise after a reboot (as real modules do).
    pub startup_noise: bool,
    /// Faults to inject.
    pub faults: Vec<Fault>,
}

impl SimConfig {
    /// Defaults for a dialect: CCM → 2-digit checksum, no OTA event parameter; v1.3 → 4
    /// digits, parameter 0. MaxOTARead 2048, queue depth 16, OTA state persists.
    pub fn new(dialect: Dialect, thing: &str) -> Self {
        Self {
            dialect,
            thing: thing.to_string(),
            version: "1.0.0".into(),
            ota_event_param: match dialect {
                Dialect::Ccm => OtaEventParam::Absent,
                Dialect::V13 => OtaEventParam::Zero,
            },
            checksum_digits: match dialect {
                Dialect::Ccm => 2,
                Dialect::V13 => 4,
            },
            max_ota_read: 2048,
            event_depth: 16,
            persist_ota: true,
            startup_noise: false,
            faults: Vec::new(),
        }
    }

    /// The READ cap in effect (MaxOTARead, lowered by a `short-read` fault; never above 2048
    /// when a fault asks for it).
    pub fn max_ota_read(&self) -> usize {
        let mut m = self.max_ota_read.max(1);
        for f in &self.faults {
            if let Fault::ShortRead(n) = f {
                m = m.min((*n).clamp(1, 2048));
            }
        }
        m
    }

    /// The longest command line accepted (5 KB on v0.5/CCM, 9 KB on v1.3).
    pub fn max_line(&self) -> usize {
        match self.dialect {
            Dialect::Ccm => 5 * 1024,
            Dialect::V13 => 9 * 1024,
        }
    }
}
