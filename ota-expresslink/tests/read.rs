//! READ / SEEK reply parsing: both checksum rules, end spellings, every refusal.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use ota_expresslink::*;

fn parse(line: &str, max: usize) -> Result<(Vec<u8>, Option<ChecksumRule>), ReadError> {
    let mut b = line.as_bytes().to_vec();
    parse_read_reply(&mut b, max).map(|r| match r {
        ReadReply::End => (vec![], None),
        ReadReply::Data { data, rule } => (data.to_vec(), Some(rule)),
    })
}

#[test]
fn spec_examples() {
    // 2 bytes, padded count, 4-digit sum16.
    assert_eq!(
        parse("OK 02 A0B1 0151", 16).unwrap(),
        (vec![0xA0, 0xB1], Some(ChecksumRule::Sum16))
    );
    // Lower-case hex is accepted.
    assert_eq!(
        parse("OK 2 a0b1 151", 16).unwrap(),
        (vec![0xA0, 0xB1], Some(ChecksumRule::Sum16))
    );
    // CCM text: 2 digits, sum mod 2^8.
    assert_eq!(
        parse("OK 02 A0B1 51", 16).unwrap(),
        (vec![0xA0, 0xB1], Some(ChecksumRule::Sum8))
    );
    // 2 digits that also equal the full sum: a 2-digit field is the CCM form, so Sum8 is
    // reported (the per-rule counters must not count CCM chunks as Sum16).
    assert_eq!(
        parse("OK 02 0102 03", 16).unwrap().1,
        Some(ChecksumRule::Sum8)
    );
    // 4 digits are always the 16-bit rule, even when the sum is below 256.
    assert_eq!(
        parse("OK 02 0102 0003", 16).unwrap().1,
        Some(ChecksumRule::Sum16)
    );
    // 12 bytes.
    let data: Vec<u8> = (1..=12).collect();
    let hex: String = data.iter().map(|b| format!("{b:02X}")).collect();
    assert_eq!(parse(&format!("OK 0C {hex} 004E"), 16).unwrap().0, data);
    // 256 bytes, count "100".
    let data = vec![0xFFu8; 256];
    let hex: String = data.iter().map(|b| format!("{b:02X}")).collect();
    assert_eq!(parse(&format!("OK 100 {hex} FF00"), 256).unwrap().0, data);
}

#[test]
fn end_spellings() {
    for line in ["OK 0", "OK 00", "OK 000000"] {
        assert_eq!(parse(line, 16).unwrap(), (vec![], None), "{line}");
    }
    assert_eq!(parse("OK 0 ", 16), Err(ReadError::BadData));
    assert_eq!(parse("OK 0 00 0000", 16), Err(ReadError::BadData));
}

#[test]
fn refusals() {
    assert_eq!(parse("OK", 16), Err(ReadError::Malformed));
    assert_eq!(
        parse("ERR19 HOST OTA IMAGE NOT AVAILABLE", 16),
        Err(ReadError::Malformed)
    );
    assert_eq!(parse("OK 1234567 00 00", 16), Err(ReadError::BadCount));
    assert_eq!(parse("OK XY 00 00", 16), Err(ReadError::BadCount));
    assert_eq!(parse("OK 02 A0B 0151", 16), Err(ReadError::BadData));
    assert_eq!(parse("OK 02 A0B1C2 0151", 16), Err(ReadError::BadData));
    assert_eq!(parse("OK 02 A0G1 0151", 16), Err(ReadError::BadData));
    assert_eq!(parse("OK 02 A0B1", 16), Err(ReadError::BadChecksumField));
    assert_eq!(
        parse("OK 02 A0B1 00151", 16),
        Err(ReadError::BadChecksumField)
    );
    assert_eq!(
        parse("OK 02 A0B1 0151 extra", 16),
        Err(ReadError::BadChecksumField)
    );
    assert_eq!(
        parse("OK 02 A0B1 0152", 16),
        Err(ReadError::ChecksumMismatch {
            got: 0x152,
            sum: 0x151
        })
    );
    // A 4-digit field never falls back to mod 2^8.
    assert_eq!(
        parse("OK 02 A0B1 0051", 16),
        Err(ReadError::ChecksumMismatch {
            got: 0x51,
            sum: 0x151
        })
    );
    assert_eq!(parse("OK 03 A0B1C2 0213", 2), Err(ReadError::TooLong));
}

#[test]
fn encode_matches_examples() {
    let mut out = [0u8; 64];
    let n = encode_read_reply(&[0xA0, 0xB1], ChecksumWidth::Four, &mut out).unwrap();
    assert_eq!(&out[..n], b"OK 02 A0B1 0151");
    let n = encode_read_reply(&[0xA0, 0xB1], ChecksumWidth::Two, &mut out).unwrap();
    assert_eq!(&out[..n], b"OK 02 A0B1 51");
    let n = encode_read_reply(&[], ChecksumWidth::Four, &mut out).unwrap();
    assert_eq!(&out[..n], b"OK 0");
    assert_eq!(
        encode_read_reply(&[0; 40], ChecksumWidth::Four, &mut out),
        None
    );
}

#[test]
fn seek_echo() {
    assert_eq!(parse_seek_reply(b"400"), Some(1024));
    assert_eq!(parse_seek_reply(b"0"), Some(0));
    assert_eq!(parse_seek_reply(b"1234567"), None);
    assert_eq!(parse_seek_reply(b""), None);
}
