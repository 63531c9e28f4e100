//! The AT line codec: command formatting, escaping, response and event parsing (spec §1, §4).
//!
//! Everything here is pure: functions over byte slices, no I/O, no allocation.

/// Errors of the pure codec functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CodecError {
    /// The output buffer is too small.
    BufferFull,
    /// A backslash followed by something other than `A`, `D` or `\` (the module's `ERR5`).
    InvalidEscape,
    /// A backslash at the very end of the text.
    TruncatedEscape,
    /// The line is neither `OK…` nor `ERR{n}…`.
    NotAResponse,
    /// A number in the line is missing, too long or not a number.
    BadNumber,
}

/// The escaped form of one byte, or `None` when the byte stands for itself.
///
/// Mapping byte by byte is what makes "backslash first" automatic: the C port that replaces
/// LF with `\A` and then doubles every backslash turns a LF into `\\A` (a literal backslash
/// and an `A` on the module side). Here each input byte is looked at exactly once.
const fn escaped(b: u8) -> Option<[u8; 2]> {
    match b {
        b'\\' => Some(*b"\\\\"),
        b'\n' => Some(*b"\\A"),
        b'\r' => Some(*b"\\D"),
        _ => None,
    }
}

/// Number of bytes `src` takes once escaped.
pub fn escaped_len(src: &[u8]) -> usize {
    src.iter()
        .map(|&b| if escaped(b).is_some() { 2 } else { 1 })
        .sum()
}

/// Escape `src` into `out` (`\` → `\\`, LF → `\A`, CR → `\D`) and return the length written.
pub fn escape_into(src: &[u8], out: &mut [u8]) -> Result<usize, CodecError> {
    let mut n = 0;
    for &b in src {
        let (pair, len) = match escaped(b) {
            Some(p) => (p, 2),
            None => ([b, 0], 1),
        };
        for &c in pair.iter().take(len) {
            *out.get_mut(n).ok_or(CodecError::BufferFull)? = c;
            n += 1;
        }
    }
    Ok(n)
}

/// Unescape `buf` in place, left to right in one pass, and return the new length.
///
/// `\A` → LF, `\D` → CR, `\\` → `\`; any other `\x` is [`CodecError::InvalidEscape`].
pub fn unescape_in_place(buf: &mut [u8]) -> Result<usize, CodecError> {
    let mut r = 0;
    let mut w = 0;
    while let Some(&b) = buf.get(r) {
        let out = if b == b'\\' {
            r += 1;
            match buf.get(r) {
                Some(b'A') => b'\n',
                Some(b'D') => b'\r',
                Some(b'\\') => b'\\',
                Some(_) => return Err(CodecError::InvalidEscape),
                None => return Err(CodecError::TruncatedEscape),
            }
        } else {
            b
        };
        *buf.get_mut(w).ok_or(CodecError::BufferFull)? = out;
        r += 1;
        w += 1;
    }
    Ok(w)
}

/// Unescape `src` into `out` (see [`unescape_in_place`]) and return the length written.
pub fn unescape_into(src: &[u8], out: &mut [u8]) -> Result<usize, CodecError> {
    let dst = out.get_mut(..src.len()).ok_or(CodecError::BufferFull)?;
    dst.copy_from_slice(src);
    unescape_in_place(dst)
}

/// Format `u32` as decimal into `buf`, returning the digits.
pub(crate) fn fmt_decimal(mut v: u32, buf: &mut [u8; 10]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        if let Some(slot) = buf.get_mut(i) {
            *slot = b'0' + (v % 10) as u8;
        }
        v /= 10;
        if v == 0 || i == 0 {
            break;
        }
    }
    buf.get(i..).unwrap_or(&[])
}

/// Format a whole command line into `out`: `AT+` verb, optional decimal suffix, and when
/// `param` is given one space and the escaped parameter; then a single LF (spec §1.1: LF is
/// valid in every dialect). Returns the length written.
///
/// `verb` is written as given (`OTA`, `OTA?`, `CONF?`, `SEND`); it must not contain spaces.
pub fn format_command(
    out: &mut [u8],
    verb: &str,
    suffix: Option<u32>,
    param: Option<&[u8]>,
) -> Result<usize, CodecError> {
    let mut n = 0;
    let mut put = |bytes: &[u8], n: &mut usize| -> Result<(), CodecError> {
        let end = *n + bytes.len();
        out.get_mut(*n..end)
            .ok_or(CodecError::BufferFull)?
            .copy_from_slice(bytes);
        *n = end;
        Ok(())
    };
    put(b"AT+", &mut n)?;
    put(verb.as_bytes(), &mut n)?;
    if let Some(s) = suffix {
        let mut digits = [0u8; 10];
        put(fmt_decimal(s, &mut digits), &mut n)?;
    }
    if let Some(p) = param {
        put(b" ", &mut n)?;
        for &b in p {
            match escaped(b) {
                Some(pair) => put(&pair, &mut n)?,
                None => put(&[b], &mut n)?,
            }
        }
    }
    put(b"\n", &mut n)?;
    Ok(n)
}

