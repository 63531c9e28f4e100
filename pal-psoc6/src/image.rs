//! The MCUboot image header (§1.2) and TLV area (§1.3), and the check the bootloader applies
//! before it boots or copies an image: SHA-256 TLV over header + payload + protected TLVs,
//! KEYHASH of the signer's key, ECDSA-P256 signature (TLV 0x22, DER) over that digest.
//!
//! [`check_image`] reads an image through any [`ImageSource`] (the PAL's
//! [`ImageStorage`], a flash region, a byte slice) and reports which checks passed, so a board
//! can run it at close in addition to the job-document signature check.

use ota_pal_traits::{ImageStorage, PalError, PalErrorKind, Sha256EcdsaP256Verifier};
use sha2::{Digest, Sha256};

pub use mcuboot_format::header::{
    ImageHeader, ImageVersion, IMAGE_F_ENCRYPTED, IMAGE_HEADER_SIZE, IMAGE_MAGIC, IMAGE_MAGIC_V1,
};
use mcuboot_format::tlv::{decode_header, TlvWalker};
pub use mcuboot_format::tlv::{
    MAX_ECDSA_SIG, P256_SPKI_PREFIX, TLV_ECDSA_SIG, TLV_INFO_MAGIC, TLV_KEYHASH,
    TLV_PROT_INFO_MAGIC, TLV_SHA256,
};

