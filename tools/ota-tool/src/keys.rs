//! P-256 keys and image signatures as a job document carries them (`sig-sha256-ecdsa`: base64
//! of the DER ECDSA signature over SHA-256 of the file).

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine as _;
use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding,
};
use p256::SecretKey;
use rand_core::OsRng;

/// File name of the private key written by [`keygen`].
pub const PRIVATE_KEY_FILE: &str = "ota-signing-key.pem";
/// File name of the public key written by [`keygen`].
pub const PUBLIC_KEY_FILE: &str = "ota-signing-pub.pem";

/// Makes a key pair in `dir`: PKCS#8 PEM private key (mode 0600 on Unix) and SPKI PEM public
/// key. Refuses to overwrite existing files. Gives the two paths.
pub fn keygen(dir: &Path) -> Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let priv_path = dir.join(PRIVATE_KEY_FILE);
    let pub_path = dir.join(PUBLIC_KEY_FILE);
    for p in [&priv_path, &pub_path] {
        if p.exists() {
            bail!("{} exists; not overwriting it", p.display());
        }
    }
    let secret = SecretKey::random(&mut OsRng);
    let priv_pem = secret
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| anyhow!("encoding the private key: {e}"))?;
    let pub_pem = secret
        .public_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| anyhow!("encoding the public key: {e}"))?;
    write_private(&priv_path, priv_pem.as_bytes())?;
    std::fs::write(&pub_path, pub_pem.as_bytes())
        .with_context(|| format!("writing {}", pub_path.display()))?;
    Ok((priv_path, pub_path))
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes)
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

/// Reads a P-256 private key: PKCS#8 PEM (`BEGIN PRIVATE KEY`) or SEC1 PEM
/// (`BEGIN EC PRIVATE KEY`, what `openssl ecparam -genkey` writes).
pub fn read_signing_key(path: &Path) -> Result<SigningKey> {
    let pem =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let secret = if pem.contains("BEGIN EC PRIVATE KEY") {
        SecretKey::from_sec1_pem(&pem)
            .map_err(|e| anyhow!("{}: not a P-256 SEC1 key: {e}", path.display()))?
    } else {
        SecretKey::from_pkcs8_pem(&pem)
            .map_err(|e| anyhow!("{}: not a P-256 PKCS#8 key: {e}", path.display()))?
    };
    Ok(SigningKey::from(secret))
}

/// Reads a P-256 public key (SPKI PEM, `BEGIN PUBLIC KEY`).
pub fn read_verifying_key(path: &Path) -> Result<VerifyingKey> {
    let pem =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    VerifyingKey::from_public_key_pem(&pem)
        .map_err(|e| anyhow!("{}: not a P-256 public key: {e}", path.display()))
}

/// Signs `data` (ECDSA P-256 over its SHA-256) and gives the base64 of the DER signature.
pub fn sign(key: &SigningKey, data: &[u8]) -> String {
    let sig: Signature = key.sign(data);
    base64::engine::general_purpose::STANDARD.encode(sig.to_der().as_bytes())
}

/// Checks a base64 DER signature over `data`.
pub fn verify(key: &VerifyingKey, data: &[u8], signature_b64: &str) -> Result<()> {
    let der = base64::engine::general_purpose::STANDARD
        .decode(signature_b64.trim())
        .context("the signature is not base64")?;
    let sig =
        Signature::from_der(&der).map_err(|e| anyhow!("the signature is not DER ECDSA: {e}"))?;
    key.verify(data, &sig)
        .map_err(|_| anyhow!("signature does not match the file and key"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ota-keys-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn keygen_sign_verify_round_trip() {
        let d = tmp("rt");
        let (sk, pk) = keygen(&d).unwrap();
        assert!(std::fs::read_to_string(&sk)
            .unwrap()
            .starts_with("-----BEGIN PRIVATE KEY-----"));
        assert!(std::fs::read_to_string(&pk)
            .unwrap()
            .starts_with("-----BEGIN PUBLIC KEY-----"));
        let key = read_signing_key(&sk).unwrap();
        let pubk = read_verifying_key(&pk).unwrap();
        let sig = sign(&key, b"image");
        let der = base64::engine::general_purpose::STANDARD
            .decode(&sig)
            .unwrap();
        assert_eq!(der[0], 0x30, "DER SEQUENCE");
        assert!((8..=72).contains(&der.len()));
        verify(&pubk, b"image", &sig).unwrap();
        assert!(verify(&pubk, b"imagf", &sig).is_err());
        assert!(keygen(&d).is_err(), "no overwrite");
        // The agent's verifier (ota-core's base64) decodes the same bytes.
        let mut buf = [0u8; 80];
        let decoded = ota_core::wire::base64::decode(sig.as_bytes(), &mut buf).unwrap();
        assert_eq!(decoded, der.as_slice());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn sec1_keys_are_read_too() {
        use p256::elliptic_curve::sec1::ToEncodedPoint as _;
        let d = tmp("sec1");
        std::fs::create_dir_all(&d).unwrap();
        let secret = SecretKey::random(&mut OsRng);
        let pem = secret.to_sec1_pem(LineEnding::LF).unwrap();
        let path = d.join("k.pem");
        std::fs::write(&path, pem.as_bytes()).unwrap();
        let key = read_signing_key(&path).unwrap();
        assert_eq!(
            key.verifying_key().to_encoded_point(false),
            secret.public_key().to_encoded_point(false)
        );
        std::fs::write(&path, "not a key").unwrap();
        assert!(read_signing_key(&path).is_err());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
