//! The driver: line framing over a UART, one command at a time, with a timeout on each.

use core::ops::Range;

use embedded_io_async::{Read, Write};
use ota_pal_traits::PalError;

use crate::codec::{
    fmt_decimal, parse_event, parse_ota_status, parse_response, CodecError, Dialect, ErrCode,
    Event, OtaCode, OtaStatus, Response,
};
use crate::read::{parse_read_reply, parse_seek_reply, ReadError, ReadReply};
use crate::time::{select, Clock, Either};

/// Everything that can go wrong talking to the module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error<E> {
    /// The UART failed.
    Io(E),
    /// The UART reported end of stream.
    Eof,
    /// No reply within the command's timeout. The driver drains late lines before the next
    /// command.
    Timeout,
    /// A reply line longer than the RX buffer (it was discarded).
    Overflow,
    /// A reply that is neither `OK…` nor `ERR{n}…`, or a detail that does not parse.
    Malformed,
    /// The module answered `ERR{n}`. ERR19/20/21/23 are [`ErrCode::HostImageNotAvailable`],
    /// [`ErrCode::InvalidAddress`], [`ErrCode::InvalidOtaUpdate`], [`ErrCode::InvalidSignature`].
    Module(ErrCode),
    /// A READ reply failed its checks (format or checksum).
    Read(ReadError),
    /// The SEEK echo is not the address asked for.
    SeekMismatch {
        /// The address sent.
        asked: u32,
        /// The address echoed (hex, decoded).
        echoed: u32,
    },
    /// A parameter could not be encoded (escaping or buffer).
    Codec(CodecError),
    /// The board's storage, verifier or boot control failed.
    Pal(PalError),
    /// The host-side signature check refused the image; the download was aborted.
    SignatureRejected(PalError),
    /// A chunk failed more than `max_retries` times in a row.
    TooManyRetries,
    /// The host policy refused the proposal; `AT+OTA FLUSH` was sent (job → FAILED).
    Declined,
    /// `OTA?` reported a state the flow cannot continue from.
    UnexpectedState(OtaCode),
    /// `OTA?` reported 0 (the job went away) while the flow waited for it.
    JobGone,
    /// The state or event awaited did not come within `max_polls` polls.
    NotReady,
    /// The image read differs in size from the size the job announced.
    SizeMismatch {
        /// The size announced.
        expected: u32,
        /// The bytes read.
        got: u32,
    },
}

impl<E> Error<E> {
    /// Worth a SEEK back and a re-read in the download loop.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Timeout
                | Self::Overflow
                | Self::Malformed
                | Self::Read(_)
                | Self::SeekMismatch { .. }
        )
    }
}

impl<E> From<PalError> for Error<E> {
    fn from(e: PalError) -> Self {
        Self::Pal(e)
    }
}

/// Timeouts, polling and download tuning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Timeout for ordinary commands (the guide's ceiling is 120 s for any command).
    pub command_timeout_ms: u32,
    /// Timeout for `AT+CONNECT`.
    pub connect_timeout_ms: u32,
    /// After a timeout, lines are drained until the UART is quiet this long.
    pub quiet_ms: u32,
    /// Pause between `OTA?` / `EVENT?` polls.
    pub poll_interval_ms: u32,
    /// How many polls a wait (state 3 → 4/5, CLOSE → 0, APPLY → STARTUP) may take.
    pub max_polls: u32,
    /// Bytes asked per `AT+OTA READ` (the CCM returns at most 2048); at most the RX buffer's
    /// [`crate::read_line_len`] capacity.
    pub read_size: u32,
    /// Re-reads of one chunk before the download fails.
    pub max_retries: u8,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            command_timeout_ms: 10_000,
            connect_timeout_ms: 120_000,
            quiet_ms: 200,
            poll_interval_ms: 1_000,
            max_polls: 3_600,
            read_size: 2048,
            max_retries: 5,
        }
    }
}

