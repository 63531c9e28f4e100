//! Base64 decoding of job-document signatures with the reference agent's rules (spec §2.5).
//!
//! Standard alphabet (`A–Z a–z 0–9 + /`), `=` padding, padding optional. Line breaks (`\n`,
//! `\r`) may appear anywhere; spaces only after the data and padding. The error kinds mirror
//! the reference's `Base64Status_t` so failures read the same (spec §8.3). Decoding works in two
//! passes over the input (check and count, then write) so nothing is written on error and the
//! output length is known before the first byte lands.

use core::fmt;

/// Why a base64 text was rejected (the reference's `Base64Status_t`, spec §2.5, §8.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Base64Error {
    /// A character outside the alphabet, `=`, `\r`, `\n` and space (`Base64InvalidSymbol`).
    InvalidSymbol,
    /// A data symbol or padding after a space, or a data symbol after padding
    /// (`Base64InvalidSymbolOrdering`): leading or inner space, `=Rk9P`, `Rk9P=QkFS`.
    InvalidSymbolOrdering,
    /// More than two `=`, or padding that does not complete a 4-symbol group
    /// (`Base64InvalidPaddingSymbol`): `Zg===`.
    InvalidPaddingSymbol,
    /// The bits below the last full byte are not zero (`Base64NonZeroPadding`): `TWG=`, `Tf==`.
    NonZeroPadding,
    /// No data, or a number of data symbols that cannot encode whole bytes (`4n+1`)
    /// (`Base64InvalidInputSize`): `R`, `Rk9PC==`.
    InvalidInputSize,
    /// The decoded bytes do not fit the output buffer (`Base64InvalidBufferSize`).
    BufferTooSmall,
}

impl fmt::Display for Base64Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::InvalidSymbol => "invalid base64 symbol",
            Self::InvalidSymbolOrdering => "base64 symbol after whitespace or padding",
            Self::InvalidPaddingSymbol => "invalid base64 padding",
            Self::NonZeroPadding => "non-zero base64 padding bits",
            Self::InvalidInputSize => "invalid base64 length",
            Self::BufferTooSmall => "base64 output buffer too small",
        })
    }
}

impl core::error::Error for Base64Error {}

/// The class of one input byte.
enum Symbol {
    Data(u8),
    Pad,
    Space,
    LineBreak,
}

fn classify(b: u8) -> Option<Symbol> {
    let sextet = match b {
        b'A'..=b'Z' => b - b'A',
        b'a'..=b'z' => b - b'a' + 26,
        b'0'..=b'9' => b - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        b'=' => return Some(Symbol::Pad),
        b' ' => return Some(Symbol::Space),
        b'\n' | b'\r' => return Some(Symbol::LineBreak),
        _ => return None,
    };
    Some(Symbol::Data(sextet))
}

/// Check `input` and return the decoded length without writing anything (spec §2.5).
///
/// The same checks as [`decode`], minus the buffer size: use it to size a buffer or to validate
/// a signature at parse time.
pub fn decoded_len(input: &[u8]) -> Result<usize, Base64Error> {
    decoded_len_iter(input.iter().copied())
}

/// [`decoded_len`] over any byte sequence (e.g. an unescaped JSON string).
pub fn decoded_len_iter(input: impl Iterator<Item = u8>) -> Result<usize, Base64Error> {
    let mut data: usize = 0;
    let mut pads: usize = 0;
    let mut seen_space = false;
    let mut last: u8 = 0;
    for b in input {
        match classify(b).ok_or(Base64Error::InvalidSymbol)? {
            Symbol::Data(sextet) => {
                if seen_space || pads != 0 {
                    return Err(Base64Error::InvalidSymbolOrdering);
                }
                data = data.saturating_add(1);
                last = sextet;
            }
            Symbol::Pad => {
                if seen_space {
                    return Err(Base64Error::InvalidSymbolOrdering);
                }
                pads = pads.saturating_add(1);
                if pads > 2 {
                    return Err(Base64Error::InvalidPaddingSymbol);
                }
            }
            Symbol::Space => seen_space = true,
            Symbol::LineBreak => {}
        }
    }
    let rem = data % 4;
    if data == 0 || rem == 1 {
        return Err(Base64Error::InvalidInputSize);
    }
    if pads != 0 && (rem + pads) != 4 {
        return Err(Base64Error::InvalidPaddingSymbol);
    }
    // The low bits of the last sextet that do not make a whole byte must be zero.
    let spare_mask = match rem {
        2 => 0x0F,
        3 => 0x03,
        _ => 0,
    };
    if last & spare_mask != 0 {
        return Err(Base64Error::NonZeroPadding);
    }
    let tail = match rem {
        2 => 1,
        3 => 2,
        _ => 0,
    };
    Ok((data / 4).saturating_mul(3).saturating_add(tail))
}

