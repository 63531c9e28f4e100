//! The `AT+OTA READ` and `AT+OTA SEEK` replies (spec §2.3, §2.4, §9).
//!
//! Facts not found (spec §8): the checksum algorithm on the CCM and in guides v1.0–v1.2 (only
//! v1.3 defines it: the sum of the data bytes mod 2^16, 4 hex digits; the CCM text says 2 hex
//! digits without an algorithm), and the spelling of the zero-count reply (`OK 0` or `OK 00`).
//! The parser therefore accepts 1–4 checksum digits that equal the sum mod 2^16, or, for at
//! most 2 digits, the sum mod 2^8, and reports which rule matched; it accepts any zero count.

use crate::codec::{hex_val, parse_hex, split_space};

/// Longest `count` field: 6 hex digits.
pub const MAX_COUNT_DIGITS: usize = 6;
/// Longest checksum field: 4 hex digits.
pub const MAX_CHECKSUM_DIGITS: usize = 4;

/// The RX line length needed for a READ of `n` bytes: `OK ` + 6 + SP + 2n + SP + 4 + CR LF.
pub const fn read_line_len(n: usize) -> usize {
    3 + MAX_COUNT_DIGITS + 1 + 2 * n + 1 + MAX_CHECKSUM_DIGITS + 2
}

/// Which checksum rule accepted a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChecksumRule {
    /// Sum of the data bytes mod 2^16 (PG v1.3 §9.2.4.1).
    Sum16,
    /// Sum of the data bytes mod 2^8, with a checksum field of at most 2 digits (a reading of
    /// the CCM's "2 hex digits"; unverified on hardware).
    Sum8,
}

/// Why a READ reply was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReadError {
    /// Not `OK`, SP, count… at all.
    Malformed,
    /// The count field is not 1–6 hex digits.
    BadCount,
    /// The data field is not exactly `2·count` hex digits.
    BadData,
    /// The checksum field is not 1–4 hex digits, or something follows it.
    BadChecksumField,
    /// The count is larger than the caller's buffer allows.
    TooLong,
    /// The checksum matches neither rule.
    ChecksumMismatch {
        /// The checksum sent.
        got: u16,
        /// The sum of the data bytes mod 2^16.
        sum: u16,
    },
}

/// A checked READ reply: the data has been decoded and its checksum verified.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadReply<'a> {
    /// `OK 0` / `OK 00`: the read pointer is at the end of the image.
    End,
    /// A verified chunk.
    Data {
        /// The decoded bytes (`count` of them).
        data: &'a [u8],
        /// The rule that accepted the checksum.
        rule: ChecksumRule,
    },
}

/// Sum of bytes mod 2^16.
pub fn sum16(data: &[u8]) -> u16 {
    data.iter()
        .fold(0u16, |acc, &b| acc.wrapping_add(u16::from(b)))
}