/// Sub-code: the image ends past the readable area, or its sizes overflow.
pub const SUB_IMAGE_TOO_LARGE: u32 = 0x300;

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
    let unprot_at = tlv_start;
    if hdr.protect_tlv_size > 0 {
        let prot_at = tlv_start - hdr.protect_tlv_size as u32;
        if prot_at.checked_add(4).is_none_or(|e| e > avail) {
            return Ok(out);
        }
        src.read_at(prot_at, &mut info).await?;
        if decode_header(info) != (TLV_PROT_INFO_MAGIC, hdr.protect_tlv_size) {
            return Ok(out);
        }
    }
    if unprot_at.checked_add(4).is_none_or(|e| e > avail) {
        return Ok(out);
    }
    src.read_at(unprot_at, &mut info).await?;
    let Some(mut tlvs) =
        TlvWalker::new(unprot_at, info, TLV_INFO_MAGIC).filter(|w| w.end() <= avail)
    else {
        return Ok(out);
    };
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
    let mut value = [0u8; 32];
    while let Some(at) = tlvs.next_at() {
        src.read_at(at, &mut info).await?;
        let Some(e) = tlvs.entry(info) else {
            out.tlvs_ok = false;
            break;
        };
        match e.ty {
            TLV_SHA256 | TLV_KEYHASH if e.len == 32 => {
                src.read_at(e.data_at, &mut value).await?;
                if e.ty == TLV_SHA256 {
                    out.hash_ok = value == digest;
                } else {
                    out.key_hash_ok = want_key == Some(value);
                }
            }
            TLV_ECDSA_SIG if e.len as usize <= MAX_ECDSA_SIG => {
                sig_len = e.len as usize;
                if let Some(s) = sig.get_mut(..sig_len) {
                    src.read_at(e.data_at, s).await?;
                }
            }
            _ => {}
        }
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
    use mcuboot_format::tlv::{write_body, write_tlv_area};
    use p256::ecdsa::{signature::hazmat::PrehashSigner, Signature};
    let too_small = PalError::new(PalErrorKind::RxFileTooLarge);
    let img_size = u32::try_from(payload.len()).map_err(|_| too_small)?;
    let hdr = ImageHeader::new(hdr_size, img_size, version);
    let body = write_body(out, &hdr, payload).ok_or(too_small)?;
    let digest: [u8; 32] = Sha256::digest(out.get(..body).ok_or(too_small)?).into();
    let key = Sha256EcdsaP256Verifier::from_verifying_key(*signer.verifying_key());
    let sig: Signature = signer
        .sign_prehash(&digest)
        .map_err(|_| PalError::new(PalErrorKind::BadSignerCert))?;
    let der = sig.to_der();
    let tlvs: [(u16, &[u8]); 3] = [
        (TLV_SHA256, &digest),
        (TLV_KEYHASH, &key_hash(&key)),
        (TLV_ECDSA_SIG, der.as_bytes()),
    ];
    write_tlv_area(out, body, &tlvs).ok_or(too_small)
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
    let Some(mut tlvs) = TlvWalker::new(at, info, TLV_INFO_MAGIC).filter(|w| w.end() <= avail)
    else {
        return Ok(None);
    };
    while let Some(p) = tlvs.next_at() {
        src.read_at(p, &mut info).await?;
        let Some(e) = tlvs.entry(info) else {
            break;
        };
        if e.ty == TLV_SHA256 && e.len == 32 {
            let mut d = [0u8; 32];
            src.read_at(e.data_at, &mut d).await?;
            return Ok(Some((hdr, d)));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use ota_pal_traits::sim::block_on;

    #[test]
    fn old_imgtool_zero_padded_signature_is_trimmed() {
        let mut padded = [0u8; 72];
        padded[0] = 0x30;
        padded[1] = 0x44;
        assert_eq!(trim_der(&padded).len(), 0x46);
        assert_eq!(trim_der(&[0x30, 0x50, 1]).len(), 3, "bad length left as is");
        assert_eq!(trim_der(&[]).len(), 0);
    }

    #[cfg(feature = "sim")]
    fn built(payload: &[u8]) -> (std::vec::Vec<u8>, Sha256EcdsaP256Verifier) {
        let sk = p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap();
        let key = Sha256EcdsaP256Verifier::from_verifying_key(*sk.verifying_key());
        let mut img = std::vec![0u8; 0x400 + payload.len() + 256];
        let n = build_signed_image(payload, ImageVersion::new(2, 0, 0, 1), 0x400, &sk, &mut img)
            .unwrap();
        img.truncate(n);
        (img, key)
    }

    #[cfg(feature = "sim")]
    #[test]
    fn tlv_area_order_and_stated_digest() {
        let (img, _) = built(b"payload");
        let body = 0x400 + 7;
        // imgtool's order: info 0x6907, SHA256, KEYHASH, ECDSA_SIG.
        assert_eq!(&img[body..body + 2], &[0x07, 0x69]);
        assert_eq!(&img[body + 4..body + 8], &[0x10, 0x00, 32, 0]);
        assert_eq!(&img[body + 40..body + 44], &[0x01, 0x00, 32, 0]);
        assert_eq!(&img[body + 76..body + 78], &[0x22, 0x00]);
        let tot = u16::from_le_bytes([img[body + 2], img[body + 3]]) as usize;
        assert_eq!(body + tot, img.len());
        let (h, d) = block_on(stated_digest(&mut &img[..])).unwrap().unwrap();
        assert_eq!(h.version, ImageVersion::new(2, 0, 0, 1));
        assert_eq!(&d[..], &img[body + 8..body + 40]);
        // Cut inside the TLV area: no stated digest.
        assert_eq!(
            block_on(stated_digest(&mut &img[..body + 20])).unwrap(),
            None
        );
    }

    #[cfg(feature = "sim")]
    #[test]
    fn tlv_overrun_and_bad_protected_info_are_refused() {
        let (img, key) = built(b"payload");
        let body = 0x400 + 7;
        let mut scratch = [0u8; 64];
        // The last TLV claims one byte more than the area holds.
        let mut over = img.clone();
        over[body + 78] += 1;
        let c = block_on(check_image(&mut &over[..], Some(&key), &mut scratch)).unwrap();
        assert!(!c.tlvs_ok && !c.is_valid_signed(), "{c:?}");
        // A protected TLV size whose info header is not 0x6908 with that size.
        let mut prot = img.clone();
        prot[10] = 8;
        let c = block_on(check_image(&mut &prot[..], Some(&key), &mut scratch)).unwrap();
        assert!(c.header.is_some() && !c.tlvs_ok && !c.hash_ok);
        // A TLV total below its own 4-byte header.
        let mut short = img.clone();
        short[body + 2] = 3;
        short[body + 3] = 0;
        let c = block_on(check_image(&mut &short[..], Some(&key), &mut scratch)).unwrap();
        assert!(!c.tlvs_ok);
        assert_eq!(block_on(stated_digest(&mut &short[..])).unwrap(), None);
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
