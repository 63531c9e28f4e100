//! `sig-sha256-ecdsa` verification in software ([`Sha256EcdsaP256Verifier`]) and the
//! read-back helper [`verify_stored_image`].
//!
//! AWS code signing for FreeRTOS signs the SHA-256 of the file with ECDSA P-256 and puts the
//! DER signature, base64-encoded, in the job document (spec §2.1, §8.5). The verifier hashes
//! the file as the agent feeds it and checks the signature in
//! [`finish`](ImageVerifier::finish). It accepts the signature DER-encoded or as raw `r ‖ s`
//! (64 bytes), and high-S signatures as OpenSSL produces them.
//!
//! The signer's key is fixed at construction, from SEC1 point bytes, SPKI DER, an X.509
//! certificate (DER) holding a P-256 key, or PEM of either. `FileInfo::cert_path` is not
//! consulted: a board with several keys picks one before it builds the verifier.

use p256::ecdsa::signature::hazmat::PrehashVerifier;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey;
use sha2::{Digest, Sha256};

use crate::{FileInfo, ImageStorage, ImageVerifier, PalError, PalErrorKind, SignatureKind};

/// Sub-code of [`PalErrorKind::BadSignerCert`]: the key bytes are not a P-256 public key.
pub const SUB_BAD_KEY: u32 = 0x200;
/// Sub-code of [`PalErrorKind::BadSignerCert`]: PEM armour or base64 is malformed, or the
/// PEM label is neither `PUBLIC KEY` nor `CERTIFICATE`.
pub const SUB_BAD_PEM: u32 = 0x201;
/// Sub-code of [`PalErrorKind::SignatureCheckFailed`]: the signature is neither DER nor 64 raw
/// bytes.
pub const SUB_BAD_SIGNATURE_ENCODING: u32 = 0x202;
/// Sub-code of [`PalErrorKind::SignatureCheckFailed`]: the signature does not match.
pub const SUB_SIGNATURE_MISMATCH: u32 = 0x203;

/// DER prefix of a P-256 `SubjectPublicKeyInfo` with an uncompressed point: SEQUENCE {
/// SEQUENCE { id-ecPublicKey, prime256v1 }, BIT STRING (66 bytes) }.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];
/// Length of that SPKI: prefix plus a 65-byte SEC1 uncompressed point.
const P256_SPKI_LEN: usize = P256_SPKI_PREFIX.len() + 65;
/// Largest PEM body decoded, in bytes of DER (certificates are usually 400–800 bytes).
pub const MAX_PEM_DER: usize = 2048;

/// Verifies `sig-sha256-ecdsa` signatures with one P-256 public key, in software.
///
/// RAM: about 200 bytes (the key as an affine point plus a SHA-256 state).
#[derive(Debug, Clone)]
pub struct Sha256EcdsaP256Verifier {
    key: VerifyingKey,
    hash: Sha256,
}

fn bad_key(sub: u32) -> PalError {
    PalError::with_sub(PalErrorKind::BadSignerCert, sub)
}

impl Sha256EcdsaP256Verifier {
    /// A verifier for a key given in any supported form: SEC1 point (33 or 65 bytes), SPKI DER,
    /// a DER certificate holding a P-256 key, or PEM (`PUBLIC KEY` or `CERTIFICATE`).
    /// Fails with [`PalErrorKind::BadSignerCert`].
    pub fn from_key_bytes(bytes: &[u8]) -> Result<Self, PalError> {
        if bytes.starts_with(b"-----BEGIN") || bytes.first().is_some_and(u8::is_ascii_whitespace) {
            return Self::from_pem(bytes);
        }
        if bytes.first() == Some(&0x30) {
            return Self::from_spki_der(bytes).or_else(|_| Self::from_certificate_der(bytes));
        }
        Self::from_sec1(bytes)
    }

