//! The MCUboot image header (§1.2) and TLV area (§1.3), and the check the bootloader applies
//! before it boots or copies an image: SHA-256 TLV over header + payload + protected TLVs,
//! KEYHASH of the signer's key, ECDSA-P256 signature (TLV 0x22, DER) over that digest.
//!
//! [`check_image`] reads an image through any [`ImageSource`] (the PAL's
//! [`ImageStorage`], a flash region, a byte slice) and reports which checks passed, so a board
//! can run it at close in addition to the job-document signature check.

use ota_pal_traits::{ImageStorage, PalError, PalErrorKind, Sha256EcdsaP256Verifier};
use sha2::{Digest, Sha256};

/// `IMAGE_MAGIC` (bytes `3D B8 F3 96` on flash).
pub const IMAGE_MAGIC: u32 = 0x96F3_B83D;
/// `IMAGE_MAGIC_V1` (legacy, not accepted).
pub const IMAGE_MAGIC_V1: u32 = 0x96F3_B83C;
/// `IMAGE_HEADER_SIZE`: the fixed part of the header.
pub const IMAGE_HEADER_SIZE: usize = 32;
/// Protected TLV info magic.
pub const TLV_PROT_INFO_MAGIC: u16 = 0x6908;
/// Unprotected TLV info magic.
pub const TLV_INFO_MAGIC: u16 = 0x6907;
/// TLV type KEYHASH.
pub const TLV_KEYHASH: u16 = 0x01;
/// TLV type SHA256.
pub const TLV_SHA256: u16 = 0x10;
/// TLV type ECDSA_SIG (formerly ECDSA256).
pub const TLV_ECDSA_SIG: u16 = 0x22;
/// Largest DER P-256 signature (imgtool before MCUboot 1.5 zero-padded it to 72 bytes).
pub const MAX_ECDSA_SIG: usize = 72;
/// `IMAGE_F_ENCRYPTED_AES128 | IMAGE_F_ENCRYPTED_AES256`: not supported by the check.
pub const IMAGE_F_ENCRYPTED: u32 = 0x04 | 0x08;
/// The DER SubjectPublicKeyInfo prefix of an uncompressed P-256 key (id-ecPublicKey,
/// prime256v1, BIT STRING of 66 bytes): imgtool's KEYHASH is SHA-256 of this prefix followed by
/// the 65-byte point.
pub const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// Sub-code: the image ends past the readable area, or its sizes overflow.
pub const SUB_IMAGE_TOO_LARGE: u32 = 0x300;

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
    /// `ih_hdr_size` (0x400 for Cypress).
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

fn le16(b: &[u8], at: usize) -> u16 {
    let mut x = [0u8; 2];
    if let Some(s) = b.get(at..at + 2) {
        x.copy_from_slice(s);
    }
    u16::from_le_bytes(x)
}

fn le32(b: &[u8], at: usize) -> u32 {
    let mut x = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        x.copy_from_slice(s);
    }
    u32::from_le_bytes(x)
}

impl ImageHeader {
    /// Decode the 32 header bytes (any magic; see [`is_valid`](Self::is_valid)).
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

    /// Magic is [`IMAGE_MAGIC`] and the header size holds the fixed part.
    pub fn is_valid(&self) -> bool {
        self.magic == IMAGE_MAGIC && self.hdr_size as usize >= IMAGE_HEADER_SIZE
    }

    /// Bytes covered by the SHA256 TLV: header + payload + protected TLVs.
    pub fn hashed_len(&self) -> Option<u32> {
        (self.hdr_size as u32)
            .checked_add(self.img_size)?
            .checked_add(self.protect_tlv_size as u32)
    }
}

/// Something an image can be read from.
#[allow(async_fn_in_trait)]
pub trait ImageSource {
    /// Bytes readable from offset 0.
    fn len(&self) -> u32;
    /// Whether nothing is readable.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Read `buf.len()` bytes at `offset`.
    async fn read_at(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), PalError>;
}

