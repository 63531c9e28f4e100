//! The block bitmap of a file download (spec §3.2, §3.4, §3.5).
//!
//! One bit per block of the **whole** file: bit value 1 = block still wanted, 0 = received.
//! Block `k` lives in byte `k >> 3` at mask `1 << (k % 8)` (LSB-first), the layout the MQTT
//! streams service reads from the `b` field of a GetStream request. Unused high bits of the last
//! byte are always 0, so the bytes can be sent as they are.
//!
//! Unlike the reference agent, which keeps a fixed 128-byte bitmap (1024 blocks, 4 MiB) and
//! corrupts memory for larger files (issue #476, §11), [`BlockBitmap::new`] refuses a file that
//! needs more blocks than the bitmap holds. The default [`DefaultBlockBitmap`] covers the AWS
//! file size limit (16 MiB at 4 KiB blocks, §9).
//!
//! **RAM cost:** `BYTES` bytes of bits plus two `u32` counters (8 bytes), i.e. 520 bytes for
//! [`DefaultBlockBitmap`]. The service accepts bitmaps smaller than 12,288 bytes per request
//! (§3.1), so a request carries a [window](BlockBitmap::window) of the bitmap, not all of it.

use core::fmt;

/// Bitmap bytes of [`DefaultBlockBitmap`]: 512 bytes = 4096 blocks = 16 MiB at 4 KiB blocks,
/// the AWS OTA file size limit (§9).
pub const DEFAULT_BITMAP_BYTES: usize = 512;

/// A bitmap that covers any file AWS OTA accepts with the default 4 KiB block size
/// (520 bytes of RAM).
pub type DefaultBlockBitmap = BlockBitmap<DEFAULT_BITMAP_BYTES>;

/// Why a bitmap could not be built or updated. Errors are values; nothing here panics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BitmapError {
    /// The file needs more blocks than the bitmap can hold (the reference corrupts memory
    /// here, issue #476).
    TooManyBlocks {
        /// Blocks the file needs.
        blocks: u64,
        /// Blocks this bitmap holds (`8 * BYTES`).
        capacity: u64,
    },
    /// A block index at or past the end of the file.
    OutOfRange {
        /// The offending index.
        index: u32,
        /// Number of blocks in the file.
        block_count: u32,
    },
    /// A block size of 0 was given to [`BlockBitmap::for_file`].
    ZeroBlockSize,
    /// [`BlockBitmap::from_bytes`] got a slice that is not exactly `ceil(blocks / 8)` bytes.
    BadLength {
        /// Expected length.
        expected: usize,
        /// Given length.
        actual: usize,
    },
}

impl fmt::Display for BitmapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooManyBlocks { blocks, capacity } => {
                write!(f, "file needs {blocks} blocks, bitmap holds {capacity}")
            }
            Self::OutOfRange { index, block_count } => {
                write!(f, "block {index} out of range (file has {block_count})")
            }
            Self::ZeroBlockSize => f.write_str("block size is zero"),
            Self::BadLength { expected, actual } => {
                write!(f, "bitmap is {actual} bytes, expected {expected}")
            }
        }
    }
}

impl core::error::Error for BitmapError {}

/// Which blocks of a file are still wanted, for the whole file (spec §3.2).
///
/// `BYTES` bounds the file: at most `8 * BYTES` blocks. `remaining` is kept as a counter so
/// that progress and completion checks are O(1); it always equals the number of set bits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockBitmap<const BYTES: usize> {
    bits: [u8; BYTES],
    block_count: u32,
    remaining: u32,
}

/// `ceil(blocks / 8)`, the length of the bitmap of a file of `blocks` blocks (§3.2).
const fn byte_len(blocks: u32) -> usize {
    (blocks as usize).div_ceil(8)
}

impl<const BYTES: usize> BlockBitmap<BYTES> {
    /// Blocks this bitmap type can hold (`8 * BYTES`, saturating).
    pub const fn capacity() -> u64 {
        (BYTES as u64).saturating_mul(8)
    }