/// Reply line framing: splits on LF, strips one trailing CR, drops empty lines and NUL/0xFF
/// noise, and discards (and reports) lines longer than `N`.
#[derive(Debug)]
pub struct LineBuf<const N: usize> {
    buf: [u8; N],
    start: usize,
    filled: usize,
    discarding: bool,
    saw_crlf: bool,
    saw_lf: bool,
}

impl<const N: usize> Default for LineBuf<N> {
    fn default() -> Self {
        Self::new()
    }
}

/// Errors of [`LineBuf::next_line`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError<E> {
    /// The reader failed.
    Io(E),
    /// The reader returned 0 bytes.
    Eof,
    /// A line longer than the buffer was dropped.
    Overflow,
}

impl<const N: usize> LineBuf<N> {
    /// An empty buffer.
    pub const fn new() -> Self {
        Self {
            buf: [0; N],
            start: 0,
            filled: 0,
            discarding: false,
            saw_crlf: false,
            saw_lf: false,
        }
    }

    /// Feed bytes directly (for callers with their own reader, and for fuzzing); returns how
    /// many were taken (NUL/0xFF are taken and dropped).
    pub fn push(&mut self, bytes: &[u8]) -> usize {
        self.compact();
        let mut taken = 0;
        for &b in bytes {
            if self.filled >= N {
                if self.has_line() {
                    break;
                }
                self.discarding = true;
                self.filled = 0;
            }
            taken += 1;
            if b != 0 && b != 0xFF {
                if let Some(slot) = self.buf.get_mut(self.filled) {
                    *slot = b;
                    self.filled += 1;
                }
            }
        }
        taken
    }

    fn has_line(&self) -> bool {
        self.buf
            .get(self.start..self.filled)
            .is_some_and(|s| s.contains(&b'\n'))
    }

    fn compact(&mut self) {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.filled, 0);
            self.filled -= self.start;
            self.start = 0;
        }
    }

    /// Take the next complete line already buffered, if any.
    pub fn take_line(&mut self) -> Option<Result<Range<usize>, ()>> {
        loop {
            let pending = self.buf.get(self.start..self.filled)?;
            let p = pending.iter().position(|&b| b == b'\n')?;
            let begin = self.start;
            let mut end = begin + p;
            self.start = end + 1;
            if self.discarding {
                self.discarding = false;
                return Some(Err(()));
            }
            if end > begin && self.buf.get(end - 1) == Some(&b'\r') {
                end -= 1;
                self.saw_crlf = true;
            } else {
                self.saw_lf = true;
            }
            if end > begin {
                return Some(Ok(begin..end));
            }
        }
    }

    /// Read until a complete non-empty line is buffered and return its range.
    pub async fn next_line<R: Read>(
        &mut self,
        io: &mut R,
    ) -> Result<Range<usize>, FrameError<R::Error>> {
        loop {
            match self.take_line() {
                Some(Ok(r)) => return Ok(r),
                Some(Err(())) => return Err(FrameError::Overflow),
                None => {}
            }
            self.compact();
            if self.filled >= N {
                self.discarding = true;
                self.filled = 0;
            }
            let dst = self.buf.get_mut(self.filled..).unwrap_or(&mut []);
            let n = io.read(dst).await.map_err(FrameError::Io)?;
            if n == 0 {
                return Err(FrameError::Eof);
            }
            let mut w = self.filled;
            for r in self.filled..self.filled + n {
                let b = self.buf.get(r).copied().unwrap_or(0);
                if b != 0 && b != 0xFF {
                    if let Some(slot) = self.buf.get_mut(w) {
                        *slot = b;
                    }
                    w += 1;
                }
            }
            self.filled = w;
        }
    }

    /// The bytes of a line returned by [`next_line`](Self::next_line) / [`take_line`](Self::take_line).
    pub fn line(&self, r: Range<usize>) -> &[u8] {
        self.buf.get(r).unwrap_or(&[])
    }

    /// Mutable access to a line (unescaping, in-place READ decoding).
    pub fn line_mut(&mut self, r: Range<usize>) -> &mut [u8] {
        self.buf.get_mut(r).unwrap_or(&mut [])
    }

    /// Whether LF-only and CR LF line ends have been seen (a dialect hint).
    pub fn eol_seen(&self) -> (bool, bool) {
        (self.saw_lf, self.saw_crlf)
    }
}

