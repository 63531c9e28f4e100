//! Signature check over TF-M's candidate digest (§4.3 "Signature check").
//!
//! PAL-PSA does not hash the file itself: after `psa_fwu_finish(c)` it reads
//! `psa_fwu_query(c).impl.candidate_digest` — the SHA-256 TF-M computed over the bytes written
//! to the staging area — and calls `psa_verify_hash(key, alg, digest, 32, sig)`. For ECDSA it
//! first converts the job's ASN.1 DER signature to raw `r‖s`, because PSA wants raw.
//! [`CandidateDigestVerifier`] does the same, with PSA Crypto behind the small [`PsaCrypto`]
//! trait (RSA-3072 PSS on a Corstone goes through it); [`P256Crypto`] is a software
//! ECDSA P-256 implementation of that trait.

use ota_pal_traits::{FileInfo, ImageVerifier, PalError, PalErrorKind, SignatureKind};
use p256::ecdsa::{signature::hazmat::PrehashVerifier, Signature, VerifyingKey};

use crate::config::ComponentMap;
use crate::psa::{ComponentId, ComponentState, PsaFwu, Status};

/// A PSA signature algorithm this crate asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// `PSA_ALG_ECDSA(PSA_ALG_SHA_256)`, signature raw `r‖s` (64 bytes for P-256).
    EcdsaSha256,
    /// `PSA_ALG_RSA_PSS_ANY_SALT(PSA_ALG_SHA_256)`: PSS, SHA-256, MGF1-SHA-256, any salt
    /// length (CS3XX signs with `openssl pkeyutl ... rsa_padding_mode:pss`).
    RsaPssAnySaltSha256,
}

impl Algorithm {
    /// The `psa_algorithm_t` value.
    pub const fn psa_alg(self) -> u32 {
        match self {
            Self::EcdsaSha256 => 0x0600_0609,
            Self::RsaPssAnySaltSha256 => 0x0600_1309,
        }
    }
}

/// `psa_verify_hash` (PSA Crypto), the only crypto call the PAL makes.
pub trait PsaCrypto {
    /// Verify `signature` over `hash` with key `key` (a `psa_key_id_t`) and `alg`.
    /// `PSA_ERROR_INVALID_SIGNATURE` for a mismatch.
    fn verify_hash(&self, key: u32, alg: Algorithm, hash: &[u8], signature: &[u8]) -> Status;
}

impl<T: PsaCrypto + ?Sized> PsaCrypto for &T {
    fn verify_hash(&self, key: u32, alg: Algorithm, hash: &[u8], signature: &[u8]) -> Status {
        (**self).verify_hash(key, alg, hash, signature)
    }
}

/// Software ECDSA P-256 (`p256`) behind [`PsaCrypto`]; the key id is ignored, the key is the
/// one it was built with. RSA is refused with `PSA_ERROR_NOT_SUPPORTED`.
#[derive(Debug, Clone)]
pub struct P256Crypto {
    key: VerifyingKey,
}

impl P256Crypto {
    /// Verify with `key`.
    pub fn new(key: VerifyingKey) -> Self {
        Self { key }
    }

    /// From a SEC1 point (65-byte uncompressed or 33-byte compressed); `BadSignerCert`
    /// otherwise.
    pub fn from_sec1(bytes: &[u8]) -> Result<Self, PalError> {
        VerifyingKey::from_sec1_bytes(bytes)
            .map(Self::new)
            .map_err(|_| PalError::new(PalErrorKind::BadSignerCert))
    }
}

impl PsaCrypto for P256Crypto {
    fn verify_hash(&self, _key: u32, alg: Algorithm, hash: &[u8], signature: &[u8]) -> Status {
        if alg != Algorithm::EcdsaSha256 {
            return Status::NOT_SUPPORTED;
        }
        let Ok(sig) = Signature::from_slice(signature) else {
            return Status::INVALID_SIGNATURE;
        };
        match self.key.verify_prehash(hash, &sig) {
            Ok(()) => Status::SUCCESS,
            Err(_) => Status::INVALID_SIGNATURE,
        }
    }
}

/// Convert an ASN.1 DER ECDSA P-256 signature to raw `r‖s` (what PAL-PSA does when
/// `OTA_PAL_SIGNATURE_FORMAT == ASN1_DER`). `None` if it is not a valid DER signature.
pub fn ecdsa_der_to_raw(der: &[u8]) -> Option<[u8; 64]> {
    let sig = Signature::from_der(der).ok()?;
    let mut raw = [0u8; 64];
    raw.copy_from_slice(&sig.to_bytes());
    Some(raw)
}

/// Sub-code: the component is not in CANDIDATE after `finish` (nothing to check).
pub const SUB_NOT_CANDIDATE: u32 = 0x300;
/// Sub-code: the DER signature does not decode.
pub const SUB_BAD_DER: u32 = 0x301;
/// Sub-code: `verify_hash` said the signature does not match.
pub const SUB_MISMATCH: u32 = 0x302;
/// Sub-code: no component for the file's path.
pub const SUB_NO_COMPONENT: u32 = 0x303;

/// An [`ImageVerifier`] over TF-M's candidate digest; it never needs the image bytes.
///
/// [`finish`](ImageVerifier::finish) plays PAL-PSA's `CloseFile` (CS3XX patch 0002): if the
/// component is still WRITING it calls `psa_fwu_finish(c)` (WRITING → CANDIDATE), then queries
/// the candidate digest and verifies. A component that is not CANDIDATE after that (aborted,
/// never started) fails with `SignatureCheckFailed` — the file cannot have been verified.
#[derive(Debug)]
pub struct CandidateDigestVerifier<F, C> {
    fwu: F,
    crypto: C,
    key: u32,
    alg: Algorithm,
    map: ComponentMap,
    component: Option<ComponentId>,
}

