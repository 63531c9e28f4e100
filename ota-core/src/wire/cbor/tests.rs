//! Tests of the stream CBOR codecs: the reference vectors of §3.1 and §3.3, the error cases of
//! §8.2, and property tests against `ciborium` as an independent decoder.

extern crate std;

use super::*;
use proptest::prelude::*;
use std::vec::Vec;

fn hex(s: &str) -> Vec<u8> {
    let s: std::string::String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn encode(req: &StreamRequest<'_>) -> Vec<u8> {
    let mut buf = [0u8; 512];
    let n = req.encode(&mut buf).unwrap();
    assert_eq!(n, req.encoded_len());
    buf[..n].to_vec()
}

fn reference_request(bitmap: &[u8]) -> StreamRequest<'_> {
    StreamRequest {
        client_token: CLIENT_TOKEN,
        file_id: 0,
        block_size: 4096,
        block_offset: 0,
        bitmap,
        number_of_blocks: 1,
    }
}

#[test]
fn request_matches_reference_trace() {
    // §3.1 [H]: 10240-byte file, 3 blocks.
    let first = "a6 61 63 63 72 64 79 61 66 00 61 6c 19 10 00 61 6f 00 61 62 41 07 61 6e 01";
    assert_eq!(encode(&reference_request(&[0x07])), hex(first));
    assert_eq!(hex(first).len(), 25);
    for (bitmap, tail) in [(0x06u8, "41 06"), (0x04, "41 04"), (0x05, "41 05")] {
        let expected = hex(&first.replace("41 07", tail));
        assert_eq!(encode(&reference_request(&[bitmap])), expected);
    }
}

#[test]
fn request_from_bitmap_window_matches_trace() {
    use crate::wire::bitmap::DefaultBlockBitmap;
    let first = "a6 61 63 63 72 64 79 61 66 00 61 6c 19 10 00 61 6f 00 61 62 41 07 61 6e 01";
    let mut bitmap = DefaultBlockBitmap::for_file(10240, 4096).unwrap();
    for (received, tail) in [(None, "41 07"), (Some(0), "41 06"), (Some(1), "41 04")] {
        if let Some(k) = received {
            bitmap.mark_received(k).unwrap();
        }
        let (o, b) = bitmap.window(128).unwrap();
        let req = StreamRequest {
            block_offset: o,
            bitmap: b,
            ..reference_request(&[])
        };
        assert_eq!(encode(&req), hex(&first.replace("41 07", tail)));
    }
}

#[test]
fn request_matches_unit_test_vector() {
    // §3.1 test_OTA_CborEncodeStreamRequest, for a few values of N.
    for n in [1u32, 4, 23, 24, 255, 256, 70000] {
        let req = StreamRequest {
            client_token: "ThisIsAClientToken",
            file_id: 1,
            block_size: 4096,
            block_offset: 0,
            bitmap: &[0xaa; 4],
            number_of_blocks: n,
        };
        let mut expected = hex(
            "a6 61 63 72 54 68 69 73 49 73 41 43 6c 69 65 6e 74 54 6f 6b 65 6e 61 66 01 \
             61 6c 19 10 00 61 6f 00 61 62 44 aa aa aa aa 61 6e",
        );
        let mut tail = [0u8; 16];
        let k = {
            let mut e = Encoder::new(Cursor::new(&mut tail[..]));
            e.u32(n).unwrap();
            e.writer().position()
        };
        expected.extend_from_slice(&tail[..k]);
        assert_eq!(encode(&req), expected, "n = {n}");
    }
}

#[test]
fn request_window_form() {
    let req = StreamRequest {
        block_offset: 16,
        bitmap: &[0x30, 0x01],
        ..reference_request(&[])
    };
    let bytes = encode(&req);
    assert_eq!(
        bytes,
        hex("a6 61 63 63 72 64 79 61 66 00 61 6c 19 10 00 61 6f 10 61 62 42 30 01 61 6e 01")
    );
}