impl<E> From<FrameError<E>> for Error<E> {
    fn from(e: FrameError<E>) -> Self {
        match e {
            FrameError::Io(e) => Self::Io(e),
            FrameError::Eof => Self::Eof,
            FrameError::Overflow => Self::Overflow,
        }
    }
}

/// The ExpressLink driver over a UART `IO`, a [`Clock`] `C`, and an `N`-byte RX line buffer.
///
/// Size `N` with [`crate::read_line_len`]`(read_size)`: 4 112 bytes for 2 KB reads. No TX
/// buffer: commands are written in pieces.
#[derive(Debug)]
pub struct ExpressLink<IO, C, const N: usize> {
    io: IO,
    clock: C,
    rx: LineBuf<N>,
    config: Config,
    dialect: Dialect,
    desync: bool,
    extra: u32,
}

/// Write the command line `AT+{verb}{suffix}[ {escaped param}]\n` (a bare `AT\n` for an empty
/// verb) in pieces.
async fn write_command<W: Write>(
    io: &mut W,
    verb: &str,
    suffix: Option<u32>,
    param: Option<&[&[u8]]>,
) -> Result<(), W::Error> {
    io.write_all(if verb.is_empty() { b"AT" } else { b"AT+" })
        .await?;
    io.write_all(verb.as_bytes()).await?;
    if let Some(s) = suffix {
        let mut d = [0u8; 10];
        io.write_all(fmt_decimal(s, &mut d)).await?;
    }
    if let Some(parts) = param {
        io.write_all(b" ").await?;
        let mut scratch = [0u8; 64];
        for piece in parts.iter().flat_map(|p| p.chunks(32)) {
            // 32 bytes escape to at most 64.
            let n = crate::codec::escape_into(piece, &mut scratch).unwrap_or(0);
            io.write_all(scratch.get(..n).unwrap_or(&[])).await?;
        }
    }
    io.write_all(b"\n").await?;
    io.flush().await
}

