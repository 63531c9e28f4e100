//! The fixed 32-byte image header at slot offset 0 (`board-formats.md` §1.2).

/// `IMAGE_MAGIC` (bytes `3D B8 F3 96` on flash).
pub const IMAGE_MAGIC: u32 = 0x96F3_B83D;
/// `IMAGE_MAGIC_V1` (legacy, not accepted).
pub const IMAGE_MAGIC_V1: u32 = 0x96F3_B83C;
/// `IMAGE_HEADER_SIZE`: the fixed part of the header.
pub const IMAGE_HEADER_SIZE: usize = 32;
/// `IMAGE_F_ENCRYPTED_AES128 | IMAGE_F_ENCRYPTED_AES256`.
pub const IMAGE_F_ENCRYPTED: u32 = 0x04 | 0x08;

/// `struct image_version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ImageVersion {
    /// `iv_major`.
    pub major: u8,
    /// `iv_minor`.
    pub minor: u8,
    /// `iv_revision`.
    pub revision: u16,
    /// `iv_build_num`.
    pub build: u32,
}

impl ImageVersion {
    /// A version from its parts.
    pub const fn new(major: u8, minor: u8, revision: u16, build: u32) -> Self {
        Self {
            major,
            minor,
            revision,
            build,
        }
    }
}

/// The 32-byte `struct image_header`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageHeader {
    /// `ih_magic`.
    pub magic: u32,
    /// `ih_load_addr`.
    pub load_addr: u32,
    /// `ih_hdr_size`: header size including padding (0x400 for Cypress and TF-M builds).
    pub hdr_size: u16,
    /// `ih_protect_tlv_size` (0 when there are no protected TLVs).
    pub protect_tlv_size: u16,
    /// `ih_img_size`: payload bytes after the header.
    pub img_size: u32,
    /// `ih_flags`.
    pub flags: u32,
    /// `ih_ver`.
    pub version: ImageVersion,
}

/// Little-endian `u16` at `at` (0 where `b` is too short).
pub(crate) fn le16(b: &[u8], at: usize) -> u16 {
    let mut x = [0u8; 2];
    if let Some(s) = b.get(at..at + 2) {
        x.copy_from_slice(s);
    }
    u16::from_le_bytes(x)
}

/// Little-endian `u32` at `at` (0 where `b` is too short).
pub(crate) fn le32(b: &[u8], at: usize) -> u32 {
    let mut x = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        x.copy_from_slice(s);
    }
    u32::from_le_bytes(x)
}

impl ImageHeader {
    /// A header for a plain image: [`IMAGE_MAGIC`], load address 0, no protected TLVs, no
    /// flags.
    pub const fn new(hdr_size: u16, img_size: u32, version: ImageVersion) -> Self {
        Self {
            magic: IMAGE_MAGIC,
            load_addr: 0,
            hdr_size,
            protect_tlv_size: 0,
            img_size,
            flags: 0,
            version,
        }
    }

    /// Decode the 32 header bytes, whatever the magic (see [`has_magic`](Self::has_magic) and
    /// [`is_valid`](Self::is_valid)).
    pub fn decode(b: &[u8; IMAGE_HEADER_SIZE]) -> Self {
        Self {
            magic: le32(b, 0),
            load_addr: le32(b, 4),
            hdr_size: le16(b, 8),
            protect_tlv_size: le16(b, 10),
            img_size: le32(b, 12),
            flags: le32(b, 16),
            version: ImageVersion {
                major: b[20],
                minor: b[21],
                revision: le16(b, 22),
                build: le32(b, 24),
            },
        }
    }

    /// Encode into 32 bytes (`_pad1` = 0).
    pub fn encode(&self) -> [u8; IMAGE_HEADER_SIZE] {
        let mut b = [0u8; IMAGE_HEADER_SIZE];
        b[0..4].copy_from_slice(&self.magic.to_le_bytes());
        b[4..8].copy_from_slice(&self.load_addr.to_le_bytes());
        b[8..10].copy_from_slice(&self.hdr_size.to_le_bytes());
        b[10..12].copy_from_slice(&self.protect_tlv_size.to_le_bytes());
        b[12..16].copy_from_slice(&self.img_size.to_le_bytes());
        b[16..20].copy_from_slice(&self.flags.to_le_bytes());
        b[20] = self.version.major;
        b[21] = self.version.minor;
        b[22..24].copy_from_slice(&self.version.revision.to_le_bytes());
        b[24..28].copy_from_slice(&self.version.build.to_le_bytes());
        b
    }

    /// The magic is [`IMAGE_MAGIC`].
    pub fn has_magic(&self) -> bool {
        self.magic == IMAGE_MAGIC
    }

    /// The magic is [`IMAGE_MAGIC`] and the header size holds the fixed part.
    pub fn is_valid(&self) -> bool {
        self.has_magic() && self.hdr_size as usize >= IMAGE_HEADER_SIZE
    }

    /// Bytes covered by the SHA256 TLV: header + payload + protected TLVs (`None` on
    /// overflow). The unprotected TLV info header starts here.
    pub fn hashed_len(&self) -> Option<u32> {
        (self.hdr_size as u32)
            .checked_add(self.img_size)?
            .checked_add(self.protect_tlv_size as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_bytes_round_trip_and_magic_on_flash() {
        let h = ImageHeader {
            load_addr: 0x1001_2000,
            ..ImageHeader::new(0x400, 0x1234, ImageVersion::new(1, 2, 3, 4))
        };
        let b = h.encode();
        assert_eq!(&b[0..4], &[0x3D, 0xB8, 0xF3, 0x96]);
        assert_eq!(&b[4..8], &[0x00, 0x20, 0x01, 0x10]);
        assert_eq!(&b[8..10], &[0x00, 0x04]);
        assert_eq!(&b[12..16], &[0x34, 0x12, 0, 0]);
        assert_eq!(&b[20..24], &[1, 2, 3, 0]);
        assert_eq!(&b[24..28], &[4, 0, 0, 0]);
        assert_eq!(&b[28..32], &[0; 4]);
        assert_eq!(ImageHeader::decode(&b), h);
        assert!(h.has_magic() && h.is_valid());
        assert_eq!(h.hashed_len(), Some(0x400 + 0x1234));
        let mut v1 = b;
        v1[0] = 0x3C;
        let v1 = ImageHeader::decode(&v1);
        assert_eq!(v1.magic, IMAGE_MAGIC_V1);
        assert!(!v1.has_magic() && !v1.is_valid());
    }

    #[test]
    fn short_header_size_is_not_valid_and_sizes_overflow_to_none() {
        let mut h = ImageHeader::new(31, 0, ImageVersion::default());
        assert!(h.has_magic() && !h.is_valid());
        h.hdr_size = 0x400;
        h.img_size = u32::MAX;
        assert_eq!(h.hashed_len(), None);
    }
}
