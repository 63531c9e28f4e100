//! Codec unit tests with the spec's exact lines, both dialects, LF and CR LF.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use ota_expresslink::*;
use ota_pal_traits::sim::block_on;

fn cmd(verb: &str, suffix: Option<u32>, param: Option<&[u8]>) -> Vec<u8> {
    let mut out = [0u8; 256];
    let n = format_command(&mut out, verb, suffix, param).unwrap();
    out[..n].to_vec()
}

#[test]
fn command_formatting() {
    assert_eq!(cmd("", None, None), b"AT+\n"); // format_command always writes AT+; the driver sends bare AT
    assert_eq!(cmd("OTA?", None, None), b"AT+OTA?\n");
    assert_eq!(
        cmd("SEND", Some(12), Some(b"Hello World!")),
        b"AT+SEND12 Hello World!\n"
    );
    assert_eq!(cmd("OTA", None, Some(b"READ 2048")), b"AT+OTA READ 2048\n");
    assert_eq!(cmd("OTA", None, Some(b"SEEK 1024")), b"AT+OTA SEEK 1024\n");
    assert_eq!(
        cmd("CONF?", None, Some(b"TechSpec")),
        b"AT+CONF? TechSpec\n"
    );
    assert_eq!(
        cmd("CONF", None, Some(b"Topic1=/MyPubTopic")),
        b"AT+CONF Topic1=/MyPubTopic\n"
    );
    assert_eq!(cmd("SUBSCRIBE", Some(2), None), b"AT+SUBSCRIBE2\n");
    assert_eq!(cmd("SLEEP", Some(9), None), b"AT+SLEEP9\n");
    assert_eq!(cmd("SEND", Some(0), Some(b"")), b"AT+SEND0 \n");
    let mut small = [0u8; 8];
    assert_eq!(
        format_command(&mut small, "OTA", None, Some(b"READ 2048")),
        Err(CodecError::BufferFull)
    );
}

#[test]
fn escaping_every_case() {
    let esc = |s: &[u8]| {
        let mut out = [0u8; 64];
        let n = escape_into(s, &mut out).unwrap();
        assert_eq!(n, escaped_len(s));
        out[..n].to_vec()
    };
    assert_eq!(esc(b"plain"), b"plain");
    assert_eq!(esc(b"a\nb"), b"a\\Ab");
    assert_eq!(esc(b"a\rb"), b"a\\Db");
    assert_eq!(esc(b"a\\b"), b"a\\\\b");
    assert_eq!(esc(b"\r\n"), b"\\D\\A");
    // The C-port bug: replacing LF first and then doubling backslashes gives `\\A` for a LF.
    assert_eq!(esc(b"\n"), b"\\A");
    assert_ne!(esc(b"\n"), b"\\\\A");
    // A literal backslash followed by `A` is not a LF.
    assert_eq!(esc(b"\\A"), b"\\\\A");
    assert_eq!(esc(b"\x00\x1f\xff"), b"\x00\x1f\xff");
    assert_eq!(
        cmd("CONF", None, Some(b"HOTAcertificate=-----BEGIN\nAB\\C\r")),
        b"AT+CONF HOTAcertificate=-----BEGIN\\AAB\\\\C\\D\n"
    );
    let mut tiny = [0u8; 1];
    assert_eq!(escape_into(b"\n", &mut tiny), Err(CodecError::BufferFull));
}

#[test]
fn unescaping_one_pass() {
    let un = |s: &[u8]| {
        let mut b = s.to_vec();
        unescape_in_place(&mut b).map(|n| b[..n].to_vec())
    };
    assert_eq!(un(b"a\\Ab").unwrap(), b"a\nb");
    assert_eq!(un(b"a\\Db").unwrap(), b"a\rb");
    assert_eq!(un(b"a\\\\b").unwrap(), b"a\\b");
    // Left to right: `\\A` is a backslash then `A`, not backslash + LF.
    assert_eq!(un(b"\\\\A").unwrap(), b"\\A");
    assert_eq!(un(b"\\\\\\A").unwrap(), b"\\\n");
    assert_eq!(un(b"\\x"), Err(CodecError::InvalidEscape));
    assert_eq!(un(b"\\a"), Err(CodecError::InvalidEscape));
    assert_eq!(un(b"end\\"), Err(CodecError::TruncatedEscape));
    let mut out = [0u8; 2];
    assert_eq!(unescape_into(b"abc", &mut out), Err(CodecError::BufferFull));
}

