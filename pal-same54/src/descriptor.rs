//! The aws_bootloader image descriptor of the SAME54 fork (spec §3.3): 336 bytes (0x150),
//! little-endian, at the start of each bank's descriptor block (0x7E000 and 0xFE000).
//!
//! | Off | Size | Field |
//! |---|---|---|
//! | 0x000 | 7 | magic `@AFRTOS` (no NUL) |
//! | 0x007 | 1 | flags ([`ImageFlags`]) |
//! | 0x008 | 8 | reserved (end of the 16-byte header union) |
//! | 0x010 | 4 | sequence number (higher = newer) |
//! | 0x014 | 4 | start address (unused by the bootloader) |
//! | 0x018 | 4 | end address (unused) |
//! | 0x01C | 4 | exec address (ignored: the launch is always at 0x10000) |
//! | 0x020 | 32 | signature type, NUL-padded (`sig-sha256-ecdsa`) |
//! | 0x040 | 4 | signature size |
//! | 0x044 | 256 | signature, ASN.1 DER ECDSA, zero-padded |
//! | 0x144 | 4 | image size (bytes covered by the signature) |
//! | 0x148 | 8 | reserved; the factory tool writes the image size here twice more |
//!
//! The descriptor is a whole number (21) of 16-byte quad words, so it is programmed with
//! quad-word writes and nothing else shares its last unit.

use ota_pal_traits::{PalError, PalErrorKind};

/// Size of a descriptor: 336 bytes (0x150).
pub const DESCRIPTOR_LEN: usize = 0x150;
/// The magic, ASCII `@AFRTOS` without NUL (§3.3).
pub const MAGIC: [u8; 7] = *b"@AFRTOS";
/// The only signature type the SAME54 bootloader checks (§3.3, §3.4).
pub const SIG_TYPE_SHA256_ECDSA: &str = "sig-sha256-ecdsa";
/// Room for the signature: 256 bytes (`kOTA_MaxSignatureSize`, §3.3).
pub const MAX_SIGNATURE_LEN: usize = 256;
/// Room for the signature type: 32 bytes (`OTA_FILE_SIG_KEY_STR_MAX_LENGTH`, §3.3).
pub const SIG_TYPE_LEN: usize = 32;

/// Field offsets (§3.3).
pub mod offset {
    /// Magic, 7 bytes.
    pub const MAGIC: usize = 0x000;
    /// Flags, 1 byte.
    pub const FLAGS: usize = 0x007;
    /// Reserved, 8 bytes.
    pub const RESERVED_HEADER: usize = 0x008;
    /// Sequence number, u32.
    pub const SEQUENCE: usize = 0x010;
    /// Start address, u32.
    pub const START: usize = 0x014;
    /// End address, u32.
    pub const END: usize = 0x018;
    /// Exec address, u32.
    pub const EXEC: usize = 0x01C;
    /// Signature type, 32 bytes.
    pub const SIG_TYPE: usize = 0x020;
    /// Signature size, u32.
    pub const SIG_SIZE: usize = 0x040;
    /// Signature, 256 bytes.
    pub const SIGNATURE: usize = 0x044;
    /// Image size, u32.
    pub const IMAGE_SIZE: usize = 0x144;
    /// Reserved, two u32 (the image size again, twice).
    pub const RESERVED_TRAILER: usize = 0x148;
}

/// Descriptor flags (§3.3). Each state only clears bits of the previous one, in this order:
/// `NEW → COMMIT_PENDING → VALID → INVALID`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ImageFlags(pub u8);

impl ImageFlags {
    /// 0xFF: staged by the OTA PAL, never booted.
    pub const NEW: Self = Self(0xFF);
    /// 0xFE: booted once by the bootloader, on trial until the application commits it.
    pub const COMMIT_PENDING: Self = Self(0xFE);
    /// 0xFC: committed (or factory-programmed).
    pub const VALID: Self = Self(0xFC);
    /// 0xF8: rejected.
    pub const INVALID: Self = Self(0xF8);

    /// Whether the bootloader may boot an image with these flags (§3.4 step 2: NEW or VALID).
    pub const fn is_bootable(self) -> bool {
        self.0 == Self::NEW.0 || self.0 == Self::VALID.0
    }
}

