//! The MCUboot image trailer at the end of each slot, for `BOOT_MAX_ALIGN` = 8 (board-formats
//! §1.4), and the swap-type table the bootloader walks (§1.5).
//!
//! The trailer's last 48 bytes, as offsets from the slot end `S`:
//!
//! | Offset | Size | Field | Values |
//! |---|---|---|---|
//! | S-16 | 16 | MAGIC | [`MAGIC`] |
//! | S-24 | 1 (+7 pad) | image_ok | 0x01 = SET |
//! | S-32 | 1 (+7 pad) | copy_done | 0x01 = SET |
//! | S-40 | 1 (+7 pad) | swap_info | `image << 4 \| swap_type` |
//! | S-48 | 4 (+4 pad) | swap_size | u32 LE |
//!
//! "Unset" is the flash's erased value (0x00 on PSoC 6 internal flash); any other value than
//! SET or unset decodes as BAD. Padding is the erased value. The MAX_ALIGN ≠ 8 magic variant of
//! upstream MCUboot ≥ 2.x is **not** supported (no Cypress tag uses it).

/// `BOOT_MAGIC_SZ` bytes of the MCUboot magic for `BOOT_MAX_ALIGN` = 8 (§1.4).
pub const MAGIC: [u8; 16] = [
    0x77, 0xC2, 0x95, 0xF3, 0x60, 0xD2, 0xEF, 0x7F, 0x35, 0x52, 0x50, 0x0F, 0x2C, 0xB6, 0x79, 0x80,
];
/// `BOOT_MAX_ALIGN`: every Cypress tag sets 8.
pub const MAX_ALIGN: usize = 8;
/// Bytes of the trailer this crate reads and writes: the last 48 of the slot.
pub const TRAILER_LEN: usize = 48;
/// A flag's SET value.
pub const FLAG_SET: u8 = 0x01;
/// swap_type TEST.
pub const SWAP_TYPE_TEST: u8 = 2;
/// swap_type PERM.
pub const SWAP_TYPE_PERM: u8 = 3;
/// swap_type REVERT.
pub const SWAP_TYPE_REVERT: u8 = 4;

/// Index of MAGIC inside the 48-byte tail (slot offset S-16).
pub const MAGIC_AT: usize = TRAILER_LEN - 16;
/// Index of image_ok (S-24).
pub const IMAGE_OK_AT: usize = TRAILER_LEN - 24;
/// Index of copy_done (S-32).
pub const COPY_DONE_AT: usize = TRAILER_LEN - 32;
/// Index of swap_info (S-40).
pub const SWAP_INFO_AT: usize = TRAILER_LEN - 40;
/// Index of swap_size (S-48).
pub const SWAP_SIZE_AT: usize = 0;

/// Decoded MAGIC (`BOOT_MAGIC_GOOD/BAD/UNSET`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Magic {
    /// Exactly [`MAGIC`].
    Good,
    /// Anything else that is not all-erased.
    Bad,
    /// All sixteen bytes erased.
    Unset,
}

/// Decoded one-byte flag (`BOOT_FLAG_SET/BAD/UNSET`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flag {
    /// 0x01.
    Set,
    /// Neither 0x01 nor erased.
    Bad,
    /// The erased value.
    Unset,
}

impl Flag {
    fn decode(b: u8, erase: u8) -> Self {
        if b == FLAG_SET {
            Flag::Set
        } else if b == erase {
            Flag::Unset
        } else {
            Flag::Bad
        }
    }
}

/// MCUboot's `BOOT_SWAP_TYPE_*` (§1.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwapType {
    /// 1: boot the primary as it is.
    None,
    /// 2: upgrade on trial.
    Test,
    /// 3: upgrade for good.
    Perm,
    /// 4: swap back a trial image that was not confirmed.
    Revert,
}

/// The fields of one slot trailer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trailer {
    /// MAGIC at S-16.
    pub magic: Magic,
    /// image_ok at S-24.
    pub image_ok: Flag,
    /// copy_done at S-32.
    pub copy_done: Flag,
    /// swap_info byte at S-40 (raw; the erased value when unset).
    pub swap_info: u8,
    /// swap_size at S-48.
    pub swap_size: u32,
}

