//! The trial record: how this crate knows "running a new image on trial" across the reset,
//! without changing anything the Dual Bank Manager reads.
//!
//! The vendor PAL keeps the image state in RAM only (spec §2.5), which cannot survive the reset
//! into the new image, and its confirm is a no-op (§2.3). So this crate keeps a record in a
//! separate 2 KB work-flash sector ([`crate::layout::TRIAL_RECORD_ADDR`] by default) that the
//! DBM never reads. The marker keeps exactly the vendor's bytes and write sequence.
//!
//! Each 16-byte unit below is programmed at most once between erases (work flash has ECC), as
//! one 128-bit program, and recognised only by its exact contents, so the record works with
//! either work-flash erase value and a torn unit never reads as a valid one.
//!
//! ```text
//! +0   TRIAL unit   [0x4C495254 "TRIL", trial mapping (0xA / 0xB), file size, check]
//!                   check = 0x5AA5_5AA5 ^ word0 ^ word1 ^ word2
//!                   written (after erasing the sector) BEFORE the marker, by request_trial_boot
//! +16  BOOTED unit  [0x544F4F42 "BOOT", !"BOOT", "BOOT", !"BOOT"]
//!                   written by the new image's first startup in the trial mapping
//! ```
//!
//! The sector is erased by confirm. Reading it:
//!
//! * no valid TRIAL unit → no trial: the running image is [`Valid`](ota_pal_traits::PlatformImageState::Valid);
//! * TRIAL for another mapping than the running one → the trial did not happen or was rolled
//!   back: [`Invalid`](ota_pal_traits::PlatformImageState::Invalid);
//! * TRIAL for the running mapping, BOOTED erased → first boot of the trial: write BOOTED,
//!   [`PendingCommit`](ota_pal_traits::PlatformImageState::PendingCommit);
//! * TRIAL for the running mapping, BOOTED not erased (written or torn) → a second boot without
//!   confirm: revert the marker to the old bank and reset.

use crate::marker::Mapping;

/// Size of one unit (one 128-bit work-flash program).
pub const UNIT_LEN: usize = 16;
/// Offset of the TRIAL unit in the sector.
pub const TRIAL_UNIT_OFFSET: u32 = 0;
/// Offset of the BOOTED unit in the sector.
pub const BOOTED_UNIT_OFFSET: u32 = 16;
/// Bytes read to know the record's state.
pub const RECORD_LEN: usize = 2 * UNIT_LEN;

/// Magic of the TRIAL unit ("TRIL" little-endian).
pub const TRIAL_MAGIC: u32 = 0x4C49_5254;
/// Magic of the BOOTED unit ("BOOT" little-endian).
pub const BOOTED_MAGIC: u32 = 0x544F_4F42;
const CHECK_SEED: u32 = 0x5AA5_5AA5;
const MAP_A: u32 = 0xA;
const MAP_B: u32 = 0xB;

fn words(bytes: &[u8; UNIT_LEN]) -> [u32; 4] {
    let mut out = [0u32; 4];
    for (w, c) in out.iter_mut().zip(bytes.chunks_exact(4)) {
        let mut b = [0u8; 4];
        b.copy_from_slice(c);
        *w = u32::from_le_bytes(b);
    }
    out
}

fn unit(words: [u32; 4]) -> [u8; UNIT_LEN] {
    let mut out = [0u8; UNIT_LEN];
    for (c, w) in out.chunks_exact_mut(4).zip(words) {
        c.copy_from_slice(&w.to_le_bytes());
    }
    out
}

/// The TRIAL unit: which mapping the staged image runs in, and the file size (for logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TrialRecord {
    /// The mapping the new image runs in (the mapping the marker was set to prefer).
    pub trial_mapping: Mapping,
    /// Size of the staged OTA file.
    pub file_size: u32,
}

impl TrialRecord {
    /// The 16 bytes of the TRIAL unit.
    pub fn encode(&self) -> [u8; UNIT_LEN] {
        let map = match self.trial_mapping {
            Mapping::A => MAP_A,
            Mapping::B => MAP_B,
        };
        unit([
            TRIAL_MAGIC,
            map,
            self.file_size,
            CHECK_SEED ^ TRIAL_MAGIC ^ map ^ self.file_size,
        ])
    }