    /// A bitmap with all `block_count` blocks wanted ("erased, like flash", §3.2) and the
    /// unused high bits of the last byte cleared. Fails, rather than corrupting memory, when
    /// the file has more blocks than [`capacity`](Self::capacity).
    pub fn new(block_count: u32) -> Result<Self, BitmapError> {
        if u64::from(block_count) > Self::capacity() {
            return Err(BitmapError::TooManyBlocks {
                blocks: u64::from(block_count),
                capacity: Self::capacity(),
            });
        }
        let mut bits = [0u8; BYTES];
        let full = (block_count / 8) as usize;
        for b in bits.iter_mut().take(full) {
            *b = 0xff;
        }
        let tail = block_count % 8;
        if tail != 0 {
            if let Some(b) = bits.get_mut(full) {
                *b = (1u8 << tail) - 1;
            }
        }
        Ok(Self {
            bits,
            block_count,
            remaining: block_count,
        })
    }

    /// A bitmap for a file of `file_size` bytes in blocks of `block_size` bytes:
    /// `ceil(file_size / block_size)` blocks (§3.5).
    pub fn for_file(file_size: u32, block_size: u32) -> Result<Self, BitmapError> {
        if block_size == 0 {
            return Err(BitmapError::ZeroBlockSize);
        }
        Self::new(file_size.div_ceil(block_size))
    }

    /// Rebuilds the bitmap of a partly downloaded file from the indices already received, to
    /// resume after a reboot instead of starting over (issue #206, §11). Duplicates are fine;
    /// an index out of range is an error (the journal does not match the file).
    pub fn from_received<I>(block_count: u32, received: I) -> Result<Self, BitmapError>
    where
        I: IntoIterator<Item = u32>,
    {
        let mut bitmap = Self::new(block_count)?;
        for k in received {
            bitmap.mark_received(k)?;
        }
        Ok(bitmap)
    }

    /// Rebuilds the bitmap from its bytes as returned by [`as_bytes`](Self::as_bytes) (e.g.
    /// persisted in a journal). The length must be exactly `ceil(block_count / 8)`; stray high
    /// bits of the last byte are cleared and `remaining` is recounted.
    pub fn from_bytes(block_count: u32, bytes: &[u8]) -> Result<Self, BitmapError> {
        let mut bitmap = Self::new(block_count)?;
        let expected = byte_len(block_count);
        if bytes.len() != expected {
            return Err(BitmapError::BadLength {
                expected,
                actual: bytes.len(),
            });
        }
        let mut remaining = 0u32;
        for (dst, (src, mask)) in bitmap.bits.iter_mut().zip(bytes.iter().zip(
            // The masks of `new` are exactly the valid bits of each byte.
            Self::new(block_count)?.bits.iter(),
        )) {
            *dst = *src & *mask;
            remaining += dst.count_ones();
        }
        bitmap.remaining = remaining;
        Ok(bitmap)
    }

    /// Number of blocks in the file.
    pub fn block_count(&self) -> u32 {
        self.block_count
    }

    /// Number of blocks still wanted (the number of set bits).
    pub fn remaining(&self) -> u32 {
        self.remaining
    }

    /// Number of blocks received so far.
    pub fn received(&self) -> u32 {
        self.block_count - self.remaining
    }

    /// True once every block has been received.
    pub fn is_complete(&self) -> bool {
        self.remaining == 0
    }

    fn locate(&self, k: u32) -> Result<(usize, u8), BitmapError> {
        if k >= self.block_count {
            return Err(BitmapError::OutOfRange {
                index: k,
                block_count: self.block_count,
            });
        }
        Ok(((k >> 3) as usize, 1u8 << (k % 8)))
    }

    /// True if block `k` is still wanted; false if received or out of range.
    pub fn is_wanted(&self, k: u32) -> bool {
        match self.locate(k) {
            Ok((byte, mask)) => self.bits.get(byte).is_some_and(|b| b & mask != 0),
            Err(_) => false,
        }
    }

    fn set(&mut self, k: u32, wanted: bool) -> Result<bool, BitmapError> {
        let (byte, mask) = self.locate(k)?;
        let Some(b) = self.bits.get_mut(byte) else {
            // Unreachable: `new` checked block_count against BYTES.
            return Err(BitmapError::OutOfRange {
                index: k,
                block_count: self.block_count,
            });
        };
        let was_wanted = *b & mask != 0;
        if wanted == was_wanted {
            return Ok(false);
        }
        if wanted {
            *b |= mask;
            self.remaining += 1;
        } else {
            *b &= !mask;
            self.remaining -= 1;
        }
        Ok(true)
    }

