//! The Work Flash marker the Dual Bank Manager reads (spec §2.3), and the vendor's mapping
//! rules around it (`boot_set_pending(image, mode)`, `checkBank`, §2.3 and §2.4 step 8).
//!
//! On flash: 16 bytes at 0x1401_2000, written as one 128-bit program after erasing the whole
//! 2 KB sector: `[selector, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF]`, little-endian. Only the
//! selector matters to the DBM: 0xAAAAAAAA prefers mapping B, anything else mapping A.

/// The selector value that makes the DBM prefer mapping B (§2.3).
pub const SELECTOR_PREFER_B: u32 = 0xAAAA_AAAA;
/// The selector the vendor writes to prefer mapping A (§2.3: mode 0 in mapping B).
pub const SELECTOR_PREFER_A: u32 = 0xFFFF_FFFF;
/// Filler of marker words 1..3 (§2.3).
pub const MARKER_FILL: u32 = 0xFFFF_FFFF;
/// Size of the marker record: one 128-bit work-flash program.
pub const MARKER_LEN: usize = 16;

/// Which physical bank the CPU sees at 0x1000_0000 in dual-bank mode (`FLASHC_FLASH_CTL`
/// `MAIN_MAP`, §2.4 step 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mapping {
    /// `MAIN_MAP` = 0: bank 0 (lower) runs, bank 1 (upper) is the inactive bank at 0x1200_0000.
    A,
    /// `MAIN_MAP` = 1: bank 1 (upper) runs, bank 0 (lower) is the inactive bank.
    B,
}

/// A physical code-flash bank, named by its place in the single-bank linear view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bank {
    /// Bank 0 at 0x1000_0000 (linear view).
    Lower,
    /// Bank 1 at 0x103F_8000 (linear view).
    Upper,
}

impl Mapping {
    /// The other mapping.
    pub const fn other(self) -> Self {
        match self {
            Mapping::A => Mapping::B,
            Mapping::B => Mapping::A,
        }
    }

    /// The bank that runs in this mapping.
    pub const fn active_bank(self) -> Bank {
        match self {
            Mapping::A => Bank::Lower,
            Mapping::B => Bank::Upper,
        }
    }

    /// The bank that appears at 0x1200_0000 in this mapping (§2.1).
    pub const fn inactive_bank(self) -> Bank {
        self.other().active_bank()
    }

    /// The selector that makes the DBM prefer this mapping.
    pub const fn selector(self) -> u32 {
        match self {
            Mapping::A => SELECTOR_PREFER_A,
            Mapping::B => SELECTOR_PREFER_B,
        }
    }
}

impl Bank {
    /// Linear-view address of the bank (§2.4 step 4).
    pub const fn linear_address(self) -> u32 {
        match self {
            Bank::Lower => crate::layout::LOWER_BANK_LINEAR,
            Bank::Upper => crate::layout::UPPER_BANK_LINEAR,
        }
    }

    /// The mapping in which this bank runs.
    pub const fn mapping(self) -> Mapping {
        match self {
            Bank::Lower => Mapping::A,
            Bank::Upper => Mapping::B,
        }
    }
}

/// The `mode` argument of the vendor's `boot_set_pending(image, mode)` (§2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PendingMode {
    /// Mode 0, "make inactive bank active": the next boot prefers the other bank.
    MakeInactiveActive = 0,
    /// Mode 1, "point to active bank": the next boot prefers the running bank.
    PointToActive = 1,
}

/// The selector `boot_set_pending(_, mode)` writes when running in `running` (§2.3): mode 0 in
/// A → 0xAAAAAAAA, in B → 0xFFFFFFFF; mode 1 the reverse.
pub const fn selector_for(mode: PendingMode, running: Mapping) -> u32 {
    match mode {
        PendingMode::MakeInactiveActive => running.other().selector(),
        PendingMode::PointToActive => running.selector(),
    }
}

/// The mapping the DBM tries first for `selector` (§2.3, §2.4 step 3).
pub const fn preferred_mapping(selector: u32) -> Mapping {
    if selector == SELECTOR_PREFER_B {
        Mapping::B
    } else {
        Mapping::A
    }
}

