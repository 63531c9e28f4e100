//! The MCUboot image trailer at the end of each slot, for `BOOT_MAX_ALIGN` = 8 (board-formats
//! §1.4), and the swap-type table the bootloader walks (§1.5): [`mcuboot_format::trailer`],
//! re-exported. On PSoC 6 internal flash "unset" is the erased value 0x00
//! ([`crate::layout::ERASE_VALUE`]); every trailer write is a row read-modify-write
//! ([`crate::flash`]). The MAX_ALIGN ≠ 8 magic variant of upstream MCUboot ≥ 2.x is **not**
//! used (no Cypress tag uses it).

pub use mcuboot_format::trailer::*;
