//! The RAM the PAL state costs on top of the flash drivers (quoted in the README).
//! `cargo test -p pal-traveo --all-features --test ram_cost -- --nocapture`
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use core::mem::size_of;
use embedded_storage_async::nor_flash::{ErrorType, NorFlash, ReadNorFlash};
use ota_pal_traits::sim::SimError;
use pal_traveo::{FixedMapping, TraveoBootControl, TraveoImageStorage};

/// A zero-sized flash driver, so the sizes below are the PAL's own state.
struct NoFlash;

impl ErrorType for NoFlash {
    type Error = SimError;
}

impl ReadNorFlash for NoFlash {
    const READ_SIZE: usize = 1;
    async fn read(&mut self, _: u32, _: &mut [u8]) -> Result<(), SimError> {
        Ok(())
    }
    fn capacity(&self) -> usize {
        0
    }
}

impl NorFlash for NoFlash {
    const WRITE_SIZE: usize = 512;
    const ERASE_SIZE: usize = 0x8000;
    async fn erase(&mut self, _: u32, _: u32) -> Result<(), SimError> {
        Ok(())
    }
    async fn write(&mut self, _: u32, _: &[u8]) -> Result<(), SimError> {
        Ok(())
    }
}

#[test]
fn pal_state_is_small() {
    let storage = size_of::<TraveoImageStorage<NoFlash>>();
    let boot = size_of::<TraveoBootControl<NoFlash, FixedMapping>>();
    println!("ram_cost: TraveoImageStorage {storage} B + driver; TraveoBootControl {boot} B + driver (FixedMapping 1 B included)");
    // No pointers in either state, so the host figure is the target figure.
    assert!(storage <= 40, "{storage}");
    assert!(boot <= 48, "{boot}");
}
