//! Unsigned 32-bit numbers the way the reference agent reads them (spec §2.2).
//!
//! The reference agent converts every numeric job-document value with C
//! `strtoul(value, &end, 0)` and requires the whole token to be consumed. So a job document may
//! carry `10240`, `"1024"` (quoted: coreJSON hands over the text between the quotes),
//! `"0x1000000"` (hex, what the agent itself writes into `updatedBy`) or `"017"` (octal), and
//! documents in the field rely on that. We accept exactly those forms and reject anything that
//! does not fit a `u32` (the reference would silently truncate an `unsigned long` on 64-bit
//! hosts; we do not).
//!
//! Deliberately stricter than `strtoul`: no leading whitespace and no sign (`strtoul` accepts
//! `" 12"` and `"-1"`, the latter wrapping to `ULONG_MAX`); neither occurs in a real document.
//!
//! JSON `null` is not a number: see [`crate::wire::job`] for how a `null` value is treated
//! (absent for optional keys, an error for required ones).

use core::fmt;

/// Why a text is not a `u32` (spec §2.2, the reference's `DocParseErrInvalidNumChar` and
/// `ERANGE` cases).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NumberError {
    /// The text is empty, or is only a radix prefix with no digit after it would be consumed.
    Empty,
    /// A character that is not a digit of the radix, a sign, a fraction or an exponent
    /// (`NaN`, `-1`, `1.5`, `1e3`, `08`, `0x`): `strtoul` would stop before the end.
    InvalidDigit,
    /// The value is larger than `u32::MAX` (e.g. `4294967296`, `19223372036854775808`).
    OutOfRange,
}

impl fmt::Display for NumberError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Empty => "empty number",
            Self::InvalidDigit => "invalid character in number",
            Self::OutOfRange => "number larger than u32::MAX",
        })
    }
}

impl core::error::Error for NumberError {}

/// Parse `s` as C `strtoul(s, &end, 0)` does, requiring `*end == '\0'` (spec §2.2).
///
/// Radix by prefix: `0x`/`0X` hexadecimal, a leading `0` octal, otherwise decimal. The whole
/// text must be digits of that radix and the value must fit a `u32`.
///
/// ```
/// use ota_core::wire::number::{parse_u32, NumberError};
/// assert_eq!(parse_u32("10240"), Ok(10240));
/// assert_eq!(parse_u32("0x1000000"), Ok(0x0100_0000));
/// assert_eq!(parse_u32("017"), Ok(15));
/// assert_eq!(parse_u32("NaN"), Err(NumberError::InvalidDigit));
/// assert_eq!(parse_u32("4294967296"), Err(NumberError::OutOfRange));
/// ```
pub fn parse_u32(s: &str) -> Result<u32, NumberError> {
    let bytes = s.as_bytes();
    let (radix, digits) = match bytes {
        [] => return Err(NumberError::Empty),
        // `strtoul("0x")` parses the `0` and stops at `x`: not fully consumed.
        [b'0', b'x' | b'X'] => return Err(NumberError::InvalidDigit),
        [b'0', b'x' | b'X', rest @ ..] => (16, rest),
        [b'0', rest @ ..] => (8, rest),
        _ => (10, bytes),
    };
    let mut value: u32 = 0;
    let mut out_of_range = false;
    for &b in digits {
        let digit = match char::from(b).to_digit(radix) {
            Some(d) => d,
            None => return Err(NumberError::InvalidDigit),
        };
        // Keep scanning after an overflow: junk after a huge number is still junk, as for
        // strtoul, which consumes every digit before reporting ERANGE.
        match value.checked_mul(radix).and_then(|v| v.checked_add(digit)) {
            Some(v) => value = v,
            None => out_of_range = true,
        }
    }
    if out_of_range {
        Err(NumberError::OutOfRange)
    } else {
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use proptest::prelude::*;

    #[test]
    fn decimal_hex_and_octal_forms_are_accepted() {
        assert_eq!(parse_u32("0"), Ok(0));
        assert_eq!(parse_u32("10240"), Ok(10240));
        assert_eq!(parse_u32("4294967295"), Ok(u32::MAX));
        assert_eq!(parse_u32("0x1000000"), Ok(0x0100_0000));
        assert_eq!(parse_u32("0XfF"), Ok(255));
        assert_eq!(parse_u32("0xFFFFFFFF"), Ok(u32::MAX));
        assert_eq!(parse_u32("017"), Ok(0o17));
        assert_eq!(parse_u32("00"), Ok(0));
        assert_eq!(parse_u32("037777777777"), Ok(u32::MAX));
    }

    #[test]
    fn empty_and_bare_prefix_are_rejected() {
        assert_eq!(parse_u32(""), Err(NumberError::Empty));
        assert_eq!(parse_u32("0x"), Err(NumberError::InvalidDigit));
        assert_eq!(parse_u32("0X"), Err(NumberError::InvalidDigit));
    }

    #[test]
    fn signs_whitespace_fractions_and_junk_are_rejected() {
        for s in [
            "-1", "+1", " 1", "1 ", "1.0", "1e3", "1E3", "NaN", "nan", "12a", "0x1g", "08", "09",
            "0b1", "null", "\"1\"",
        ] {
            assert_eq!(parse_u32(s), Err(NumberError::InvalidDigit), "{s:?}");
        }
    }

    #[test]
    fn values_above_u32_max_are_out_of_range() {
        assert_eq!(parse_u32("4294967296"), Err(NumberError::OutOfRange));
        assert_eq!(
            parse_u32("19223372036854775808"),
            Err(NumberError::OutOfRange)
        );
        assert_eq!(parse_u32("0x100000000"), Err(NumberError::OutOfRange));
        assert_eq!(parse_u32("040000000000"), Err(NumberError::OutOfRange));
    }

    #[test]
    fn junk_after_an_overflowing_number_is_still_junk() {
        assert_eq!(parse_u32("99999999999x"), Err(NumberError::InvalidDigit));
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(s in ".{0,40}") {
            let _ = parse_u32(&s);
        }

        #[test]
        fn every_u32_round_trips_in_all_three_radixes(v: u32) {
            prop_assert_eq!(parse_u32(&std::format!("{v}")), Ok(v));
            prop_assert_eq!(parse_u32(&std::format!("0x{v:x}")), Ok(v));
            prop_assert_eq!(parse_u32(&std::format!("0X{v:X}")), Ok(v));
            prop_assert_eq!(parse_u32(&std::format!("0{v:o}")), Ok(v));
        }

        #[test]
        fn every_u64_above_u32_is_out_of_range(v in (u64::from(u32::MAX) + 1)..) {
            prop_assert_eq!(parse_u32(&std::format!("{v}")), Err(NumberError::OutOfRange));
        }
    }
}