impl ImageSource for &[u8] {
    fn len(&self) -> u32 {
        u32::try_from(<[u8]>::len(self)).unwrap_or(u32::MAX)
    }
    async fn read_at(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), PalError> {
        let src = (offset as usize)
            .checked_add(buf.len())
            .and_then(|end| self.get(offset as usize..end))
            .ok_or(PalError::with_sub(
                PalErrorKind::FileClose,
                SUB_IMAGE_TOO_LARGE,
            ))?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

/// The received file in an [`ImageStorage`], `len` bytes long.
#[derive(Debug)]
pub struct StoredImage<'a, S> {
    /// The storage.
    pub storage: &'a mut S,
    /// Length of the received file.
    pub len: u32,
}

impl<S: ImageStorage> ImageSource for StoredImage<'_, S> {
    fn len(&self) -> u32 {
        self.len
    }
    async fn read_at(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), PalError> {
        self.storage.read(offset, buf).await
    }
}

/// Which of the bootloader's checks an image passes (§1.2, §1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ImageCheck {
    /// The header, when its magic is [`IMAGE_MAGIC`].
    pub header: Option<ImageHeader>,
    /// The TLV info headers are where the header says, with consistent sizes.
    pub tlvs_ok: bool,
    /// The SHA256 TLV is present and matches the image.
    pub hash_ok: bool,
    /// A KEYHASH TLV is present and names the given key.
    pub key_hash_ok: bool,
    /// An ECDSA_SIG TLV verifies against the given key.
    pub signature_ok: bool,
    /// The image is not encrypted (encrypted images are not checked here).
    pub plain: bool,
}

impl ImageCheck {
    /// Everything MCUboot with `MCUBOOT_SIGN_EC256` requires.
    pub fn is_valid_signed(&self) -> bool {
        self.header.is_some()
            && self.tlvs_ok
            && self.hash_ok
            && self.key_hash_ok
            && self.signature_ok
            && self.plain
    }

    /// What an unsigned build (anycloud 1.x "Prepare MCUbootApp" without `SIGN_EC256`) checks.
    pub fn is_valid_unsigned(&self) -> bool {
        self.header.is_some() && self.tlvs_ok && self.hash_ok && self.plain
    }

    /// The image version, if the header is valid.
    pub fn version(&self) -> Option<ImageVersion> {
        self.header.map(|h| h.version)
    }
}

/// SHA-256 of the DER SubjectPublicKeyInfo of `key`: the KEYHASH TLV imgtool writes.
pub fn key_hash(key: &Sha256EcdsaP256Verifier) -> [u8; 32] {
    let point = key.verifying_key().to_encoded_point(false);
    let mut h = Sha256::new();
    h.update(P256_SPKI_PREFIX);
    h.update(point.as_bytes());
    h.finalize().into()
}

/// The signature bytes without imgtool's old zero padding: a DER SEQUENCE is `0x30 len ...`.
fn trim_der(sig: &[u8]) -> &[u8] {
    match sig {
        [0x30, len, ..] if (*len as usize) + 2 <= sig.len() => {
            sig.get(..*len as usize + 2).unwrap_or(sig)
        }
        _ => sig,
    }
}

