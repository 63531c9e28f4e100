//! Flash geometry and memory map of the SAME54 Xplained Pro with the amazon-freertos
//! `aws_bootloader` (spec `board-formats.md` §3.1, §3.2).
//!
//! All addresses are offsets into the 1 MB NVM as the CPU sees it (bank mapped first at 0x0).
//! The map is the same in both banks: the bootloader swaps the banks, so "lower" and "upper"
//! always mean "at 0x0..0x7FFFF" and "at 0x80000..0xFFFFF" right now.

/// Whole NVM: 1 MB at 0x0 (SAME54P20A, §3.1).
pub const FLASH_SIZE: u32 = 0x10_0000;
/// One bank: 512 KB (§3.1, two banks).
pub const BANK_SIZE: u32 = 0x8_0000;
/// NVM page, 512 B (`NVMCTRL_FLASH_PAGESIZE`, §3.1). Informational: writes use quad words.
pub const PAGE_SIZE: u32 = 512;
/// Erase block, 8 KB (`NVMCTRL_FLASH_BLOCKSIZE`, §3.1).
pub const ERASE_SIZE: u32 = 8192;
/// Program unit: a 16-byte quad word (`AWS_NVM_QUAD_SIZE`, §3.1).
pub const WRITE_SIZE: u32 = 16;
/// Value of an erased byte (§3.1; the descriptor flags only ever clear bits, §3.3).
pub const ERASE_VALUE: u8 = 0xFF;

/// Bootloader in bank A, 0x00000..0x0FFFF (§3.2).
pub const BOOTLOADER_ADDR: u32 = 0x0_0000;
/// Bootloader size, 64 KB (§3.2).
pub const BOOTLOADER_SIZE: u32 = 0x1_0000;
/// Running application, 0x10000 (§3.2). The bootloader always launches here (§3.4 step 5).
pub const APP_ADDR: u32 = 0x1_0000;
/// Largest application, 0x6E000 = 450 560 B (`FLASH_IMAGE_SIZE_MAX` = 512K − 64K − 8K, §3.2).
pub const APP_MAX_SIZE: u32 = 0x6_E000;
/// Lower descriptor block (8 KB), descriptor at its start: 0x7E000 (§3.2).
pub const LOWER_DESCRIPTOR_ADDR: u32 = 0x7_E000;
/// Copy of the bootloader in bank B, 0x80000 (§3.2; `prvBOOT_ExecuteDefault` makes it).
pub const BOOTLOADER_COPY_ADDR: u32 = 0x8_0000;
/// Staged (downloaded) application, 0x90000 (§3.2, §3.5 WriteBlock).
pub const STAGING_ADDR: u32 = 0x9_0000;
/// Upper (staged) descriptor block (8 KB), descriptor at its start: 0xFE000 (§3.2).
pub const UPPER_DESCRIPTOR_ADDR: u32 = 0xF_E000;
/// Size of a descriptor block: one erase block (§3.2).
pub const DESCRIPTOR_BLOCK_SIZE: u32 = 0x2000;
/// The update bank erased by `CreateFileForRx`: 0x90000..0xFFFFF, staging area and upper
/// descriptor block (§3.5; the body of `AWS_FlashEraseUpdateBank` was not read, §6: the range
/// is the one the spec infers).
pub const UPDATE_BANK: core::ops::Range<u32> = STAGING_ADDR..FLASH_SIZE;

/// A memory map of the aws_bootloader on one part. Every field is an offset into the NVM.
///
/// The bootloader has its map compiled in, so a PAL is only compatible with the bootloader
/// build whose map it uses. [`Layout::SAME54_XPRO`] is the one of spec §3.2; it is the only
/// one the spec documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Size of one bank.
    pub bank_size: u32,
    /// Offset of the application inside a bank.
    pub app_offset: u32,
    /// Largest application.
    pub app_max_size: u32,
    /// Offset of the descriptor block inside a bank.
    pub descriptor_offset: u32,
    /// Size of the bootloader at the start of bank A (and of its copy in bank B).
    pub bootloader_size: u32,
}

impl Layout {
    /// SAME54P20A on the SAME54 Xplained Pro, spec §3.2.
    pub const SAME54_XPRO: Self = Self {
        bank_size: BANK_SIZE,
        app_offset: APP_ADDR,
        app_max_size: APP_MAX_SIZE,
        descriptor_offset: LOWER_DESCRIPTOR_ADDR,
        bootloader_size: BOOTLOADER_SIZE,
    };

    /// Address of the running application (bank mapped first).
    pub const fn app_addr(&self) -> u32 {
        self.app_offset
    }
    /// Address of the staging area (the other bank's application slot).
    pub const fn staging_addr(&self) -> u32 {
        self.bank_size + self.app_offset
    }
    /// Address of the lower (running image's) descriptor.
    pub const fn lower_descriptor_addr(&self) -> u32 {
        self.descriptor_offset
    }
    /// Address of the upper (staged image's) descriptor.
    pub const fn upper_descriptor_addr(&self) -> u32 {
        self.bank_size + self.descriptor_offset
    }
    /// Address of the bootloader copy in the upper bank.
    pub const fn bootloader_copy_addr(&self) -> u32 {
        self.bank_size
    }
    /// The update bank erased when a download starts: staging area through the end of the
    /// upper bank.
    pub const fn update_bank(&self) -> core::ops::Range<u32> {
        self.staging_addr()..self.bank_size * 2
    }
    /// Size of the NVM both banks cover.
    pub const fn flash_size(&self) -> u32 {
        self.bank_size * 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_preset_is_the_map_of_spec_3_2() {
        let l = Layout::SAME54_XPRO;
        assert_eq!(l.app_addr(), 0x10000);
        assert_eq!(l.staging_addr(), 0x90000);
        assert_eq!(l.lower_descriptor_addr(), 0x7E000);
        assert_eq!(l.upper_descriptor_addr(), 0xFE000);
        assert_eq!(l.bootloader_copy_addr(), 0x80000);
        assert_eq!(l.update_bank(), 0x90000..0x100000);
        assert_eq!(l.flash_size(), FLASH_SIZE);
        assert_eq!(UPDATE_BANK, l.update_bank());
        // The application fills its bank up to the descriptor block.
        assert_eq!(APP_ADDR + APP_MAX_SIZE, LOWER_DESCRIPTOR_ADDR);
        assert_eq!(STAGING_ADDR + APP_MAX_SIZE, UPPER_DESCRIPTOR_ADDR);
        assert_eq!(APP_MAX_SIZE, 450_560);
        assert_eq!(
            BANK_SIZE - BOOTLOADER_SIZE - DESCRIPTOR_BLOCK_SIZE,
            APP_MAX_SIZE
        );
    }
}
