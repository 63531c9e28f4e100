//! The NVMCTRL bank swap the bootloader issues (spec §3.1, §3.4 step 3).
//!
//! The OTA PAL never swaps banks itself: activation is a plain system reset
//! (`NVIC_SystemReset`, §3.5 ActivateNewImage) and the bootloader swaps. This trait is for
//! code that plays the bootloader's part (the `sim` module, feature `sim`: a Rust port of the
//! bootloader) and for diagnostics that want to know which bank runs.

/// NVMCTRL CTRLB command "bank swap and system reset" (BKSWRST, §3.1).
pub const NVMCTRL_CMD_BKSWRST: u8 = 0x17;
/// NVMCTRL STATUS bit AFIRST: 1 when bank A is mapped at 0x0 (§3.1).
pub const NVMCTRL_STATUS_AFIRST_BIT: u8 = 4;
/// NVMCTRL peripheral base address on SAM D5x/E5x. From the device datasheet and headers,
/// **not** from the spec (§3 names only the command and the STATUS bit): check it against
/// your part's header before use.
pub const NVMCTRL_BASE: u32 = 0x4100_4000;
/// Offset of CTRLB (16-bit; CMD in bits 6..0, CMDEX key 0xA5 in bits 15..8). Datasheet, not
/// spec: check before use.
pub const NVMCTRL_CTRLB_OFFSET: u32 = 0x04;
/// CMDEX key that must accompany every CTRLB command. Datasheet, not spec.
pub const NVMCTRL_CMDEX_KEY: u16 = 0xA5 << 8;
/// Offset of STATUS (16-bit). Datasheet, not spec: check before use.
pub const NVMCTRL_STATUS_OFFSET: u32 = 0x12;

/// The value a driver writes to CTRLB to swap banks and reset: `CMDEX | BKSWRST`.
pub const fn bkswrst_command() -> u16 {
    NVMCTRL_CMDEX_KEY | NVMCTRL_CMD_BKSWRST as u16
}

/// Swaps the two 512 KB flash banks.
pub trait BankSwap {
    /// Whether bank A is mapped at 0x0 (STATUS.AFIRST).
    fn bank_a_first(&self) -> bool;

    /// Issue BKSWRST. On hardware the device resets and this does not return; a simulation
    /// swaps the halves of its flash and returns.
    fn swap_banks_and_reset(&mut self);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bkswrst_command_word() {
        assert_eq!(NVMCTRL_CMD_BKSWRST, 0x17);
        assert_eq!(bkswrst_command(), 0xA517);
        assert_eq!(1u16 << NVMCTRL_STATUS_AFIRST_BIT, 0x10);
    }
}