/// Check the MCUboot image at offset 0 of `src` the way the bootloader would. `key` is the
/// signer's key (`None`: report only header, TLV and hash results). `scratch` is any non-empty
/// buffer used for hashing (larger is faster).
///
/// Errors are read errors only; a malformed image gives `Ok` with the failing checks false.
pub async fn check_image<R: ImageSource>(
    src: &mut R,
    key: Option<&Sha256EcdsaP256Verifier>,
    scratch: &mut [u8],
) -> Result<ImageCheck, PalError> {
    let mut out = ImageCheck::default();
    let avail = src.len();
    if avail < IMAGE_HEADER_SIZE as u32 || scratch.is_empty() {
        return Ok(out);
    }
    let mut hb = [0u8; IMAGE_HEADER_SIZE];
    src.read_at(0, &mut hb).await?;
    let hdr = ImageHeader::decode(&hb);
    if !hdr.is_valid() {
        return Ok(out);
    }
    out.header = Some(hdr);
    out.plain = hdr.flags & IMAGE_F_ENCRYPTED == 0;
    let Some(hashed) = hdr.hashed_len() else {
        return Ok(out);
    };
    let tlv_start = hashed;
    // TLV info headers.
    let mut info = [0u8; 4];
    let unprot_at = if hdr.protect_tlv_size > 0 {
        let prot_at = tlv_start - hdr.protect_tlv_size as u32;
        if prot_at.checked_add(4).is_none_or(|e| e > avail) {
            return Ok(out);
        }
        src.read_at(prot_at, &mut info).await?;
        if le16(&info, 0) != TLV_PROT_INFO_MAGIC || le16(&info, 2) != hdr.protect_tlv_size {
            return Ok(out);
        }
        tlv_start
    } else {
        tlv_start
    };
    if unprot_at.checked_add(4).is_none_or(|e| e > avail) {
        return Ok(out);
    }
    src.read_at(unprot_at, &mut info).await?;
    let tot = le16(&info, 2) as u32;
    if le16(&info, 0) != TLV_INFO_MAGIC || tot < 4 || unprot_at + tot > avail {
        return Ok(out);
    }
    out.tlvs_ok = true;

    // Hash header + payload + protected TLVs.
    let mut h = Sha256::new();
    let mut pos = 0u32;
    while pos < hashed {
        let n = (hashed - pos).min(scratch.len() as u32) as usize;
        let chunk = scratch
            .get_mut(..n)
            .ok_or(PalError::new(PalErrorKind::OutOfMemory))?;
        src.read_at(pos, chunk).await?;
        h.update(&*chunk);
        pos += n as u32;
    }
    let digest: [u8; 32] = h.finalize().into();

    // Walk the unprotected TLVs.
    let want_key = key.map(key_hash);
    let mut sig = [0u8; MAX_ECDSA_SIG];
    let mut sig_len = 0usize;
    let mut at = unprot_at + 4;
    let end = unprot_at + tot;
    let mut value = [0u8; 32];
    while at + 4 <= end {
        src.read_at(at, &mut info).await?;
        let (ty, len) = (le16(&info, 0), le16(&info, 2) as u32);
        let data_at = at + 4;
        if data_at + len > end {
            out.tlvs_ok = false;
            break;
        }
        match ty {
            TLV_SHA256 | TLV_KEYHASH if len == 32 => {
                src.read_at(data_at, &mut value).await?;
                if ty == TLV_SHA256 {
                    out.hash_ok = value == digest;
                } else {
                    out.key_hash_ok = want_key == Some(value);
                }
            }
            TLV_ECDSA_SIG if len as usize <= MAX_ECDSA_SIG => {
                sig_len = len as usize;
                if let Some(s) = sig.get_mut(..sig_len) {
                    src.read_at(data_at, s).await?;
                }
            }
            _ => {}
        }
        at = data_at + len;
    }
    if let (Some(key), true, Some(s)) = (key, out.hash_ok && out.key_hash_ok, sig.get(..sig_len)) {
        if sig_len > 0 {
            out.signature_ok = key.verify_digest(&digest, trim_der(s)).is_ok();
        }
    }
    Ok(out)
}