    /// A verifier for a SEC1-encoded point (compressed 33 bytes or uncompressed 65 bytes).
    pub fn from_sec1(bytes: &[u8]) -> Result<Self, PalError> {
        VerifyingKey::from_sec1_bytes(bytes)
            .map(Self::from_verifying_key)
            .map_err(|_| bad_key(SUB_BAD_KEY))
    }

    /// A verifier for a DER `SubjectPublicKeyInfo` of a P-256 key.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, PalError> {
        VerifyingKey::from_public_key_der(der)
            .map(Self::from_verifying_key)
            .map_err(|_| bad_key(SUB_BAD_KEY))
    }

    /// A verifier for the P-256 key inside a DER X.509 certificate.
    ///
    /// The certificate is not parsed: its `SubjectPublicKeyInfo` is found by its fixed DER
    /// prefix (a P-256 key with an uncompressed point), and neither the certificate's
    /// signature nor its validity is checked — the key is trusted because the board was
    /// provisioned with it, as the reference PALs do.
    pub fn from_certificate_der(der: &[u8]) -> Result<Self, PalError> {
        let at = der
            .windows(P256_SPKI_PREFIX.len())
            .position(|w| w == P256_SPKI_PREFIX)
            .ok_or(bad_key(SUB_BAD_KEY))?;
        let spki = der
            .get(at..at + P256_SPKI_LEN)
            .ok_or(bad_key(SUB_BAD_KEY))?;
        Self::from_spki_der(spki)
    }

    /// A verifier for a PEM `PUBLIC KEY` or `CERTIFICATE` (the first block in `pem`). Decodes
    /// into a stack buffer of [`MAX_PEM_DER`] bytes; no heap.
    pub fn from_pem(pem: &[u8]) -> Result<Self, PalError> {
        let mut der = [0u8; MAX_PEM_DER];
        let (label, n) = pem_decode(pem, &mut der).ok_or(bad_key(SUB_BAD_PEM))?;
        let der = der.get(..n).ok_or(bad_key(SUB_BAD_PEM))?;
        match label {
            b"PUBLIC KEY" => Self::from_spki_der(der),
            b"CERTIFICATE" => Self::from_certificate_der(der),
            _ => Err(bad_key(SUB_BAD_PEM)),
        }
    }

    /// A verifier for a key already decoded with `p256`.
    pub fn from_verifying_key(key: VerifyingKey) -> Self {
        Self {
            key,
            hash: Sha256::new(),
        }
    }

    /// The key this verifier checks against.
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.key
    }

    /// Check `signature` over a SHA-256 `digest`, without touching the running hash.
    pub fn verify_digest(&self, digest: &[u8; 32], signature: &[u8]) -> Result<(), PalError> {
        let der = Signature::from_der(signature).ok();
        let raw = if signature.len() == 64 {
            Signature::from_slice(signature).ok()
        } else {
            None
        };
        if der.is_none() && raw.is_none() {
            return Err(PalError::with_sub(
                PalErrorKind::SignatureCheckFailed,
                SUB_BAD_SIGNATURE_ENCODING,
            ));
        }
        let ok = [der, raw]
            .iter()
            .flatten()
            .any(|sig| self.key.verify_prehash(digest, sig).is_ok());
        if ok {
            Ok(())
        } else {
            Err(PalError::with_sub(
                PalErrorKind::SignatureCheckFailed,
                SUB_SIGNATURE_MISMATCH,
            ))
        }
    }
}

impl ImageVerifier for Sha256EcdsaP256Verifier {
    fn kind(&self) -> SignatureKind {
        SignatureKind::SHA256_ECDSA
    }

    fn begin(&mut self, _file: &FileInfo<'_>) {
        self.hash = Sha256::new();
    }

    fn update(&mut self, data: &[u8]) {
        self.hash.update(data);
    }

    /// Checks the signature over everything hashed since `begin`, then resets the hash.
    async fn finish(&mut self, signature: &[u8]) -> Result<(), PalError> {
        let digest: [u8; 32] = core::mem::take(&mut self.hash).finalize().into();
        self.verify_digest(&digest, signature)
    }
}

