//! MCUboot (TF-M BL2) on-flash formats the simulated bootloader reads and the TF-M FWU
//! partition writes (spec `board-formats.md` §1.2–§1.6, which §4.1's MCUboot shim relies on).
//!
//! On a real Corstone the non-secure PAL never writes these bytes itself: TF-M does, on the
//! secure side, through `boot_set_pending_multi` / `boot_set_confirmed_multi`. They are here so
//! that [`crate::sim`] writes and reads exactly what TF-M and BL2 would, and so that the exact
//! bytes are pinned by tests. `BOOT_MAX_ALIGN` = 8 layout (§1.4); the MAX_ALIGN ≠ 8 variant of
//! upstream MCUboot ≥ 2.x is not modelled.

/// `IMAGE_MAGIC` 0x96F3B83D (§1.2).
pub const IMAGE_MAGIC: u32 = 0x96F3_B83D;
/// Size of the fixed image header.
pub const IMAGE_HEADER_SIZE: usize = 32;
/// TF-M's `wrapper.py -H 0x400 --pad-header` header size (§4.3).
pub const TFM_HEADER_SIZE: u16 = 0x400;
/// Unprotected TLV info magic.
pub const TLV_INFO_MAGIC: u16 = 0x6907;
/// Protected TLV info magic.
pub const TLV_PROT_INFO_MAGIC: u16 = 0x6908;
/// TLV: SHA-256 of the public key (DER SubjectPublicKeyInfo).
pub const TLV_KEYHASH: u16 = 0x01;
/// TLV: SHA-256 of header + payload + protected TLVs.
pub const TLV_SHA256: u16 = 0x10;
/// TLV: ECDSA P-256 signature (ASN.1 DER) of the SHA256 TLV value.
pub const TLV_ECDSA_SIG: u16 = 0x22;

/// The 16 trailer magic bytes at S-16 for `BOOT_MAX_ALIGN` = 8 (§1.4).
pub const BOOT_MAGIC: [u8; 16] = [
    0x77, 0xC2, 0x95, 0xF3, 0x60, 0xD2, 0xEF, 0x7F, 0x35, 0x52, 0x50, 0x0F, 0x2C, 0xB6, 0x79, 0x80,
];
/// `BOOT_MAX_ALIGN`: each trailer flag is one byte padded to 8 with the erased value.
pub const BOOT_MAX_ALIGN: u32 = 8;
/// Trailer offsets from the end of the slot (§1.4).
pub const MAGIC_FROM_END: u32 = 16;
/// image_ok at S-24.
pub const IMAGE_OK_FROM_END: u32 = 24;
/// copy_done at S-32.
pub const COPY_DONE_FROM_END: u32 = 32;
/// swap_info at S-40.
pub const SWAP_INFO_FROM_END: u32 = 40;
/// swap_size at S-48.
pub const SWAP_SIZE_FROM_END: u32 = 48;
/// The trailer bytes this crate decodes: the last 48 of a slot.
pub const TRAILER_LEN: usize = 48;
/// Flag value SET.
pub const FLAG_SET: u8 = 0x01;
/// `BOOT_SWAP_TYPE_NONE`.
pub const SWAP_NONE: u8 = 1;
/// `BOOT_SWAP_TYPE_TEST`.
pub const SWAP_TEST: u8 = 2;
/// `BOOT_SWAP_TYPE_PERM`.
pub const SWAP_PERM: u8 = 3;
/// `BOOT_SWAP_TYPE_REVERT`.
pub const SWAP_REVERT: u8 = 4;
/// DER prefix of a P-256 SubjectPublicKeyInfo (id-ecPublicKey, prime256v1, BIT STRING of 66).
pub const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// The fixed 32-byte image header (§1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageHeader {
    /// `ih_load_addr`.
    pub load_addr: u32,
    /// `ih_hdr_size`.
    pub hdr_size: u16,
    /// `ih_protect_tlv_size`.
    pub protect_tlv_size: u16,
    /// `ih_img_size`.
    pub img_size: u32,
    /// `ih_flags`.
    pub flags: u32,
    /// Version (`iv_major`, `iv_minor`, `iv_revision`, `iv_build_num`).
    pub version: crate::psa::ImageVersion,
}

