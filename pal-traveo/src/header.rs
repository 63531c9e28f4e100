//! `cy_stc_si_appheader_t`, the 24-byte application header at the start of the CM0+ image and
//! so at offset 0 of the OTA file (spec §2.2, §2.4 step 4/6).
//!
//! ```text
//! +0  objSize        bytes covered by the signature; the signature follows at +objSize
//! +4  appId          CM0+ code-flash header: major<<24 | minor<<16 | build
//! +8  appAttributes  0
//! +12 numCores       1
//! +16 core0Vt        vector-table offset - 0x10 (VT = 0x1000_0000 + core0Vt + 0x10)
//! +20 core0Id        0xC6000000
//! ```

use crate::layout::SIGNATURE_LEN;

/// Header size.
pub const APP_HEADER_LEN: usize = 24;
/// `core0Id` of the CM0+ image (§2.2).
pub const CORE0_ID_CM0P: u32 = 0xC600_0000;

/// A decoded `cy_stc_si_appheader_t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AppHeader {
    /// Bytes covered by the signature; the 256-byte signature starts at this offset.
    pub obj_size: u32,
    /// Application id; for the CM0+ code-flash header the version (see [`Self::version`]).
    pub app_id: u32,
    /// Attributes (0).
    pub app_attributes: u32,
    /// Number of cores (1).
    pub num_cores: u32,
    /// Vector-table offset minus 0x10.
    pub core0_vt: u32,
    /// Core id (0xC6000000 for CM0+).
    pub core0_id: u32,
}

/// Version decoded from a CM0+ `appId` (`major<<24 | minor<<16 | build`, the AWS
/// `AppVersion32_t` layout, §2.2, §2.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AppVersion {
    /// Major.
    pub major: u8,
    /// Minor.
    pub minor: u8,
    /// Build.
    pub build: u16,
}

impl AppVersion {
    /// The packed `AppVersion32_t`.
    pub const fn packed(&self) -> u32 {
        ((self.major as u32) << 24) | ((self.minor as u32) << 16) | self.build as u32
    }

    /// From a packed `AppVersion32_t`.
    pub const fn from_packed(v: u32) -> Self {
        Self {
            major: (v >> 24) as u8,
            minor: (v >> 16) as u8,
            build: v as u16,
        }
    }
}

/// Why a header would not boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HeaderError {
    /// Fewer than 24 bytes.
    Truncated,
    /// `objSize` smaller than the header, or its signature would pass the DBM's limit
    /// (`start + objSize` above 0x1000FF00 / 0x10407F00, §2.4 step 4).
    ObjSizeOutOfRange,
    /// The signature at `objSize` does not fit inside the file.
    SignatureOutsideFile,
    /// `numCores` is not 1.
    NumCores,
    /// `core0Id` is not 0xC6000000.
    CoreId,
}

impl HeaderError {
    /// A stable sub-code for [`ota_pal_traits::PalError`] (0x300 + n).
    pub const fn sub_code(&self) -> u32 {
        0x300
            + match self {
                HeaderError::Truncated => 1,
                HeaderError::ObjSizeOutOfRange => 2,
                HeaderError::SignatureOutsideFile => 3,
                HeaderError::NumCores => 4,
                HeaderError::CoreId => 5,
            }
    }
}

fn word(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at + 4)?;
    let mut w = [0u8; 4];
    w.copy_from_slice(b);
    Some(u32::from_le_bytes(w))
}

impl AppHeader {
    /// Decode the first 24 bytes of `bytes` (little-endian words).
    pub fn decode(bytes: &[u8]) -> Result<Self, HeaderError> {
        let w = |i: usize| word(bytes, i * 4).ok_or(HeaderError::Truncated);
        Ok(Self {
            obj_size: w(0)?,
            app_id: w(1)?,
            app_attributes: w(2)?,
            num_cores: w(3)?,
            core0_vt: w(4)?,
            core0_id: w(5)?,
        })
    }

    /// The 24 bytes of this header.
    pub fn encode(&self) -> [u8; APP_HEADER_LEN] {
        let mut out = [0u8; APP_HEADER_LEN];
        let words = [
            self.obj_size,
            self.app_id,
            self.app_attributes,
            self.num_cores,
            self.core0_vt,
            self.core0_id,
        ];
        for (chunk, w) in out.chunks_exact_mut(4).zip(words) {
            chunk.copy_from_slice(&w.to_le_bytes());
        }
        out
    }

