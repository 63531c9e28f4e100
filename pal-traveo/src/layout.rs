//! TRAVEO T2G CYT4BF address map and the configuration variants of the dual-bank OTA
//! (spec `board-formats.md` §2.1–§2.3).
//!
//! All addresses are CPU addresses. Flash drivers given to this crate are addressed from a base
//! the caller names (the `flash_base` / `work_base` constructor arguments), so a driver whose
//! offset 0 is 0x1000_0000 or 0x1200_0000 both work.

/// Code flash start in the single-bank linear view, where the DBM verifies (§2.1, §2.4 step 4).
pub const CODE_FLASH_BASE: u32 = 0x1000_0000;
/// Lower bank (bank 0) in the single-bank linear view (§2.4 step 4).
pub const LOWER_BANK_LINEAR: u32 = 0x1000_0000;
/// Upper bank (bank 1) in the single-bank linear view (§2.4 step 4).
pub const UPPER_BANK_LINEAR: u32 = 0x103F_8000;
/// Where the inactive bank always appears in dual-bank mode (§2.1: DBM1 at 0x1200_0000).
pub const INACTIVE_BANK_DUAL: u32 = 0x1200_0000;
/// Large-sector part of one bank (§2.1, §2.2): 0x3F8000 bytes.
pub const BANK_SIZE: u32 = 0x3F_8000;
/// Code flash large sector (`CY_CODE_LES_SIZE_IN_BYTE`, §2.1): 32 KB.
pub const CODE_SECTOR_SIZE: u32 = 0x8000;
/// Code flash program row (`CY_FLASH_SIZEOF_ROW`, §2.1): 512 bytes.
pub const CODE_ROW_SIZE: u32 = 512;

/// Work flash start (§2.1). The DBM only sets `MAIN_BANK_MODE`, never `WORK_BANK_MODE`
/// (§2.4 step 5), so work flash stays in its single-bank linear view.
pub const WORK_FLASH_BASE: u32 = 0x1400_0000;
/// Large-sector part of work flash in the single-bank view (§2.1): 0x30000 bytes.
pub const WORK_FLASH_LARGE_SIZE: u32 = 0x3_0000;
/// Work flash large sector (§2.1): 2 KB.
pub const WORK_SECTOR_SIZE: u32 = 0x800;
/// Work flash program unit used for the marker (`Cy_Flash_Program_WorkFlash`, 128 bits, §2.3).
pub const WORK_PROGRAM_SIZE: u32 = 16;
/// The flash marker the DBM reads (§2.3): a 2 KB work-flash sector.
pub const MARKER_ADDR: u32 = 0x1401_2000;
/// This crate's trial record (not part of the vendor protocol): the 2 KB work-flash sector
/// right after the marker's, which the DBM never reads (see [`crate::trial`]).
pub const TRIAL_RECORD_ADDR: u32 = 0x1401_2800;

/// CM0+ application: offset in the bank and size (§2.2).
pub const CM0_APP_OFFSET: u32 = 0;
/// CM0+ application region size (§2.2).
pub const CM0_APP_SIZE: u32 = 0x1_0000;
/// CM7_0 application (the OTA agent) offset in the bank (§2.2).
pub const CM7_0_APP_OFFSET: u32 = 0x1_0000;
/// CM7_0 application region size (§2.2).
pub const CM7_0_APP_SIZE: u32 = 0x3D_8000;
/// CM7_1 application offset in the bank (§2.2).
pub const CM7_1_APP_OFFSET: u32 = 0x3E_8000;
/// CM7_1 application region size (§2.2).
pub const CM7_1_APP_SIZE: u32 = 0x1_0000;
/// Highest allowed signature offset of the CM0+ image relative to its bank: the DBM skips the
/// check as failed when `start + objSize` exceeds 0x1000FF00 / 0x10407F00 (§2.4 step 4).
pub const CM0_SIGNATURE_LIMIT: u32 = 0xFF00;
/// RSA-2048 PKCS#1 v1.5 signature length (§2.2).
pub const SIGNATURE_LEN: u32 = 256;

/// The AWS job file type of firmware on this board (`configOTA_FIRMWARE_UPDATE_FILE_TYPE_ID
/// 141U`, §2.5). The job must use file type 141; the path on device is ignored.
pub const FIRMWARE_FILE_TYPE: u32 = 141;

