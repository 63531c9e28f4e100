//! The image trailer at the end of each slot (`board-formats.md` §1.4) and the swap-type table
//! the bootloader walks (§1.5).
//!
//! For `BOOT_MAX_ALIGN` = 8 (every Cypress tag, TF-M's BL2) the last 48 bytes are, as offsets
//! from the slot end `S`:
//!
//! | Offset | Size | Field | Values |
//! |---|---|---|---|
//! | S-16 | 16 | MAGIC | [`MAGIC`] |
//! | S-24 | 1 (+7 pad) | image_ok | 0x01 = SET |
//! | S-32 | 1 (+7 pad) | copy_done | 0x01 = SET |
//! | S-40 | 1 (+7 pad) | swap_info | `image << 4 \| swap_type` |
//! | S-48 | 4 (+4 pad) | swap_size | u32 LE |
//!
//! "Unset" is the flash's erased value, a parameter everywhere here (0x00 on PSoC 6 internal
//! flash, 0xFF on most others); any value other than SET or unset decodes as BAD. Padding is
//! the erased value. [`TrailerLayout`] takes `BOOT_MAX_ALIGN` as a parameter and also places
//! the fields of upstream MCUboot ≥ 2.x's MAX_ALIGN ≠ 8 variant (other magic, other offsets);
//! the 48-byte helpers ([`TRAILER_LEN`], the `*_AT` indices, [`Trailer::decode`], [`put_flag`])
//! are that layout for MAX_ALIGN = 8.

/// `BOOT_MAGIC_SZ` bytes of the MCUboot magic for `BOOT_MAX_ALIGN` = 8 (§1.4).
pub const MAGIC: [u8; 16] = [
    0x77, 0xC2, 0x95, 0xF3, 0x60, 0xD2, 0xEF, 0x7F, 0x35, 0x52, 0x50, 0x0F, 0x2C, 0xB6, 0x79, 0x80,
];
/// The last 14 magic bytes for `BOOT_MAX_ALIGN` ≠ 8; the first two are the alignment (u16 LE).
pub const MAGIC_ALIGNED_TAIL: [u8; 14] = [
    0x2D, 0xE1, 0x5D, 0x29, 0x41, 0x0B, 0x8D, 0x77, 0x67, 0x9C, 0x11, 0x0F, 0x1F, 0x8A,
];
/// `BOOT_MAGIC_SZ`.
pub const MAGIC_SZ: usize = 16;
/// `BOOT_MAX_ALIGN` of every Cypress tag and of TF-M's BL2.
pub const MAX_ALIGN: usize = 8;
/// Trailer bytes for `BOOT_MAX_ALIGN` = 8: the last 48 of the slot.
pub const TRAILER_LEN: usize = TrailerLayout::MAX_ALIGN_8.len();
/// A flag's SET value.
pub const FLAG_SET: u8 = 0x01;
/// `BOOT_SWAP_TYPE_NONE`.
pub const SWAP_TYPE_NONE: u8 = 1;
/// `BOOT_SWAP_TYPE_TEST`.
pub const SWAP_TYPE_TEST: u8 = 2;
/// `BOOT_SWAP_TYPE_PERM`.
pub const SWAP_TYPE_PERM: u8 = 3;
/// `BOOT_SWAP_TYPE_REVERT`.
pub const SWAP_TYPE_REVERT: u8 = 4;

/// Index of MAGIC inside the 48-byte tail (slot offset S-16).
pub const MAGIC_AT: usize = TRAILER_LEN - MAGIC_FROM_END;
/// Index of image_ok (S-24).
pub const IMAGE_OK_AT: usize = TRAILER_LEN - IMAGE_OK_FROM_END;
/// Index of copy_done (S-32).
pub const COPY_DONE_AT: usize = TRAILER_LEN - COPY_DONE_FROM_END;
/// Index of swap_info (S-40).
pub const SWAP_INFO_AT: usize = TRAILER_LEN - SWAP_INFO_FROM_END;
/// Index of swap_size (S-48).
pub const SWAP_SIZE_AT: usize = TRAILER_LEN - SWAP_SIZE_FROM_END;

/// MAGIC's distance from the slot end (S-16), for any MAX_ALIGN.
pub const MAGIC_FROM_END: usize = MAGIC_SZ;
/// image_ok's distance from the slot end for MAX_ALIGN = 8 (S-24).
pub const IMAGE_OK_FROM_END: usize = TrailerLayout::MAX_ALIGN_8.image_ok_from_end();
/// copy_done's distance from the slot end for MAX_ALIGN = 8 (S-32).
pub const COPY_DONE_FROM_END: usize = TrailerLayout::MAX_ALIGN_8.copy_done_from_end();
/// swap_info's distance from the slot end for MAX_ALIGN = 8 (S-40).
pub const SWAP_INFO_FROM_END: usize = TrailerLayout::MAX_ALIGN_8.swap_info_from_end();
/// swap_size's distance from the slot end for MAX_ALIGN = 8 (S-48).
pub const SWAP_SIZE_FROM_END: usize = TrailerLayout::MAX_ALIGN_8.swap_size_from_end();