/// A response line from the module (without its EOL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Response<'a> {
    /// `OK[#][ detail]`.
    Ok {
        /// The `OK#` suffix: how many more lines follow (v1.0+). `None` when absent.
        extra_lines: Option<u32>,
        /// Everything after the first space, still escaped. Empty for a bare `OK`.
        detail: &'a [u8],
    },
    /// `ERR{n}[ text]`. Match on the code; the text differs between guide versions.
    Err {
        /// The error code.
        code: ErrCode,
        /// The human-readable text after the code (may start with a hint number, `ERR14`).
        text: &'a [u8],
    },
}

/// Parse an unsigned decimal of 1 to `max` digits.
pub(crate) fn parse_dec(s: &[u8], max: usize) -> Result<u32, CodecError> {
    if s.is_empty() || s.len() > max {
        return Err(CodecError::BadNumber);
    }
    let mut v: u32 = 0;
    for &c in s {
        if !c.is_ascii_digit() {
            return Err(CodecError::BadNumber);
        }
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add(u32::from(c - b'0')))
            .ok_or(CodecError::BadNumber)?;
    }
    Ok(v)
}

/// Value of one hex digit (either case).
pub(crate) const fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Parse 1 to `max` hex digits (either case).
pub(crate) fn parse_hex(s: &[u8], max: usize) -> Result<u32, CodecError> {
    if s.is_empty() || s.len() > max || max > 8 {
        return Err(CodecError::BadNumber);
    }
    s.iter().try_fold(0u32, |acc, &c| {
        hex_val(c)
            .map(|d| (acc << 4) | u32::from(d))
            .ok_or(CodecError::BadNumber)
    })
}

/// Split at the first space: (head, rest-after-space). No space: (all, empty).
pub(crate) fn split_space(s: &[u8]) -> (&[u8], &[u8]) {
    match s.iter().position(|&b| b == b' ') {
        Some(i) => (s.get(..i).unwrap_or(&[]), s.get(i + 1..).unwrap_or(&[])),
        None => (s, &[]),
    }
}

/// Parse one response line (EOL already removed). Leading/trailing CR are the framer's job.
pub fn parse_response(line: &[u8]) -> Result<Response<'_>, CodecError> {
    if let Some(rest) = line.strip_prefix(b"OK") {
        let digits = rest.iter().take_while(|c| c.is_ascii_digit()).count();
        let (num, after) = rest
            .split_at_checked(digits)
            .ok_or(CodecError::NotAResponse)?;
        let extra_lines = if num.is_empty() {
            None
        } else {
            Some(parse_dec(num, 9)?)
        };
        let detail = match after {
            [] => &[][..],
            [b' ', detail @ ..] => detail,
            _ => return Err(CodecError::NotAResponse),
        };
        return Ok(Response::Ok {
            extra_lines,
            detail,
        });
    }
    if let Some(rest) = line.strip_prefix(b"ERR") {
        let digits = rest.iter().take_while(|c| c.is_ascii_digit()).count();
        let (num, after) = rest
            .split_at_checked(digits)
            .ok_or(CodecError::NotAResponse)?;
        let code = parse_dec(num, 5)?;
        let code = u16::try_from(code).map_err(|_| CodecError::BadNumber)?;
        let text = match after {
            [] => &[][..],
            [b' ', text @ ..] => text,
            _ => return Err(CodecError::NotAResponse),
        };
        return Ok(Response::Err {
            code: ErrCode::from_code(code),
            text,
        });
    }
    Err(CodecError::NotAResponse)
}

