//! The little CBOR the stream service needs: decoding a GetStream request map (definite or
//! indefinite, text keys, unsigned ints / byte strings / text values) and writing DataBlock and
//! rejected messages as the service does, as indefinite-length maps (`bf` ... `ff`, §3.3).

use std::collections::BTreeMap;

/// A decoded value of a request map. Other CBOR types are reported as [`Value::Other`] so that
/// a wrong type can be answered with `InvalidRequest` rather than `InvalidCbor`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// Major type 0.
    Uint(u64),
    /// Major type 1 (`-1 - n`), kept as the raw `n`.
    NegInt(u64),
    /// Major type 2.
    Bytes(Vec<u8>),
    /// Major type 3.
    Text(String),
    /// Anything else (arrays, maps, floats, simple values, tags), skipped over.
    Other,
}

/// Why a request is not CBOR the service understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidCbor;

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

const BREAK: u8 = 0xff;

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, InvalidCbor> {
        let b = *self.buf.get(self.pos).ok_or(InvalidCbor)?;
        self.pos += 1;
        Ok(b)
    }

    fn peek(&self) -> Result<u8, InvalidCbor> {
        self.buf.get(self.pos).copied().ok_or(InvalidCbor)
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], InvalidCbor> {
        let n = usize::try_from(n).map_err(|_| InvalidCbor)?;
        let end = self.pos.checked_add(n).ok_or(InvalidCbor)?;
        let s = self.buf.get(self.pos..end).ok_or(InvalidCbor)?;
        self.pos = end;
        Ok(s)
    }

    /// Reads an initial byte and its argument: (major, argument or None for indefinite).
    fn head(&mut self) -> Result<(u8, Option<u64>), InvalidCbor> {
        let ib = self.byte()?;
        let major = ib >> 5;
        let info = ib & 0x1f;
        let arg = match info {
            0..=23 => Some(u64::from(info)),
            24 => Some(u64::from(self.byte()?)),
            25 => Some(u64::from(u16::from_be_bytes(
                self.take(2)?.try_into().map_err(|_| InvalidCbor)?,
            ))),
            26 => Some(u64::from(u32::from_be_bytes(
                self.take(4)?.try_into().map_err(|_| InvalidCbor)?,
            ))),
            27 => Some(u64::from_be_bytes(
                self.take(8)?.try_into().map_err(|_| InvalidCbor)?,
            )),
            31 if matches!(major, 2..=5 | 7) => None,
            _ => return Err(InvalidCbor),
        };
        Ok((major, arg))
    }

    fn string_body(&mut self, major: u8, len: Option<u64>) -> Result<Vec<u8>, InvalidCbor> {
        match len {
            Some(n) => Ok(self.take(n)?.to_vec()),
            None => {
                let mut out = Vec::new();
                loop {
                    if self.peek()? == BREAK {
                        self.pos += 1;
                        return Ok(out);
                    }
                    let (m, n) = self.head()?;
                    if m != major {
                        return Err(InvalidCbor);
                    }
                    out.extend_from_slice(self.take(n.ok_or(InvalidCbor)?)?);
                }
            }
        }
    }

    fn value(&mut self, depth: u8) -> Result<Value, InvalidCbor> {
        if depth > 16 {
            return Err(InvalidCbor);
        }
        let (major, arg) = self.head()?;
        match major {
            0 => Ok(Value::Uint(arg.ok_or(InvalidCbor)?)),
            1 => Ok(Value::NegInt(arg.ok_or(InvalidCbor)?)),
            2 => Ok(Value::Bytes(self.string_body(2, arg)?)),
            3 => String::from_utf8(self.string_body(3, arg)?)
                .map(Value::Text)
                .map_err(|_| InvalidCbor),
            4 | 5 => {
                let per_item = if major == 5 { 2 } else { 1 };
                match arg {
                    Some(n) => {
                        for _ in 0..n.saturating_mul(per_item) {
                            self.value(depth + 1)?;
                        }
                    }
                    None => loop {
                        if self.peek()? == BREAK {
                            self.pos += 1;
                            break;
                        }
                        for _ in 0..per_item {
                            self.value(depth + 1)?;
                        }
                    },
                }
                Ok(Value::Other)
            }
            6 => {
                self.value(depth + 1)?;
                Ok(Value::Other)
            }
            _ => match arg {
                Some(_) => Ok(Value::Other),
                None => Err(InvalidCbor),
            },
        }
    }
}

/// Decodes a top-level map with text keys. A duplicate key keeps its first value; trailing
/// bytes after the map are an error.
pub fn decode_map(input: &[u8]) -> Result<BTreeMap<String, Value>, InvalidCbor> {
    let mut r = Reader { buf: input, pos: 0 };
    let (major, len) = r.head()?;
    if major != 5 {
        return Err(InvalidCbor);
    }
    let mut map = BTreeMap::new();
    let mut read_pair = |r: &mut Reader<'_>| -> Result<(), InvalidCbor> {
        let key = match r.value(0)? {
            Value::Text(k) => k,
            _ => return Err(InvalidCbor),
        };
        let v = r.value(0)?;
        map.entry(key).or_insert(v);
        Ok(())
    };
    match len {
        Some(n) => {
            for _ in 0..n {
                read_pair(&mut r)?;
            }
        }
        None => loop {
            if r.peek()? == BREAK {
                r.pos += 1;
                break;
            }
            read_pair(&mut r)?;
        },
    }
    if r.pos != input.len() {
        return Err(InvalidCbor);
    }
    Ok(map)
}