/// Parse a full READ reply line (`OK {count} {data} {checksum}`, EOL removed) and decode the
/// data **in place** at the start of `line`: the returned slice borrows `line`. The data is only
/// handed out when the checksum passes, so a byte sink cannot see an unchecked chunk.
///
/// `max_count` bounds the count (the READ size asked for).
pub fn parse_read_reply(line: &mut [u8], max_count: usize) -> Result<ReadReply<'_>, ReadError> {
    let rest = line.strip_prefix(b"OK ").ok_or(ReadError::Malformed)?;
    let (count_field, after) = split_space(rest);
    let count = parse_hex(count_field, MAX_COUNT_DIGITS).map_err(|_| ReadError::BadCount)? as usize;
    if count == 0 {
        return if after.is_empty() && rest.len() == count_field.len() {
            Ok(ReadReply::End)
        } else {
            Err(ReadError::BadData)
        };
    }
    if count > max_count {
        return Err(ReadError::TooLong);
    }
    let data_start = 3 + count_field.len() + 1;
    let hex_len = 2 * count;
    let (data_field, ck_field) = split_space(after);
    if data_field.len() != hex_len {
        return Err(ReadError::BadData);
    }
    if ck_field.is_empty() || ck_field.len() > MAX_CHECKSUM_DIGITS {
        return Err(ReadError::BadChecksumField);
    }
    let digits = ck_field.len();
    let got =
        parse_hex(ck_field, MAX_CHECKSUM_DIGITS).map_err(|_| ReadError::BadChecksumField)? as u16;
    // Decode in place: byte i goes to line[i], read from line[data_start + 2i ..]; since
    // data_start + 2i > i, no input is overwritten before it is read.
    let mut sum = 0u16;
    for i in 0..count {
        let at = data_start + 2 * i;
        let hi = line
            .get(at)
            .copied()
            .and_then(hex_val)
            .ok_or(ReadError::BadData)?;
        let lo = line
            .get(at + 1)
            .copied()
            .and_then(hex_val)
            .ok_or(ReadError::BadData)?;
        let byte = (hi << 4) | lo;
        sum = sum.wrapping_add(u16::from(byte));
        *line.get_mut(i).ok_or(ReadError::BadData)? = byte;
    }
    // A field of at most 2 digits is the CCM's form: report it as `Sum8` whenever the 8-bit
    // sum matches, also when the 16-bit sum happens to be below 256 (then both rules agree).
    // Checking `Sum16` first would count such chunks as `Sum16` and blur the per-rule counters
    // that are meant to settle, on hardware, which rule the CCM uses.
    let rule = if digits <= 2 && got == sum & 0xFF {
        ChecksumRule::Sum8
    } else if got == sum {
        ChecksumRule::Sum16
    } else {
        return Err(ReadError::ChecksumMismatch { got, sum });
    };
    let data = line.get(..count).ok_or(ReadError::BadData)?;
    Ok(ReadReply::Data { data, rule })
}

/// Checksum field width for [`encode_read_reply`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChecksumWidth {
    /// 4 hex digits, sum mod 2^16 (PG v1.3).
    Four,
    /// 2 hex digits, sum mod 2^8 (the CCM text).
    Two,
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn put_hex(out: &mut [u8], n: &mut usize, v: u32, digits: usize) -> Option<()> {
    for k in (0..digits).rev() {
        let d = (v >> (4 * k)) & 0xF;
        *out.get_mut(*n)? = *HEX.get(d as usize)?;
        *n += 1;
    }
    Some(())
}

fn hex_digits(v: u32) -> usize {
    let mut d = 1;
    while d < 8 && (v >> (4 * d)) != 0 {
        d += 1;
    }
    d
}

/// Encode a READ reply for `data` (without EOL) the way the guide's examples do: upper-case
/// hex, count padded to at least 2 digits (`OK 02 …`, `OK 100 …`), then the checksum. An empty
/// `data` gives `OK 0`. Returns the length, or `None` when `out` is too small or `data` is
/// longer than a 6-digit count allows. (Used by tests and the module emulator.)
pub fn encode_read_reply(data: &[u8], width: ChecksumWidth, out: &mut [u8]) -> Option<usize> {
    let mut n = 0;
    for &b in b"OK " {
        *out.get_mut(n)? = b;
        n += 1;
    }
    let count = u32::try_from(data.len()).ok().filter(|&c| c <= 0xFF_FFFF)?;
    if count == 0 {
        *out.get_mut(n)? = b'0';
        return Some(n + 1);
    }
    put_hex(out, &mut n, count, hex_digits(count).max(2))?;
    *out.get_mut(n)? = b' ';
    n += 1;
    for &b in data {
        put_hex(out, &mut n, u32::from(b), 2)?;
    }
    *out.get_mut(n)? = b' ';
    n += 1;
    let sum = sum16(data);
    match width {
        ChecksumWidth::Four => put_hex(out, &mut n, u32::from(sum), 4)?,
        ChecksumWidth::Two => put_hex(out, &mut n, u32::from(sum & 0xFF), 2)?,
    }
    Some(n)
}

/// Parse a SEEK reply detail (`OK {hex address}` → the address).
pub fn parse_seek_reply(detail: &[u8]) -> Option<u32> {
    parse_hex(detail, MAX_COUNT_DIGITS).ok()
}