#[test]
fn request_buffer_too_small_is_an_error() {
    let req = reference_request(&[0x07]);
    for len in 0..25 {
        let mut buf = std::vec![0u8; len];
        assert_eq!(
            req.encode(&mut buf),
            Err(EncodeError::BufferTooSmall {
                needed: 25,
                available: len
            })
        );
    }
    let mut buf = [0u8; 25];
    assert_eq!(req.encode(&mut buf), Ok(25));
}

/// Test-side encoder of a DataBlock-like map; `indefinite` uses `bf ... ff` like the service.
fn block_msg(entries: &[(&str, Val<'_>)], indefinite: bool) -> Vec<u8> {
    let mut buf = std::vec![0u8; 70000];
    let mut e = Encoder::new(Cursor::new(&mut buf[..]));
    if indefinite {
        e.begin_map().unwrap();
    } else {
        e.map(entries.len() as u64).unwrap();
    }
    for (k, v) in entries {
        e.str(k).unwrap();
        match v {
            Val::U(n) => e.u64(*n).map(|_| ()).unwrap(),
            Val::I(n) => e.i64(*n).map(|_| ()).unwrap(),
            Val::T(s) => e.str(s).map(|_| ()).unwrap(),
            Val::B(b) => e.bytes(b).map(|_| ()).unwrap(),
        }
    }
    if indefinite {
        e.end().unwrap();
    }
    let n = e.writer().position();
    buf.truncate(n);
    buf
}

#[derive(Clone, Copy, Debug)]
enum Val<'a> {
    U(u64),
    I(i64),
    T(&'a str),
    B(&'a [u8]),
}

fn payload() -> Vec<u8> {
    (0..4096u32).map(|i| (i * 7) as u8).collect()
}

#[test]
fn decodes_reference_synthetic_block() {
    // §3.3: a5 61 63 63 72 64 79 61 66 00 61 69 00 61 6c 19 10 00 61 70 59 10 00 ...payload
    let p = payload();
    let mut msg = hex("a5 61 63 63 72 64 79 61 66 00 61 69 00 61 6c 19 10 00 61 70 59 10 00");
    msg.extend_from_slice(&p);
    assert_eq!(msg.len(), 4119);
    let b = DataBlock::decode(&msg).unwrap();
    assert_eq!((b.file_id, b.block_index, b.block_size), (0, 0, 4096));
    assert_eq!(b.payload, &p[..]);
    // zero copy: the payload points into the message
    assert_eq!(b.payload.as_ptr(), msg[23..].as_ptr());
    assert_eq!(b.validate(0, 10240, 4096), Ok(()));
    assert_eq!(b.file_offset(4096), Some(0));
}

#[test]
fn decodes_indefinite_map_in_any_order_with_unknown_keys() {
    let p = payload();
    let msg = block_msg(
        &[
            ("p", Val::B(&p[..2048])),
            ("x", Val::T("unknown")),
            ("c", Val::T("rdy")),
            ("i", Val::U(2)),
            ("l", Val::U(2048)),
            ("f", Val::U(0)),
        ],
        true,
    );
    assert_eq!((msg[0], *msg.last().unwrap()), (0xbf, 0xff));
    let b = DataBlock::decode(&msg).unwrap();
    assert_eq!((b.file_id, b.block_index, b.block_size), (0, 2, 2048));
    assert_eq!(b.payload, &p[..2048]);
    assert_eq!(b.validate(0, 10240, 4096), Ok(()));
    // Nested unknown values (map, array, tag) are skipped too.
    let mut nested = hex("bf 61 78 a2 61 61 01 61 62 82 01 02 61 79 c1 1a 00 00 00 01");
    nested.extend_from_slice(&block_msg(&[("f", Val::U(0))], false)[1..]);
    nested.extend_from_slice(&block_msg(&[("i", Val::U(0))], false)[1..]);
    nested.extend_from_slice(&block_msg(&[("l", Val::U(1))], false)[1..]);
    nested.extend_from_slice(&hex("61 70 41 55 ff"));
    let b = DataBlock::decode(&nested).unwrap();
    assert_eq!(b.payload, &[0x55]);
}

/// `{"x": <value>, "f":0, "i":0, "l":1, "p":h'55'}` as an indefinite map.
fn with_unknown(value: &[u8]) -> Vec<u8> {
    let mut m = hex("bf 61 78");
    m.extend_from_slice(value);
    m.extend_from_slice(&hex("61 66 00 61 69 00 61 6c 01 61 70 41 55 ff"));
    m
}

#[test]
fn skips_unknown_values_of_any_shape() {
    for value in [
        "f6",                            // null
        "fb 3f f0 00 00 00 00 00 00",    // 1.0
        "3a 00 01 00 00",                // negative int
        "5f 41 01 42 02 03 ff",          // chunked bytes
        "7f 61 61 61 62 ff",             // chunked text
        "82 9f 01 bf 61 61 80 ff ff a0", // [[_ 1, {_ "a": []}], {}]
        "a1 01 9f ff",                   // {1: [_ ]}
        "c1 c2 9f c3 01 ff",             // tags around tags
        "9f 9f 9f ff ff ff",
        "80",
    ] {
        let msg = with_unknown(&hex(value));
        assert_eq!(
            DataBlock::decode(&msg).map(|b| b.payload),
            Ok(&[0x55][..]),
            "{value}"
        );
    }
    // non-text keys are skipped with their values
    let mut msg = hex("bf 82 01 02 9f 01 ff 01 02");
    msg.extend_from_slice(&with_unknown(&hex("00"))[1..]);
    assert!(DataBlock::decode(&msg).is_ok());
}

#[test]
fn skip_depth_is_bounded_and_breaks_are_checked() {
    let nested = |depth: usize| {
        // `depth` arrays, one inside the other, around a 0
        let mut v = std::vec![0x81u8; depth];
        v.push(0x00);
        v
    };
    assert!(DataBlock::decode(&with_unknown(&nested(MAX_SKIP_DEPTH))).is_ok());
    assert_eq!(
        DataBlock::decode(&with_unknown(&nested(MAX_SKIP_DEPTH + 1))),
        Err(DecodeError::Malformed)
    );
    let mut deep = std::vec![0x9fu8; 10_000];
    deep.extend(std::vec![0xffu8; 10_000]);
    assert_eq!(
        DataBlock::decode(&with_unknown(&deep)),
        Err(DecodeError::Malformed)
    );
    // a break inside a definite array, a lone break as a value
    for bad in ["81 ff", "ff", "82 9f ff ff"] {
        assert_eq!(
            DataBlock::decode(&with_unknown(&hex(bad))),
            Err(DecodeError::Malformed),
            "{bad}"
        );
    }
    // a huge declared count with no content ends with an error, quickly
    assert_eq!(
        DataBlock::decode(&with_unknown(&hex("9b ff ff ff ff ff ff ff ff"))),
        Err(DecodeError::Malformed)
    );
}

#[test]
fn block_decode_errors_of_8_2() {
    let p = [1u8, 2, 3];
    let ok = |f: Val<'static>| {
        block_msg(
            &[
                ("f", f),
                ("i", Val::U(0)),
                ("l", Val::U(3)),
                ("p", Val::B(&[1, 2, 3])),
            ],
            false,
        )
    };
    assert!(DataBlock::decode(&ok(Val::U(0))).is_ok());
    // f as text
    assert_eq!(
        DataBlock::decode(&ok(Val::T("0"))),
        Err(DecodeError::UnexpectedType("f"))
    );
    // negative / too large ints
    assert_eq!(
        DataBlock::decode(&ok(Val::I(-1))),
        Err(DecodeError::UnexpectedType("f"))
    );
    assert_eq!(
        DataBlock::decode(&ok(Val::U(1 << 32))),
        Err(DecodeError::OutOfRange("f"))
    );
    // top-level array
    assert_eq!(
        DataBlock::decode(&hex("84 00 00 03 43 01 02 03")),
        Err(DecodeError::NotAMap)
    );
    // empty input, truncated, missing break
    assert_eq!(DataBlock::decode(&[]), Err(DecodeError::Malformed));
    let full = ok(Val::U(0));
    for cut in 1..full.len() {
        assert!(DataBlock::decode(&full[..cut]).is_err(), "cut {cut}");
    }
    let indef = block_msg(
        &[
            ("f", Val::U(0)),
            ("i", Val::U(0)),
            ("l", Val::U(3)),
            ("p", Val::B(&p)),
        ],
        true,
    );
    assert_eq!(
        DataBlock::decode(&indef[..indef.len() - 1]),
        Err(DecodeError::Malformed)
    );
    // p as text, p as chunked bytes
    assert_eq!(
        DataBlock::decode(&block_msg(
            &[
                ("f", Val::U(0)),
                ("i", Val::U(0)),
                ("l", Val::U(3)),
                ("p", Val::T("abc"))
            ],
            false
        )),
        Err(DecodeError::UnexpectedType("p"))
    );
    assert_eq!(
        DataBlock::decode(&hex(
            "a4 61 66 00 61 69 00 61 6c 03 61 70 5f 43 01 02 03 ff"
        )),
        Err(DecodeError::UnexpectedType("p"))
    );
    // missing keys, each one
    for missing in ["f", "i", "l", "p"] {
        let entries: Vec<(&str, Val<'_>)> = [
            ("f", Val::U(0)),
            ("i", Val::U(0)),
            ("l", Val::U(3)),
            ("p", Val::B(&p)),
        ]
        .into_iter()
        .filter(|(k, _)| *k != missing)
        .collect();
        assert_eq!(
            DataBlock::decode(&block_msg(&entries, false)),
            Err(DecodeError::MissingKey(missing))
        );
    }
    // duplicate key
    assert_eq!(
        DataBlock::decode(&block_msg(
            &[
                ("f", Val::U(0)),
                ("f", Val::U(1)),
                ("i", Val::U(0)),
                ("l", Val::U(3)),
                ("p", Val::B(&p))
            ],
            false
        )),
        Err(DecodeError::DuplicateKey("f"))
    );
    // a break inside a definite map, a break where a key is expected
    assert_eq!(
        DataBlock::decode(&hex("a1 ff")),
        Err(DecodeError::Malformed)
    );
}

#[test]
fn rejects_length_mismatch() {
    let p = [0u8; 10];
    for l in [0u64, 9, 11, 4096] {
        let msg = block_msg(
            &[
                ("f", Val::U(0)),
                ("i", Val::U(0)),
                ("l", Val::U(l)),
                ("p", Val::B(&p)),
            ],
            true,
        );
        assert_eq!(
            DataBlock::decode(&msg),
            Err(DecodeError::LengthMismatch {
                declared: l as u32,
                actual: 10
            })
        );
    }
}

#[test]
fn validate_checks_file_index_and_size() {
    let full = [0u8; 4096];
    let rem = [0u8; 2048];
    let blk = |f, i, payload: &'static [u8]| DataBlock {
        file_id: f,
        block_index: i,
        block_size: payload.len() as u32,
        payload,
    };
    let full: &'static [u8] = std::boxed::Box::leak(std::boxed::Box::new(full));
    let rem: &'static [u8] = std::boxed::Box::leak(std::boxed::Box::new(rem));
    // 10240 bytes = 2 full blocks + 2048
    assert_eq!(blk(3, 0, full).validate(3, 10240, 4096), Ok(()));
    assert_eq!(blk(3, 1, full).validate(3, 10240, 4096), Ok(()));
    assert_eq!(blk(3, 2, rem).validate(3, 10240, 4096), Ok(()));
    assert_eq!(
        blk(4, 0, full).validate(3, 10240, 4096),
        Err(BlockError::WrongFile {
            expected: 3,
            actual: 4
        })
    );
    assert_eq!(
        blk(3, 3, rem).validate(3, 10240, 4096),
        Err(BlockError::IndexOutOfRange {
            index: 3,
            block_count: 3
        })
    );
    assert_eq!(
        blk(3, 1, rem).validate(3, 10240, 4096),
        Err(BlockError::WrongSize {
            index: 1,
            expected: 4096,
            actual: 2048
        })
    );
    assert_eq!(
        blk(3, 2, full).validate(3, 10240, 4096),
        Err(BlockError::WrongSize {
            index: 2,
            expected: 2048,
            actual: 4096
        })
    );
    // exact multiple: the last block is full
    assert_eq!(blk(3, 1, full).validate(3, 8192, 4096), Ok(()));
    // degenerate sizes never panic
    assert!(blk(3, 0, full).validate(3, 0, 4096).is_err());
    assert!(blk(3, 0, full).validate(3, 4096, 0).is_err());
    assert!(blk(3, u32::MAX, full).validate(3, u32::MAX, 1).is_err());
    assert_eq!(blk(3, 1, full).file_offset(4096), Some(4096));
    assert_eq!(blk(3, u32::MAX, full).file_offset(4096), None);
}

#[test]
fn stream_rejected_short_long_and_both() {
    let short = block_msg(
        &[
            ("o", Val::T("InvalidCbor")),
            ("m", Val::T("bad cbor")),
            ("c", Val::T("rdy")),
        ],
        true,
    );
    let r = StreamRejected::decode(&short).unwrap();
    assert_eq!(r.code, RejectCode::InvalidCbor);
    assert_eq!((r.message, r.client_token), ("bad cbor", Some("rdy")));

    let long = block_msg(
        &[
            ("code", Val::T("ResourceNotFound")),
            ("message", Val::T("no such stream")),
            ("clientToken", Val::T("tok")),
        ],
        false,
    );
    let r = StreamRejected::decode(&long).unwrap();
    assert_eq!(r.code, RejectCode::ResourceNotFound);
    assert_eq!((r.message, r.client_token), ("no such stream", Some("tok")));

    // #490 shape: both forms present, indefinite map; short wins.
    let both = block_msg(
        &[
            ("o", Val::T("InvalidCbor")),
            ("m", Val::T("short")),
            ("c", Val::T("rdy")),
            ("code", Val::T("InternalError")),
            ("message", Val::T("long")),
            ("clientToken", Val::T("other")),
            ("timestamp", Val::U(1_700_000_000)),
        ],
        true,
    );
    let r = StreamRejected::decode(&both).unwrap();
    assert_eq!(
        r,
        StreamRejected {
            code: RejectCode::InvalidCbor,
            message: "short",
            client_token: Some("rdy")
        }
    );

    let odd = block_msg(&[("o", Val::T("SomethingNew"))], false);
    let r = StreamRejected::decode(&odd).unwrap();
    assert_eq!(r.code, RejectCode::Other("SomethingNew"));
    assert_eq!(r.code.as_str(), "SomethingNew");
    assert_eq!((r.message, r.client_token), ("", None));

    assert_eq!(
        StreamRejected::decode(&block_msg(&[("m", Val::T("x"))], false)),
        Err(DecodeError::MissingKey("o"))
    );
    assert_eq!(
        StreamRejected::decode(&block_msg(&[("o", Val::U(3))], false)),
        Err(DecodeError::UnexpectedType("o"))
    );
    assert_eq!(
        StreamRejected::decode(&hex("80")),
        Err(DecodeError::NotAMap)
    );
}

#[test]
fn reject_codes_round_trip() {
    for code in [
        "InvalidTopic",
        "InvalidJson",
        "InvalidCbor",
        "InvalidRequest",
        "Unauthorized",
        "BlockSizeOutOfBounds",
        "OffsetOutOfBounds",
        "BlockCountLimitExceeded",
        "BlockBitmapLimitExceeded",
        "ResourceNotFound",
        "VersionMismatch",
        "ETagMismatch",
        "InternalError",
    ] {
        let c = RejectCode::parse(code);
        assert!(!matches!(c, RejectCode::Other(_)), "{code}");
        assert_eq!(c.as_str(), code);
    }
}

fn ciborium_map(bytes: &[u8]) -> Vec<(ciborium::Value, ciborium::Value)> {
    let v: ciborium::Value = ciborium::de::from_reader(bytes).unwrap();
    match v {
        ciborium::Value::Map(m) => m,
        other => panic!("not a map: {other:?}"),
    }
}

proptest! {
    #[test]
    fn request_round_trips_through_ciborium(
        token in "[ -~]{0,70}",
        f: u32, l: u32, o: u32, n: u32,
        bitmap in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let req = StreamRequest {
            client_token: &token,
            file_id: f,
            block_size: l,
            block_offset: o,
            bitmap: &bitmap,
            number_of_blocks: n,
        };
        let bytes = encode(&req);
        prop_assert_eq!(bytes[0], 0xa6);
        use ciborium::Value as V;
        let m = ciborium_map(&bytes);
        let expected = std::vec![
            (V::Text("c".into()), V::Text(token.clone())),
            (V::Text("f".into()), V::Integer(f.into())),
            (V::Text("l".into()), V::Integer(l.into())),
            (V::Text("o".into()), V::Integer(o.into())),
            (V::Text("b".into()), V::Bytes(bitmap.clone())),
            (V::Text("n".into()), V::Integer(n.into())),
        ];
        prop_assert_eq!(m, expected);
        // too small by one byte: an error, not a panic
        let mut short = std::vec![0u8; bytes.len() - 1];
        prop_assert!(req.encode(&mut short).is_err());
    }

    #[test]
    fn block_round_trips(
        f: u32, i: u32,
        payload in proptest::collection::vec(any::<u8>(), 0..600),
        token in "[a-z]{0,8}",
        indefinite: bool,
        order in Just([0usize, 1, 2, 3, 4]).prop_shuffle(),
    ) {
        let all = [
            ("f", Val::U(f.into())),
            ("i", Val::U(i.into())),
            ("l", Val::U(payload.len() as u64)),
            ("p", Val::B(&payload)),
            ("c", Val::T(&token)),
        ];
        let entries: Vec<_> = order.iter().map(|k| all[*k]).collect();
        let msg = block_msg(&entries, indefinite);
        let b = DataBlock::decode(&msg).unwrap();
        prop_assert_eq!(b.file_id, f);
        prop_assert_eq!(b.block_index, i);
        prop_assert_eq!(b.block_size as usize, payload.len());
        prop_assert_eq!(b.payload, &payload[..]);
    }

    #[test]
    fn block_encoded_by_ciborium_decodes(
        f: u32, i: u32,
        payload in proptest::collection::vec(any::<u8>(), 0..300),
        extra in proptest::collection::vec(("[a-z]{2,6}", any::<i64>()), 0..4),
        nested: bool,
        rotate in 0usize..8,
    ) {
        use ciborium::Value as V;
        let mut entries = std::vec![
            (V::Text("f".into()), V::Integer(f.into())),
            (V::Text("i".into()), V::Integer(i.into())),
            (V::Text("l".into()), V::Integer((payload.len() as u64).into())),
            (V::Text("p".into()), V::Bytes(payload.clone())),
            (V::Text("c".into()), V::Text("rdy".into())),
        ];
        for (k, v) in &extra {
            let value = if nested {
                V::Array(std::vec![V::Map(std::vec![(V::Integer((*v).into()), V::Null)])])
            } else {
                V::Integer((*v).into())
            };
            entries.push((V::Text(k.clone()), value));
        }
        let len = entries.len();
        entries.rotate_left(rotate % len);
        let mut msg = Vec::new();
        ciborium::ser::into_writer(&V::Map(entries), &mut msg).unwrap();
        let b = DataBlock::decode(&msg).unwrap();
        prop_assert_eq!((b.file_id, b.block_index), (f, i));
        prop_assert_eq!(b.payload, &payload[..]);
    }

    #[test]
    fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        if let Ok(b) = DataBlock::decode(&bytes) {
            let _ = b.validate(b.file_id, b.block_size, b.block_size);
            let _ = b.validate(0, u32::MAX, 4096);
        }
        let _ = StreamRejected::decode(&bytes);
    }

    #[test]
    fn decoders_never_panic_on_mutated_blocks(
        pos in 0usize..40, byte: u8, cut in 0usize..40,
    ) {
        let mut msg = block_msg(
            &[("c", Val::T("rdy")), ("f", Val::U(0)), ("i", Val::U(1)),
              ("l", Val::U(4)), ("p", Val::B(&[9, 9, 9, 9]))],
            true,
        );
        if let Some(b) = msg.get_mut(pos) { *b = byte; }
        msg.truncate(msg.len().saturating_sub(cut));
        let _ = DataBlock::decode(&msg);
        let _ = StreamRejected::decode(&msg);
    }
}
