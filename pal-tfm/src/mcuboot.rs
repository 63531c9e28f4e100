//! MCUboot (TF-M BL2) on-flash formats the simulated bootloader reads and the TF-M FWU
//! partition writes (spec `board-formats.md` §1.2–§1.6, which §4.1's MCUboot shim relies on):
//! [`mcuboot_format`]'s header, TLV and trailer modules, re-exported, plus what is TF-M's own.
//!
//! On a real Corstone the non-secure PAL never writes these bytes itself: TF-M does, on the
//! secure side, through `boot_set_pending_multi` / `boot_set_confirmed_multi`. They are here so
//! that the `sim` module (feature `sim`) writes and reads exactly what TF-M and BL2 would. `BOOT_MAX_ALIGN` = 8
//! layout (§1.4) on 0xFF-erased flash; the MAX_ALIGN ≠ 8 variant of upstream MCUboot ≥ 2.x is
//! not used.

pub use mcuboot_format::header::*;
pub use mcuboot_format::tlv::*;
pub use mcuboot_format::trailer::*;

use crate::psa;

/// TF-M's `wrapper.py -H 0x400 --pad-header` header size (§4.3).
pub const TFM_HEADER_SIZE: u16 = 0x400;

impl From<ImageVersion> for psa::ImageVersion {
    /// MCUboot's `iv_revision` is PSA's `patch`.
    fn from(v: ImageVersion) -> Self {
        Self {
            major: v.major,
            minor: v.minor,
            patch: v.revision,
            build: v.build,
        }
    }
}

impl From<psa::ImageVersion> for ImageVersion {
    fn from(v: psa::ImageVersion) -> Self {
        Self::new(v.major, v.minor, v.patch, v.build)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tfm_header_bytes_are_pinned() {
        let v = psa::ImageVersion {
            major: 1,
            minor: 2,
            patch: 3,
            build: 4,
        };
        let h = ImageHeader::new(TFM_HEADER_SIZE, 0x1234, v.into());
        let b = h.encode();
        assert_eq!(&b[..4], &[0x3D, 0xB8, 0xF3, 0x96]);
        assert_eq!(&b[8..10], &[0x00, 0x04]);
        assert_eq!(&b[12..16], &[0x34, 0x12, 0, 0]);
        assert_eq!(&b[20..28], &[1, 2, 3, 0, 4, 0, 0, 0]);
        assert_eq!(&b[28..32], &[0; 4]);
        let d = ImageHeader::decode(&b);
        assert_eq!(d, h);
        assert_eq!(psa::ImageVersion::from(d.version), v);
        let mut bad = b;
        bad[0] = 0x3C;
        assert!(!ImageHeader::decode(&bad).has_magic());
    }

    #[test]
    fn trailer_records_on_tfm_flash_are_pinned() {
        // What `install` / `accept` program on 0xFF-erased Corstone flash (§1.4, §1.6).
        assert_eq!(
            flag_record::<MAX_ALIGN>(FLAG_SET, 0xFF),
            [1, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]
        );
        assert_eq!(swap_info(1, SWAP_TYPE_TEST), 0x12);
    }

    #[cfg(feature = "sim")]
    #[test]
    fn wrapper_py_tlv_order_is_keyhash_sha256_signature() {
        // TF-M's wrapper.py writes KEYHASH first (pal-psoc6's imgtool images: SHA256 first).
        let key = p256::ecdsa::SigningKey::from_slice(&[0x11; 32]).unwrap();
        let v = psa::ImageVersion {
            major: 1,
            minor: 0,
            patch: 0,
            build: 0,
        };
        let mut out = [0u8; 0x400 + 3 + 256];
        let n = crate::sim::build_image(&mut out, b"abc", v, &key).unwrap();
        let body = 0x403;
        assert_eq!(&out[body..body + 2], &[0x07, 0x69]);
        assert_eq!(&out[body + 4..body + 8], &[0x01, 0x00, 32, 0]);
        assert_eq!(&out[body + 40..body + 44], &[0x10, 0x00, 32, 0]);
        assert_eq!(&out[body + 76..body + 78], &[0x22, 0x00]);
        assert_eq!(
            usize::from(u16::from_le_bytes([out[body + 2], out[body + 3]])),
            n - body
        );
        assert!(out[32..0x400].iter().all(|&b| b == 0));
        assert_eq!(
            ImageHeader::decode(&out[..32].try_into().unwrap()).img_size,
            3
        );
    }
}