/// Where things are and how the flash behaves: the spec's layout plus the facts it leaves open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Address of the inactive bank in dual-bank mode (§2.1).
    pub inactive_bank: u32,
    /// Bank size and the capacity of the OTA file (§2.2).
    pub bank_size: u32,
    /// Flash marker address (§2.3).
    pub marker_addr: u32,
    /// Trial record address: any 2 KB work-flash sector the application and the DBM leave
    /// alone; not the marker's.
    pub trial_record_addr: u32,
    /// Erased value of work flash. **Not confirmed** by the spec (§2.3, §6): 0xFF by default.
    /// The PAL does not depend on it (the DBM only compares the selector with 0xAAAAAAAA, and
    /// the trial record takes either fill as erased); the simulation uses it.
    pub work_erase_value: u8,
    /// Erased value of code flash, used to pad the last row of a file. Not stated by the spec;
    /// 0xFF by default (objcopy's own gap fill is 0x00, §2.5, so padding never matters to the
    /// image: it lies past the file).
    pub code_erase_value: u8,
    /// CM0+ signature limit relative to the bank ([`CM0_SIGNATURE_LIMIT`]).
    pub cm0_signature_limit: u32,
    /// Check the `cy_stc_si_appheader_t` of a received file when its first 24 bytes are written
    /// (refuse what the DBM would never boot). Off only for PAL qualification runs with dummy data.
    pub check_app_header: bool,
}

impl Config {
    /// KIT_T2G-B-H_LITE (CYT4BF) as in the T2G-CE code example, work flash erasing to 0xFF.
    pub const CYT4BF: Self = Self {
        inactive_bank: INACTIVE_BANK_DUAL,
        bank_size: BANK_SIZE,
        marker_addr: MARKER_ADDR,
        trial_record_addr: TRIAL_RECORD_ADDR,
        work_erase_value: 0xFF,
        code_erase_value: 0xFF,
        cm0_signature_limit: CM0_SIGNATURE_LIMIT,
        check_app_header: true,
    };

    /// The same board if its work flash turns out to erase to 0x00 (the unconfirmed variant).
    pub const CYT4BF_WORK_ERASED_ZERO: Self = Self::CYT4BF.work_erase_value(0x00);

    /// This configuration with another work-flash erase value.
    pub const fn work_erase_value(mut self, value: u8) -> Self {
        self.work_erase_value = value;
        self
    }

    /// This configuration with another code-flash erase value.
    pub const fn code_erase_value(mut self, value: u8) -> Self {
        self.code_erase_value = value;
        self
    }

    /// This configuration with the application-header check on or off.
    pub const fn check_app_header(mut self, on: bool) -> Self {
        self.check_app_header = on;
        self
    }
}

impl Default for Config {
    fn default() -> Self {
        Self::CYT4BF
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_match_the_spec() {
        assert_eq!(UPPER_BANK_LINEAR, LOWER_BANK_LINEAR + BANK_SIZE);
        assert_eq!(BANK_SIZE % CODE_SECTOR_SIZE, 0);
        assert_eq!(BANK_SIZE / CODE_SECTOR_SIZE, 127);
        assert_eq!(MARKER_ADDR % WORK_SECTOR_SIZE, 0);
        assert_eq!(TRIAL_RECORD_ADDR, MARKER_ADDR + WORK_SECTOR_SIZE);
        const {
            assert!(TRIAL_RECORD_ADDR + WORK_SECTOR_SIZE <= WORK_FLASH_BASE + WORK_FLASH_LARGE_SIZE)
        };
        assert_eq!(CM7_1_APP_OFFSET + CM7_1_APP_SIZE, BANK_SIZE);
        assert_eq!(CM7_0_APP_OFFSET + CM7_0_APP_SIZE, CM7_1_APP_OFFSET);
        // Signature limits of §2.4 step 4.
        assert_eq!(LOWER_BANK_LINEAR + CM0_SIGNATURE_LIMIT, 0x1000_FF00);
        assert_eq!(UPPER_BANK_LINEAR + CM0_SIGNATURE_LIMIT, 0x1040_7F00);
        assert_eq!(FIRMWARE_FILE_TYPE, 141);
        assert_eq!(Config::CYT4BF_WORK_ERASED_ZERO.work_erase_value, 0);
        assert_eq!(Config::default(), Config::CYT4BF);
    }
}
