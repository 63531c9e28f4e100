//! The OTA code-signing public key, baked in at build time (feature `signer`).
//!
//! Set `OTA_EXAMPLE_SIGNER_KEY` to the key file when building: a P-256 public key or
//! certificate, PEM (`PUBLIC KEY`, `CERTIFICATE`) or DER (SPKI, certificate), or a SEC1 point.
//! The build script copies the file into the firmware; a file that is not one of these stops the
//! build with a message. Without the variable the build warns (so that `cargo clippy` works
//! without a key) and [`verifier`] fails the firmware at start, saying what to set. The runners
//! make a throw-away key for every run.

use ota_pal_traits::Sha256EcdsaP256Verifier;

use crate::{fail, log};

/// The key file's bytes as the build found them (empty when the build had none).
pub fn key_bytes() -> &'static [u8] {
    include_bytes!(concat!(env!("OUT_DIR"), "/signer-key"))
}

/// The OTA code-signing verifier (ECDSA P-256 over SHA-256) with the baked-in key; a `FAIL:`
/// line and exit status 1 when the build had no key or it does not load.
pub fn verifier() -> Sha256EcdsaP256Verifier {
    let key = key_bytes();
    if key.is_empty() {
        fail("no code-signing key baked in: build with OTA_EXAMPLE_SIGNER_KEY=<public key file>")
    }
    match Sha256EcdsaP256Verifier::from_key_bytes(key) {
        Ok(v) => v,
        Err(e) => {
            log!("PAL error {:?}", e);
            fail("OTA_EXAMPLE_SIGNER_KEY is not a P-256 public key or certificate")
        }
    }
}