impl ImageHeader {
    /// Decode; `None` unless the magic is `IMAGE_MAGIC`.
    pub fn decode(b: &[u8; IMAGE_HEADER_SIZE]) -> Option<Self> {
        let u32_at = |o: usize| {
            let mut w = [0u8; 4];
            w.copy_from_slice(b.get(o..o + 4)?);
            Some(u32::from_le_bytes(w))
        };
        let u16_at = |o: usize| {
            let mut w = [0u8; 2];
            w.copy_from_slice(b.get(o..o + 2)?);
            Some(u16::from_le_bytes(w))
        };
        if u32_at(0)? != IMAGE_MAGIC {
            return None;
        }
        Some(Self {
            load_addr: u32_at(4)?,
            hdr_size: u16_at(8)?,
            protect_tlv_size: u16_at(10)?,
            img_size: u32_at(12)?,
            flags: u32_at(16)?,
            version: crate::psa::ImageVersion {
                major: *b.get(20)?,
                minor: *b.get(21)?,
                patch: u16_at(22)?,
                build: u32_at(24)?,
            },
        })
    }

    /// Encode (pad word 0).
    pub fn encode(&self) -> [u8; IMAGE_HEADER_SIZE] {
        let mut b = [0u8; IMAGE_HEADER_SIZE];
        let fields: [(usize, &[u8]); 9] = [
            (0, &IMAGE_MAGIC.to_le_bytes()),
            (4, &self.load_addr.to_le_bytes()),
            (8, &self.hdr_size.to_le_bytes()),
            (10, &self.protect_tlv_size.to_le_bytes()),
            (12, &self.img_size.to_le_bytes()),
            (16, &self.flags.to_le_bytes()),
            (20, &[self.version.major, self.version.minor]),
            (22, &self.version.patch.to_le_bytes()),
            (24, &self.version.build.to_le_bytes()),
        ];
        for (o, v) in fields {
            if let Some(d) = b.get_mut(o..o + v.len()) {
                d.copy_from_slice(v);
            }
        }
        b
    }
}

/// State of the trailer magic (`BOOT_MAGIC_GOOD/BAD/UNSET`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Magic {
    /// The 16 magic bytes.
    Good,
    /// Anything else that is not erased.
    Bad,
    /// All erased.
    Unset,
}

/// State of a one-byte trailer flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flag {
    /// 0x01.
    Set,
    /// The erased value.
    Unset,
    /// Anything else.
    Bad,
}

/// The decoded end of a slot (§1.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trailer {
    /// Magic at S-16.
    pub magic: Magic,
    /// image_ok at S-24.
    pub image_ok: Flag,
    /// copy_done at S-32.
    pub copy_done: Flag,
    /// swap_info at S-40 (raw; erased value when unset).
    pub swap_info: u8,
}

impl Trailer {
    /// Decode the last [`TRAILER_LEN`] bytes of a slot on a flash erasing to `erased`.
    pub fn decode(tail: &[u8; TRAILER_LEN], erased: u8) -> Self {
        let at = |from_end: u32| -> &[u8] {
            let o = TRAILER_LEN - from_end as usize;
            tail.get(o..).unwrap_or(&[])
        };
        let magic_bytes = at(MAGIC_FROM_END);
        let magic = if magic_bytes == BOOT_MAGIC {
            Magic::Good
        } else if magic_bytes.iter().all(|&b| b == erased) {
            Magic::Unset
        } else {
            Magic::Bad
        };
        let flag = |from_end: u32| match at(from_end).first() {
            Some(&FLAG_SET) => Flag::Set,
            Some(&b) if b == erased => Flag::Unset,
            _ => Flag::Bad,
        };
        Self {
            magic,
            image_ok: flag(IMAGE_OK_FROM_END),
            copy_done: flag(COPY_DONE_FROM_END),
            swap_info: at(SWAP_INFO_FROM_END).first().copied().unwrap_or(erased),
        }
    }
}

/// One 8-byte trailer record: `value` followed by 7 erased bytes (§1.4).
pub const fn flag_record(value: u8, erased: u8) -> [u8; BOOT_MAX_ALIGN as usize] {
    [
        value, erased, erased, erased, erased, erased, erased, erased,
    ]
}