    /// Records block `k` as received. Returns `Ok(true)` if it was wanted (count it, write
    /// it) and `Ok(false)` for a duplicate, which the agent ignores (§3.5).
    pub fn mark_received(&mut self, k: u32) -> Result<bool, BitmapError> {
        self.set(k, false)
    }

    /// Marks block `k` as wanted again (e.g. its flash write failed and will be retried).
    /// Returns `Ok(true)` if it was previously received.
    pub fn mark_wanted(&mut self, k: u32) -> Result<bool, BitmapError> {
        self.set(k, true)
    }

    /// The lowest wanted block, or `None` when complete.
    pub fn first_wanted(&self) -> Option<u32> {
        self.iter_wanted().next()
    }

    /// Wanted block indices in increasing order.
    pub fn iter_wanted(&self) -> WantedBlocks<'_> {
        WantedBlocks {
            bytes: self.as_bytes(),
            byte: 0,
            pending: self.as_bytes().first().copied().unwrap_or(0),
        }
    }

    /// The bitmap bytes as sent to the service: exactly `ceil(block_count / 8)` bytes, LSB
    /// first, unused high bits 0 (§3.2).
    pub fn as_bytes(&self) -> &[u8] {
        self.bits
            .get(..byte_len(self.block_count))
            .unwrap_or(&self.bits)
    }

    /// The part of the bitmap to put in a GetStream request (§3.1, §3.4): at most `max_bytes`
    /// bytes (at least 1), starting at the byte that holds the first wanted block. Returns
    /// `(block_offset, bitmap)` where `block_offset` is `8 ×` that byte's index, the `o` of the
    /// request, so that bit 0 of the slice is block `block_offset` (the service's rule, §3.4).
    /// `None` when every block has been received.
    ///
    /// With `max_bytes >= as_bytes().len()` and block 0 still wanted this is exactly the
    /// reference agent's request (offset 0, whole bitmap).
    pub fn window(&self, max_bytes: usize) -> Option<(u32, &[u8])> {
        let bytes = self.as_bytes();
        let start = bytes.iter().position(|b| *b != 0)?;
        let end = start.saturating_add(max_bytes.max(1)).min(bytes.len());
        let slice = bytes.get(start..end)?;
        Some(((start as u32) * 8, slice))
    }

    /// Like [`window`](Self::window), but also no longer than needed to hold the first
    /// `max_blocks` wanted blocks: with `n = max_blocks` in the request (§3.4: with `b`, `n`
    /// caps the blocks sent) the rest of the bitmap would be dead weight on the wire.
    /// `max_blocks` is taken as at least 1.
    pub fn window_limited(&self, max_bytes: usize, max_blocks: u32) -> Option<(u32, &[u8])> {
        let (offset, window) = self.window(max_bytes)?;
        let mut left = max_blocks.max(1);
        let mut len = window.len();
        for (i, b) in window.iter().enumerate() {
            let ones = b.count_ones();
            if ones >= left {
                len = i + 1;
                break;
            }
            left -= ones;
        }
        Some((offset, window.get(..len)?))
    }
}

/// Iterator over the wanted blocks of a [`BlockBitmap`], from
/// [`BlockBitmap::iter_wanted`]. Skips whole received bytes at once.
#[derive(Clone, Debug)]
pub struct WantedBlocks<'a> {
    bytes: &'a [u8],
    byte: usize,
    pending: u8,
}