/// A decoded descriptor. Decoding never fails: [`Descriptor::magic_ok`] says whether the
/// bytes are a descriptor at all, and the raw fields are kept so that re-encoding a decoded
/// descriptor gives back the same bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    /// Bytes 0..7, `@AFRTOS` when valid.
    pub magic: [u8; 7],
    /// Byte 7.
    pub flags: ImageFlags,
    /// Bytes 8..16.
    pub reserved_header: [u8; 8],
    /// Sequence number: the bootloader boots the valid image with the highest one.
    pub sequence: u32,
    /// Start address (not used by this bootloader).
    pub start: u32,
    /// End address (not used).
    pub end: u32,
    /// Exec address (ignored: launch is at 0x10000).
    pub exec: u32,
    /// Signature type, NUL-padded.
    pub sig_type: [u8; SIG_TYPE_LEN],
    /// Number of signature bytes used.
    pub sig_size: u32,
    /// The signature, zero-padded.
    pub signature: [u8; MAX_SIGNATURE_LEN],
    /// Bytes of application covered by the signature.
    pub image_size: u32,
    /// Bytes 0x148..0x150 as two u32 (the factory tool and this PAL write the image size).
    pub reserved_trailer: [u32; 2],
}

fn sig_type_field(s: &str) -> [u8; SIG_TYPE_LEN] {
    let mut f = [0u8; SIG_TYPE_LEN];
    for (d, s) in f.iter_mut().zip(s.as_bytes()) {
        *d = *s;
    }
    f
}

fn rd32(b: &[u8; DESCRIPTOR_LEN], at: usize) -> u32 {
    let mut w = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        w.copy_from_slice(s);
    }
    u32::from_le_bytes(w)
}

fn put(b: &mut [u8; DESCRIPTOR_LEN], at: usize, v: &[u8]) {
    if let Some(d) = b.get_mut(at..at + v.len()) {
        d.copy_from_slice(v);
    }
}

fn arr<const N: usize>(b: &[u8; DESCRIPTOR_LEN], at: usize) -> [u8; N] {
    let mut a = [0u8; N];
    if let Some(s) = b.get(at..at + N) {
        a.copy_from_slice(s);
    }
    a
}

impl Descriptor {
    /// A descriptor with the magic, `flags`, `sequence`, a `sig-sha256-ecdsa` `signature`
    /// and `image_size`, laid out the way the factory tool (§3.6) writes it: the reserved
    /// header bytes and the start/end/exec addresses zero, the size written three times.
    ///
    /// The bytes the vendor OTA PAL puts into the reserved header and the start/end/exec
    /// fields were not read (§3.5 lists only magic, flags, sequence and the trailer); the
    /// bootloader ignores them (§3.3), so this PAL writes what the factory tool writes.
    ///
    /// Fails with [`PalErrorKind::BootInfoCreateFailed`] (sub-code 1) when the signature is
    /// longer than 256 bytes.
    pub fn new(
        flags: ImageFlags,
        sequence: u32,
        signature: &[u8],
        image_size: u32,
    ) -> Result<Self, PalError> {
        let mut sig = [0u8; MAX_SIGNATURE_LEN];
        sig.get_mut(..signature.len())
            .ok_or(PalError::with_sub(PalErrorKind::BootInfoCreateFailed, 1))?
            .copy_from_slice(signature);
        Ok(Self {
            magic: MAGIC,
            flags,
            reserved_header: [0; 8],
            sequence,
            start: 0,
            end: 0,
            exec: 0,
            sig_type: sig_type_field(SIG_TYPE_SHA256_ECDSA),
            sig_size: signature.len() as u32,
            signature: sig,
            image_size,
            reserved_trailer: [image_size, image_size],
        })
    }

    /// The descriptor the OTA PAL writes at 0xFE000 for a verified download (§3.5
    /// CloseFile): flags NEW, `sequence` (= AppVersion32 + 1 in the vendor PAL).
    pub fn staged(sequence: u32, signature: &[u8], image_size: u32) -> Result<Self, PalError> {
        Self::new(ImageFlags::NEW, sequence, signature, image_size)
    }

    /// The descriptor `factory_image_generator.py` puts at 0x7E000 (§3.6): flags VALID,
    /// sequence 0.
    pub fn factory(signature: &[u8], image_size: u32) -> Result<Self, PalError> {
        Self::new(ImageFlags::VALID, 0, signature, image_size)
    }