#[test]
fn responses() {
    assert_eq!(
        parse_response(b"OK").unwrap(),
        Response::Ok {
            extra_lines: None,
            detail: b""
        }
    );
    assert_eq!(
        parse_response(b"OK 1 CONNECTED").unwrap(),
        Response::Ok {
            extra_lines: None,
            detail: b"1 CONNECTED"
        }
    );
    assert_eq!(
        parse_response(b"OK CONNECTED").unwrap(),
        Response::Ok {
            extra_lines: None,
            detail: b"CONNECTED"
        }
    );
    assert_eq!(
        parse_response(b"OK1 data").unwrap(),
        Response::Ok {
            extra_lines: Some(1),
            detail: b"data"
        }
    );
    assert_eq!(
        parse_response(b"OK9 pem").unwrap(),
        Response::Ok {
            extra_lines: Some(9),
            detail: b"pem"
        }
    );
    assert_eq!(
        parse_response(b"OK 1 v2.5.7").unwrap(),
        Response::Ok {
            extra_lines: None,
            detail: b"1 v2.5.7"
        }
    );
    assert_eq!(parse_response(b"OKAY"), Err(CodecError::NotAResponse));
    assert_eq!(parse_response(b"ERR"), Err(CodecError::BadNumber));
    assert_eq!(parse_response(b"ERRx"), Err(CodecError::BadNumber));
    assert_eq!(parse_response(b"hello"), Err(CodecError::NotAResponse));
    assert_eq!(
        parse_response(b"ERR14 3 UNABLE TO CONNECT TLS"),
        Ok(Response::Err {
            code: ErrCode::UnableToConnect,
            text: b"3 UNABLE TO CONNECT TLS"
        })
    );
}

#[test]
fn every_err_code() {
    let lines: &[(&str, ErrCode)] = &[
        ("ERR1 OVERFLOW", ErrCode::Overflow),
        ("ERR2 PARSE ERROR", ErrCode::ParseError),
        ("ERR3 COMMAND NOT FOUND", ErrCode::CommandNotFound),
        ("ERR4 PARAMETER ERROR", ErrCode::ParameterError),
        ("ERR5 INVALID ESCAPE", ErrCode::InvalidEscape),
        ("ERR6 NO CONNECTION", ErrCode::NoConnection),
        ("ERR7 TOPIC OUT OF RANGE", ErrCode::OutOfRange),
        ("ERR7 OUT OF RANGE", ErrCode::OutOfRange),
        ("ERR8 TOPIC UNDEFINED", ErrCode::Undefined),
        ("ERR8 PARAMETER UNDEFINED", ErrCode::Undefined),
        ("ERR9 INVALID KEY LENGTH", ErrCode::InvalidKeyLength),
        ("ERR10 INVALID KEY NAME", ErrCode::InvalidKeyName),
        ("ERR11 UNKNOWN KEY", ErrCode::UnknownKey),
        ("ERR12 KEY READONLY", ErrCode::KeyReadOnly),
        ("ERR13 KEY WRITEONLY", ErrCode::KeyWriteOnly),
        ("ERR14 UNABLE TO CONNECT", ErrCode::UnableToConnect),
        ("ERR15 TIME NOT AVAILABLE", ErrCode::TimeNotAvailable),
        (
            "ERR16 LOCATION NOT AVAILABLE",
            ErrCode::LocationNotAvailable,
        ),
        ("ERR17 MODE NOT AVAILABLE", ErrCode::ModeNotAvailable),
        ("ERR18 ACTIVE CONNECTION", ErrCode::ActiveConnection),
        (
            "ERR19 HOST IMAGE NOT AVAILABLE",
            ErrCode::HostImageNotAvailable,
        ),
        (
            "ERR19 HOST OTA IMAGE NOT AVAILABLE",
            ErrCode::HostImageNotAvailable,
        ),
        ("ERR20 INVALID ADDRESS", ErrCode::InvalidAddress),
        ("ERR21 INVALID OTA UPDATE", ErrCode::InvalidOtaUpdate),
        ("ERR22 INVALID QUERY", ErrCode::InvalidQuery),
        ("ERR23 INVALID SIGNATURE", ErrCode::InvalidSignature),
        ("ERR24 SHADOW ERROR", ErrCode::ShadowError),
        ("ERR25 NOT ALLOWED", ErrCode::NotAllowed),
        ("ERR26 INVALID CERTIFICATE", ErrCode::InvalidCertificate),
        ("ERR27 BLE ERROR", ErrCode::BleError),
        ("ERR28 CONFIGURATION ERROR", ErrCode::ConfigurationError),
        ("ERR29 INSUFFICIENT SECURITY", ErrCode::InsufficientSecurity),
        ("ERR1000 VENDOR", ErrCode::Other(1000)),
        ("ERR0", ErrCode::Other(0)),
    ];
    for (line, want) in lines {
        match parse_response(line.as_bytes()).unwrap() {
            Response::Err { code, .. } => {
                assert_eq!(code, *want, "{line}");
                let n: u16 = line[3..].split(' ').next().unwrap().parse().unwrap();
                assert_eq!(code.code(), n);
            }
            other => panic!("{line}: {other:?}"),
        }
    }
}