/// Where the trailer fields sit for one `BOOT_MAX_ALIGN` (a power of two, 8..=32 for swap
/// modes), as distances back from the slot end (the slot end is assumed MAX_ALIGN-aligned).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrailerLayout {
    /// `BOOT_MAX_ALIGN`.
    pub max_align: usize,
}

const fn align_up(x: usize, a: usize) -> usize {
    x.div_ceil(a) * a
}

impl TrailerLayout {
    /// The layout of every Cypress tag and of TF-M's BL2.
    pub const MAX_ALIGN_8: Self = Self::new(MAX_ALIGN);

    /// The layout for `max_align` (values below 8 are taken as 8).
    pub const fn new(max_align: usize) -> Self {
        Self {
            max_align: if max_align < MAX_ALIGN {
                MAX_ALIGN
            } else {
                max_align
            },
        }
    }

    /// Size of the block the magic is written as: `ALIGN_UP(16, align)`, front-padded with the
    /// erased value.
    pub const fn magic_block_len(&self) -> usize {
        align_up(MAGIC_SZ, self.max_align)
    }

    /// image_ok's distance from the slot end (`ALIGN_DOWN(S-16-align, align)`).
    pub const fn image_ok_from_end(&self) -> usize {
        align_up(MAGIC_SZ + self.max_align, self.max_align)
    }

    /// copy_done's distance from the slot end (image_ok − align).
    pub const fn copy_done_from_end(&self) -> usize {
        self.image_ok_from_end() + self.max_align
    }

    /// swap_info's distance from the slot end (copy_done − align).
    pub const fn swap_info_from_end(&self) -> usize {
        self.copy_done_from_end() + self.max_align
    }

    /// swap_size's distance from the slot end (swap_info − align).
    pub const fn swap_size_from_end(&self) -> usize {
        self.swap_info_from_end() + self.max_align
    }

    /// The trailer bytes this module reads and writes: from swap_size to the slot end.
    pub const fn len(&self) -> usize {
        self.swap_size_from_end()
    }

    /// Never empty; for clippy's `len_without_is_empty`.
    pub const fn is_empty(&self) -> bool {
        false
    }

    /// The 16 magic bytes: [`MAGIC`] for MAX_ALIGN 8, else `align` (u16 LE) followed by
    /// [`MAGIC_ALIGNED_TAIL`].
    pub fn magic(&self) -> [u8; MAGIC_SZ] {
        if self.max_align == MAX_ALIGN {
            return MAGIC;
        }
        let mut m = [0u8; MAGIC_SZ];
        let (align, tail) = m.split_at_mut(2);
        align.copy_from_slice(&(self.max_align as u16).to_le_bytes());
        tail.copy_from_slice(&MAGIC_ALIGNED_TAIL);
        m
    }

    /// Decode the last [`len`](Self::len) bytes of a slot erased to `erase`. A shorter `tail`
    /// reads as erased where it is missing.
    pub fn decode(&self, tail: &[u8], erase: u8) -> Trailer {
        let at = |from_end: usize| tail.len().checked_sub(from_end).and_then(|i| tail.get(i..));
        let byte = |from_end: usize| {
            at(from_end)
                .and_then(|s| s.first().copied())
                .unwrap_or(erase)
        };
        let magic_bytes = at(MAGIC_FROM_END).unwrap_or(&[]);
        let magic = if magic_bytes == self.magic() {
            Magic::Good
        } else if magic_bytes.len() == MAGIC_SZ && magic_bytes.iter().all(|&b| b == erase) {
            Magic::Unset
        } else {
            Magic::Bad
        };
        let mut size = [erase; 4];
        if let Some(s) = at(self.swap_size_from_end()).and_then(|s| s.get(..4)) {
            size.copy_from_slice(s);
        }
        Trailer {
            magic,
            image_ok: Flag::decode(byte(self.image_ok_from_end()), erase),
            copy_done: Flag::decode(byte(self.copy_done_from_end()), erase),
            swap_info: byte(self.swap_info_from_end()),
            swap_size: u32::from_le_bytes(size),
        }
    }

    /// Write the magic block (front padding = `erase`) at the end of `tail`, the last
    /// [`len`](Self::len) bytes of a slot.
    pub fn put_magic(&self, tail: &mut [u8], erase: u8) {
        let block = self.magic_block_len();
        if let Some(b) = tail
            .len()
            .checked_sub(block)
            .and_then(|i| tail.get_mut(i..))
        {
            let (pad, m) = b.split_at_mut(block - MAGIC_SZ);
            pad.fill(erase);
            m.copy_from_slice(&self.magic());
        }
    }

