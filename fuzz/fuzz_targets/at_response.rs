//! Fuzzes everything the ExpressLink driver parses from the module (spec §1.2, §2, §4): line
//! framing with NUL/0xFF noise and overflow, `OK#`/`ERR{n}` classification, events, `OTA?`,
//! SEEK echoes, unescaping, and the READ reply with its checksum rules. Arbitrary bytes must
//! never panic, and an accepted READ chunk must be self-consistent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ota_expresslink::{
    encode_read_reply, parse_event, parse_ota_status, parse_read_reply, parse_response,
    parse_seek_reply, sum16, unescape_in_place, ChecksumRule, ChecksumWidth, Dialect, LineBuf,
    ReadReply, Response,
};

fuzz_target!(|data: &[u8]| {
    // Frame the stream through a small buffer (overflow paths) and a 4 KB one.
    let mut small = LineBuf::<64>::new();
    let mut big = LineBuf::<4200>::new();
    check_stream(&mut small, data);
    check_stream(&mut big, data);
    // And the whole input as one line.
    check_line(data);
});

fn check_stream<const N: usize>(lb: &mut LineBuf<N>, mut rest: &[u8]) {
    while !rest.is_empty() {
        let n = lb.push(rest);
        rest = rest.get(n..).unwrap_or(&[]);
        while let Some(r) = lb.take_line() {
            if let Ok(r) = r {
                let line = lb.line(r.clone()).to_vec();
                assert!(!line.is_empty() && !line.contains(&b'\n'));
                assert!(!line.contains(&0) && !line.contains(&0xFF));
                check_line(&line);
            }
        }
        if n == 0 {
            break;
        }
    }
}

fn check_line(line: &[u8]) {
    if let Ok(resp) = parse_response(line) {
        match resp {
            Response::Ok { detail, .. } => {
                for d in [Dialect::Legacy, Dialect::Modern] {
                    if let Ok(Some(ev)) = parse_event(detail, d) {
                        assert!(ev.text.len() < detail.len());
                    }
                }
                let _ = parse_ota_status(detail).map(|s| s.size_hint());
                let _ = parse_seek_reply(detail);
                let mut copy = detail.to_vec();
                if let Ok(n) = unescape_in_place(&mut copy) {
                    assert!(n <= detail.len());
                }
            }
            Response::Err { code, .. } => {
                let _ = code.code();
            }
        }
    }
    let mut copy = line.to_vec();
    let max = 4096;
    if let Ok(ReadReply::Data { data, rule }) = parse_read_reply(&mut copy, max) {
        assert!(!data.is_empty() && data.len() <= max);
        let sum = sum16(data);
        // Re-encode: the accepted chunk must round-trip through the encoder.
        let width = match rule {
            ChecksumRule::Sum16 => ChecksumWidth::Four,
            ChecksumRule::Sum8 => ChecksumWidth::Two,
        };
        let owned = data.to_vec();
        let mut out = vec![0u8; 2 * owned.len() + 32];
        let n = encode_read_reply(&owned, width, &mut out).unwrap_or(0);
        out.truncate(n);
        match parse_read_reply(&mut out, max) {
            Ok(ReadReply::Data { data: again, .. }) => assert_eq!(again, &owned[..]),
            other => panic!("re-encoded chunk refused: {other:?} (sum {sum:#x})"),
        }
    }
}
