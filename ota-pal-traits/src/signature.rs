//! Signature verification of a received image.

use crate::{FileInfo, PalError};

/// Hash algorithm named in a job's signature key (`sig-<hash>-<alg>`, spec §2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashAlgorithm {
    /// SHA-1 (`sig-sha1-*`), legacy.
    Sha1,
    /// SHA-256 (`sig-sha256-*`).
    Sha256,
}

/// Signature algorithm named in a job's signature key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignatureAlgorithm {
    /// ECDSA (P-256 in practice), DER-encoded in the job document.
    Ecdsa,
    /// RSA (PKCS#1 v1.5 or PSS, as the signer and the board agree).
    Rsa,
}

/// A job-document signature key such as `sig-sha256-ecdsa`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SignatureKind {
    /// The hash.
    pub hash: HashAlgorithm,
    /// The signature scheme.
    pub algorithm: SignatureAlgorithm,
}

impl SignatureKind {
    /// `sig-sha256-ecdsa`, what AWS code signing for FreeRTOS produces.
    pub const SHA256_ECDSA: Self = Self::new(HashAlgorithm::Sha256, SignatureAlgorithm::Ecdsa);
    /// `sig-sha256-rsa`.
    pub const SHA256_RSA: Self = Self::new(HashAlgorithm::Sha256, SignatureAlgorithm::Rsa);
    /// `sig-sha1-rsa`.
    pub const SHA1_RSA: Self = Self::new(HashAlgorithm::Sha1, SignatureAlgorithm::Rsa);
    /// `sig-sha1-ecdsa`.
    pub const SHA1_ECDSA: Self = Self::new(HashAlgorithm::Sha1, SignatureAlgorithm::Ecdsa);

    /// Every key the job parser recognises.
    pub const ALL: [Self; 4] = [
        Self::SHA256_ECDSA,
        Self::SHA256_RSA,
        Self::SHA1_RSA,
        Self::SHA1_ECDSA,
    ];

    /// A kind from its parts.
    pub const fn new(hash: HashAlgorithm, algorithm: SignatureAlgorithm) -> Self {
        Self { hash, algorithm }
    }

    /// The JSON key in `afr_ota.files[i]`.
    pub const fn key(&self) -> &'static str {
        match (self.hash, self.algorithm) {
            (HashAlgorithm::Sha256, SignatureAlgorithm::Ecdsa) => "sig-sha256-ecdsa",
            (HashAlgorithm::Sha256, SignatureAlgorithm::Rsa) => "sig-sha256-rsa",
            (HashAlgorithm::Sha1, SignatureAlgorithm::Rsa) => "sig-sha1-rsa",
            (HashAlgorithm::Sha1, SignatureAlgorithm::Ecdsa) => "sig-sha1-ecdsa",
        }
    }

    /// The kind for a JSON key, if it is one of [`Self::ALL`].
    pub fn from_key(key: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.key() == key)
    }
}

/// Checks the signature of a received file.
///
/// The agent feeds the file to [`update`](Self::update) in order, as far as blocks arrive in
/// order, and reads back from storage only what it could not hash on the fly; then it calls
/// [`finish`](Self::finish) with the signature from the job document. Hardware crypto, a secure
/// element or PSA can stand behind this trait; [`needs_image_bytes`](Self::needs_image_bytes)
/// lets a verifier that gets the digest elsewhere (TF-M's candidate digest) skip the hashing.
#[allow(async_fn_in_trait)]
pub trait ImageVerifier {
    /// The signature key this verifier checks; the agent fails a job that does not carry it.
    fn kind(&self) -> SignatureKind;

    /// Whether [`update`](Self::update) must see every byte of the file. Default: yes.
    fn needs_image_bytes(&self) -> bool {
        true
    }

    /// Start a new file, dropping any state of a previous one.
    fn begin(&mut self, file: &FileInfo<'_>);

    /// Hash the next `data` bytes of the file.
    fn update(&mut self, data: &[u8]);

    /// Check `signature` (as decoded from the job document) against everything hashed since
    /// [`begin`](Self::begin). A bad signature is
    /// [`PalErrorKind::SignatureCheckFailed`](crate::PalErrorKind::SignatureCheckFailed); a
    /// missing or unusable key is [`PalErrorKind::BadSignerCert`](crate::PalErrorKind::BadSignerCert).
    async fn finish(&mut self, signature: &[u8]) -> Result<(), PalError>;
}
