//! Property tests: no panic on any module byte stream; escape round trip; READ round trip.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use ota_expresslink::*;
use ota_pal_traits::sim::{block_on, SimConfig, SimDevice};
use ota_pal_traits::{
    BootControl, FileInfo, NorFlashImageStorage, PalError, PlatformImageState,
    Sha256EcdsaP256Verifier,
};
use proptest::prelude::*;

/// A UART whose module side sends a fixed byte stream, in chunks of `step`, then pends forever.
struct Noise {
    bytes: Vec<u8>,
    pos: usize,
    step: usize,
}

impl embedded_io_async::ErrorType for Noise {
    type Error = core::convert::Infallible;
}
impl embedded_io_async::Write for Noise {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        Ok(buf.len())
    }

    async fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}
impl embedded_io_async::Read for Noise {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        let n = self.step.min(buf.len()).min(self.bytes.len() - self.pos);
        if n == 0 {
            core::future::pending::<()>().await;
        }
        buf[..n].copy_from_slice(&self.bytes[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

struct NoBoot;
impl BootControl for NoBoot {
    async fn platform_state(&mut self) -> Result<PlatformImageState, PalError> {
        Ok(PlatformImageState::Valid)
    }
    async fn request_trial_boot(&mut self, _: &FileInfo<'_>) -> Result<(), PalError> {
        Ok(())
    }
    async fn confirm(&mut self) -> Result<(), PalError> {
        Ok(())
    }
    async fn reject(&mut self) -> Result<(), PalError> {
        Ok(())
    }
}

struct Instant;
impl Clock for Instant {
    async fn delay_ms(&mut self, _ms: u32) {}
}

fn line_strategy() -> impl Strategy<Value = Vec<u8>> {
    // Mostly response-shaped lines, plus raw bytes.
    let token = prop_oneof![
        Just(b"OK".to_vec()),
        Just(b"OK ".to_vec()),
        Just(b"ERR".to_vec()),
        Just(b" ".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\\".to_vec()),
        Just(b"\x00\xff".to_vec()),
        "[0-9A-Fa-f]{1,12}".prop_map(String::into_bytes),
        "[0-9]{1,7}".prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 0..8),
    ];
    proptest::collection::vec(token, 0..64).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn pure_parsers_never_panic(line in line_strategy()) {
        let _ = parse_response(&line);
        for d in [Dialect::Legacy, Dialect::Modern, Dialect::Unknown] {
            let _ = parse_event(&line, d);
        }
        let _ = parse_ota_status(&line).map(|s| s.size_hint());
        let _ = parse_seek_reply(&line);
        let mut copy = line.clone();
        let _ = parse_read_reply(&mut copy, 4096);
        let mut copy = line.clone();
        let _ = unescape_in_place(&mut copy);
        let _ = Dialect::from_techspec(&line);
        let mut lb = LineBuf::<32>::new();
        let mut rest = &line[..];
        while !rest.is_empty() {
            let n = lb.push(rest);
            rest = &rest[n..];
            while let Some(r) = lb.take_line() {
                if let Ok(r) = r {
                    let _ = parse_response(lb.line(r));
                }
            }
            if n == 0 {
                break;
            }
        }
    }

    #[test]
    fn driver_never_panics_on_any_stream(bytes in line_strategy(), step in 1usize..64) {
        let cfg = Config { max_polls: 3, max_retries: 2, ..Config::default() };
        let mut el: ExpressLink<_, _, 256> = ExpressLink::new(Noise { bytes, pos: 0, step }, Instant, cfg);
        let _ = block_on(el.detect_dialect());
        let _ = block_on(el.ota_status()).map(|s| s.code);
        let _ = block_on(el.event()).map(|e| e.map(|e| e.id));
        let _ = block_on(el.ota_read(64)).map(|r| matches!(r, ReadReply::End));
        let _ = block_on(el.ota_seek(0));
        let mut buf = [0u8; 16];
        let _ = block_on(el.get(1, &mut buf));
        let _ = block_on(el.module_update(&mut AcceptAll));
    }

    #[test]
    fn host_flow_never_panics_on_any_stream(body in line_strategy(), step in 1usize..64) {
        // Prefix a host-ready state so the download loop sees the random lines.
        let mut bytes = b"OK 5 16\nOK 5 16\nOK 0\n".to_vec();
        bytes.extend(body);
        let cfg = Config { max_polls: 3, max_retries: 2, read_size: 64, ..Config::default() };
        let mut el: ExpressLink<_, _, 256> = ExpressLink::new(Noise { bytes, pos: 0, step }, Instant, cfg);
        let dev = SimDevice::new(vec![0xFFu8; 4096], SimConfig::new(16, 1024)).unwrap();
        let mut storage = NorFlashImageStorage::new(dev.view::<16, 1024>(0, 4096).unwrap(), 0, 4096, 0xFF).unwrap();
        let sk = p256::ecdsa::SigningKey::from_slice(&[7; 32]).unwrap();
        let mut v = Sha256EcdsaP256Verifier::from_verifying_key(*sk.verifying_key());
        let mut boot = NoBoot;
        let file = FileInfo { index: 0, path: "", size: 0, file_type: 202, attributes: 0, cert_path: "" };
        let job = HostJob { file, signature: Some(&[0x30, 0x00]) };
        let _ = block_on(el.host_update(&job, &mut AcceptAll, &mut storage, &mut v, &mut boot));
    }

    #[test]
    fn escape_unescape_round_trip(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut esc = vec![0u8; 2 * data.len()];
        let n = escape_into(&data, &mut esc).unwrap();
        prop_assert_eq!(n, escaped_len(&data));
        esc.truncate(n);
        prop_assert!(!esc.contains(&b'\n') && !esc.contains(&b'\r'));
        let mut back = vec![0u8; n];
        let m = unescape_into(&esc, &mut back).unwrap();
        prop_assert_eq!(&back[..m], &data[..]);
        // The formatted command carries the same escaped bytes and ends in one LF.
        let mut line = vec![0u8; n + 16];
        let k = format_command(&mut line, "SEND", Some(1), Some(&data)).unwrap();
        prop_assert_eq!(&line[..8], b"AT+SEND1");
        prop_assert_eq!(&line[9..k - 1], &esc[..]);
        prop_assert_eq!(line[k - 1], b'\n');
    }

    #[test]
    fn read_reply_round_trip(data in proptest::collection::vec(any::<u8>(), 0..2049), four in any::<bool>(), lower in any::<bool>()) {
        let width = if four { ChecksumWidth::Four } else { ChecksumWidth::Two };
        let mut line = vec![0u8; read_line_len(data.len())];
        let n = encode_read_reply(&data, width, &mut line).unwrap();
        line.truncate(n);
        if lower {
            line[3..].make_ascii_lowercase();
        }
        match parse_read_reply(&mut line, 2048).unwrap() {
            ReadReply::End => prop_assert!(data.is_empty()),
            ReadReply::Data { data: got, rule } => {
                prop_assert_eq!(got, &data[..]);
                if four {
                    prop_assert_eq!(rule, ChecksumRule::Sum16);
                }
            }
        }
    }

    #[test]
    fn one_flipped_data_digit_is_caught(data in proptest::collection::vec(any::<u8>(), 1..512), four in any::<bool>(), at in any::<prop::sample::Index>(), to in 0u8..16) {
        let width = if four { ChecksumWidth::Four } else { ChecksumWidth::Two };
        let mut line = vec![0u8; read_line_len(data.len())];
        let n = encode_read_reply(&data, width, &mut line).unwrap();
        line.truncate(n);
        let start = line.iter().skip(3).position(|&b| b == b' ').unwrap() + 4;
        let i = start + at.index(2 * data.len());
        let new = b"0123456789ABCDEF"[usize::from(to)];
        prop_assume!(line[i] != new);
        line[i] = new;
        let caught = matches!(parse_read_reply(&mut line, 4096), Err(ReadError::ChecksumMismatch { .. }));
        prop_assert!(caught);
    }
}