/// Decode `input` into `out` and return the decoded bytes (spec §2.5).
///
/// Nothing is written unless the whole input is valid and fits `out`.
///
/// ```
/// use ota_core::wire::base64::decode;
/// let mut buf = [0u8; 8];
/// assert_eq!(decode(b"Rk9PQkE=", &mut buf), Ok(&b"FOOBA"[..]));
/// ```
pub fn decode<'o>(input: &[u8], out: &'o mut [u8]) -> Result<&'o [u8], Base64Error> {
    decode_iter(input.iter().copied(), out)
}

/// [`decode`] over any re-iterable byte sequence, so a JSON string can be decoded straight from
/// its escaped text (the iterator is walked twice: check, then write).
pub fn decode_iter<I>(input: I, out: &mut [u8]) -> Result<&[u8], Base64Error>
where
    I: Iterator<Item = u8> + Clone,
{
    let len = decoded_len_iter(input.clone())?;
    let out = out.get_mut(..len).ok_or(Base64Error::BufferTooSmall)?;
    let mut acc: u32 = 0;
    let mut bits: u32 = 0;
    let mut slots = out.iter_mut();
    for b in input {
        if let Some(Symbol::Data(sextet)) = classify(b) {
            acc = (acc << 6) | u32::from(sextet);
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                if let Some(slot) = slots.next() {
                    // Truncation intended: the byte is the top 8 of the accumulated bits.
                    *slot = (acc >> bits) as u8;
                }
                acc &= (1 << bits) - 1;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    extern crate std;

    use super::*;
    use proptest::prelude::*;
    use std::vec::Vec;

    /// Test-only standard encoder with padding, to round-trip against.
    pub(crate) fn encode(data: &[u8]) -> std::string::String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut s = std::string::String::new();
        for chunk in data.chunks(3) {
            let n = chunk.len();
            let b = [
                chunk[0],
                chunk.get(1).copied().unwrap_or(0),
                chunk.get(2).copied().unwrap_or(0),
            ];
            let v = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= n {
                    s.push(char::from(ALPHABET[((v >> (18 - 6 * i)) & 63) as usize]));
                } else {
                    s.push('=');
                }
            }
        }
        s
    }

    fn dec(input: &str) -> Result<Vec<u8>, Base64Error> {
        let mut buf = [0u8; 64];
        decode(input.as_bytes(), &mut buf).map(<[u8]>::to_vec)
    }

    #[test]
    fn valid_two_padding_symbols() {
        assert_eq!(dec("Rk9PQg==").unwrap(), b"FOOB");
    }

    #[test]
    fn valid_one_padding_symbol() {
        assert_eq!(dec("Rk9PQkE=").unwrap(), b"FOOBA");
    }

    #[test]
    fn valid_no_padding_symbols() {
        assert_eq!(dec("Rk9PQkFS").unwrap(), b"FOOBAR");
    }

    #[test]
    fn valid_no_optional_padding() {
        assert_eq!(dec("Rk9PQg").unwrap(), b"FOOB");
        assert_eq!(dec("Rk9PQkE").unwrap(), b"FOOBA");
    }

    #[test]
    fn valid_data_contains_lf() {
        assert_eq!(dec("\nZm\n9v\n").unwrap(), b"foo");
    }

    #[test]
    fn valid_data_contains_crlf() {
        assert_eq!(dec("\r\nRk9P\r\nQkE=\r\n").unwrap(), b"FOOBA");
    }

    #[test]
    fn valid_decode_buffer_exact_size() {
        let mut buf = [0u8; 6];
        assert_eq!(decode(b"Rk9PQkFS", &mut buf), Ok(&b"FOOBAR"[..]));
        let mut buf = [0u8; 5];
        assert_eq!(decode(b"Rk9PQkE=", &mut buf), Ok(&b"FOOBA"[..]));
    }

    #[test]
    fn valid_whitespace() {
        assert_eq!(dec("Rk9PQkFS ").unwrap(), b"FOOBAR");
        assert_eq!(dec("Rk9PQkE= ").unwrap(), b"FOOBA");
        assert_eq!(dec("Rk9PQg==  \n ").unwrap(), b"FOOB");
    }

    /// The reference's `Base64NullPointerInput` has no Rust counterpart (a slice is never
    /// null); the nearest input, an empty one, is rejected.
    #[test]
    fn invalid_null_inputs() {
        assert_eq!(dec(""), Err(Base64Error::InvalidInputSize));
        let mut empty: [u8; 0] = [];
        assert_eq!(
            decode(b"Rk9P", &mut empty),
            Err(Base64Error::BufferTooSmall)
        );
    }

    #[test]
    fn invalid_three_padding_symbols() {
        assert_eq!(dec("Zg==="), Err(Base64Error::InvalidPaddingSymbol));
        assert_eq!(dec("Rk9PQ==="), Err(Base64Error::InvalidPaddingSymbol));
    }

    #[test]
    fn invalid_non_base64_symbols() {
        for s in [
            "Rk9P*kFS",
            "Rk9P\tQkFS",
            "Rk9-QkFS",
            "Rk9_QkFS",
            "Rk9PQkF\0",
            "Rk9PQkFé",
        ] {
            assert_eq!(dec(s), Err(Base64Error::InvalidSymbol), "{s:?}");
        }
    }

    #[test]
    fn invalid_non_zero_padding_bits() {
        assert_eq!(dec("TWG="), Err(Base64Error::NonZeroPadding));
        assert_eq!(dec("Tf=="), Err(Base64Error::NonZeroPadding));
        assert_eq!(dec("Tf"), Err(Base64Error::NonZeroPadding));
    }

    #[test]
    fn invalid_whitespace() {
        assert_eq!(dec(" Rk9PQkFS"), Err(Base64Error::InvalidSymbolOrdering));
        assert_eq!(dec("Rk9P QkFS"), Err(Base64Error::InvalidSymbolOrdering));
        assert_eq!(dec("Rk9PQg =="), Err(Base64Error::InvalidSymbolOrdering));
    }

    #[test]
    fn invalid_input_size() {
        assert_eq!(dec("R"), Err(Base64Error::InvalidInputSize));
        assert_eq!(dec("Rk9PQ"), Err(Base64Error::InvalidInputSize));
        assert_eq!(dec("=="), Err(Base64Error::InvalidInputSize));
        assert_eq!(dec(" \n"), Err(Base64Error::InvalidInputSize));
    }

    #[test]
    fn invalid_decode_buffer_size() {
        let mut buf = [0xAAu8; 5];
        assert_eq!(
            decode(b"Rk9PQkFS", &mut buf),
            Err(Base64Error::BufferTooSmall)
        );
        assert_eq!(buf, [0xAA; 5], "nothing written on error");
    }

    #[test]
    fn invalid_encoded_data_length() {
        assert_eq!(dec("Rk9PC=="), Err(Base64Error::InvalidInputSize));
        assert_eq!(dec("Rk9PQg="), Err(Base64Error::InvalidPaddingSymbol));
        assert_eq!(dec("Rk9PQkE=="), Err(Base64Error::InvalidPaddingSymbol));
    }

    #[test]
    fn invalid_padding_placement() {
        assert_eq!(dec("=Rk9PQkFS"), Err(Base64Error::InvalidSymbolOrdering));
        assert_eq!(dec("Rk9P=QkFS"), Err(Base64Error::InvalidSymbolOrdering));
    }

    #[test]
    fn decoded_len_matches_decode() {
        assert_eq!(decoded_len(b"Rk9PQkFS"), Ok(6));
        assert_eq!(decoded_len(b"Rk9PQkE"), Ok(5));
        assert_eq!(decoded_len(b"Rk9PQg=="), Ok(4));
    }

    proptest! {
        #[test]
        fn round_trips_with_and_without_padding(data in proptest::collection::vec(any::<u8>(), 1..600)) {
            let text = encode(&data);
            let mut buf = [0u8; 600];
            prop_assert_eq!(decode(text.as_bytes(), &mut buf), Ok(&data[..]));
            let unpadded = text.trim_end_matches('=');
            prop_assert_eq!(decode(unpadded.as_bytes(), &mut buf), Ok(&data[..]));
            prop_assert_eq!(decoded_len(text.as_bytes()), Ok(data.len()));
        }

        #[test]
        fn line_breaks_anywhere_do_not_change_the_result(
            data in proptest::collection::vec(any::<u8>(), 1..100),
            breaks in proptest::collection::vec((any::<prop::sample::Index>(), prop::bool::ANY), 0..8),
        ) {
            let mut text: Vec<u8> = encode(&data).into_bytes();
            for (at, crlf) in breaks {
                let i = at.index(text.len() + 1);
                let ins: &[u8] = if crlf { b"\r\n" } else { b"\n" };
                text.splice(i..i, ins.iter().copied());
            }
            let mut buf = [0u8; 100];
            prop_assert_eq!(decode(&text, &mut buf), Ok(&data[..]));
        }

        #[test]
        fn arbitrary_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..64), size in 0usize..64) {
            let mut buf = [0u8; 64];
            let _ = decode(&input, &mut buf[..size]);
            let _ = decoded_len(&input);
        }
    }
}
