//! The `FLASHC_FLASH_CTL` register bits the dual-bank hand-over depends on (spec §2.4), and
//! the small trait through which the PAL learns the current bank mapping.
//!
//! # On real hardware
//!
//! Implement [`BankMapping`] with a volatile read of [`FLASHC_FLASH_CTL`] through your PAC or
//! HAL and [`mapping_from_flash_ctl`], e.g. with the `cyt4bf` PAC
//! `Mapping::from(flashc.flash_ctl().read().main_map())`, or with a raw pointer:
//!
//! ```text
//! struct FlashCtl;
//! impl BankMapping for FlashCtl {
//!     fn mapping(&mut self) -> Mapping {
//!         // SAFETY: FLASHC_FLASH_CTL is a readable, always-mapped 32-bit register.
//!         let v = unsafe { core::ptr::read_volatile(FLASHC_FLASH_CTL as *const u32) };
//!         mapping_from_flash_ctl(v)
//!     }
//! }
//! ```
//!
//! This crate has no `unsafe`; the register access stays in the firmware.

use crate::marker::Mapping;

/// `FLASHC_FLASH_CTL` address (§2.4 step 1).
pub const FLASHC_FLASH_CTL: u32 = 0x4024_0000;
/// `FLASHC_FLASH_CMD` address (§2.4 step 5).
pub const FLASHC_FLASH_CMD: u32 = 0x4024_0008;
/// `FLASH_CTL.MAIN_MAP` (bit 8): 1 = mapping B.
pub const MAIN_MAP: u32 = 1 << 8;
/// `FLASH_CTL.WORK_MAP` (bit 9).
pub const WORK_MAP: u32 = 1 << 9;
/// `FLASH_CTL.MAIN_BANK_MODE` (bit 12): 1 = dual-bank mode.
pub const MAIN_BANK_MODE: u32 = 1 << 12;
/// `FLASH_CTL.WORK_BANK_MODE` (bit 13).
pub const WORK_BANK_MODE: u32 = 1 << 13;
/// `FLASH_CTL.WORK_ERR_SILENT` (bit 22), set by the DBM first (§2.4 step 1).
pub const WORK_ERR_SILENT: u32 = 1 << 22;
/// `FLASH_CMD.INV` (bit 0): invalidate the flash caches after a mapping switch.
pub const FLASH_CMD_INV: u32 = 1 << 0;

/// The mapping a `FLASH_CTL` value selects (`MAIN_MAP`, bit 8).
pub const fn mapping_from_flash_ctl(flash_ctl: u32) -> Mapping {
    if flash_ctl & MAIN_MAP != 0 {
        Mapping::B
    } else {
        Mapping::A
    }
}

/// The `FLASH_CTL` value the DBM's switch routine leaves (§2.4 step 5): dual-bank mode on and
/// `MAIN_MAP` per `mapping`, other bits of `before` kept.
pub const fn flash_ctl_after_switch(before: u32, mapping: Mapping) -> u32 {
    let v = before | MAIN_BANK_MODE;
    match mapping {
        Mapping::A => v & !MAIN_MAP,
        Mapping::B => v | MAIN_MAP,
    }
}

/// Reads which bank the CPU runs from (see the [module docs](self) for a hardware impl).
pub trait BankMapping {
    /// The current mapping.
    fn mapping(&mut self) -> Mapping;
}

/// A mapping read once (e.g. at startup) or fixed by a simulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedMapping(pub Mapping);

impl BankMapping for FixedMapping {
    fn mapping(&mut self) -> Mapping {
        self.0
    }
}

impl<T: BankMapping + ?Sized> BankMapping for &mut T {
    fn mapping(&mut self) -> Mapping {
        (**self).mapping()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_bits() {
        assert_eq!(MAIN_MAP, 0x100);
        assert_eq!(MAIN_BANK_MODE, 0x1000);
        assert_eq!(WORK_ERR_SILENT, 0x40_0000);
        assert_eq!(mapping_from_flash_ctl(0x0040_1100), Mapping::B);
        assert_eq!(mapping_from_flash_ctl(0x0040_1000), Mapping::A);
        assert_eq!(
            flash_ctl_after_switch(WORK_ERR_SILENT, Mapping::B),
            0x0040_1100
        );
        assert_eq!(flash_ctl_after_switch(0x0040_1100, Mapping::A), 0x0040_1000);
        assert_eq!(FixedMapping(Mapping::B).mapping(), Mapping::B);
    }
}
