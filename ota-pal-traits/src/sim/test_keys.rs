//! Deterministic P-256 keys and signatures for board tests and simulations: the same seed
//! always gives the same key, and signing is RFC 6979 deterministic, so test images and job
//! signatures are reproducible. No heap: signatures come back as [`DerSignature`] (ASN.1 DER,
//! at most 72 bytes, on the stack).
//!
//! ```
//! use ota_pal_traits::sim::{block_on, test_keys::TestKey};
//! use ota_pal_traits::{verify_stored_image, FileInfo, ImageVerifier};
//!
//! let key = TestKey::from_seed(0x22).unwrap();
//! let data = b"an OTA file";
//! let sig = key.sign(data);
//! let mut v = key.verifier();
//! let f = FileInfo::new("", data.len() as u32);
//! v.begin(&f);
//! v.update(data);
//! assert!(block_on(v.finish(sig.as_bytes())).is_ok());
//! ```

use p256::ecdsa::signature::Signer;
use p256::ecdsa::{DerSignature, Signature, SigningKey, VerifyingKey};

use crate::verify::Sha256EcdsaP256Verifier;

/// A P-256 signing key whose secret scalar is `[seed; 32]`. **For tests only**: anyone can
/// recompute it.
#[derive(Debug, Clone)]
pub struct TestKey(SigningKey);

impl TestKey {
    /// The key for `seed`; `None` for the two seeds that give no valid scalar (0x00, and 0xFF,
    /// which is above the group order).
    pub fn from_seed(seed: u8) -> Option<Self> {
        SigningKey::from_slice(&[seed; 32]).ok().map(Self)
    }

    /// The `p256` signing key (to sign prehashed digests, e.g. MCUboot images).
    pub fn signing_key(&self) -> &SigningKey {
        &self.0
    }

    /// The public key.
    pub fn verifying_key(&self) -> &VerifyingKey {
        self.0.verifying_key()
    }

    /// A `sig-sha256-ecdsa` verifier for this key, as a board's tests give the agent.
    pub fn verifier(&self) -> Sha256EcdsaP256Verifier {
        Sha256EcdsaP256Verifier::from_verifying_key(*self.0.verifying_key())
    }

    /// The ECDSA P-256 / SHA-256 signature of `data` in ASN.1 DER, as AWS code signing makes
    /// it for a job document.
    pub fn sign(&self, data: &[u8]) -> DerSignature {
        let sig: Signature = self.0.sign(data);
        sig.to_der()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ImageVerifier;

    #[test]
    fn seeds_are_deterministic_and_signatures_verify() {
        assert!(TestKey::from_seed(0).is_none());
        assert!(TestKey::from_seed(0xFF).is_none());
        let a = TestKey::from_seed(0x11).unwrap();
        let b = TestKey::from_seed(0x11).unwrap();
        assert_eq!(a.signing_key(), b.signing_key());
        assert_eq!(a.sign(b"x").as_bytes(), b.sign(b"x").as_bytes(), "RFC 6979");
        let sig = a.sign(b"data");
        assert_eq!(sig.as_bytes()[0], 0x30);
        let mut v = a.verifier();
        let f = crate::FileInfo::new("", 4);
        v.begin(&f);
        v.update(b"data");
        assert!(crate::sim::block_on(v.finish(sig.as_bytes())).is_ok());
        let other = TestKey::from_seed(0x22).unwrap();
        let mut v = other.verifier();
        v.begin(&f);
        v.update(b"data");
        assert!(crate::sim::block_on(v.finish(sig.as_bytes())).is_err());
    }
}