/// Sub-code of [`PalErrorKind::FileClose`] from [`verify_stored_image`]: `hashed_upto` is past
/// the end of the file.
pub const SUB_HASHED_PAST_END: u32 = 0x204;

/// Finish the signature check of a stored file.
///
/// The agent calls [`ImageVerifier::begin`] when the download starts and feeds
/// [`ImageVerifier::update`] with blocks as long as they arrive in order; bytes
/// `[0, hashed_upto)` have been hashed that way. This reads `[hashed_upto, file.size)` back from
/// `storage` through `scratch` (any non-empty size; bigger is faster) into the verifier — only
/// when it [needs the bytes](ImageVerifier::needs_image_bytes) — and then checks `signature`.
///
/// Errors: a storage read error as returned, [`PalErrorKind::OutOfMemory`] for an empty
/// `scratch`, [`PalErrorKind::FileClose`] with [`SUB_HASHED_PAST_END`], and whatever
/// [`ImageVerifier::finish`] returns.
pub async fn verify_stored_image<S: ImageStorage, V: ImageVerifier>(
    storage: &mut S,
    verifier: &mut V,
    file: &FileInfo<'_>,
    hashed_upto: u32,
    signature: &[u8],
    scratch: &mut [u8],
) -> Result<(), PalError> {
    if hashed_upto > file.size {
        return Err(PalError::with_sub(
            PalErrorKind::FileClose,
            SUB_HASHED_PAST_END,
        ));
    }
    if verifier.needs_image_bytes() {
        if scratch.is_empty() {
            return Err(PalError::new(PalErrorKind::OutOfMemory));
        }
        let mut pos = hashed_upto;
        while pos < file.size {
            let n = scratch.len().min((file.size - pos) as usize);
            let chunk = scratch
                .get_mut(..n)
                .ok_or(PalError::new(PalErrorKind::OutOfMemory))?;
            storage.read(pos, chunk).await?;
            verifier.update(chunk);
            pos += n as u32;
        }
    }
    verifier.finish(signature).await
}

/// Decode the first PEM block of `pem` into `out`; returns its label and the DER length.
fn pem_decode<'p>(pem: &'p [u8], out: &mut [u8]) -> Option<(&'p [u8], usize)> {
    const BEGIN: &[u8] = b"-----BEGIN ";
    const DASHES: &[u8] = b"-----";
    let start = pem.windows(BEGIN.len()).position(|w| w == BEGIN)? + BEGIN.len();
    let rest = pem.get(start..)?;
    let label_end = rest.windows(DASHES.len()).position(|w| w == DASHES)?;
    let label = rest.get(..label_end)?;
    let body = rest.get(label_end + DASHES.len()..)?;
    let body_end = body.windows(DASHES.len()).position(|w| w == DASHES)?;
    let body = body.get(..body_end)?;
    // The END line must carry the same label.
    let tail = pem.get(start + label_end + DASHES.len() + body_end..)?;
    let end_label = tail.strip_prefix(b"-----END ")?.strip_prefix(label)?;
    if !end_label.starts_with(DASHES) {
        return None;
    }
    let n = base64_decode(body, out)?;
    Some((label, n))
}