impl<IO: Read + Write, C: Clock, const N: usize> ExpressLink<IO, C, N> {
    /// A driver over `io`, timing with `clock`.
    pub fn new(io: IO, clock: C, config: Config) -> Self {
        Self {
            io,
            clock,
            rx: LineBuf::new(),
            config,
            dialect: Dialect::Unknown,
            desync: false,
            extra: 0,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The dialect found by [`detect_dialect`](Self::detect_dialect) (or set).
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Force the dialect (it only changes how event 6 is named; parsing accepts both).
    pub fn set_dialect(&mut self, d: Dialect) {
        self.dialect = d;
    }

    /// Give back the UART and the clock.
    pub fn into_parts(self) -> (IO, C) {
        (self.io, self.clock)
    }

    /// The UART (tests, pin handling).
    pub fn io_mut(&mut self) -> &mut IO {
        &mut self.io
    }

    /// The clock.
    pub fn clock_mut(&mut self) -> &mut C {
        &mut self.clock
    }

    /// Drop every line that arrives until the UART has been quiet for `quiet_ms` (at most 32
    /// lines): late replies to timed-out commands and unannounced extra lines.
    pub async fn drain(&mut self) -> Result<(), Error<IO::Error>> {
        for _ in 0..32 {
            match select(
                self.rx.next_line(&mut self.io),
                self.clock.delay_ms(self.config.quiet_ms),
            )
            .await
            {
                Either::First(Ok(_)) | Either::First(Err(FrameError::Overflow)) => {}
                Either::First(Err(e)) => return Err(e.into()),
                Either::Second(()) => break,
            }
        }
        self.desync = false;
        Ok(())
    }

    /// Send one command and return the range of its reply line (the first line that is an
    /// `OK`/`ERR` response; other lines, such as an echo, are skipped, at most 8 of them).
    pub async fn command_line(
        &mut self,
        verb: &str,
        suffix: Option<u32>,
        param: Option<&[u8]>,
        timeout_ms: u32,
    ) -> Result<Range<usize>, Error<IO::Error>> {
        match param {
            Some(p) => {
                self.command_parts(verb, suffix, Some(&[p]), timeout_ms)
                    .await
            }
            None => self.command_parts(verb, suffix, None, timeout_ms).await,
        }
    }

    /// [`command_line`](Self::command_line) with the parameter given in pieces (concatenated,
    /// then escaped), so `KEY=value` or `READ 2048` need no assembly buffer.
    async fn command_parts(
        &mut self,
        verb: &str,
        suffix: Option<u32>,
        param: Option<&[&[u8]]>,
        timeout_ms: u32,
    ) -> Result<Range<usize>, Error<IO::Error>> {
        if self.desync || self.extra > 0 {
            self.drain().await?;
            self.extra = 0;
        }
        let rx = &mut self.rx;
        let io = &mut self.io;
        let exchange = async {
            write_command(io, verb, suffix, param)
                .await
                .map_err(Error::Io)?;
            for _ in 0..8 {
                let r = rx.next_line(io).await?;
                if parse_response(rx.line(r.clone())).is_ok() {
                    return Ok(r);
                }
            }
            Err(Error::Malformed)
        };
        let out = match select(exchange, self.clock.delay_ms(timeout_ms)).await {
            Either::First(r) => r,
            Either::Second(()) => Err(Error::Timeout),
        };
        match &out {
            Ok(r) => {
                if let Ok(Response::Ok {
                    extra_lines: Some(n),
                    ..
                }) = parse_response(self.rx.line(r.clone()))
                {
                    // Extra lines not read by the caller are drained before the next command.
                    self.extra = n;
                }
            }
            Err(e) if e.is_transient() => self.desync = true,
            Err(_) => {}
        }
        out
    }

    /// Send one command and parse its reply. `ERR{n}` is returned as `Ok(Response::Err)`.
    pub async fn command(
        &mut self,
        verb: &str,
        suffix: Option<u32>,
        param: Option<&[u8]>,
        timeout_ms: u32,
    ) -> Result<Response<'_>, Error<IO::Error>> {
        let r = self.command_line(verb, suffix, param, timeout_ms).await?;
        parse_response(self.rx.line(r)).map_err(|_| Error::Malformed)
    }

    /// Send one command and return the `OK` detail; `ERR{n}` becomes [`Error::Module`].
    pub async fn command_ok(
        &mut self,
        verb: &str,
        suffix: Option<u32>,
        param: Option<&[u8]>,
    ) -> Result<&[u8], Error<IO::Error>> {
        let t = self.config.command_timeout_ms;
        match self.command(verb, suffix, param, t).await? {
            Response::Ok { detail, .. } => Ok(detail),
            Response::Err { code, .. } => Err(Error::Module(code)),
        }
    }

    /// Read one of the lines announced by `OK#` (the next raw line, escaped).
    pub async fn read_extra_line(&mut self) -> Result<&[u8], Error<IO::Error>> {
        let t = self.config.command_timeout_ms;
        let r = match select(self.rx.next_line(&mut self.io), self.clock.delay_ms(t)).await {
            Either::First(r) => r?,
            Either::Second(()) => {
                self.desync = true;
                return Err(Error::Timeout);
            }
        };
        self.extra = self.extra.saturating_sub(1);
        Ok(self.rx.line(r))
    }

    /// `AT`: the attention test.
    pub async fn attention(&mut self) -> Result<(), Error<IO::Error>> {
        self.command_ok("", None, None).await.map(|_| ())
    }

    /// Ask `AT+CONF? TechSpec` and set the dialect from it; when the key is refused or its
    /// value unreadable, fall back on the line ends seen (LF only → Legacy, CR LF → Modern).
    pub async fn detect_dialect(&mut self) -> Result<Dialect, Error<IO::Error>> {
        let t = self.config.command_timeout_ms;
        let by_spec = match self.command("CONF?", None, Some(b"TechSpec"), t).await? {
            Response::Ok { detail, .. } => Dialect::from_techspec(detail),
            Response::Err { .. } => Dialect::Unknown,
        };
        self.dialect = match (by_spec, self.rx.eol_seen()) {
            (Dialect::Unknown, (_, true)) => Dialect::Modern,
            (Dialect::Unknown, (true, false)) => Dialect::Legacy,
            (d, _) => d,
        };
        Ok(self.dialect)
    }

    /// `AT+CONF {key}={value}` (the value is escaped; any length the module accepts, e.g. a
    /// PEM certificate with its newlines).
    pub async fn conf(&mut self, key: &str, value: &[u8]) -> Result<(), Error<IO::Error>> {
        self.parts_ok("CONF", None, &[key.as_bytes(), b"=", value])
            .await
    }

    /// `AT+CONF Topic{index}={topic}`.
    pub async fn conf_topic(&mut self, index: u32, topic: &str) -> Result<(), Error<IO::Error>> {
        let mut d = [0u8; 10];
        let digits = fmt_decimal(index, &mut d);
        self.parts_ok("CONF", None, &[b"Topic", digits, b"=", topic.as_bytes()])
            .await
    }

    async fn parts_ok(
        &mut self,
        verb: &str,
        suffix: Option<u32>,
        parts: &[&[u8]],
    ) -> Result<(), Error<IO::Error>> {
        let t = self.config.command_timeout_ms;
        let r = self.command_parts(verb, suffix, Some(parts), t).await?;
        match parse_response(self.rx.line(r)) {
            Ok(Response::Ok { .. }) => Ok(()),
            Ok(Response::Err { code, .. }) => Err(Error::Module(code)),
            Err(_) => Err(Error::Malformed),
        }
    }

    /// `AT+CONNECT` (with the long connect timeout). `ERR14` is
    /// [`Error::Module`]`(`[`ErrCode::UnableToConnect`]`)`.
    pub async fn connect(&mut self) -> Result<(), Error<IO::Error>> {
        let t = self.config.connect_timeout_ms;
        match self.command("CONNECT", None, None, t).await? {
            Response::Ok { .. } => Ok(()),
            Response::Err { code, .. } => Err(Error::Module(code)),
        }
    }

    /// `AT+SEND{index} {message}`.
    pub async fn send(&mut self, index: u32, message: &[u8]) -> Result<(), Error<IO::Error>> {
        self.command_ok("SEND", Some(index), Some(message))
            .await
            .map(|_| ())
    }

    /// `AT+SUBSCRIBE{index}`.
    pub async fn subscribe(&mut self, index: u32) -> Result<(), Error<IO::Error>> {
        self.command_ok("SUBSCRIBE", Some(index), None)
            .await
            .map(|_| ())
    }

    /// `AT+UNSUBSCRIBE{index}`.
    pub async fn unsubscribe(&mut self, index: u32) -> Result<(), Error<IO::Error>> {
        self.command_ok("UNSUBSCRIBE", Some(index), None)
            .await
            .map(|_| ())
    }

    /// `AT+GET{index}`: the next message on topic `index`, unescaped into `out`; `None` when
    /// nothing is waiting.
    pub async fn get(
        &mut self,
        index: u32,
        out: &mut [u8],
    ) -> Result<Option<usize>, Error<IO::Error>> {
        let detail = self.command_ok("GET", Some(index), None).await?;
        if detail.is_empty() {
            return Ok(None);
        }
        crate::codec::unescape_into(detail, out)
            .map(Some)
            .map_err(Error::Codec)
    }

    /// `AT+EVENT?`: the next event, or `None` when the queue is empty.
    pub async fn event(&mut self) -> Result<Option<Event<'_>>, Error<IO::Error>> {
        let dialect = self.dialect;
        let detail = self.command_ok("EVENT?", None, None).await?;
        parse_event(detail, dialect).map_err(|_| Error::Malformed)
    }