    /// Whether the magic is `@AFRTOS`.
    pub fn magic_ok(&self) -> bool {
        self.magic == MAGIC
    }

    /// The used part of the signature, or `None` when the size field is out of range.
    pub fn signature_bytes(&self) -> Option<&[u8]> {
        self.signature.get(..self.sig_size as usize)
    }

    /// The signature type up to its first NUL.
    pub fn sig_type_bytes(&self) -> &[u8] {
        let n = self
            .sig_type
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(SIG_TYPE_LEN);
        self.sig_type.get(..n).unwrap_or(&[])
    }

    /// Decode 336 bytes.
    pub fn decode(b: &[u8; DESCRIPTOR_LEN]) -> Self {
        Self {
            magic: arr(b, offset::MAGIC),
            flags: ImageFlags(arr::<1>(b, offset::FLAGS)[0]),
            reserved_header: arr(b, offset::RESERVED_HEADER),
            sequence: rd32(b, offset::SEQUENCE),
            start: rd32(b, offset::START),
            end: rd32(b, offset::END),
            exec: rd32(b, offset::EXEC),
            sig_type: arr(b, offset::SIG_TYPE),
            sig_size: rd32(b, offset::SIG_SIZE),
            signature: arr(b, offset::SIGNATURE),
            image_size: rd32(b, offset::IMAGE_SIZE),
            reserved_trailer: [
                rd32(b, offset::RESERVED_TRAILER),
                rd32(b, offset::RESERVED_TRAILER + 4),
            ],
        }
    }