    /// Set the one-byte field `from_end` bytes before the end of `tail` (one of the
    /// `*_from_end` distances) to `value`, its `max_align - 1` padding bytes to `erase`.
    pub fn put_flag(&self, tail: &mut [u8], from_end: usize, value: u8, erase: u8) {
        let start = tail.len().checked_sub(from_end);
        let rec = start.and_then(|i| tail.get_mut(i..i.checked_add(self.max_align)?));
        if let Some(rec) = rec {
            rec.fill(erase);
            if let Some(b) = rec.first_mut() {
                *b = value;
            }
        }
    }
}

/// Decoded MAGIC (`BOOT_MAGIC_GOOD/BAD/UNSET`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Magic {
    /// Exactly the layout's magic.
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
    /// Decode a flag byte on a flash erased to `erase`.
    pub fn decode(b: u8, erase: u8) -> Self {
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

impl SwapType {
    /// The `BOOT_SWAP_TYPE_*` number (the swap_type nibble of swap_info).
    pub const fn code(self) -> u8 {
        match self {
            SwapType::None => SWAP_TYPE_NONE,
            SwapType::Test => SWAP_TYPE_TEST,
            SwapType::Perm => SWAP_TYPE_PERM,
            SwapType::Revert => SWAP_TYPE_REVERT,
        }
    }
}

/// The fields of one slot trailer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trailer {
    /// MAGIC at S-16.
    pub magic: Magic,
    /// image_ok (S-24 for MAX_ALIGN 8).
    pub image_ok: Flag,
    /// copy_done (S-32).
    pub copy_done: Flag,
    /// swap_info byte (S-40; raw, the erased value when unset).
    pub swap_info: u8,
    /// swap_size (S-48).
    pub swap_size: u32,
}

impl Trailer {
    /// Decode the last [`TRAILER_LEN`] bytes of a slot erased to `erase` (MAX_ALIGN 8).
    pub fn decode(tail: &[u8; TRAILER_LEN], erase: u8) -> Self {
        TrailerLayout::MAX_ALIGN_8.decode(tail, erase)
    }

    /// The swap_type nibble of swap_info.
    pub fn swap_type(&self) -> u8 {
        self.swap_info & 0x0f
    }
}

/// Write [`MAGIC`] into the last 16 bytes of a 48-byte tail (MAX_ALIGN 8).
pub fn put_magic(tail: &mut [u8; TRAILER_LEN]) {
    if let Some(m) = tail.get_mut(MAGIC_AT..) {
        m.copy_from_slice(&MAGIC);
    }
}

/// Set the one-byte field at `at` (one of the `*_AT` indices) of a 48-byte tail to `value`, its
/// 7 padding bytes to the erased value (MAX_ALIGN 8).
pub fn put_flag(tail: &mut [u8; TRAILER_LEN], at: usize, value: u8, erase: u8) {
    if let Some(from_end) = TRAILER_LEN.checked_sub(at) {
        TrailerLayout::MAX_ALIGN_8.put_flag(tail, from_end, value, erase);
    }
}

