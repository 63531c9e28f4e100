//! `agent-min-pal`: `agent-min` with ota-pal-traits' real `Sha256EcdsaP256Verifier` (SHA-256 +
//! ECDSA P-256 from `sha2` / `p256`) and `NorFlashImageStorage` (over a no-op NOR driver), so
//! the crypto and storage cost shows as the difference to `agent-min`.
#![no_std]
#![no_main]

use agent_min::{fail, run_agent, start, NullFlash};
use cortex_m_rt::entry;
use ota_pal_traits::{NorFlashImageStorage, Sha256EcdsaP256Verifier};

const NAME: &str = "agent-min-pal";

/// A throw-away P-256 public key (SEC1, uncompressed); nothing is ever verified against it.
const CODE_SIGNING_KEY: [u8; 65] = [
    0x04, 0x4c, 0xd3, 0x0d, 0x90, 0xb6, 0x0f, 0xea, 0x7f, 0x95, 0x09, 0x3b, 0xbd, 0x80, 0xd4, 0x0b,
    0x93, 0xe6, 0x3f, 0x8b, 0xd5, 0xee, 0x1d, 0x47, 0x4d, 0x99, 0x41, 0xc0, 0x79, 0xbc, 0x5f, 0x64,
    0x07, 0x1f, 0xef, 0x7b, 0x49, 0x41, 0x28, 0x7a, 0x78, 0xdd, 0xb1, 0x7b, 0xd4, 0x56, 0x4c, 0x25,
    0x87, 0xbf, 0x7b, 0xae, 0xc2, 0x7b, 0xc0, 0x85, 0x42, 0x25, 0x08, 0x13, 0xb1, 0xf2, 0xa6, 0x45,
    0x91,
];

#[entry]
fn main() -> ! {
    start(NAME);
    let Ok(storage) = NorFlashImageStorage::new(NullFlash, 0, 1 << 20, 0xFF) else {
        fail(NAME, "storage region")
    };
    let Ok(verifier) = Sha256EcdsaP256Verifier::from_sec1(&CODE_SIGNING_KEY) else {
        fail(NAME, "public key")
    };
    run_agent(NAME, storage, verifier)
}