/// Standard base64 with `=` padding, ignoring ASCII whitespace.
fn base64_decode(text: &[u8], out: &mut [u8]) -> Option<usize> {
    fn value(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let mut acc = 0u32;
    let mut bits = 0u32;
    let mut n = 0usize;
    let mut pad = 0usize;
    for &c in text.iter().filter(|c| !c.is_ascii_whitespace()) {
        if c == b'=' {
            pad += 1;
            continue;
        }
        if pad > 0 {
            return None; // data after padding
        }
        acc = (acc << 6) | value(c)?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            *out.get_mut(n)? = (acc >> bits) as u8;
            acc &= (1 << bits) - 1;
            n += 1;
        }
    }
    // Leftover bits must be zero, and padding must complete a 4-character group.
    if acc != 0 || pad > 2 || (bits > 0 && bits / 2 != pad as u32) {
        return None;
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use p256::ecdsa::signature::Signer;
    use p256::ecdsa::SigningKey;
    use std::{format, string::String, vec::Vec};

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// The 84-byte `ucDummyData` of the reference PAL tests (spec §8.5).
    fn dummy_data() -> Vec<u8> {
        hex("830bf06a81d6cad708220d6a33fa319fa95fb526000102030405060708090a0c0c0d0e0f10111213\
             1415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f")
    }

    fn signing_key(seed: u8) -> SigningKey {
        let mut scalar = [0x11u8; 32];
        scalar[31] = seed;
        SigningKey::from_slice(&scalar).unwrap()
    }

    fn file(size: u32) -> FileInfo<'static> {
        FileInfo::new("", size)
    }

    fn verify(v: &mut Sha256EcdsaP256Verifier, data: &[u8], sig: &[u8]) -> Result<(), PalError> {
        v.begin(&file(data.len() as u32));
        for chunk in data.chunks(10) {
            v.update(chunk);
        }
        crate_block_on(v.finish(sig))
    }

    /// Every future here is ready at once.
    fn crate_block_on<F: core::future::Future>(f: F) -> F::Output {
        let mut f = core::pin::pin!(f);
        let mut cx = core::task::Context::from_waker(core::task::Waker::noop());
        loop {
            if let core::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
        }
    }

    fn sec1(key: &SigningKey, compress: bool) -> Vec<u8> {
        key.verifying_key()
            .to_encoded_point(compress)
            .as_bytes()
            .to_vec()
    }

    fn spki(key: &SigningKey) -> Vec<u8> {
        let mut der = P256_SPKI_PREFIX.to_vec();
        der.extend_from_slice(&sec1(key, false));
        der
    }

    fn base64(data: &[u8]) -> String {
        const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut s = String::new();
        for c in data.chunks(3) {
            let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
            let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
            for i in 0..4 {
                if i <= c.len() {
                    s.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    s.push('=');
                }
            }
        }
        s
    }

    fn pem(label: &str, der: &[u8]) -> String {
        let b = base64(der);
        let mut s = format!("-----BEGIN {label}-----\n");
        for line in b.as_bytes().chunks(64) {
            s.push_str(core::str::from_utf8(line).unwrap());
            s.push('\n');
        }
        s.push_str(&format!("-----END {label}-----\n"));
        s
    }

    #[test]
    fn digest_of_the_reference_data_matches_the_spec() {
        let d = dummy_data();
        assert_eq!(d.len(), 84);
        let digest: [u8; 32] = Sha256::digest(&d).into();
        assert_eq!(
            digest.to_vec(),
            hex("a06b4732211f3526e61fdd2afe3d51b4a780211cc6b274e1e835a8f200e95f68")
        );
    }

    #[test]
    fn der_and_raw_signatures_verify() {
        let key = signing_key(1);
        let data = dummy_data();
        let sig: Signature = key.sign(&data);
        let der = sig.to_der();
        let mut v = Sha256EcdsaP256Verifier::from_sec1(&sec1(&key, true)).unwrap();
        assert_eq!(v.kind(), SignatureKind::SHA256_ECDSA);
        assert_eq!(verify(&mut v, &data, der.as_bytes()), Ok(()));
        assert_eq!(verify(&mut v, &data, &sig.to_bytes()), Ok(()));
        // The hash restarts at `begin`: the same verifier checks again.
        assert_eq!(verify(&mut v, &data, der.as_bytes()), Ok(()));
    }

    #[test]
    fn high_s_signatures_verify_like_openssl_ones() {
        let key = signing_key(2);
        let data = dummy_data();
        let sig: Signature = key.sign(&data); // p256 signs low-S
        let (r, s) = sig.split_scalars();
        let high = Signature::from_scalars(r.to_bytes(), (-*s).to_bytes()).unwrap();
        assert!(high.normalize_s().is_some(), "it is high-S");
        let mut v = Sha256EcdsaP256Verifier::from_sec1(&sec1(&key, false)).unwrap();
        assert_eq!(verify(&mut v, &data, high.to_der().as_bytes()), Ok(()));
    }

    #[test]
    fn tampering_is_a_signature_failure() {
        let key = signing_key(3);
        let data = dummy_data();
        let sig: Signature = key.sign(&data);
        let der = sig.to_der().as_bytes().to_vec();
        let mut v = Sha256EcdsaP256Verifier::from_spki_der(&spki(&key)).unwrap();
        let mismatch = Err(PalError::with_sub(
            PalErrorKind::SignatureCheckFailed,
            SUB_SIGNATURE_MISMATCH,
        ));
        let encoding = Err(PalError::with_sub(
            PalErrorKind::SignatureCheckFailed,
            SUB_BAD_SIGNATURE_ENCODING,
        ));
        let mut flipped = data.clone();
        flipped[40] ^= 0x01;
        assert_eq!(verify(&mut v, &flipped, &der), mismatch);
        let mut bad_sig = der.clone();
        let last = bad_sig.len() - 1;
        bad_sig[last] ^= 0x80;
        assert_eq!(verify(&mut v, &data, &bad_sig), mismatch);
        let mut bad_raw = sig.to_bytes().to_vec();
        bad_raw[5] ^= 0x01;
        assert_eq!(verify(&mut v, &data, &bad_raw), mismatch);
        assert_eq!(verify(&mut v, &data, &der[..der.len() - 1]), encoding);
        assert_eq!(verify(&mut v, &data, &[]), encoding);
        assert_eq!(verify(&mut v, &data, &sig.to_bytes()[..63]), encoding);
        let other = signing_key(4);
        let mut wrong = Sha256EcdsaP256Verifier::from_sec1(&sec1(&other, true)).unwrap();
        assert_eq!(verify(&mut wrong, &data, &der), mismatch);
    }

    #[test]
    fn garbage_keys_are_bad_signer_certs() {
        let bad: Result<(), PalError> =
            Err(PalError::with_sub(PalErrorKind::BadSignerCert, SUB_BAD_KEY));
        let key = signing_key(5);
        let mut point = sec1(&key, false);
        point[64] ^= 1; // off the curve
        assert_eq!(Sha256EcdsaP256Verifier::from_sec1(&point).err(), bad.err());
        assert_eq!(
            Sha256EcdsaP256Verifier::from_sec1(&[4; 65]).err(),
            bad.err()
        );
        assert_eq!(Sha256EcdsaP256Verifier::from_sec1(&[]).err(), bad.err());
        assert_eq!(
            Sha256EcdsaP256Verifier::from_key_bytes(&[0x30, 3, 1, 2, 3]).err(),
            bad.err()
        );
        assert_eq!(
            Sha256EcdsaP256Verifier::from_spki_der(&spki(&key)[..80]).err(),
            bad.err()
        );
        let junk = "-----BEGIN PUBLIC KEY-----\nnot base64!\n-----END PUBLIC KEY-----\n";
        assert_eq!(
            Sha256EcdsaP256Verifier::from_pem(junk.as_bytes()).err(),
            Some(PalError::with_sub(PalErrorKind::BadSignerCert, SUB_BAD_PEM))
        );
        let wrong_label = pem("PRIVATE KEY", &spki(&key));
        assert_eq!(
            Sha256EcdsaP256Verifier::from_pem(wrong_label.as_bytes()).err(),
            Some(PalError::with_sub(PalErrorKind::BadSignerCert, SUB_BAD_PEM))
        );
    }

    #[test]
    fn every_key_form_gives_the_same_key() {
        let key = signing_key(6);
        let want = *key.verifying_key();
        // A stand-in certificate: the SPKI wrapped in other DER, as in an X.509 TBS.
        let mut cert = std::vec![0x30, 0x82, 0x01, 0x00, 0xa0, 0x03, 0x02, 0x01, 0x02];
        cert.extend_from_slice(&spki(&key));
        cert.extend_from_slice(&[0xa3, 0x00]);
        let forms: [Vec<u8>; 6] = [
            sec1(&key, true),
            sec1(&key, false),
            spki(&key),
            cert.clone(),
            pem("PUBLIC KEY", &spki(&key)).into_bytes(),
            pem("CERTIFICATE", &cert).into_bytes(),
        ];
        for f in &forms {
            let v = Sha256EcdsaP256Verifier::from_key_bytes(f).unwrap();
            assert_eq!(v.verifying_key(), &want);
        }
    }

    #[test]
    fn base64_rejects_malformed_input() {
        let mut out = [0u8; 8];
        assert_eq!(base64_decode(b"TWFu", &mut out), Some(3));
        assert_eq!(base64_decode(b"TWE=", &mut out), Some(2));
        assert_eq!(base64_decode(b"TQ==", &mut out), Some(1));
        assert_eq!(base64_decode(b"TQ=", &mut out), None);
        assert_eq!(base64_decode(b"TR==", &mut out), None); // stray bits
        assert_eq!(base64_decode(b"TQ==TQ==", &mut out), None);
        assert_eq!(base64_decode(b"TWFuTWFuTWFu", &mut out), None); // too long
    }

    #[cfg(feature = "sim")]
    #[test]
    fn verify_stored_image_reads_back_only_the_unhashed_tail() {
        use crate::sim::{block_on, SimConfig, SimDevice};
        use crate::NorFlashImageStorage;
        let key = signing_key(7);
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 13) as u8).collect();
        let sig: Signature = key.sign(&data);
        let sig = sig.to_der();
        let dev = SimDevice::new(std::vec![0xFFu8; 1024], SimConfig::new(4, 256)).unwrap();
        let mut st =
            NorFlashImageStorage::new(dev.view::<4, 256>(0, 1024).unwrap(), 0, 1024, 0xFF).unwrap();
        let mut v = Sha256EcdsaP256Verifier::from_sec1(&sec1(&key, true)).unwrap();
        let f = file(1000);
        block_on(async {
            st.prepare(&f).await.unwrap();
            st.write(0, &data).await.unwrap();
            v.begin(&f);
            v.update(&data[..300]);
            dev.reset_stats().unwrap();
            let mut scratch = [0u8; 64];
            verify_stored_image(&mut st, &mut v, &f, 300, sig.as_bytes(), &mut scratch)
                .await
                .unwrap();
            assert_eq!(dev.stats().unwrap().bytes_read, 700);
            // Nothing hashed on the fly: everything is read back.
            v.begin(&f);
            verify_stored_image(&mut st, &mut v, &f, 0, sig.as_bytes(), &mut scratch)
                .await
                .unwrap();
            v.begin(&f);
            assert_eq!(
                verify_stored_image(&mut st, &mut v, &f, 0, sig.as_bytes(), &mut []).await,
                Err(PalError::new(PalErrorKind::OutOfMemory))
            );
            assert_eq!(
                verify_stored_image(&mut st, &mut v, &f, 1001, sig.as_bytes(), &mut scratch).await,
                Err(PalError::with_sub(
                    PalErrorKind::FileClose,
                    SUB_HASHED_PAST_END
                ))
            );
            // A flipped byte in flash is caught.
            dev.modify(|m| m[999] ^= 0x10).unwrap();
            v.begin(&f);
            assert_eq!(
                verify_stored_image(&mut st, &mut v, &f, 0, sig.as_bytes(), &mut scratch)
                    .await
                    .map_err(|e| e.kind()),
                Err(PalErrorKind::SignatureCheckFailed)
            );
        });
    }
}