impl Trailer {
    /// Decode the last [`TRAILER_LEN`] bytes of a slot erased to `erase`.
    pub fn decode(tail: &[u8; TRAILER_LEN], erase: u8) -> Self {
        let mut magic = [0u8; 16];
        let mut size = [0u8; 4];
        for (i, b) in tail.iter().enumerate() {
            if let Some(m) = i.checked_sub(MAGIC_AT).and_then(|j| magic.get_mut(j)) {
                *m = *b;
            }
            if let Some(s) = size.get_mut(i) {
                *s = *b;
            }
        }
        let magic = if magic == MAGIC {
            Magic::Good
        } else if magic.iter().all(|&b| b == erase) {
            Magic::Unset
        } else {
            Magic::Bad
        };
        let at = |i: usize| tail.get(i).copied().unwrap_or(erase);
        Trailer {
            magic,
            image_ok: Flag::decode(at(IMAGE_OK_AT), erase),
            copy_done: Flag::decode(at(COPY_DONE_AT), erase),
            swap_info: at(SWAP_INFO_AT),
            swap_size: u32::from_le_bytes(size),
        }
    }

    /// The swap_type nibble of swap_info.
    pub fn swap_type(&self) -> u8 {
        self.swap_info & 0x0f
    }
}

/// Write MAGIC into a 48-byte tail.
pub fn put_magic(tail: &mut [u8; TRAILER_LEN]) {
    if let Some(m) = tail.get_mut(MAGIC_AT..) {
        m.copy_from_slice(&MAGIC);
    }
}

/// Set the one-byte field at `at` (one of the `*_AT` indices) to `value`, its 7 padding bytes
/// to the erased value.
pub fn put_flag(tail: &mut [u8; TRAILER_LEN], at: usize, value: u8, erase: u8) {
    if let Some(rec) = tail.get_mut(at..at + MAX_ALIGN) {
        rec.fill(erase);
        if let Some(b) = rec.first_mut() {
            *b = value;
        }
    }
}

/// `(image << 4) | swap_type`.
pub const fn swap_info(image: u8, swap_type: u8) -> u8 {
    (image << 4) | (swap_type & 0x0f)
}

