//! The RAM cost of the PAL objects and of their futures (the stack an `await` holds), printed
//! with `cargo test -p pal-psoc6 --all-features --test ram -- --nocapture`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;
use common::*;

use core::mem::size_of_val;
use ota_pal_traits::{BootControl, ImageStorage};
use pal_psoc6::Config;

#[test]
fn ram_cost_of_the_pal() {
    let cfg = Config::V1_8_SWAP;
    let dev = device(&cfg);
    let (mut s, mut b) = pal(&dev, cfg);
    let flash = size_of_val(&pal_psoc6::sim::flash_view(&dev).unwrap());
    let storage = size_of_val(&s);
    let boot = size_of_val(&b);
    let f = file_of(100);
    let prepare = size_of_val(&s.prepare(&f));
    let write = size_of_val(&s.write(0, &[0u8; 4]));
    let state = size_of_val(&b.platform_state());
    let request = size_of_val(&b.request_trial_boot(&f));
    let confirm = size_of_val(&b.confirm());
    let reject = size_of_val(&b.reject());
    let verifier =
        core::mem::size_of::<pal_psoc6::McubootVerifier<ota_pal_traits::Sha256EcdsaP256Verifier>>();
    let plain = core::mem::size_of::<ota_pal_traits::Sha256EcdsaP256Verifier>();
    println!("RAM: McubootVerifier<Sha256EcdsaP256Verifier> {verifier} B (inner verifier alone {plain} B)");
    assert!(verifier <= 2 * plain + 512);
    println!(
        "RAM: flash handle {flash} B; Psoc6ImageStorage {storage} B; Psoc6BootControl {boot} B; \
         futures: prepare {prepare} B, write {write} B, platform_state {state} B, \
         request_trial_boot {request} B, confirm {confirm} B, reject {reject} B"
    );
    // The objects are the driver plus a few words; the futures hold one 512-byte row (plus a
    // 512-byte write tail in NorFlashImageStorage's write).
    assert!(storage <= flash + 96);
    assert!(boot <= flash + 64);
    for fut in [prepare, state, request, confirm, reject] {
        assert!(fut <= 2048, "{fut}");
    }
}