impl Iterator for WantedBlocks<'_> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        while self.pending == 0 {
            self.byte += 1;
            self.pending = *self.bytes.get(self.byte)?;
        }
        let bit = self.pending.trailing_zeros();
        self.pending &= self.pending - 1;
        Some(self.byte as u32 * 8 + bit)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use proptest::prelude::*;
    use std::vec::Vec;

    #[test]
    fn init_clears_unused_high_bits() {
        assert_eq!(BlockBitmap::<4>::new(3).unwrap().as_bytes(), &[0x07]);
        assert_eq!(BlockBitmap::<4>::new(10).unwrap().as_bytes(), &[0xff, 0x03]);
        assert_eq!(BlockBitmap::<4>::new(16).unwrap().as_bytes(), &[0xff, 0xff]);
        assert_eq!(BlockBitmap::<4>::new(32).unwrap().as_bytes(), &[0xff; 4]);
        let empty = BlockBitmap::<4>::new(0).unwrap();
        assert_eq!(empty.as_bytes(), &[] as &[u8]);
        assert!(empty.is_complete());
        assert_eq!(empty.window(4), None);
    }

    #[test]
    fn reference_trace_bitmaps() {
        // §3.1 / §4.7: 10240-byte file, 3 blocks of 4096.
        let mut b = DefaultBlockBitmap::for_file(10240, 4096).unwrap();
        assert_eq!(b.block_count(), 3);
        assert_eq!(b.window(128), Some((0, &[0x07][..])));
        assert_eq!(b.mark_received(0), Ok(true));
        assert_eq!(b.as_bytes(), &[0x06]);
        assert_eq!(b.mark_received(1), Ok(true));
        assert_eq!(b.as_bytes(), &[0x04]);
        let mut only1 = DefaultBlockBitmap::new(3).unwrap();
        only1.mark_received(1).unwrap();
        assert_eq!(only1.as_bytes(), &[0x05]);
    }

    #[test]
    fn capacity_is_checked_not_corrupted() {
        assert_eq!(DefaultBlockBitmap::capacity(), 4096);
        assert!(DefaultBlockBitmap::new(4096).is_ok());
        assert_eq!(
            DefaultBlockBitmap::new(4097),
            Err(BitmapError::TooManyBlocks {
                blocks: 4097,
                capacity: 4096
            })
        );
        // 16 MiB at 4 KiB fits; one more byte does not.
        assert!(DefaultBlockBitmap::for_file(16 * 1024 * 1024, 4096).is_ok());
        assert!(DefaultBlockBitmap::for_file(16 * 1024 * 1024 + 1, 4096).is_err());
        assert!(DefaultBlockBitmap::for_file(u32::MAX, 1).is_err());
        assert_eq!(
            DefaultBlockBitmap::for_file(10, 0),
            Err(BitmapError::ZeroBlockSize)
        );
        assert!(BlockBitmap::<0>::new(1).is_err());
        assert!(BlockBitmap::<0>::new(0).is_ok());
    }

    #[test]
    fn out_of_range_and_duplicates() {
        let mut b = BlockBitmap::<2>::new(10).unwrap();
        assert_eq!(
            b.mark_received(10),
            Err(BitmapError::OutOfRange {
                index: 10,
                block_count: 10
            })
        );
        assert!(b.mark_received(u32::MAX).is_err());
        assert!(!b.is_wanted(10));
        assert_eq!(b.mark_received(9), Ok(true));
        assert_eq!(b.mark_received(9), Ok(false));
        assert_eq!(b.remaining(), 9);
        assert_eq!(b.received(), 1);
        assert_eq!(b.mark_wanted(9), Ok(true));
        assert_eq!(b.mark_wanted(9), Ok(false));
        assert_eq!(b.remaining(), 10);
    }

    #[test]
    fn window_follows_first_wanted() {
        // Service doc example: blocks {20,21,24,43} with offset 20 → 0x130080 (§3.2); here the
        // offset is byte aligned (16), so bits shift by 4.
        let wanted = [20u32, 21, 24, 43];
        let received: Vec<u32> = (0..48).filter(|k| !wanted.contains(k)).collect();
        let b = BlockBitmap::<6>::from_received(48, received).unwrap();
        assert_eq!(b.first_wanted(), Some(20));
        let (o, w) = b.window(3).unwrap();
        assert_eq!(o, 16);
        assert_eq!(w, &[0x30, 0x01, 0x00]);
        let (o, w) = b.window(0).unwrap();
        assert_eq!((o, w), (16, &[0x30][..]));
        assert_eq!(b.iter_wanted().collect::<Vec<_>>(), wanted);
        // n = 1 needs only the first byte; n = 3 the first two; n = 4 up to block 43
        assert_eq!(b.window_limited(8, 1), Some((16, &[0x30][..])));
        assert_eq!(b.window_limited(8, 2), Some((16, &[0x30][..])));
        assert_eq!(b.window_limited(8, 3), Some((16, &[0x30, 0x01][..])));
        assert_eq!(
            b.window_limited(8, 4),
            Some((16, &[0x30, 0x01, 0x00, 0x08][..]))
        );
        assert_eq!(b.window_limited(3, 4), b.window(3));
    }

    #[test]
    fn from_bytes_recounts_and_masks() {
        let b = BlockBitmap::<4>::from_bytes(10, &[0xf0, 0xff]).unwrap();
        assert_eq!(b.as_bytes(), &[0xf0, 0x03]);
        assert_eq!(b.remaining(), 6);
        assert_eq!(
            BlockBitmap::<4>::from_bytes(10, &[0xff]),
            Err(BitmapError::BadLength {
                expected: 2,
                actual: 1
            })
        );
    }

    #[derive(Debug, Clone)]
    enum Op {
        Recv(u32),
        Want(u32),
    }

    fn ops() -> impl Strategy<Value = (u32, Vec<Op>)> {
        (0u32..=256).prop_flat_map(|n| {
            let op = prop_oneof![
                3 => (0..n + 4).prop_map(Op::Recv),
                1 => (0..n + 4).prop_map(Op::Want),
            ];
            (Just(n), proptest::collection::vec(op, 0..300))
        })
    }

    proptest! {
        #[test]
        fn matches_a_vec_bool_model((n, ops) in ops(), max_bytes in 0usize..40) {
            let mut b = BlockBitmap::<32>::new(n).unwrap();
            let mut model = std::vec![true; n as usize];
            for op in ops {
                let (k, want) = match op { Op::Recv(k) => (k, false), Op::Want(k) => (k, true) };
                let r = if want { b.mark_wanted(k) } else { b.mark_received(k) };
                match model.get_mut(k as usize) {
                    Some(m) => {
                        prop_assert_eq!(r, Ok(*m != want));
                        *m = want;
                    }
                    None => prop_assert!(r.is_err()),
                }
                prop_assert_eq!(b.remaining() as usize, model.iter().filter(|w| **w).count());
            }
            for (k, m) in model.iter().enumerate() {
                prop_assert_eq!(b.is_wanted(k as u32), *m);
            }
            let bytes = b.as_bytes();
            prop_assert_eq!(bytes.len(), (n as usize).div_ceil(8));
            let ones: u32 = bytes.iter().map(|x| x.count_ones()).sum();
            prop_assert_eq!(ones, b.remaining());
            let wanted: Vec<u32> = (0..n).filter(|k| model[*k as usize]).collect();
            prop_assert_eq!(b.iter_wanted().collect::<Vec<_>>(), wanted.clone());
            prop_assert_eq!(b.first_wanted(), wanted.first().copied());

            match b.window(max_bytes) {
                None => prop_assert!(wanted.is_empty()),
                Some((o, w)) => {
                    let first = wanted[0];
                    prop_assert_eq!(o % 8, 0);
                    prop_assert!(o <= first && first < o + 8);
                    prop_assert!(!w.is_empty() && w.len() <= max_bytes.max(1));
                    let start = (o / 8) as usize;
                    prop_assert_eq!(w, &bytes[start..start + w.len()]);
                    // bit 0 of the window is block o
                    prop_assert!(w[0] & (1 << (first - o)) != 0);
                }
            }

            let limit = (max_bytes % 7) as u32;
            match (b.window(max_bytes), b.window_limited(max_bytes, limit)) {
                (None, None) => {}
                (Some((o, w)), Some((lo, lw))) => {
                    prop_assert_eq!(lo, o);
                    prop_assert!(w.starts_with(lw) && !lw.is_empty());
                    let in_w: u32 = w.iter().map(|x| x.count_ones()).sum();
                    let in_lw: u32 = lw.iter().map(|x| x.count_ones()).sum();
                    // all wanted blocks of the window up to the limit are kept, no extra byte
                    prop_assert!(in_lw >= in_w.min(limit.max(1)));
                    let without_last: u32 = lw[..lw.len() - 1].iter().map(|x| x.count_ones()).sum();
                    prop_assert!(without_last < limit.max(1));
                }
                other => prop_assert!(false, "{:?}", other),
            }

            let received: Vec<u32> = (0..n).filter(|k| !model[*k as usize]).collect();
            let rebuilt = BlockBitmap::<32>::from_received(n, received).unwrap();
            prop_assert_eq!(&rebuilt, &b);
            prop_assert_eq!(&BlockBitmap::<32>::from_bytes(n, bytes).unwrap(), &b);
        }
    }
}