/// Build a signed MCUboot image (header padded to `hdr_size` with `pad`, payload, unprotected
/// TLVs SHA256 + KEYHASH + ECDSA_SIG) into `out`; returns its length. What imgtool produces
/// with `--pad-header -H <hdr_size>` and no protected TLVs. For tests and the simulation.
#[cfg(feature = "sim")]
pub fn build_signed_image(
    payload: &[u8],
    version: ImageVersion,
    hdr_size: u16,
    signer: &p256::ecdsa::SigningKey,
    out: &mut [u8],
) -> Result<usize, PalError> {
    use p256::ecdsa::{signature::hazmat::PrehashSigner, Signature};
    let too_small = PalError::new(PalErrorKind::RxFileTooLarge);
    let hdr = ImageHeader {
        magic: IMAGE_MAGIC,
        load_addr: 0,
        hdr_size,
        protect_tlv_size: 0,
        img_size: u32::try_from(payload.len()).map_err(|_| too_small)?,
        flags: 0,
        version,
    };
    let h = hdr_size as usize;
    let body = h + payload.len();
    out.get_mut(..h).ok_or(too_small)?.fill(0);
    out.get_mut(..IMAGE_HEADER_SIZE)
        .ok_or(too_small)?
        .copy_from_slice(&hdr.encode());
    out.get_mut(h..body)
        .ok_or(too_small)?
        .copy_from_slice(payload);
    let digest: [u8; 32] = Sha256::digest(out.get(..body).ok_or(too_small)?).into();
    let key = Sha256EcdsaP256Verifier::from_verifying_key(*signer.verifying_key());
    let sig: Signature = signer
        .sign_prehash(&digest)
        .map_err(|_| PalError::new(PalErrorKind::BadSignerCert))?;
    let der = sig.to_der();
    let der = der.as_bytes();
    let tot = 4 + (4 + 32) + (4 + 32) + 4 + der.len();
    let mut w = body;
    let mut put = |b: &[u8]| -> Result<(), PalError> {
        out.get_mut(w..w + b.len())
            .ok_or(too_small)?
            .copy_from_slice(b);
        w += b.len();
        Ok(())
    };
    put(&TLV_INFO_MAGIC.to_le_bytes())?;
    put(&(tot as u16).to_le_bytes())?;
    put(&TLV_SHA256.to_le_bytes())?;
    put(&32u16.to_le_bytes())?;
    put(&digest)?;
    put(&TLV_KEYHASH.to_le_bytes())?;
    put(&32u16.to_le_bytes())?;
    put(&key_hash(&key))?;
    put(&TLV_ECDSA_SIG.to_le_bytes())?;
    put(&(der.len() as u16).to_le_bytes())?;
    put(der)?;
    Ok(w)
}

