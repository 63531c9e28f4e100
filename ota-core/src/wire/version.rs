//! The 32-bit application version (`AppVersion32_t`, spec §6).
//!
//! The reference agent packs a version as `major << 24 | minor << 16 | build` and reports it in
//! job status updates as `0x%08x` (`updatedBy`, §1.4). After the reboot into a new image the
//! agent reads that number back from the job document to refuse downgrades, so the packing and
//! the ordering must match the reference exactly. The derived ordering (major, then minor,
//! then build) is the ordering of the packed `u32`.

use core::fmt;
use core::str::FromStr;

/// An application firmware version: `major.minor.build` (spec §6).
///
/// Field order matters: the derived `Ord` compares `major`, then `minor`, then `build`, which
/// is the same as comparing [`AppVersion::to_u32`] values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AppVersion {
    /// Major version, bits 31..24 of the packed form.
    pub major: u8,
    /// Minor version, bits 23..16 of the packed form.
    pub minor: u8,
    /// Build number, bits 15..0 of the packed form.
    pub build: u16,
}

impl AppVersion {
    /// Builds a version from its parts.
    pub const fn new(major: u8, minor: u8, build: u16) -> Self {
        Self {
            major,
            minor,
            build,
        }
    }

    /// Unpacks `major << 24 | minor << 16 | build` (spec §6). Every `u32` is a valid version.
    pub const fn from_u32(v: u32) -> Self {
        Self {
            major: (v >> 24) as u8,
            minor: (v >> 16) as u8,
            build: v as u16,
        }
    }

    /// Packs into `major << 24 | minor << 16 | build` (spec §6), e.g. 1.2.3 → `0x01020003`.
    pub const fn to_u32(self) -> u32 {
        (self.major as u32) << 24 | (self.minor as u32) << 16 | self.build as u32
    }
}

impl From<u32> for AppVersion {
    fn from(v: u32) -> Self {
        Self::from_u32(v)
    }
}

impl From<AppVersion> for u32 {
    fn from(v: AppVersion) -> Self {
        v.to_u32()
    }
}

/// Formats as `major.minor.build` in decimal, e.g. `1.2.3` (the form of the `accepted  v1.2.3`
/// status reason, §1.4).
impl fmt::Display for AppVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.build)
    }
}

/// Why a `major.minor.build` text could not be read as an [`AppVersion`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseVersionError {
    /// Not exactly three dot-separated parts.
    Shape,
    /// A part is empty or has a character other than `0`-`9`.
    NotDecimal,
    /// A part does not fit its field (major/minor > 255, build > 65535).
    OutOfRange,
}

impl fmt::Display for ParseVersionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Shape => "expected major.minor.build",
            Self::NotDecimal => "version part is not a decimal number",
            Self::OutOfRange => "version part out of range",
        })
    }
}

impl core::error::Error for ParseVersionError {}

/// Reads one decimal part: digits only, no sign, no spaces, at most `max`.
fn part(s: &str, max: u32) -> Result<u32, ParseVersionError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseVersionError::NotDecimal);
    }
    let mut v: u32 = 0;
    for b in s.bytes() {
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add(u32::from(b - b'0')))
            .ok_or(ParseVersionError::OutOfRange)?;
    }
    if v > max {
        return Err(ParseVersionError::OutOfRange);
    }
    Ok(v)
}

/// Parses `major.minor.build` in decimal, e.g. `"1.2.3"`, for tools and tests. Strict: no
/// `v` prefix, no spaces, no fourth part.
impl FromStr for AppVersion {
    type Err = ParseVersionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut it = s.split('.');
        let (Some(a), Some(b), Some(c), None) = (it.next(), it.next(), it.next(), it.next()) else {
            return Err(ParseVersionError::Shape);
        };
        Ok(Self::new(
            part(a, 0xff)? as u8,
            part(b, 0xff)? as u8,
            part(c, 0xffff)? as u16,
        ))
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use proptest::prelude::*;
    use std::string::ToString;

    #[test]
    fn packs_like_the_reference() {
        assert_eq!(AppVersion::new(1, 2, 3).to_u32(), 0x0102_0003);
        assert_eq!(AppVersion::from_u32(0x0102_0002), AppVersion::new(1, 2, 2));
        assert_eq!(
            AppVersion::from_u32(0xffff_ffff),
            AppVersion::new(255, 255, 65535)
        );
        assert_eq!(u32::from(AppVersion::from(0x0a0b_0c0d)), 0x0a0b_0c0d);
    }

    #[test]
    fn displays_and_parses() {
        assert_eq!(AppVersion::new(1, 2, 3).to_string(), "1.2.3");
        assert_eq!("1.2.3".parse(), Ok(AppVersion::new(1, 2, 3)));
        assert_eq!("255.255.65535".parse(), Ok(AppVersion::from_u32(u32::MAX)));
        assert_eq!("0.0.0".parse(), Ok(AppVersion::default()));
    }

    #[test]
    fn rejects_bad_text() {
        use ParseVersionError::*;
        for (s, e) in [
            ("", Shape),
            ("1.2", Shape),
            ("1.2.3.4", Shape),
            ("1..3", NotDecimal),
            ("v1.2.3", NotDecimal),
            ("1.2.+3", NotDecimal),
            ("1.2. 3", NotDecimal),
            ("256.0.0", OutOfRange),
            ("0.256.0", OutOfRange),
            ("0.0.65536", OutOfRange),
            ("0.0.99999999999999", OutOfRange),
        ] {
            assert_eq!(s.parse::<AppVersion>(), Err(e), "{s:?}");
        }
    }

    proptest! {
        #[test]
        fn u32_round_trip_and_order(a: u32, b: u32) {
            let (va, vb) = (AppVersion::from_u32(a), AppVersion::from_u32(b));
            prop_assert_eq!(va.to_u32(), a);
            prop_assert_eq!(va.cmp(&vb), a.cmp(&b));
            prop_assert_eq!(va.to_string().parse::<AppVersion>(), Ok(va));
        }
    }
}