    /// `AT+RESET`.
    pub async fn reset(&mut self) -> Result<(), Error<IO::Error>> {
        self.command_ok("RESET", None, None).await.map(|_| ())
    }

    /// `AT+OTA?`.
    pub async fn ota_status(&mut self) -> Result<OtaStatus<'_>, Error<IO::Error>> {
        let detail = self.command_ok("OTA?", None, None).await?;
        parse_ota_status(detail).map_err(|_| Error::Malformed)
    }

    async fn ota_verb(&mut self, verb: &[u8]) -> Result<(), Error<IO::Error>> {
        self.command_ok("OTA", None, Some(verb)).await.map(|_| ())
    }

    /// `AT+OTA ACCEPT` (`ERR21` when nothing is pending). Any `OK…` is success.
    pub async fn ota_accept(&mut self) -> Result<(), Error<IO::Error>> {
        self.ota_verb(b"ACCEPT").await
    }

    /// `AT+OTA FLUSH`: refuse a proposal or drop an image (job → FAILED).
    pub async fn ota_flush(&mut self) -> Result<(), Error<IO::Error>> {
        self.ota_verb(b"FLUSH").await
    }

    /// `AT+OTA CLOSE`: the host is done with its image (job → SUCCEEDED).
    pub async fn ota_close(&mut self) -> Result<(), Error<IO::Error>> {
        self.ota_verb(b"CLOSE").await
    }

    /// `AT+OTA APPLY`: install the module image and reboot (ERR19/21/23).
    pub async fn ota_apply(&mut self) -> Result<(), Error<IO::Error>> {
        self.ota_verb(b"APPLY").await
    }

    /// `AT+OTA SEEK {address}` (decimal out) and check the hex echo.
    pub async fn ota_seek(&mut self, address: u32) -> Result<(), Error<IO::Error>> {
        let mut d = [0u8; 10];
        let digits = fmt_decimal(address, &mut d);
        let t = self.config.command_timeout_ms;
        let r = self
            .command_parts("OTA", None, Some(&[b"SEEK ", digits]), t)
            .await?;
        let checked = match parse_response(self.rx.line(r)) {
            Ok(Response::Ok { detail, .. }) => match parse_seek_reply(detail) {
                Some(echoed) if echoed == address => Ok(()),
                Some(echoed) => Err(Error::SeekMismatch {
                    asked: address,
                    echoed,
                }),
                None => Err(Error::Malformed),
            },
            Ok(Response::Err { code, .. }) => Err(Error::Module(code)),
            Err(_) => Err(Error::Malformed),
        };
        // A line that is not the SEEK echo may be a stale reply to an earlier command that
        // arrived after its timeout: resynchronise before the next command, or every later
        // command would read the reply of the one before it.
        if matches!(&checked, Err(e) if e.is_transient()) {
            self.desync = true;
        }
        checked
    }

    /// `AT+OTA READ {n}`: a verified chunk (decoded in place in the RX buffer) or the end.
    /// A count below `n` is not the end; only [`ReadReply::End`] is.
    pub async fn ota_read(&mut self, n: u32) -> Result<ReadReply<'_>, Error<IO::Error>> {
        let mut d = [0u8; 10];
        let digits = fmt_decimal(n, &mut d);
        let t = self.config.command_timeout_ms;
        let r = self
            .command_parts("OTA", None, Some(&[b"READ ", digits]), t)
            .await?;
        if let Ok(Response::Err { code, .. }) = parse_response(self.rx.line(r.clone())) {
            return Err(Error::Module(code));
        }
        // As in `ota_seek`: a reply that is not a valid READ line may be a late one; resync.
        let desync = &mut self.desync;
        match parse_read_reply(self.rx.line_mut(r), n as usize) {
            Ok(reply) => Ok(reply),
            Err(e) => {
                *desync = true;
                Err(Error::Read(e))
            }
        }
    }
}