/// One `N`-byte trailer record (`N` = MAX_ALIGN): `value` followed by erased bytes, for
/// programming one field on its own.
pub const fn flag_record<const N: usize>(value: u8, erase: u8) -> [u8; N] {
    let mut r = [erase; N];
    if let Some(b) = r.first_mut() {
        *b = value;
    }
    r
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
        assert_eq!(TrailerLayout::MAX_ALIGN_8.magic(), MAGIC);
    }

    #[test]
    fn field_offsets_from_slot_end() {
        // Offsets from S: magic S-16, image_ok S-24, copy_done S-32, swap_info S-40, size S-48.
        assert_eq!(TRAILER_LEN, 48);
        assert_eq!(TRAILER_LEN - MAGIC_AT, 16);
        assert_eq!(TRAILER_LEN - IMAGE_OK_AT, 24);
        assert_eq!(TRAILER_LEN - COPY_DONE_AT, 32);
        assert_eq!(TRAILER_LEN - SWAP_INFO_AT, 40);
        assert_eq!(TRAILER_LEN - SWAP_SIZE_AT, 48);
        assert_eq!(
            (
                MAGIC_FROM_END,
                IMAGE_OK_FROM_END,
                COPY_DONE_FROM_END,
                SWAP_INFO_FROM_END,
                SWAP_SIZE_FROM_END
            ),
            (16, 24, 32, 40, 48)
        );
    }

    #[test]
    fn max_align_variant_offsets_and_magic() {
        // §1.4: magic block ALIGN_UP(16, a) at ALIGN_DOWN(S-16, a); image_ok at
        // ALIGN_DOWN(S-16-a, a); then copy_done, swap_info, swap_size each a further `a` down.
        let l16 = TrailerLayout::new(16);
        assert_eq!(l16.magic_block_len(), 16);
        assert_eq!(
            (
                l16.image_ok_from_end(),
                l16.copy_done_from_end(),
                l16.swap_info_from_end(),
                l16.len()
            ),
            (32, 48, 64, 80)
        );
        let l32 = TrailerLayout::new(32);
        assert_eq!(l32.magic_block_len(), 32);
        assert_eq!(
            (l32.image_ok_from_end(), l32.copy_done_from_end(), l32.len()),
            (64, 96, 160)
        );
        assert_eq!(
            l32.magic(),
            [
                0x20, 0x00, 0x2D, 0xE1, 0x5D, 0x29, 0x41, 0x0B, 0x8D, 0x77, 0x67, 0x9C, 0x11, 0x0F,
                0x1F, 0x8A
            ]
        );
        let mut t = [0xFFu8; 160];
        l32.put_magic(&mut t, 0xAA);
        assert!(t[128..144].iter().all(|&b| b == 0xAA), "front padding");
        assert_eq!(&t[144..], &l32.magic());
        l32.put_flag(&mut t, l32.image_ok_from_end(), FLAG_SET, 0xFF);
        assert_eq!(&t[96..128], &flag_record::<32>(FLAG_SET, 0xFF));
        let d = l32.decode(&t, 0xFF);
        assert_eq!(
            (d.magic, d.image_ok, d.copy_done),
            (Magic::Good, Flag::Set, Flag::Unset)
        );
        // The MAX_ALIGN 8 magic is BAD under another layout.
        let mut t8 = [0xFFu8; 80];
        t8[64..].copy_from_slice(&MAGIC);
        assert_eq!(l16.decode(&t8, 0xFF).magic, Magic::Bad);
        assert_eq!(TrailerLayout::new(4), TrailerLayout::MAX_ALIGN_8);
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
        let mut u = blank();
        TrailerLayout::MAX_ALIGN_8.put_magic(&mut u, E);
        assert_eq!(u, want);
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
        assert_eq!(swap_info(1, SWAP_TYPE_TEST), 0x12);
        // Out-of-range index: nothing written.
        let before = t;
        put_flag(&mut t, 49, FLAG_SET, E);
        assert_eq!(t, before);
    }

    #[test]
    fn flag_records_are_pinned() {
        assert_eq!(
            flag_record::<MAX_ALIGN>(1, 0xFF),
            [1, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]
        );
        assert_eq!(flag_record::<8>(0x12, 0x00), [0x12, 0, 0, 0, 0, 0, 0, 0]);
        let mut t = [0xFFu8; TRAILER_LEN];
        put_flag(&mut t, COPY_DONE_AT, FLAG_SET, 0xFF);
        assert_eq!(
            &t[COPY_DONE_AT..COPY_DONE_AT + 8],
            &flag_record::<8>(FLAG_SET, 0xFF)
        );
    }

    #[test]
    fn swap_size_is_le_at_s_minus_48() {
        let mut t = blank();
        t[..4].copy_from_slice(&0x0001_2345u32.to_le_bytes());
        assert_eq!(Trailer::decode(&t, E).swap_size, 0x12345);
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
        t[IMAGE_OK_AT] = 0x5A;
        assert_eq!(Trailer::decode(&t, 0xFF).image_ok, Flag::Bad);
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

    #[test]
    fn swap_table_on_0xff_flash_and_type_codes() {
        // TF-M's BL2: 0xFF-erased flash, raw byte writes.
        let mut t = [0xFFu8; TRAILER_LEN];
        let unset = Trailer::decode(&t, 0xFF);
        t[32..48].copy_from_slice(&MAGIC);
        t[8] = swap_info(0, SWAP_TYPE_TEST);
        let pending = Trailer::decode(&t, 0xFF);
        assert_eq!(decide(&unset, &pending).code(), SWAP_TYPE_TEST);
        t[24] = FLAG_SET; // image_ok at S-24 = index 48-24
        assert_eq!(
            decide(&unset, &Trailer::decode(&t, 0xFF)).code(),
            SWAP_TYPE_PERM
        );
        let mut p = [0xFFu8; TRAILER_LEN];
        p[32..48].copy_from_slice(&MAGIC);
        p[16] = FLAG_SET;
        assert_eq!(
            decide(&Trailer::decode(&p, 0xFF), &unset).code(),
            SWAP_TYPE_REVERT
        );
        p[24] = FLAG_SET;
        assert_eq!(
            decide(&Trailer::decode(&p, 0xFF), &unset).code(),
            SWAP_TYPE_NONE
        );
    }
}