    /// Encode to the 336 on-flash bytes.
    pub fn encode(&self) -> [u8; DESCRIPTOR_LEN] {
        let mut b = [0u8; DESCRIPTOR_LEN];
        put(&mut b, offset::MAGIC, &self.magic);
        put(&mut b, offset::FLAGS, &[self.flags.0]);
        put(&mut b, offset::RESERVED_HEADER, &self.reserved_header);
        put(&mut b, offset::SEQUENCE, &self.sequence.to_le_bytes());
        put(&mut b, offset::START, &self.start.to_le_bytes());
        put(&mut b, offset::END, &self.end.to_le_bytes());
        put(&mut b, offset::EXEC, &self.exec.to_le_bytes());
        put(&mut b, offset::SIG_TYPE, &self.sig_type);
        put(&mut b, offset::SIG_SIZE, &self.sig_size.to_le_bytes());
        put(&mut b, offset::SIGNATURE, &self.signature);
        put(&mut b, offset::IMAGE_SIZE, &self.image_size.to_le_bytes());
        put(
            &mut b,
            offset::RESERVED_TRAILER,
            &self.reserved_trailer[0].to_le_bytes(),
        );
        put(
            &mut b,
            offset::RESERVED_TRAILER + 4,
            &self.reserved_trailer[1].to_le_bytes(),
        );
        b
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    const SIG: [u8; 70] = [
        0x30, 0x44, 0x02, 0x20, 0x15, 0x6a, 0x68, 0x98, 0xf0, 0x4e, 0x1e, 0x12, 0x4c, 0xc4, 0xf1,
        0x05, 0x22, 0x36, 0xfd, 0xb4, 0xe5, 0x5d, 0x83, 0x08, 0x2a, 0xf3, 0xa6, 0x7d, 0x32, 0x6b,
        0xff, 0x85, 0x27, 0x14, 0x9b, 0xbf, 0x02, 0x20, 0x26, 0x7d, 0x5f, 0x4d, 0x12, 0xab, 0xec,
        0x17, 0xd8, 0x45, 0xc6, 0x3d, 0x8e, 0xd8, 0x8d, 0x3f, 0x28, 0x26, 0xfd, 0xce, 0x32, 0x34,
        0x17, 0x05, 0x47, 0xb2, 0xf6, 0x84, 0xd5, 0x68, 0x3e, 0x36,
    ];

    #[test]
    fn descriptor_is_336_bytes_of_whole_quad_words() {
        assert_eq!(DESCRIPTOR_LEN, 336);
        assert_eq!(DESCRIPTOR_LEN % 16, 0);
        assert_eq!(offset::RESERVED_TRAILER + 8, DESCRIPTOR_LEN);
    }

    #[test]
    fn flag_values_are_the_spec_ones_and_only_clear_bits() {
        assert_eq!(ImageFlags::NEW.0, 0xFF);
        assert_eq!(ImageFlags::COMMIT_PENDING.0, 0xFE);
        assert_eq!(ImageFlags::VALID.0, 0xFC);
        assert_eq!(ImageFlags::INVALID.0, 0xF8);
        let order = [
            ImageFlags::NEW,
            ImageFlags::COMMIT_PENDING,
            ImageFlags::VALID,
            ImageFlags::INVALID,
        ];
        for w in order.windows(2) {
            assert_eq!(
                w[0].0 & w[1].0,
                w[1].0,
                "{:?} -> {:?} sets a bit",
                w[0],
                w[1]
            );
        }
        assert!(ImageFlags::NEW.is_bootable());
        assert!(ImageFlags::VALID.is_bootable());
        assert!(!ImageFlags::COMMIT_PENDING.is_bootable());
        assert!(!ImageFlags::INVALID.is_bootable());
    }

    #[test]
    fn staged_descriptor_has_the_exact_bytes() {
        let d = Descriptor::staged(0x0102_0304, &SIG, 0x0001_2345).unwrap();
        let b = d.encode();
        assert_eq!(&b[0x00..0x08], b"@AFRTOS\xFF");
        assert_eq!(&b[0x08..0x10], &[0u8; 8]);
        assert_eq!(&b[0x10..0x14], &[0x04, 0x03, 0x02, 0x01]);
        assert_eq!(&b[0x14..0x20], &[0u8; 12]);
        let mut sig_type = [0u8; 32];
        sig_type[..16].copy_from_slice(b"sig-sha256-ecdsa");
        assert_eq!(&b[0x20..0x40], &sig_type);
        assert_eq!(&b[0x40..0x44], &[70, 0, 0, 0]);
        assert_eq!(&b[0x44..0x44 + 70], &SIG);
        assert!(b[0x44 + 70..0x144].iter().all(|&x| x == 0));
        assert_eq!(&b[0x144..0x150], &[0x45, 0x23, 0x01, 0x00].repeat(3)[..]);
        assert_eq!(Descriptor::decode(&b), d);
        assert!(d.magic_ok());
        assert_eq!(d.signature_bytes(), Some(&SIG[..]));
        assert_eq!(d.sig_type_bytes(), b"sig-sha256-ecdsa");
    }

    #[test]
    fn factory_descriptor_matches_the_generator_layout() {
        // §3.6: "@AFRTOS" + 0xFC, then 24 zero bytes, then {sigtype[32], u32 sig size,
        // sig[256]}, then the file size 3x.
        let size = 0x3_0000u32;
        let b = Descriptor::factory(&SIG, size).unwrap().encode();
        let mut expect = Vec::new();
        expect.extend_from_slice(b"@AFRTOS");
        expect.push(0xFC);
        expect.extend_from_slice(&[0u8; 24]);
        let mut sig_type = [0u8; 32];
        sig_type[..16].copy_from_slice(b"sig-sha256-ecdsa");
        expect.extend_from_slice(&sig_type);
        expect.extend_from_slice(&70u32.to_le_bytes());
        let mut sig = [0u8; 256];
        sig[..70].copy_from_slice(&SIG);
        expect.extend_from_slice(&sig);
        for _ in 0..3 {
            expect.extend_from_slice(&size.to_le_bytes());
        }
        assert_eq!(expect.len(), 336);
        assert_eq!(&b[..], &expect[..]);
    }

    #[test]
    fn erased_flash_decodes_as_no_descriptor_and_round_trips() {
        let b = [0xFFu8; DESCRIPTOR_LEN];
        let d = Descriptor::decode(&b);
        assert!(!d.magic_ok());
        assert_eq!(d.flags, ImageFlags::NEW);
        assert_eq!(d.sequence, u32::MAX);
        assert_eq!(d.signature_bytes(), None);
        assert_eq!(d.encode(), b);
    }

    #[test]
    fn a_signature_longer_than_256_bytes_is_refused() {
        let e = Descriptor::staged(1, &[0u8; 257], 1).unwrap_err();
        assert_eq!(e.kind(), PalErrorKind::BootInfoCreateFailed);
        assert!(Descriptor::staged(1, &[0u8; 256], 1).is_ok());
    }
}