fn ev(s: &[u8], d: Dialect) -> Event<'_> {
    parse_event(s, d).unwrap().unwrap()
}

#[test]
fn events_both_tables() {
    let e = ev(b"5 0 OTA", Dialect::Modern);
    assert_eq!(
        (e.id, e.param, e.kind, e.text),
        (5, Some(0), EventKind::Ota, &b"OTA"[..])
    );
    // CCM form: no numeric parameter.
    let e = ev(b"5 OTA event New Image verified", Dialect::Legacy);
    assert_eq!(
        (e.id, e.param, e.kind, e.text),
        (
            5,
            None,
            EventKind::Ota,
            &b"OTA event New Image verified"[..]
        )
    );
    // Espressif practice: the OTA code in the parameter.
    assert_eq!(ev(b"5 2 OTA", Dialect::Modern).param, Some(2));
    assert_eq!(ev(b"2 0 STARTUP", Dialect::Legacy).kind, EventKind::Startup);
    assert_eq!(ev(b"1 3 MSG", Dialect::Legacy).param, Some(3));
    assert_eq!(ev(b"3 0 CONLOST", Dialect::Modern).kind, EventKind::ConLost);
    assert_eq!(
        ev(b"4 0 OVERRUN topic", Dialect::Modern).kind,
        EventKind::Overrun
    );
    assert_eq!(ev(b"6 0 SHADOW", Dialect::Legacy).kind, EventKind::Shadow);
    assert_eq!(ev(b"6 4 CONNECT", Dialect::Modern).kind, EventKind::Connect);
    assert_eq!(
        ev(b"7 0 CONFMODE", Dialect::Modern).kind,
        EventKind::ConfMode
    );
    assert_eq!(ev(b"8 2 SUBACK", Dialect::Modern).kind, EventKind::SubAck);
    assert_eq!(ev(b"9 2 SUBNACK", Dialect::Modern).kind, EventKind::SubNack);
    assert_eq!(ev(b"10 1 PUBACK", Dialect::Modern).kind, EventKind::PubAck);
    let e = ev(b"21 1 SHADOW INIT FAILED", Dialect::Modern);
    assert_eq!(
        (e.kind, e.text),
        (EventKind::ShadowEvent, &b"SHADOW INIT FAILED"[..])
    );
    assert_eq!(ev(b"40 0 BLE", Dialect::Modern).kind, EventKind::Ble);
    assert_eq!(
        ev(b"1001 7 VENDOR", Dialect::Modern).kind,
        EventKind::Vendor
    );
    assert_eq!(ev(b"500", Dialect::Modern).kind, EventKind::Unknown);
    assert_eq!(parse_event(b"", Dialect::Modern).unwrap(), None);
    assert!(parse_event(b"x 0 OTA", Dialect::Modern).is_err());
}