/// The header and the SHA256 TLV value an image *states* (no hashing): enough to tell whether
/// two slots hold the same image. `None` when the header or TLVs are malformed.
pub async fn stated_digest<R: ImageSource>(
    src: &mut R,
) -> Result<Option<(ImageHeader, [u8; 32])>, PalError> {
    let avail = src.len();
    if avail < IMAGE_HEADER_SIZE as u32 {
        return Ok(None);
    }
    let mut hb = [0u8; IMAGE_HEADER_SIZE];
    src.read_at(0, &mut hb).await?;
    let hdr = ImageHeader::decode(&hb);
    let Some(at) = hdr.hashed_len().filter(|_| hdr.is_valid()) else {
        return Ok(None);
    };
    let mut info = [0u8; 4];
    if at.checked_add(4).is_none_or(|e| e > avail) {
        return Ok(None);
    }
    src.read_at(at, &mut info).await?;
    let tot = le16(&info, 2) as u32;
    if le16(&info, 0) != TLV_INFO_MAGIC || at + tot > avail {
        return Ok(None);
    }
    let (mut p, end) = (at + 4, at + tot);
    while p + 4 <= end {
        src.read_at(p, &mut info).await?;
        let (ty, len) = (le16(&info, 0), le16(&info, 2) as u32);
        if ty == TLV_SHA256 && len == 32 && p + 4 + 32 <= end {
            let mut d = [0u8; 32];
            src.read_at(p + 4, &mut d).await?;
            return Ok(Some((hdr, d)));
        }
        p += 4 + len;
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use ota_pal_traits::sim::block_on;

    #[test]
    fn header_bytes_round_trip_and_magic_on_flash() {
        let h = ImageHeader {
            magic: IMAGE_MAGIC,
            load_addr: 0x1001_2000,
            hdr_size: 0x400,
            protect_tlv_size: 0,
            img_size: 0x1234,
            flags: 0,
            version: ImageVersion::new(1, 2, 3, 4),
        };
        let b = h.encode();
        assert_eq!(&b[0..4], &[0x3D, 0xB8, 0xF3, 0x96]);
        assert_eq!(&b[8..10], &[0x00, 0x04]);
        assert_eq!(&b[12..16], &[0x34, 0x12, 0, 0]);
        assert_eq!(&b[20..24], &[1, 2, 3, 0]);
        assert_eq!(&b[24..28], &[4, 0, 0, 0]);
        assert_eq!(ImageHeader::decode(&b), h);
        assert!(h.is_valid());
        assert_eq!(h.hashed_len(), Some(0x400 + 0x1234));
        let mut v1 = b;
        v1[0] = 0x3C;
        assert!(!ImageHeader::decode(&v1).is_valid());
    }

    #[test]
    fn old_imgtool_zero_padded_signature_is_trimmed() {
        let mut padded = [0u8; 72];
        padded[0] = 0x30;
        padded[1] = 0x44;
        assert_eq!(trim_der(&padded).len(), 0x46);
        assert_eq!(trim_der(&[0x30, 0x50, 1]).len(), 3, "bad length left as is");
        assert_eq!(trim_der(&[]).len(), 0);
    }

    #[test]
    fn spki_prefix_is_the_p256_der_header() {
        // SEQUENCE(0x59) { SEQUENCE(0x13) { OID 1.2.840.10045.2.1, OID 1.2.840.10045.3.1.7 },
        // BIT STRING(0x42, 0 unused bits) } : 26 bytes + 65-byte point = 91 = 0x5B bytes.
        assert_eq!(P256_SPKI_PREFIX.len() + 65, 0x59 + 2);
    }

    #[cfg(feature = "sim")]
    #[test]
    fn built_image_passes_and_a_flipped_byte_fails() {
        use p256::ecdsa::SigningKey;
        let sk = SigningKey::from_slice(&[7u8; 32]).unwrap();
        let key = Sha256EcdsaP256Verifier::from_verifying_key(*sk.verifying_key());
        let mut img = std::vec![0u8; 4096];
        let n = build_signed_image(
            b"hello psoc6",
            ImageVersion::new(1, 2, 3, 0),
            0x400,
            &sk,
            &mut img,
        )
        .unwrap();
        let mut scratch = [0u8; 64];
        let c = block_on(check_image(&mut &img[..n], Some(&key), &mut scratch)).unwrap();
        assert!(c.is_valid_signed(), "{c:?}");
        assert_eq!(c.version(), Some(ImageVersion::new(1, 2, 3, 0)));
        img[0x400] ^= 1;
        let c = block_on(check_image(&mut &img[..n], Some(&key), &mut scratch)).unwrap();
        assert!(!c.hash_ok && !c.is_valid_signed());
        img[0x400] ^= 1;
        let other = SigningKey::from_slice(&[9u8; 32]).unwrap();
        let okey = Sha256EcdsaP256Verifier::from_verifying_key(*other.verifying_key());
        let c = block_on(check_image(&mut &img[..n], Some(&okey), &mut scratch)).unwrap();
        assert!(c.hash_ok && !c.key_hash_ok && !c.signature_ok);
        // Truncated: TLVs missing.
        let c = block_on(check_image(
            &mut &img[..0x400 + 11],
            Some(&key),
            &mut scratch,
        ))
        .unwrap();
        assert!(c.header.is_some() && !c.tlvs_ok);
    }
}