/// `ERR{n}` codes, both tables (spec §1.2). Match on these, never on the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum ErrCode {
    Overflow,
    ParseError,
    CommandNotFound,
    ParameterError,
    InvalidEscape,
    NoConnection,
    /// 7: `TOPIC OUT OF RANGE` (v0.5/CCM) / `OUT OF RANGE` (latest).
    OutOfRange,
    /// 8: `TOPIC UNDEFINED` (v0.5/CCM) / `PARAMETER UNDEFINED` (latest).
    Undefined,
    InvalidKeyLength,
    InvalidKeyName,
    UnknownKey,
    KeyReadOnly,
    KeyWriteOnly,
    UnableToConnect,
    TimeNotAvailable,
    LocationNotAvailable,
    ModeNotAvailable,
    ActiveConnection,
    /// 19: no valid host image in the OTA buffer, or not ready yet.
    HostImageNotAvailable,
    /// 20: OTA read pointer out of bounds.
    InvalidAddress,
    /// 21: the OTA update failed, or nothing to accept.
    InvalidOtaUpdate,
    /// 22: `INVALID QUERY` (v0.5/CCM), reserved in latest.
    InvalidQuery,
    /// 23: signature check failed.
    InvalidSignature,
    ShadowError,
    NotAllowed,
    InvalidCertificate,
    BleError,
    ConfigurationError,
    InsufficientSecurity,
    /// Any other code.
    Other(u16),
}

impl ErrCode {
    const TABLE: [ErrCode; 29] = [
        Self::Overflow,
        Self::ParseError,
        Self::CommandNotFound,
        Self::ParameterError,
        Self::InvalidEscape,
        Self::NoConnection,
        Self::OutOfRange,
        Self::Undefined,
        Self::InvalidKeyLength,
        Self::InvalidKeyName,
        Self::UnknownKey,
        Self::KeyReadOnly,
        Self::KeyWriteOnly,
        Self::UnableToConnect,
        Self::TimeNotAvailable,
        Self::LocationNotAvailable,
        Self::ModeNotAvailable,
        Self::ActiveConnection,
        Self::HostImageNotAvailable,
        Self::InvalidAddress,
        Self::InvalidOtaUpdate,
        Self::InvalidQuery,
        Self::InvalidSignature,
        Self::ShadowError,
        Self::NotAllowed,
        Self::InvalidCertificate,
        Self::BleError,
        Self::ConfigurationError,
        Self::InsufficientSecurity,
    ];

    /// The variant for a numeric code.
    pub fn from_code(code: u16) -> Self {
        usize::from(code)
            .checked_sub(1)
            .and_then(|i| Self::TABLE.get(i).copied())
            .unwrap_or(Self::Other(code))
    }

    /// The numeric code.
    pub fn code(self) -> u16 {
        match self {
            Self::Other(c) => c,
            known => Self::TABLE
                .iter()
                .position(|&k| k == known)
                .map_or(0, |i| i as u16 + 1),
        }
    }
}

/// Which edition of the ExpressLink guide the module follows (spec §7, §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Dialect {
    /// Not determined yet. The parsers accept both dialects anyway.
    #[default]
    Unknown,
    /// PG v0.5 and the AIROC CCM: LF out, no `OK#`, LIFO events, event 6 = SHADOW,
    /// events without a parameter, 2-digit READ checksum (CCM text).
    Legacy,
    /// PG v1.x: CR LF out, `OK#`, FIFO events, event 6 = CONNECT, 4-digit sum16 checksum.
    Modern,
}

impl Dialect {
    /// The dialect named by a `TechSpec` value such as `v0.5`, `v1.1.2`, `1.3`.
    pub fn from_techspec(value: &[u8]) -> Self {
        let v = value
            .strip_prefix(b"v")
            .or(value.strip_prefix(b"V"))
            .unwrap_or(value);
        let major = v.iter().take_while(|c| c.is_ascii_digit()).count();
        match v.get(..major).map(|d| parse_dec(d, 4)) {
            Some(Ok(0)) => Self::Legacy,
            Some(Ok(_)) => Self::Modern,
            _ => Self::Unknown,
        }
    }
}

/// What an event id means (both event tables, spec §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// 1: message received on topic `param`.
    Msg,
    /// 2: the module entered the active state (boot, reset, wake, after APPLY).
    Startup,
    /// 3: connection lost.
    ConLost,
    /// 4: receive buffer overrun.
    Overrun,
    /// 5: OTA state changed; read `OTA?`.
    Ota,
    /// 6 on v0.5/CCM: SHADOW.
    Shadow,
    /// 6 on v1.1+: CONNECT, with the connect hint as parameter (0 = success).
    Connect,
    /// 7: CONFMODE finished.
    ConfMode,
    /// 8: subscription acknowledged.
    SubAck,
    /// 9: subscription refused.
    SubNack,
    /// 10: QoS 1 publish acknowledged.
    PubAck,
    /// 20–27: shadow events (the id is kept in [`Event::id`]).
    ShadowEvent,
    /// 40–47: BLE events.
    Ble,
    /// ≥ 1000: vendor events.
    Vendor,
    /// Any other id.
    Unknown,
}