impl<F: PsaFwu, C: PsaCrypto> CandidateDigestVerifier<F, C> {
    /// A verifier asking `crypto` to check with key id `key` and `alg`; files are routed to
    /// components by `map` (use the same table as the storage).
    pub fn new(fwu: F, crypto: C, key: u32, alg: Algorithm, map: ComponentMap) -> Self {
        Self {
            fwu,
            crypto,
            key,
            alg,
            map,
            component: None,
        }
    }

    /// The component the current file goes to.
    pub fn component(&self) -> Option<ComponentId> {
        self.component
    }

    /// Finish the component if needed and return its candidate digest.
    pub fn candidate_digest(&self, c: ComponentId) -> Result<[u8; 32], PalError> {
        let info = self.fwu.query(c).map_err(file_close)?;
        if info.state == ComponentState::Writing {
            self.fwu.finish(c).ok().map_err(file_close)?;
        }
        let info = self.fwu.query(c).map_err(file_close)?;
        if info.state != ComponentState::Candidate {
            return Err(PalError::with_sub(
                PalErrorKind::SignatureCheckFailed,
                SUB_NOT_CANDIDATE,
            ));
        }
        Ok(info.candidate_digest)
    }

    /// Check `signature` (as in the job document: DER for ECDSA) over `digest`.
    pub fn verify_digest(&self, digest: &[u8; 32], signature: &[u8]) -> Result<(), PalError> {
        let raw;
        let sig: &[u8] = match self.alg {
            Algorithm::EcdsaSha256 => {
                // Accept raw r‖s too (64 bytes that are not DER), as ota-pal-traits does.
                raw = match ecdsa_der_to_raw(signature) {
                    Some(r) => r,
                    None if signature.len() == 64 => {
                        let mut r = [0u8; 64];
                        r.copy_from_slice(signature);
                        r
                    }
                    None => {
                        return Err(PalError::with_sub(
                            PalErrorKind::SignatureCheckFailed,
                            SUB_BAD_DER,
                        ))
                    }
                };
                &raw
            }
            Algorithm::RsaPssAnySaltSha256 => signature,
        };
        let st = self.crypto.verify_hash(self.key, self.alg, digest, sig);
        if st.is_success() {
            Ok(())
        } else if st == Status::INVALID_SIGNATURE {
            Err(PalError::with_sub(
                PalErrorKind::SignatureCheckFailed,
                SUB_MISMATCH,
            ))
        } else {
            Err(PalError::with_sub(
                PalErrorKind::BadSignerCert,
                st.sub_code(),
            ))
        }
    }
}

fn file_close(st: Status) -> PalError {
    PalError::with_sub(PalErrorKind::FileClose, st.sub_code())
}

impl<F: PsaFwu, C: PsaCrypto> ImageVerifier for CandidateDigestVerifier<F, C> {
    fn kind(&self) -> SignatureKind {
        match self.alg {
            Algorithm::EcdsaSha256 => SignatureKind::SHA256_ECDSA,
            Algorithm::RsaPssAnySaltSha256 => SignatureKind::SHA256_RSA,
        }
    }

    fn needs_image_bytes(&self) -> bool {
        false
    }

    fn begin(&mut self, file: &FileInfo<'_>) {
        self.component = self.map.component(file.path);
    }

    fn update(&mut self, _data: &[u8]) {}

    async fn finish(&mut self, signature: &[u8]) -> Result<(), PalError> {
        let c = self.component.ok_or(PalError::with_sub(
            PalErrorKind::SignatureCheckFailed,
            SUB_NO_COMPONENT,
        ))?;
        let digest = self.candidate_digest(c)?;
        self.verify_digest(&digest, signature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psa_algorithm_values() {
        assert_eq!(Algorithm::EcdsaSha256.psa_alg(), 0x0600_0609);
        assert_eq!(Algorithm::RsaPssAnySaltSha256.psa_alg(), 0x0600_1309);
    }

    #[test]
    fn der_to_raw_pads_r_and_s() {
        // The spec §8.5 test vector signature (70 bytes DER).
        let der = [
            0x30, 0x44, 0x02, 0x20, 0x15, 0x6a, 0x68, 0x98, 0xf0, 0x4e, 0x1e, 0x12, 0x4c, 0xc4,
            0xf1, 0x05, 0x22, 0x36, 0xfd, 0xb4, 0xe5, 0x5d, 0x83, 0x08, 0x2a, 0xf3, 0xa6, 0x7d,
            0x32, 0x6b, 0xff, 0x85, 0x27, 0x14, 0x9b, 0xbf, 0x02, 0x20, 0x26, 0x7d, 0x5f, 0x4d,
            0x12, 0xab, 0xec, 0x17, 0xd8, 0x45, 0xc6, 0x3d, 0x8e, 0xd8, 0x8d, 0x3f, 0x28, 0x26,
            0xfd, 0xce, 0x32, 0x34, 0x17, 0x05, 0x47, 0xb2, 0xf6, 0x84, 0xd5, 0x68, 0x3e, 0x36,
        ];
        let raw = ecdsa_der_to_raw(&der).unwrap();
        assert_eq!(&raw[..32], &der[4..36]);
        assert_eq!(&raw[32..], &der[38..70]);
        assert_eq!(ecdsa_der_to_raw(&der[..69]), None);
    }
}