    /// A TRIAL unit, or `None` for anything else (erased, torn, garbage).
    pub fn decode(bytes: &[u8; UNIT_LEN]) -> Option<Self> {
        let [magic, map, size, check] = words(bytes);
        if magic != TRIAL_MAGIC || check != CHECK_SEED ^ magic ^ map ^ size {
            return None;
        }
        let trial_mapping = match map {
            MAP_A => Mapping::A,
            MAP_B => Mapping::B,
            _ => return None,
        };
        Some(Self {
            trial_mapping,
            file_size: size,
        })
    }
}

/// The 16 bytes of the BOOTED unit.
pub const fn booted_unit() -> [u8; UNIT_LEN] {
    let m = BOOTED_MAGIC.to_le_bytes();
    let n = (!BOOTED_MAGIC).to_le_bytes();
    [
        m[0], m[1], m[2], m[3], n[0], n[1], n[2], n[3], m[0], m[1], m[2], m[3], n[0], n[1], n[2],
        n[3],
    ]
}

/// State of a program-once unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnitState {
    /// Every byte is the erase value: never programmed since the last erase.
    Erased,
    /// Exactly the expected contents.
    Written,
    /// Anything else (a torn program or erase): treated as written, never programmed over.
    Torn,
}

/// Classify `bytes` against the `expected` contents.
///
/// A unit filled with 0xFF or with 0x00 counts as erased, whichever value the work flash really
/// erases to (not confirmed, spec §6). A torn program only moves bits the data asks for, and the
/// data has both 0 and 1 bits, so from one fill it can end at that fill (nothing programmed:
/// rightly erased) but never at the other; this is safe for both values and needs no
/// configuration.
pub fn unit_state(bytes: &[u8; UNIT_LEN], expected: &[u8; UNIT_LEN]) -> UnitState {
    if bytes.iter().all(|&b| b == 0xFF) || bytes.iter().all(|&b| b == 0x00) {
        UnitState::Erased
    } else if bytes == expected {
        UnitState::Written
    } else {
        UnitState::Torn
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trial_unit_bytes_are_pinned() {
        let r = TrialRecord {
            trial_mapping: Mapping::B,
            file_size: 0x0001_1000,
        };
        let check: u32 = 0x5AA5_5AA5 ^ 0x4C49_5254 ^ 0xB ^ 0x0001_1000;
        assert_eq!(check, 0x16ED_18FA);
        assert_eq!(
            r.encode(),
            [
                0x54, 0x52, 0x49, 0x4C, // "TRIL"
                0x0B, 0x00, 0x00, 0x00, // mapping B
                0x00, 0x10, 0x01, 0x00, // file size
                0xFA, 0x18, 0xED, 0x16, // check
            ]
        );
        assert_eq!(TrialRecord::decode(&r.encode()), Some(r));
        let a = TrialRecord {
            trial_mapping: Mapping::A,
            file_size: 7,
        };
        assert_eq!(TrialRecord::decode(&a.encode()), Some(a));
    }

    #[test]
    fn erased_torn_and_garbage_units_are_not_records() {
        assert_eq!(TrialRecord::decode(&[0xFF; 16]), None);
        assert_eq!(TrialRecord::decode(&[0x00; 16]), None);
        let good = TrialRecord {
            trial_mapping: Mapping::A,
            file_size: 0x1234,
        }
        .encode();
        for i in 0..16 {
            for bit in 0..8 {
                let mut torn = good;
                torn[i] ^= 1 << bit;
                assert_eq!(TrialRecord::decode(&torn), None, "byte {i} bit {bit}");
            }
        }
    }

    #[test]
    fn booted_unit_bytes_and_states() {
        let b = booted_unit();
        assert_eq!(
            b,
            [
                0x42, 0x4F, 0x4F, 0x54, 0xBD, 0xB0, 0xB0, 0xAB, 0x42, 0x4F, 0x4F, 0x54, 0xBD, 0xB0,
                0xB0, 0xAB
            ]
        );
        for ev in [0xFF, 0x00] {
            assert_eq!(unit_state(&[ev; 16], &b), UnitState::Erased);
            assert_eq!(unit_state(&b, &b), UnitState::Written);
            let mut torn = [ev; 16];
            torn[..5].copy_from_slice(&b[..5]);
            assert_eq!(unit_state(&torn, &b), UnitState::Torn);
            // The unit has 1 bits and 0 bits, so a torn program from one fill never reaches
            // the other fill.
            assert!(b.iter().any(|&x| x != 0xFF) && b.iter().any(|&x| x != 0x00));
        }
    }
}