/// `swap_info` = `(image_num << 4) | swap_type`.
pub const fn swap_info(image_num: u8, swap_type: u8) -> u8 {
    (image_num << 4) | (swap_type & 0x0f)
}

/// The swap type of §1.5's table (walked in order; secondary has priority).
pub fn swap_type(primary: &Trailer, secondary: &Trailer) -> u8 {
    if secondary.magic == Magic::Good && secondary.image_ok == Flag::Unset {
        SWAP_TEST
    } else if secondary.magic == Magic::Good && secondary.image_ok == Flag::Set {
        SWAP_PERM
    } else if primary.magic == Magic::Good
        && primary.image_ok == Flag::Unset
        && primary.copy_done == Flag::Set
    {
        SWAP_REVERT
    } else {
        SWAP_NONE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::psa::ImageVersion;

    #[test]
    fn header_bytes_are_pinned() {
        let h = ImageHeader {
            load_addr: 0,
            hdr_size: 0x400,
            protect_tlv_size: 0,
            img_size: 0x1234,
            flags: 0,
            version: ImageVersion {
                major: 1,
                minor: 2,
                patch: 3,
                build: 4,
            },
        };
        let b = h.encode();
        assert_eq!(&b[..4], &[0x3D, 0xB8, 0xF3, 0x96]);
        assert_eq!(&b[8..10], &[0x00, 0x04]);
        assert_eq!(&b[12..16], &[0x34, 0x12, 0, 0]);
        assert_eq!(&b[20..28], &[1, 2, 3, 0, 4, 0, 0, 0]);
        assert_eq!(&b[28..32], &[0; 4]);
        assert_eq!(ImageHeader::decode(&b), Some(h));
        let mut bad = b;
        bad[0] = 0x3C;
        assert_eq!(ImageHeader::decode(&bad), None);
    }

    #[test]
    fn trailer_magic_and_records_are_pinned() {
        let words = [0xF395_C277u32, 0x7FEF_D260, 0x0F50_5235, 0x8079_B62C];
        let mut m = [0u8; 16];
        for (i, w) in words.iter().enumerate() {
            m[i * 4..i * 4 + 4].copy_from_slice(&w.to_le_bytes());
        }
        assert_eq!(m, BOOT_MAGIC);
        assert_eq!(
            flag_record(1, 0xFF),
            [1, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]
        );
        assert_eq!(swap_info(1, SWAP_TEST), 0x12);
    }

    #[test]
    fn trailer_decode_and_swap_table() {
        let mut t = [0xFFu8; TRAILER_LEN];
        let unset = Trailer::decode(&t, 0xFF);
        assert_eq!(unset.magic, Magic::Unset);
        assert_eq!(unset.image_ok, Flag::Unset);
        t[32..48].copy_from_slice(&BOOT_MAGIC);
        t[8] = swap_info(0, SWAP_TEST);
        let pending = Trailer::decode(&t, 0xFF);
        assert_eq!(pending.magic, Magic::Good);
        assert_eq!(swap_type(&unset, &pending), SWAP_TEST);
        t[24] = FLAG_SET; // image_ok at S-24 = index 48-24
        let perm = Trailer::decode(&t, 0xFF);
        assert_eq!(perm.image_ok, Flag::Set);
        assert_eq!(swap_type(&unset, &perm), SWAP_PERM);
        // Primary after a test swap: magic, copy_done set, image_ok unset → REVERT.
        let mut p = [0xFFu8; TRAILER_LEN];
        p[32..48].copy_from_slice(&BOOT_MAGIC);
        p[16] = FLAG_SET;
        let prim = Trailer::decode(&p, 0xFF);
        assert_eq!(prim.copy_done, Flag::Set);
        assert_eq!(swap_type(&prim, &unset), SWAP_REVERT);
        p[24] = FLAG_SET;
        assert_eq!(swap_type(&Trailer::decode(&p, 0xFF), &unset), SWAP_NONE);
        p[24] = 0x5A;
        assert_eq!(Trailer::decode(&p, 0xFF).image_ok, Flag::Bad);
    }
}