/// Writes CBOR items into a growing buffer with minimal-length heads.
#[derive(Default)]
pub struct Writer {
    /// The bytes written so far.
    pub buf: Vec<u8>,
}

impl Writer {
    fn head(&mut self, major: u8, n: u64) {
        let m = major << 5;
        if n < 24 {
            self.buf.push(m | n as u8);
        } else if n <= 0xff {
            self.buf.extend_from_slice(&[m | 24, n as u8]);
        } else if n <= 0xffff {
            self.buf.push(m | 25);
            self.buf.extend_from_slice(&(n as u16).to_be_bytes());
        } else if n <= 0xffff_ffff {
            self.buf.push(m | 26);
            self.buf.extend_from_slice(&(n as u32).to_be_bytes());
        } else {
            self.buf.push(m | 27);
            self.buf.extend_from_slice(&n.to_be_bytes());
        }
    }

    /// Starts an indefinite-length map (`0xbf`).
    pub fn begin_map(&mut self) -> &mut Self {
        self.buf.push(0xbf);
        self
    }

    /// Starts an indefinite-length array (`0x9f`).
    pub fn begin_array(&mut self) -> &mut Self {
        self.buf.push(0x9f);
        self
    }

    /// Ends an indefinite-length item (`0xff`).
    pub fn end(&mut self) -> &mut Self {
        self.buf.push(BREAK);
        self
    }

    /// An unsigned integer.
    pub fn uint(&mut self, n: u64) -> &mut Self {
        self.head(0, n);
        self
    }

    /// A text string.
    pub fn text(&mut self, s: &str) -> &mut Self {
        self.head(3, s.len() as u64);
        self.buf.extend_from_slice(s.as_bytes());
        self
    }

    /// A byte string.
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.head(2, b.len() as u64);
        self.buf.extend_from_slice(b);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_reference_request() {
        let req = [
            0xa6, 0x61, 0x63, 0x63, 0x72, 0x64, 0x79, 0x61, 0x66, 0x00, 0x61, 0x6c, 0x19, 0x10,
            0x00, 0x61, 0x6f, 0x00, 0x61, 0x62, 0x41, 0x07, 0x61, 0x6e, 0x01,
        ];
        let m = decode_map(&req).unwrap();
        assert_eq!(m["c"], Value::Text("rdy".into()));
        assert_eq!(m["f"], Value::Uint(0));
        assert_eq!(m["l"], Value::Uint(4096));
        assert_eq!(m["o"], Value::Uint(0));
        assert_eq!(m["b"], Value::Bytes(vec![7]));
        assert_eq!(m["n"], Value::Uint(1));
    }

    #[test]
    fn decodes_indefinite_maps_and_chunked_strings() {
        // {_ "c": (_ "a" "b"), "b": (_ h'01' h'02'), "x": [1, {}], "f": 1}
        let req = [
            0xbf, 0x61, b'c', 0x7f, 0x61, b'a', 0x61, b'b', 0xff, 0x61, b'b', 0x5f, 0x41, 1, 0x41,
            2, 0xff, 0x61, b'x', 0x82, 0x01, 0xa0, 0x61, b'f', 0x01, 0xff,
        ];
        let m = decode_map(&req).unwrap();
        assert_eq!(m["c"], Value::Text("ab".into()));
        assert_eq!(m["b"], Value::Bytes(vec![1, 2]));
        assert_eq!(m["x"], Value::Other);
        assert_eq!(m["f"], Value::Uint(1));
    }

    #[test]
    fn rejects_non_maps_truncation_and_trailing_bytes() {
        assert_eq!(decode_map(&[0x80]), Err(InvalidCbor));
        assert_eq!(decode_map(&[0xa1, 0x61]), Err(InvalidCbor));
        assert_eq!(decode_map(&[0xa0, 0x00]), Err(InvalidCbor));
        assert_eq!(decode_map(&[0xa1, 0x01, 0x01]), Err(InvalidCbor));
        assert_eq!(decode_map(b"{\"f\":1}"), Err(InvalidCbor));
        assert_eq!(decode_map(&[]), Err(InvalidCbor));
    }

    #[test]
    fn writer_uses_minimal_heads() {
        let mut w = Writer::default();
        w.begin_map()
            .uint(23)
            .uint(24)
            .uint(256)
            .uint(65536)
            .uint(1 << 32)
            .text("p")
            .bytes(&[9])
            .end();
        assert_eq!(
            w.buf,
            [
                0xbf, 0x17, 0x18, 0x18, 0x19, 0x01, 0x00, 0x1a, 0x00, 0x01, 0x00, 0x00, 0x1b, 0, 0,
                0, 1, 0, 0, 0, 0, 0x61, b'p', 0x41, 9, 0xff
            ]
        );
    }
}
