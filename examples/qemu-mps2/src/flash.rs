//! A NOR flash whose bytes live in a host file, through semihosting.
//!
//! The file is the whole device: byte `i` of the file is flash offset `i`. It is created filled
//! with the erase value when missing (and extended with it when short), and every write goes to
//! the host at once, so the contents survive QEMU being stopped and started again (which is how
//! the examples emulate a reboot).
//!
//! NOR rules are enforced, not just documented:
//! - reads at any offset; writes of whole `WRITE` units at `WRITE`-aligned offsets; erases of
//!   whole `ERASE` sectors; anything outside the device is `OutOfBounds`;
//! - a write can only move bits away from the erase value: where a bit of the erase value is
//!   1 the stored bit becomes `old & new`, where it is 0 `old | new`. By default a write that
//!   asks to move a bit back (which real NOR silently ignores) is refused with `Other`, so that
//!   a PAL that forgets to erase fails loudly here instead of on a kit.
//!
//! The erase value is any byte (0xFF for most NOR, 0x00 for PSoC 6 internal flash).

use embedded_storage_async::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};

use crate::semihosting::{HostFile, OpenMode};

/// Why a flash operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlashError {
    /// Offset or length not a multiple of the write or erase unit.
    NotAligned,
    /// Outside the device.
    OutOfBounds,
    /// A write asked to move a bit back to the erase value without an erase (strict mode).
    NeedsErase,
    /// The host refused a semihosting file operation.
    Host,
}

impl NorFlashError for FlashError {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            Self::NotAligned => NorFlashErrorKind::NotAligned,
            Self::OutOfBounds => NorFlashErrorKind::OutOfBounds,
            Self::NeedsErase | Self::Host => NorFlashErrorKind::Other,
        }
    }
}

impl From<crate::semihosting::HostError> for FlashError {
    fn from(_: crate::semihosting::HostError) -> Self {
        Self::Host
    }
}

/// What a NOR cell holds after writing `new` over `old`, for a part that erases to `erased`.
pub const fn nor_program(old: u8, new: u8, erased: u8) -> u8 {
    (erased & old & new) | (!erased & (old | new))
}

/// [`SemihostingFlash::open`] for firmware that cannot go on without its flash: the file `path`
/// of `size` bytes erased to `erased`, or a `FAIL:` line naming it and exit status 1.
pub fn open_or_fail<const WRITE: usize, const ERASE: usize>(
    path: &str,
    size: usize,
    erased: u8,
) -> SemihostingFlash<WRITE, ERASE> {
    match SemihostingFlash::open(path, size, erased) {
        Ok(f) => f,
        Err(e) => {
            crate::log!("flash error {:?} on {}", e, path);
            crate::fail("cannot open a flash file")
        }
    }
}

/// A NOR flash of `size` bytes stored in a host file, with `WRITE`-byte write units and
/// `ERASE`-byte sectors.
#[derive(Debug)]
pub struct SemihostingFlash<const WRITE: usize, const ERASE: usize> {
    file: HostFile,
    size: usize,
    erased: u8,
    strict: bool,
}

/// Bytes moved per semihosting call.
const CHUNK: usize = 256;

impl<const WRITE: usize, const ERASE: usize> SemihostingFlash<WRITE, ERASE> {
    /// Opens (or creates, filled with `erased`) the host file `path` as a flash of `size` bytes.
    ///
    /// `size` must be a multiple of `ERASE`, and `ERASE` of `WRITE`.
    pub fn open(path: &str, size: usize, erased: u8) -> Result<Self, FlashError> {
        if WRITE == 0 || ERASE % WRITE != 0 || size % ERASE != 0 {
            return Err(FlashError::NotAligned);
        }
        let mut file = match HostFile::open(path, OpenMode::ReadWrite) {
            Ok(file) => file,
            // There but not writable: refuse rather than truncate someone's flash image.
            Err(e) if HostFile::open(path, OpenMode::Read).is_ok() => return Err(e.into()),
            Err(_) => HostFile::open(path, OpenMode::Create)?,
        };
        let len = file.len()?;
        if len < size {
            file.seek(len)?;
            let fill = [erased; CHUNK];
            let mut left = size - len;
            while left > 0 {
                let n = left.min(CHUNK);
                file.write_all(fill.get(..n).ok_or(FlashError::Host)?)?;
                left -= n;
            }
        }
        Ok(Self {
            file,
            size,
            erased,
            strict: true,
        })
    }

