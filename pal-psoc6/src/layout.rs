//! PSoC 6 flash geometry and the MCUboot slot layouts of the two Cypress bootloader builds
//! (board-formats §1.1, §1.8, §1.9).
//!
//! Every address here is absolute (as the CPU sees it); the flash driver the PAL is given
//! covers the internal flash from [`FLASH_BASE`], so a driver offset is `address - FLASH_BASE`.

/// Start of the internal code flash (§1.9).
pub const FLASH_BASE: u32 = 0x1000_0000;
/// Size of the CY8C624ABZI internal code flash: 2 MB.
pub const FLASH_SIZE: u32 = 0x20_0000;
/// `CY_FLASH_SIZEOF_ROW`: the 512-byte row, PSoC 6's write and erase unit as used by MCUboot
/// (§1.7 point 1, §1.9). The 256 KB sector / 4 KB subsector figures are **not confirmed** by the
/// spec and nothing here uses them.
pub const ROW_SIZE: u32 = 512;
/// `CY_BOOT_INTERNAL_FLASH_ERASE_VALUE`: PSoC 6 internal flash erases to 0x00 (§1.4).
pub const ERASE_VALUE: u8 = 0x00;
/// `CY_IMG_HDR_SIZE`: Cypress images carry a 0x400-byte padded header (§1.2).
pub const CYPRESS_HEADER_SIZE: u16 = 0x400;

/// A flash area: absolute start address and size in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Area {
    /// Absolute start address.
    pub addr: u32,
    /// Size in bytes.
    pub size: u32,
}

impl Area {
    /// An area of `size` bytes at `addr`.
    pub const fn new(addr: u32, size: u32) -> Self {
        Self { addr, size }
    }

    /// Offset of the area from [`FLASH_BASE`] (what the flash driver takes).
    pub const fn offset(&self) -> u32 {
        self.addr.wrapping_sub(FLASH_BASE)
    }

    /// Driver offset one past the end of the area.
    pub const fn end_offset(&self) -> u32 {
        self.offset().wrapping_add(self.size)
    }

    /// Driver offset of the last row of the area, which holds the MCUboot trailer.
    pub const fn trailer_row_offset(&self) -> u32 {
        self.end_offset().wrapping_sub(ROW_SIZE)
    }

    /// Whether the driver range `[from, to)` overlaps this area.
    pub const fn overlaps(&self, from: u32, to: u32) -> bool {
        from < self.end_offset() && self.offset() < to
    }
}

/// Which MCUboot upgrade strategy the bootloader was built with (§1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpgradeMode {
    /// `MCUBOOT_OVERWRITE_ONLY` (`v1.5.0-cypress`): the secondary image is copied over the
    /// primary; there is no trial and no revert.
    OverwriteOnly,
    /// Swap using scratch with the Cypress swap-status partition (`v1.7.x`–`v1.9.0-cypress`):
    /// a TEST upgrade swaps the slots and reverts on the next reset unless confirmed.
    SwapWithStatus,
}

/// How [`request_trial_boot`](ota_pal_traits::BootControl::request_trial_boot) marks the
/// secondary slot as pending (§1.6, §1.7 point 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PendingMode {
    /// anycloud-ota 5.x: write only the 16-byte MAGIC at secondary S-16. The bootloader treats
    /// it as TEST (image_ok unset).
    MagicOnly,
    /// bootutil `boot_set_pending(0)`: MAGIC and swap_info = 0x02 (TEST).
    Test,
    /// bootutil `boot_set_pending(1)` (anycloud-ota 1.x default): MAGIC, image_ok = 0x01,
    /// swap_info = 0x03 (PERM). With a swap bootloader the image is permanent at once, so the
    /// agent never sees `PendingCommit` there: use it with overwrite-only builds.
    Permanent,
}

/// The slots one bootloader build sees, plus how the PAL talks to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Bootloader upgrade strategy.
    pub mode: UpgradeMode,
    /// How a pending upgrade is requested.
    pub pending: PendingMode,
    /// The MCUboot application itself.
    pub bootloader: Area,
    /// Slot 0: the image that runs.
    pub primary: Area,
    /// Slot 1: where the PAL stores the download.
    pub secondary: Area,
    /// Cypress swap-status partition (swap builds only). The PAL never writes it.
    pub status: Option<Area>,
    /// Scratch area (unused by overwrite-only, never touched by the PAL).
    pub scratch: Area,
}