/// MCUboot's `boot_swap_tables`, walked in order (§1.5): the secondary slot has priority.
pub fn decide(primary: &Trailer, secondary: &Trailer) -> SwapType {
    if secondary.magic == Magic::Good && secondary.image_ok == Flag::Unset {
        SwapType::Test
    } else if secondary.magic == Magic::Good && secondary.image_ok == Flag::Set {
        SwapType::Perm
    } else if primary.magic == Magic::Good
        && primary.image_ok == Flag::Unset
        && primary.copy_done == Flag::Set
    {
        SwapType::Revert
    } else {
        SwapType::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const E: u8 = 0x00;

    fn blank() -> [u8; TRAILER_LEN] {
        [E; TRAILER_LEN]
    }

    #[test]
    fn magic_bytes_are_the_spec_bytes_and_le_words() {
        assert_eq!(
            MAGIC,
            [
                0x77, 0xC2, 0x95, 0xF3, 0x60, 0xD2, 0xEF, 0x7F, 0x35, 0x52, 0x50, 0x0F, 0x2C, 0xB6,
                0x79, 0x80
            ]
        );
        let words: [u32; 4] = core::array::from_fn(|i| {
            u32::from_le_bytes(MAGIC[i * 4..i * 4 + 4].try_into().unwrap())
        });
        assert_eq!(words, [0xF395C277, 0x7FEFD260, 0x0F505235, 0x8079B62C]);
    }

    #[test]
    fn field_offsets_from_slot_end() {
        // Offsets from S: magic S-16, image_ok S-24, copy_done S-32, swap_info S-40, size S-48.
        assert_eq!(TRAILER_LEN - MAGIC_AT, 16);
        assert_eq!(TRAILER_LEN - IMAGE_OK_AT, 24);
        assert_eq!(TRAILER_LEN - COPY_DONE_AT, 32);
        assert_eq!(TRAILER_LEN - SWAP_INFO_AT, 40);
        assert_eq!(TRAILER_LEN - SWAP_SIZE_AT, 48);
    }

    #[test]
    fn anycloud5_pending_is_magic_only_in_the_last_16_bytes() {
        let mut t = blank();
        put_magic(&mut t);
        let mut want = [0u8; 48];
        want[32..].copy_from_slice(&[
            0x77, 0xC2, 0x95, 0xF3, 0x60, 0xD2, 0xEF, 0x7F, 0x35, 0x52, 0x50, 0x0F, 0x2C, 0xB6,
            0x79, 0x80,
        ]);
        assert_eq!(t, want);
        let d = Trailer::decode(&t, E);
        assert_eq!(d.magic, Magic::Good);
        assert_eq!(d.image_ok, Flag::Unset);
        assert_eq!(decide(&Trailer::decode(&blank(), E), &d), SwapType::Test);
    }

    #[test]
    fn permanent_pending_bytes() {
        let mut t = blank();
        put_magic(&mut t);
        put_flag(&mut t, IMAGE_OK_AT, FLAG_SET, E);
        put_flag(&mut t, SWAP_INFO_AT, swap_info(0, SWAP_TYPE_PERM), E);
        assert_eq!(&t[..8], &[0; 8]);
        assert_eq!(&t[8..16], &[0x03, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&t[16..24], &[0; 8]);
        assert_eq!(&t[24..32], &[0x01, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&t[32..], &MAGIC);
        let d = Trailer::decode(&t, E);
        assert_eq!((d.image_ok, d.swap_type()), (Flag::Set, 3));
        assert_eq!(decide(&Trailer::decode(&blank(), E), &d), SwapType::Perm);
    }

    #[test]
    fn test_pending_bytes_and_swap_info_packing() {
        let mut t = blank();
        put_magic(&mut t);
        put_flag(&mut t, SWAP_INFO_AT, swap_info(0, SWAP_TYPE_TEST), E);
        assert_eq!(t[8], 0x02);
        assert_eq!(swap_info(1, SWAP_TYPE_REVERT), 0x14);
    }

    #[test]
    fn unset_is_the_erase_value_and_other_values_are_bad() {
        let d = Trailer::decode(&blank(), E);
        assert_eq!(
            (d.magic, d.image_ok, d.copy_done),
            (Magic::Unset, Flag::Unset, Flag::Unset)
        );
        let mut t = [0xFF; TRAILER_LEN];
        let d = Trailer::decode(&t, E);
        assert_eq!((d.magic, d.image_ok), (Magic::Bad, Flag::Bad));
        // On 0xFF flash the same bytes are unset.
        let d = Trailer::decode(&t, 0xFF);
        assert_eq!((d.magic, d.image_ok), (Magic::Unset, Flag::Unset));
        t[MAGIC_AT] = 0x76;
        assert_eq!(Trailer::decode(&t, 0xFF).magic, Magic::Bad);
    }

    #[test]
    fn swap_table_is_walked_in_order() {
        let unset = Trailer::decode(&blank(), E);
        let mut p = blank();
        put_magic(&mut p);
        put_flag(&mut p, COPY_DONE_AT, FLAG_SET, E);
        let running_test = Trailer::decode(&p, E);
        assert_eq!(decide(&running_test, &unset), SwapType::Revert);
        put_flag(&mut p, IMAGE_OK_AT, FLAG_SET, E);
        assert_eq!(decide(&Trailer::decode(&p, E), &unset), SwapType::None);
        // A pending secondary wins over a revert.
        let mut s = blank();
        put_magic(&mut s);
        assert_eq!(
            decide(&running_test, &Trailer::decode(&s, E)),
            SwapType::Test
        );
        // A BAD image_ok in the secondary matches neither TEST nor PERM.
        s[IMAGE_OK_AT] = 0x55;
        assert_eq!(decide(&unset, &Trailer::decode(&s, E)), SwapType::None);
        assert_eq!(decide(&unset, &unset), SwapType::None);
    }
}