impl EventKind {
    /// The meaning of `id`; event 6 depends on the dialect (CONNECT unless [`Dialect::Legacy`]).
    pub fn from_id(id: u16, dialect: Dialect) -> Self {
        match id {
            1 => Self::Msg,
            2 => Self::Startup,
            3 => Self::ConLost,
            4 => Self::Overrun,
            5 => Self::Ota,
            6 if dialect == Dialect::Legacy => Self::Shadow,
            6 => Self::Connect,
            7 => Self::ConfMode,
            8 => Self::SubAck,
            9 => Self::SubNack,
            10 => Self::PubAck,
            20..=27 => Self::ShadowEvent,
            40..=47 => Self::Ble,
            1000.. => Self::Vendor,
            _ => Self::Unknown,
        }
    }
}

/// One event from `AT+EVENT?`: `OK {id} [{param}] {mnemonic} [detail]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event<'a> {
    /// The event id.
    pub id: u16,
    /// The numeric parameter, when the token after the id is numeric. The CCM prints the OTA
    /// event with no parameter; Espressif firmware puts the OTA state code there.
    pub param: Option<u32>,
    /// What the id means.
    pub kind: EventKind,
    /// Mnemonic and detail, opaque (mnemonics may contain spaces).
    pub text: &'a [u8],
}

/// Parse the detail of an `AT+EVENT?` reply. An empty detail (bare `OK`) is `Ok(None)`.
pub fn parse_event(detail: &[u8], dialect: Dialect) -> Result<Option<Event<'_>>, CodecError> {
    if detail.is_empty() {
        return Ok(None);
    }
    let (id, rest) = split_space(detail);
    let id = u16::try_from(parse_dec(id, 5)?).map_err(|_| CodecError::BadNumber)?;
    let (tok, after) = split_space(rest);
    let (param, text) = match parse_dec(tok, 9) {
        Ok(p) => (Some(p), after),
        Err(_) => (None, rest),
    };
    Ok(Some(Event {
        id,
        param,
        kind: EventKind::from_id(id, dialect),
        text,
    }))
}

/// The `AT+OTA?` state code (spec §2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OtaCode {
    /// 0: no OTA in progress.
    Idle,
    /// 1: a module update is proposed.
    ModuleProposed,
    /// 2: a host update is proposed.
    HostProposed,
    /// 3: download and/or signature check under way.
    InProgress,
    /// 4: a verified module image is ready; APPLY when convenient.
    ModuleReady,
    /// 5: a verified host image is in the OTA buffer.
    HostReady,
    /// Any other code.
    Other(u16),
}

impl OtaCode {
    /// The variant for a numeric state.
    pub fn from_code(code: u16) -> Self {
        match code {
            0 => Self::Idle,
            1 => Self::ModuleProposed,
            2 => Self::HostProposed,
            3 => Self::InProgress,
            4 => Self::ModuleReady,
            5 => Self::HostReady,
            c => Self::Other(c),
        }
    }
}

/// A parsed `AT+OTA?` reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OtaStatus<'a> {
    /// The leading integer.
    pub code: OtaCode,
    /// Everything after it, opaque: a version (state 1, v0.5), operator metadata (2), a size
    /// (5, v0.5 only) or a description word and optional JSON (latest).
    pub detail: &'a [u8],
}

impl OtaStatus<'_> {
    /// The file size, when the detail is a plain decimal number (PG-0.5 state 5 only; do not
    /// rely on it).
    pub fn size_hint(&self) -> Option<u32> {
        let (head, _) = split_space(self.detail);
        parse_dec(head, 10).ok()
    }
}

/// Parse the detail of an `AT+OTA?` reply: only the leading integer is interpreted.
pub fn parse_ota_status(detail: &[u8]) -> Result<OtaStatus<'_>, CodecError> {
    let (code, detail) = split_space(detail);
    let code = u16::try_from(parse_dec(code, 5)?).map_err(|_| CodecError::BadNumber)?;
    Ok(OtaStatus {
        code: OtaCode::from_code(code),
        detail,
    })
}