impl Config {
    /// anycloud-ota 1.x with MCUboot `v1.5.0-cypress`, overwrite-only (§1.8): primary
    /// 0x10012000/0xEE000, secondary 0x10100000/0xEE000, scratch 0x101EE000/0x10000. Pending is
    /// requested the anycloud 1.x way ([`PendingMode::Permanent`]).
    pub const V1_5_0_OVERWRITE: Config = Config {
        mode: UpgradeMode::OverwriteOnly,
        pending: PendingMode::Permanent,
        bootloader: Area::new(0x1000_0000, 0x1_2000),
        primary: Area::new(0x1001_2000, 0xE_E000),
        secondary: Area::new(0x1010_0000, 0xE_E000),
        status: None,
        scratch: Area::new(0x101E_E000, 0x1_0000),
    };

    /// anycloud-ota 5.x with MCUboot `v1.8.1-cypress`, internal flash, swap
    /// (`psoc62_int_swap_single.json`, §1.8): primary 0x10018000/0xEE000, secondary
    /// 0x10106000/0xEE000, status 0x101F4000/0x3C00, scratch 0x101F7C00/0x1000. Pending is
    /// requested the anycloud 5.x way ([`PendingMode::MagicOnly`]).
    pub const V1_8_SWAP: Config = Config {
        mode: UpgradeMode::SwapWithStatus,
        pending: PendingMode::MagicOnly,
        bootloader: Area::new(0x1000_0000, 0x1_8000),
        primary: Area::new(0x1001_8000, 0xE_E000),
        secondary: Area::new(0x1010_6000, 0xE_E000),
        status: Some(Area::new(0x101F_4000, 0x3C00)),
        scratch: Area::new(0x101F_7C00, 0x1000),
    };

    /// The same configuration with another [`PendingMode`].
    pub const fn with_pending(mut self, pending: PendingMode) -> Self {
        self.pending = pending;
        self
    }

    /// Largest image the PAL accepts: the slot minus its last row. The last row holds the
    /// trailer and is rewritten by read-modify-write; keeping image bytes out of it means a
    /// power cut during a trailer update can never tear the image (conservative: imgtool
    /// would allow up to the slot size minus the trailer).
    pub const fn capacity(&self) -> u32 {
        self.secondary.size.saturating_sub(ROW_SIZE)
    }

    /// Whether every area lies in the flash, row-aligned, and the areas do not overlap.
    // `i` and `j` stay below `areas.len()`; `get` is not usable in a const fn on this MSRV.
    #[allow(clippy::indexing_slicing)]
    pub const fn is_consistent(&self) -> bool {
        let areas = [
            Some(self.bootloader),
            Some(self.primary),
            Some(self.secondary),
            self.status,
            Some(self.scratch),
        ];
        let mut i = 0;
        while i < areas.len() {
            if let Some(a) = areas[i] {
                if a.addr < FLASH_BASE
                    || a.end_offset() > FLASH_SIZE
                    || a.addr % ROW_SIZE != 0
                    || a.size % ROW_SIZE != 0
                    || a.size == 0
                {
                    return false;
                }
                let mut j = i + 1;
                while j < areas.len() {
                    if let Some(b) = areas[j] {
                        if a.overlaps(b.offset(), b.end_offset()) {
                            return false;
                        }
                    }
                    j += 1;
                }
            }
            i += 1;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_match_the_spec_addresses() {
        let a = Config::V1_5_0_OVERWRITE;
        assert_eq!((a.primary.addr, a.primary.size), (0x1001_2000, 0xEE000));
        assert_eq!((a.secondary.addr, a.secondary.size), (0x1010_0000, 0xEE000));
        assert_eq!((a.scratch.addr, a.scratch.size), (0x101E_E000, 0x10000));
        assert_eq!(a.primary.offset(), 0x12000);
        let b = Config::V1_8_SWAP;
        assert_eq!((b.primary.addr, b.primary.size), (0x1001_8000, 0xEE000));
        assert_eq!((b.secondary.addr, b.secondary.size), (0x1010_6000, 0xEE000));
        assert_eq!(b.status, Some(Area::new(0x101F_4000, 0x3C00)));
        assert_eq!((b.scratch.addr, b.scratch.size), (0x101F_7C00, 0x1000));
        assert!(a.is_consistent());
        assert!(b.is_consistent());
        // Back to back, as the cy_flash_map.c placement rule says.
        assert_eq!(a.primary.end_offset(), a.secondary.offset());
        assert_eq!(b.secondary.end_offset(), b.status.unwrap().offset());
        assert_eq!(b.status.unwrap().end_offset(), b.scratch.offset());
        assert!(b.scratch.end_offset() <= FLASH_SIZE);
    }

    #[test]
    fn trailer_row_is_the_last_row_of_the_slot() {
        let c = Config::V1_8_SWAP;
        assert_eq!(c.secondary.trailer_row_offset(), 0x1F4000 - 512);
        assert_eq!(c.capacity(), 0xEE000 - 512);
    }
}