#[test]
fn ota_status_lenient() {
    let s = parse_ota_status(b"1 v2.5.7").unwrap();
    assert_eq!(
        (s.code, s.detail),
        (OtaCode::ModuleProposed, &b"v2.5.7"[..])
    );
    assert_eq!(
        parse_ota_status(b"1 New OTA proposed.").unwrap().code,
        OtaCode::ModuleProposed
    );
    assert_eq!(parse_ota_status(b"2").unwrap().code, OtaCode::HostProposed);
    assert_eq!(parse_ota_status(b"0 IDLE").unwrap().code, OtaCode::Idle);
    // PG-latest's own inconsistency: the description is opaque, only the integer counts.
    assert_eq!(
        parse_ota_status(b"3 HOTA PENDING").unwrap().code,
        OtaCode::InProgress
    );
    let s = parse_ota_status(b"5 123456").unwrap();
    assert_eq!((s.code, s.size_hint()), (OtaCode::HostReady, Some(123_456)));
    assert_eq!(
        parse_ota_status(b"5 HOTA AVAILABLE").unwrap().size_hint(),
        None
    );
    assert_eq!(
        parse_ota_status(b"12 FUTURE").unwrap().code,
        OtaCode::Other(12)
    );
    assert!(parse_ota_status(b"").is_err());
}

#[test]
fn techspec_dialects() {
    assert_eq!(Dialect::from_techspec(b"v0.5"), Dialect::Legacy);
    assert_eq!(Dialect::from_techspec(b"v1.1.2"), Dialect::Modern);
    assert_eq!(Dialect::from_techspec(b"1.3"), Dialect::Modern);
    assert_eq!(Dialect::from_techspec(b"banana"), Dialect::Unknown);
}

struct Chunks<'a>(&'a [u8], usize);
impl embedded_io_async::ErrorType for Chunks<'_> {
    type Error = core::convert::Infallible;
}
impl embedded_io_async::Read for Chunks<'_> {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        let n = self.0.len().min(self.1).min(buf.len());
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

fn frame<const N: usize>(input: &[u8], step: usize) -> Vec<Result<Vec<u8>, &'static str>> {
    let mut lb = LineBuf::<N>::new();
    let mut io = Chunks(input, step);
    let mut out = vec![];
    loop {
        match block_on(lb.next_line(&mut io)) {
            Ok(r) => out.push(Ok(lb.line(r).to_vec())),
            Err(FrameError::Overflow) => out.push(Err("overflow")),
            Err(FrameError::Eof) => return out,
            Err(FrameError::Io(e)) => match e {},
        }
    }
}

#[test]
fn framing_lf_crlf_noise_blank_lines() {
    for step in [1, 3, 64] {
        let got = frame::<64>(
            b"\x00\xff\xff\nOK\n\r\n\nOK 1 CONNECTED\r\nERR19 HOST OTA IMAGE NOT AVAILABLE\r\n\r\n",
            step,
        );
        assert_eq!(
            got,
            vec![
                Ok(b"OK".to_vec()),
                Ok(b"OK 1 CONNECTED".to_vec()),
                Ok(b"ERR19 HOST OTA IMAGE NOT AVAILABLE".to_vec())
            ],
            "step {step}"
        );
        // A line over the buffer is reported once and the next line is intact.
        let got = frame::<16>(b"OK 0123456789ABCDEF0123\nOK\n", step);
        assert_eq!(
            got,
            vec![Err("overflow"), Ok(b"OK".to_vec())],
            "step {step}"
        );
    }
    let mut lb = LineBuf::<32>::new();
    let mut io = Chunks(b"OK\r\n", 8);
    block_on(lb.next_line(&mut io)).unwrap();
    assert_eq!(lb.eol_seen(), (false, true));
}

#[test]
fn rx_size_for_2k() {
    assert_eq!(RX_FOR_2K_READS, 4113);
    const { assert!(RX_FOR_2K_READS >= 2 * 2048 + 16) };
}