    /// A CM0+ header for `version`, signing `obj_size` bytes, vector table at `vt_offset`.
    pub const fn cm0p(obj_size: u32, version: AppVersion, vt_offset: u32) -> Self {
        Self {
            obj_size,
            app_id: version.packed(),
            app_attributes: 0,
            num_cores: 1,
            core0_vt: vt_offset.wrapping_sub(0x10),
            core0_id: CORE0_ID_CM0P,
        }
    }

    /// The version in a CM0+ code-flash `appId`.
    pub const fn version(&self) -> AppVersion {
        AppVersion::from_packed(self.app_id)
    }

    /// Offset of the vector table from the bank start (`core0Vt + 0x10`, §2.4 step 6).
    pub const fn vector_table_offset(&self) -> u32 {
        self.core0_vt.wrapping_add(0x10)
    }

    /// Check the header of a file of `file_size` bytes against what the DBM boots, with the
    /// signature limit `sig_limit` ([`crate::layout::CM0_SIGNATURE_LIMIT`]).
    pub fn check(&self, file_size: u32, sig_limit: u32) -> Result<(), HeaderError> {
        if (self.obj_size as usize) < APP_HEADER_LEN || self.obj_size > sig_limit {
            return Err(HeaderError::ObjSizeOutOfRange);
        }
        match self.obj_size.checked_add(SIGNATURE_LEN) {
            Some(end) if end <= file_size => {}
            _ => return Err(HeaderError::SignatureOutsideFile),
        }
        if self.num_cores != 1 {
            return Err(HeaderError::NumCores);
        }
        if self.core0_id != CORE0_ID_CM0P {
            return Err(HeaderError::CoreId);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::CM0_SIGNATURE_LIMIT;

    const V1_2_3: AppVersion = AppVersion {
        major: 1,
        minor: 2,
        build: 3,
    };

    #[test]
    fn header_bytes_are_pinned() {
        let h = AppHeader::cm0p(0x8000, V1_2_3, 0x100);
        let bytes = h.encode();
        assert_eq!(
            bytes,
            [
                0x00, 0x80, 0x00, 0x00, // objSize 0x8000
                0x03, 0x00, 0x02, 0x01, // appId 0x01020003
                0x00, 0x00, 0x00, 0x00, // appAttributes
                0x01, 0x00, 0x00, 0x00, // numCores 1
                0xF0, 0x00, 0x00, 0x00, // core0Vt 0x100 - 0x10
                0x00, 0x00, 0x00, 0xC6, // core0Id 0xC6000000
            ]
        );
        assert_eq!(AppHeader::decode(&bytes), Ok(h));
        assert_eq!(h.version(), V1_2_3);
        assert_eq!(h.version().packed(), 0x0102_0003);
        assert_eq!(h.vector_table_offset(), 0x100);
        assert_eq!(AppHeader::decode(&bytes[..23]), Err(HeaderError::Truncated));
    }

    #[test]
    fn checks_follow_the_dbm_limits() {
        let ok = AppHeader::cm0p(0xFF00, V1_2_3, 0x100);
        assert_eq!(ok.check(0x1_0000, CM0_SIGNATURE_LIMIT), Ok(()));
        assert_eq!(
            ok.check(0xFFFF, CM0_SIGNATURE_LIMIT),
            Err(HeaderError::SignatureOutsideFile)
        );
        let big = AppHeader::cm0p(0xFF04, V1_2_3, 0x100);
        assert_eq!(
            big.check(0x2_0000, CM0_SIGNATURE_LIMIT),
            Err(HeaderError::ObjSizeOutOfRange)
        );
        let tiny = AppHeader::cm0p(16, V1_2_3, 0x100);
        assert_eq!(
            tiny.check(0x2_0000, CM0_SIGNATURE_LIMIT),
            Err(HeaderError::ObjSizeOutOfRange)
        );
        let cores = AppHeader { num_cores: 2, ..ok };
        assert_eq!(
            cores.check(0x1_0000, CM0_SIGNATURE_LIMIT),
            Err(HeaderError::NumCores)
        );
        let id = AppHeader {
            core0_id: 0xC700_0000,
            ..ok
        };
        assert_eq!(
            id.check(0x1_0000, CM0_SIGNATURE_LIMIT),
            Err(HeaderError::CoreId)
        );
        // Erased flash is never a header.
        let erased = AppHeader::decode(&[0xFF; 24]).unwrap();
        assert!(erased.check(0x1_0000, CM0_SIGNATURE_LIMIT).is_err());
        assert_eq!(HeaderError::CoreId.sub_code(), 0x305);
    }
}
