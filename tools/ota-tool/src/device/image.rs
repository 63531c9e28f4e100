//! The generic board's image format: a 32-byte header, then the payload.
//!
//! | offset | size | field                                                            |
//! |-------:|-----:|------------------------------------------------------------------|
//! | 0      | 8    | magic `OTARSIM1`                                                 |
//! | 8      | 4    | version, little endian, `major << 24 \| minor << 16 \| build`    |
//! | 12     | 4    | payload length, little endian                                    |
//! | 16     | 1    | behaviour once booted: 0 normal, 1 fails its self test, 2 cannot connect, 3 crashes in its self test |
//! | 17     | 15   | zero                                                             |
//! | 32     | len  | payload                                                          |
//!
//! The behaviour byte lets one signed image play a broken firmware in tests and demos.

use ota_core::wire::version::AppVersion;

/// The header magic.
pub const MAGIC: &[u8; 8] = b"OTARSIM1";
/// Header length.
pub const HEADER_LEN: usize = 32;

/// What a booted image does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Behavior {
    /// Works: passes its self test.
    Normal,
    /// Runs but fails its self test (the application rejects it).
    FailSelfTest,
    /// Cannot connect to the broker: the watchdog resets it, the bootloader rolls back.
    CannotConnect,
    /// Crashes during its self test: reset without a confirm, the bootloader rolls back.
    Crash,
}

impl Behavior {
    fn byte(self) -> u8 {
        match self {
            Self::Normal => 0,
            Self::FailSelfTest => 1,
            Self::CannotConnect => 2,
            Self::Crash => 3,
        }
    }

    fn from_byte(b: u8) -> Self {
        match b {
            1 => Self::FailSelfTest,
            2 => Self::CannotConnect,
            3 => Self::Crash,
            _ => Self::Normal,
        }
    }
}

/// A parsed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The image's version.
    pub version: AppVersion,
    /// Payload length.
    pub len: u32,
    /// Its behaviour.
    pub behavior: Behavior,
}

/// Build an image of `payload_len` deterministic payload bytes.
pub fn build(version: AppVersion, payload_len: u32, behavior: Behavior) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload_len as usize);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&version.to_u32().to_le_bytes());
    out.extend_from_slice(&payload_len.to_le_bytes());
    out.push(behavior.byte());
    out.resize(HEADER_LEN, 0);
    let seed = version.to_u32();
    out.extend((0..payload_len).map(|i| {
        let x = i.wrapping_mul(2_654_435_761).wrapping_add(seed);
        (x >> 13) as u8 ^ (i >> 8) as u8
    }));
    out
}

/// Read the header at the start of `bytes`.
pub fn parse(bytes: &[u8]) -> Option<Header> {
    let h = bytes.get(..HEADER_LEN)?;
    if h.get(..8)? != MAGIC {
        return None;
    }
    let word = |at: usize| -> Option<u32> {
        let b: [u8; 4] = h.get(at..at + 4)?.try_into().ok()?;
        Some(u32::from_le_bytes(b))
    };
    Some(Header {
        version: AppVersion::from_u32(word(8)?),
        len: word(12)?,
        behavior: Behavior::from_byte(*h.get(16)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let img = build(AppVersion::new(1, 2, 3), 100, Behavior::Crash);
        assert_eq!(img.len(), HEADER_LEN + 100);
        assert_eq!(
            parse(&img),
            Some(Header {
                version: AppVersion::new(1, 2, 3),
                len: 100,
                behavior: Behavior::Crash
            })
        );
        assert_eq!(parse(&[0xFF; 64]), None);
    }
}