/// The vendor's `checkBank` test (§2.4 step 8): the DBM booted the mapping the marker does not
/// prefer, so the preferred image failed verification (or the button forced mapping A) and the
/// marker must be rewritten with mode 1.
pub const fn rollback_detected(selector: u32, running: Mapping) -> bool {
    matches!(
        (preferred_mapping(selector), running),
        (Mapping::B, Mapping::A) | (Mapping::A, Mapping::B)
    )
}

/// The 16-byte marker record (§2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlashMarker {
    /// `marker[0]`, the selector the DBM reads.
    pub selector: u32,
}

impl FlashMarker {
    /// A marker carrying `selector`.
    pub const fn new(selector: u32) -> Self {
        Self { selector }
    }

    /// The bytes the vendor programs: selector then three 0xFFFFFFFF words, little-endian.
    pub fn encode(&self) -> [u8; MARKER_LEN] {
        let mut out = [0xFF; MARKER_LEN];
        let (sel, _) = out.split_at_mut(4);
        sel.copy_from_slice(&self.selector.to_le_bytes());
        out
    }

    /// The marker as the DBM reads it: only word 0 counts, whatever the rest holds.
    pub fn decode(bytes: &[u8; MARKER_LEN]) -> Self {
        let [a, b, c, d, ..] = *bytes;
        Self {
            selector: u32::from_le_bytes([a, b, c, d]),
        }
    }

    /// The mapping the DBM tries first.
    pub const fn preferred(&self) -> Mapping {
        preferred_mapping(self.selector)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_bytes_are_the_vendors() {
        assert_eq!(
            FlashMarker::new(SELECTOR_PREFER_B).encode(),
            [
                0xAA, 0xAA, 0xAA, 0xAA, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
                0xFF, 0xFF
            ]
        );
        assert_eq!(FlashMarker::new(SELECTOR_PREFER_A).encode(), [0xFF; 16]);
        let m = FlashMarker::decode(&[0xAA, 0xAA, 0xAA, 0xAA, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(m.selector, 0xAAAA_AAAA);
        assert_eq!(m.preferred(), Mapping::B);
    }

    #[test]
    fn only_the_exact_selector_prefers_b() {
        assert_eq!(preferred_mapping(0xAAAA_AAAA), Mapping::B);
        for other in [
            0xFFFF_FFFF,
            0x0000_0000,
            0xAAAA_AAAB,
            0x2AAA_AAAA,
            0xAAAA_AAA8,
        ] {
            assert_eq!(preferred_mapping(other), Mapping::A, "{other:#x}");
        }
        // Erased marker, whatever the erase value: mapping A.
        assert_eq!(FlashMarker::decode(&[0x00; 16]).preferred(), Mapping::A);
        assert_eq!(FlashMarker::decode(&[0xFF; 16]).preferred(), Mapping::A);
    }

    #[test]
    fn modes_write_the_vendor_selectors() {
        // §2.3: mode 0 in A → 0xAAAAAAAA, in B → 0xFFFFFFFF; mode 1 the reverse.
        assert_eq!(
            selector_for(PendingMode::MakeInactiveActive, Mapping::A),
            0xAAAA_AAAA
        );
        assert_eq!(
            selector_for(PendingMode::MakeInactiveActive, Mapping::B),
            0xFFFF_FFFF
        );
        assert_eq!(
            selector_for(PendingMode::PointToActive, Mapping::A),
            0xFFFF_FFFF
        );
        assert_eq!(
            selector_for(PendingMode::PointToActive, Mapping::B),
            0xAAAA_AAAA
        );
    }

    #[test]
    fn check_bank_truth_table() {
        // §2.4 step 8: (marker == AA and map == A) or (marker != AA and map == B).
        assert!(rollback_detected(0xAAAA_AAAA, Mapping::A));
        assert!(!rollback_detected(0xAAAA_AAAA, Mapping::B));
        assert!(rollback_detected(0xFFFF_FFFF, Mapping::B));
        assert!(rollback_detected(0x0000_0000, Mapping::B));
        assert!(!rollback_detected(0xFFFF_FFFF, Mapping::A));
        assert!(!rollback_detected(0x0000_0000, Mapping::A));
    }

    #[test]
    fn banks_and_mappings() {
        assert_eq!(Mapping::A.inactive_bank(), Bank::Upper);
        assert_eq!(Mapping::B.inactive_bank(), Bank::Lower);
        assert_eq!(Bank::Upper.linear_address(), 0x103F_8000);
        assert_eq!(Bank::Lower.mapping(), Mapping::A);
    }
}