    /// Lets writes behave like silicon (`old & new` for 0xFF-erased parts) instead of refusing
    /// to move bits back toward the erase value.
    pub fn lenient(mut self) -> Self {
        self.strict = false;
        self
    }

    /// The erase value.
    pub fn erase_value(&self) -> u8 {
        self.erased
    }

    fn check(&self, offset: u32, len: usize) -> Result<usize, FlashError> {
        let start = offset as usize;
        match start.checked_add(len) {
            Some(end) if end <= self.size => Ok(start),
            _ => Err(FlashError::OutOfBounds),
        }
    }
}

impl<const WRITE: usize, const ERASE: usize> ErrorType for SemihostingFlash<WRITE, ERASE> {
    type Error = FlashError;
}

impl<const WRITE: usize, const ERASE: usize> ReadNorFlash for SemihostingFlash<WRITE, ERASE> {
    const READ_SIZE: usize = 1;

    async fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), FlashError> {
        let start = self.check(offset, bytes.len())?;
        if bytes.is_empty() {
            return Ok(());
        }
        self.file.seek(start)?;
        self.file.read_exact(bytes)?;
        Ok(())
    }

    fn capacity(&self) -> usize {
        self.size
    }
}

impl<const WRITE: usize, const ERASE: usize> NorFlash for SemihostingFlash<WRITE, ERASE> {
    const WRITE_SIZE: usize = WRITE;
    const ERASE_SIZE: usize = ERASE;

    async fn erase(&mut self, from: u32, to: u32) -> Result<(), FlashError> {
        if to < from {
            return Err(FlashError::OutOfBounds);
        }
        let start = self.check(from, (to - from) as usize)?;
        if from as usize % ERASE != 0 || to as usize % ERASE != 0 {
            return Err(FlashError::NotAligned);
        }
        self.file.seek(start)?;
        let fill = [self.erased; CHUNK];
        let mut left = (to - from) as usize;
        while left > 0 {
            let n = left.min(CHUNK);
            self.file
                .write_all(fill.get(..n).ok_or(FlashError::Host)?)?;
            left -= n;
        }
        Ok(())
    }

    async fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), FlashError> {
        let start = self.check(offset, bytes.len())?;
        if start % WRITE != 0 || bytes.len() % WRITE != 0 {
            return Err(FlashError::NotAligned);
        }
        let mut old = [0u8; CHUNK];
        for (i, new) in bytes.chunks(CHUNK).enumerate() {
            let at = start + i * CHUNK;
            let cells = old.get_mut(..new.len()).ok_or(FlashError::Host)?;
            self.file.seek(at)?;
            self.file.read_exact(cells)?;
            for (cell, &n) in cells.iter_mut().zip(new) {
                let programmed = nor_program(*cell, n, self.erased);
                if self.strict && programmed != n {
                    return Err(FlashError::NeedsErase);
                }
                *cell = programmed;
            }
            self.file.seek(at)?;
            self.file.write_all(cells)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::nor_program;

    #[test]
    fn on_a_part_erased_to_ff_a_write_only_clears_bits() {
        assert_eq!(nor_program(0xFF, 0x5A, 0xFF), 0x5A);
        assert_eq!(nor_program(0x5A, 0xFF, 0xFF), 0x5A);
        assert_eq!(nor_program(0xF0, 0x3C, 0xFF), 0x30);
    }

    #[test]
    fn on_a_part_erased_to_00_a_write_only_sets_bits() {
        assert_eq!(nor_program(0x00, 0x5A, 0x00), 0x5A);
        assert_eq!(nor_program(0x5A, 0x00, 0x00), 0x5A);
        assert_eq!(nor_program(0xF0, 0x3C, 0x00), 0xFC);
    }

    #[test]
    fn writing_the_erase_value_changes_nothing_and_any_value_lands_on_an_erased_cell() {
        for erased in [0x00, 0xFF, 0xA5] {
            for old in 0..=255u8 {
                assert_eq!(nor_program(old, erased, erased), old);
            }
            for new in 0..=255u8 {
                assert_eq!(nor_program(erased, new, erased), new);
            }
        }
    }
}
