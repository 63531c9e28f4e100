//! [`McubootVerifier`]: an [`ImageVerifier`] wrapper that also applies the MCUboot check
//! (board-formats §1.2, §1.3) while the agent hashes the file, so a board gets it at close
//! without reading the image again.
//!
//! The agent feeds the file in order ([`ImageVerifier::update`]); the wrapper passes every
//! byte to the inner verifier (the job-document signature), hashes header + payload +
//! protected TLVs itself and keeps the first [`MAX_TLV_AREA`] bytes of the unprotected TLV
//! area. [`finish`](ImageVerifier::finish) first runs the inner check, then requires the
//! SHA256 TLV to match, the KEYHASH to name the MCUboot key and the ECDSA_SIG to verify; a
//! failure is `SignatureCheckFailed` with [`SUB_MCUBOOT_CHECK`]. [`McubootVerifier::last_check`]
//! tells which checks passed.

use ota_pal_traits::{
    FileInfo, ImageVerifier, PalError, PalErrorKind, Sha256EcdsaP256Verifier, SignatureKind,
};
use sha2::{Digest, Sha256};

use crate::image::{
    key_hash, ImageCheck, ImageHeader, IMAGE_F_ENCRYPTED, IMAGE_HEADER_SIZE, MAX_ECDSA_SIG,
    TLV_ECDSA_SIG, TLV_INFO_MAGIC, TLV_KEYHASH, TLV_SHA256,
};

/// Bytes of the unprotected TLV area kept (SHA256 36 + KEYHASH 36 + ECDSA_SIG ≤ 76 + info 4 fit
/// with room for a PUBKEY TLV).
pub const MAX_TLV_AREA: usize = 256;
/// Sub-code of a file that passes the job signature but fails the MCUboot check.
pub const SUB_MCUBOOT_CHECK: u32 = 0x800;

/// See the [module docs](self). RAM: the inner verifier + the MCUboot key + a SHA-256 state +
/// 256 + 32 bytes of buffers.
#[derive(Debug, Clone)]
pub struct McubootVerifier<V> {
    inner: V,
    key: Sha256EcdsaP256Verifier,
    hasher: Sha256,
    pos: u32,
    head: [u8; IMAGE_HEADER_SIZE],
    header: Option<ImageHeader>,
    tlv: [u8; MAX_TLV_AREA],
    tlv_len: usize,
    last: ImageCheck,
}

impl<V: ImageVerifier> McubootVerifier<V> {
    /// Wrap `inner`; `key` is the MCUboot image-signing key the bootloader holds.
    pub fn new(inner: V, key: Sha256EcdsaP256Verifier) -> Self {
        Self {
            inner,
            key,
            hasher: Sha256::new(),
            pos: 0,
            head: [0; IMAGE_HEADER_SIZE],
            header: None,
            tlv: [0; MAX_TLV_AREA],
            tlv_len: 0,
            last: ImageCheck::default(),
        }
    }

    /// Which MCUboot checks the last finished file passed.
    pub fn last_check(&self) -> ImageCheck {
        self.last
    }

    /// The wrapped verifier.
    pub fn inner(&mut self) -> &mut V {
        &mut self.inner
    }

    fn take(&mut self, data: &[u8]) {
        let start = self.pos;
        for (i, &b) in data.iter().enumerate() {
            let at = start.wrapping_add(i as u32);
            if let Some(h) = self.head.get_mut(at as usize) {
                *h = b;
                if at as usize == IMAGE_HEADER_SIZE - 1 {
                    let hdr = ImageHeader::decode(&self.head);
                    self.header = hdr.is_valid().then_some(hdr);
                }
            }
        }
        // Hash [0, hashed_len) (the first 32 bytes are always inside it); keep the TLV area.
        let hashed = self.header.and_then(|h| h.hashed_len()).unwrap_or(u32::MAX);
        let end = start.saturating_add(data.len() as u32);
        let hash_to = hashed.min(end).saturating_sub(start) as usize;
        if let Some(d) = data.get(..hash_to) {
            self.hasher.update(d);
        }
        if self.header.is_some() && end > hashed {
            let from = hashed.saturating_sub(start) as usize;
            for &b in data.get(from..).unwrap_or(&[]) {
                if let Some(slot) = self.tlv.get_mut(self.tlv_len) {
                    *slot = b;
                    self.tlv_len += 1;
                }
            }
        }
        self.pos = end;
    }

    fn evaluate(&mut self) -> ImageCheck {
        let mut out = ImageCheck {
            header: self.header,
            ..ImageCheck::default()
        };
        let Some(hdr) = self.header else {
            return out;
        };
        out.plain = hdr.flags & IMAGE_F_ENCRYPTED == 0;
        let digest: [u8; 32] = core::mem::take(&mut self.hasher).finalize().into();
        let tlv = self.tlv.get(..self.tlv_len).unwrap_or(&[]);
        let le16 = |at: usize| -> Option<u16> {
            Some(u16::from_le_bytes([*tlv.get(at)?, *tlv.get(at + 1)?]))
        };
        let (Some(magic), Some(tot)) = (le16(0), le16(2)) else {
            return out;
        };
        if magic != TLV_INFO_MAGIC || (tot as usize) < 4 || tot as usize > tlv.len() {
            return out;
        }
        out.tlvs_ok = true;
        let want_key = key_hash(&self.key);
        let mut sig: &[u8] = &[];
        let mut at = 4usize;
        while at + 4 <= tot as usize {
            let (Some(ty), Some(len)) = (le16(at), le16(at + 2)) else {
                break;
            };
            let Some(val) = tlv.get(at + 4..at + 4 + len as usize) else {
                out.tlvs_ok = false;
                break;
            };
            match ty {
                TLV_SHA256 => out.hash_ok = val == digest,
                TLV_KEYHASH => out.key_hash_ok = val == want_key,
                TLV_ECDSA_SIG if val.len() <= MAX_ECDSA_SIG => sig = val,
                _ => {}
            }
            at += 4 + len as usize;
        }
        if out.hash_ok && out.key_hash_ok && !sig.is_empty() {
            let trimmed = match sig {
                [0x30, l, ..] if (*l as usize) + 2 <= sig.len() => {
                    sig.get(..*l as usize + 2).unwrap_or(sig)
                }
                _ => sig,
            };
            out.signature_ok = self.key.verify_digest(&digest, trimmed).is_ok();
        }
        out
    }
}

impl<V: ImageVerifier> ImageVerifier for McubootVerifier<V> {
    fn kind(&self) -> SignatureKind {
        self.inner.kind()
    }

    fn begin(&mut self, file: &FileInfo<'_>) {
        self.inner.begin(file);
        self.hasher = Sha256::new();
        self.pos = 0;
        self.head = [0; IMAGE_HEADER_SIZE];
        self.header = None;
        self.tlv_len = 0;
        self.last = ImageCheck::default();
    }

    fn update(&mut self, data: &[u8]) {
        self.inner.update(data);
        self.take(data);
    }

    async fn finish(&mut self, signature: &[u8]) -> Result<(), PalError> {
        let r = self.inner.finish(signature).await;
        self.last = self.evaluate();
        r?;
        if self.last.is_valid_signed() {
            Ok(())
        } else {
            Err(PalError::with_sub(
                PalErrorKind::SignatureCheckFailed,
                SUB_MCUBOOT_CHECK,
            ))
        }
    }
}
