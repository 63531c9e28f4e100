//! Fuzzes the GetStream request encoder (spec §3.1): fields are cut from the input by hand,
//! encoded, then decoded again with minicbor; the map must be the 6 pairs `c f l o b n` in that
//! order with the same values, the length must be `encoded_len`, and a buffer one byte short
//! must be an error.
//!
//! Input layout: `[token_len] [token bytes] [f u32le] [l u32le] [o u32le] [n u32le] [bitmap..]`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use minicbor::Decoder;
use ota_core::wire::cbor::{EncodeError, StreamRequest};

fn take<'a>(data: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if data.len() < n {
        return None;
    }
    let (head, tail) = data.split_at(n);
    *data = tail;
    Some(head)
}

fn u32le(data: &mut &[u8]) -> Option<u32> {
    take(data, 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fuzz_target!(|data: &[u8]| {
    let mut data = data;
    let Some(&[token_len]) = take(&mut data, 1) else {
        return;
    };
    let Some(token) = take(&mut data, token_len as usize) else {
        return;
    };
    let Ok(token) = core::str::from_utf8(token) else {
        return;
    };
    let (Some(f), Some(l), Some(o), Some(n)) = (
        u32le(&mut data),
        u32le(&mut data),
        u32le(&mut data),
        u32le(&mut data),
    ) else {
        return;
    };
    let bitmap = &data[..data.len().min(12_288)];
    let req = StreamRequest {
        client_token: token,
        file_id: f,
        block_size: l,
        block_offset: o,
        bitmap,
        number_of_blocks: n,
    };

    let mut buf = [0u8; 13_000];
    let len = req.encode(&mut buf).expect("fits");
    assert_eq!(len, req.encoded_len());
    let short = len - 1;
    assert_eq!(
        req.encode(&mut buf[..short]),
        Err(EncodeError::BufferTooSmall {
            needed: len,
            available: short
        })
    );
    let len = req.encode(&mut buf).expect("fits");
    let bytes = &buf[..len];

    let mut d = Decoder::new(bytes);
    assert_eq!(d.map().unwrap(), Some(6));
    assert_eq!(d.str().unwrap(), "c");
    assert_eq!(d.str().unwrap(), token);
    assert_eq!(d.str().unwrap(), "f");
    assert_eq!(d.u32().unwrap(), f);
    assert_eq!(d.str().unwrap(), "l");
    assert_eq!(d.u32().unwrap(), l);
    assert_eq!(d.str().unwrap(), "o");
    assert_eq!(d.u32().unwrap(), o);
    assert_eq!(d.str().unwrap(), "b");
    assert_eq!(d.bytes().unwrap(), bitmap);
    assert_eq!(d.str().unwrap(), "n");
    assert_eq!(d.u32().unwrap(), n);
    assert_eq!(d.position(), len, "no trailing bytes");
});
