//! Regions of the flash file as the PAL sees them. The file is the simulated device of
//! `pal_traveo::sim`: code bank 0 (lower) at 0, code bank 1 (upper) at `BANK_SIZE`, then the
//! work flash at `2 * BANK_SIZE`; each region has its own program and erase units.

use embedded_storage_async::nor_flash::{ErrorType, NorFlash, ReadNorFlash};
use pal_traveo::layout::{
    BANK_SIZE, CODE_ROW_SIZE, CODE_SECTOR_SIZE, WORK_FLASH_LARGE_SIZE, WORK_PROGRAM_SIZE,
    WORK_SECTOR_SIZE,
};
use pal_traveo::Bank;
use qemu_mps2::flash::{FlashError, SemihostingFlash};

/// The whole flash file, in the finest units of its regions (the work flash's 16-byte programs
/// and 2 KB sectors): every region's units are multiples of these.
pub type FileFlash = SemihostingFlash<16, 2048>;
/// Bytes of the flash file (`pal_traveo::sim::SIM_DEVICE_SIZE`).
pub const FILE_SIZE: usize = (2 * BANK_SIZE + WORK_FLASH_LARGE_SIZE) as usize;
/// Where the work flash starts in the file.
const WORK_OFFSET: u32 = 2 * BANK_SIZE;

/// A window `[start, start + len)` of the flash file with `WRITE`-byte programs and
/// `ERASE`-byte sectors.
pub struct Region<const WRITE: usize, const ERASE: usize> {
    file: FileFlash,
    start: u32,
    len: u32,
}

/// The large-sector work flash (the boot control's marker and trial records).
pub type WorkFlash = Region<{ WORK_PROGRAM_SIZE as usize }, { WORK_SECTOR_SIZE as usize }>;
/// One code-flash bank (the image storage writes the inactive one).
pub type CodeBank = Region<{ CODE_ROW_SIZE as usize }, { CODE_SECTOR_SIZE as usize }>;

impl WorkFlash {
    /// The work flash of `file`.
    pub fn work(file: FileFlash) -> Self {
        Self {
            file,
            start: WORK_OFFSET,
            len: WORK_FLASH_LARGE_SIZE,
        }
    }
}

impl CodeBank {
    /// Code bank `bank` of `file`.
    pub fn bank(file: FileFlash, bank: Bank) -> Self {
        let start = match bank {
            Bank::Lower => 0,
            Bank::Upper => BANK_SIZE,
        };
        Self {
            file,
            start,
            len: BANK_SIZE,
        }
    }
}

impl<const WRITE: usize, const ERASE: usize> Region<WRITE, ERASE> {
    fn at(&self, offset: u32, len: usize) -> Result<u32, FlashError> {
        match offset.checked_add(u32::try_from(len).map_err(|_| FlashError::OutOfBounds)?) {
            Some(end) if end <= self.len => Ok(self.start + offset),
            _ => Err(FlashError::OutOfBounds),
        }
    }
}

impl<const WRITE: usize, const ERASE: usize> ErrorType for Region<WRITE, ERASE> {
    type Error = FlashError;
}

impl<const WRITE: usize, const ERASE: usize> ReadNorFlash for Region<WRITE, ERASE> {
    const READ_SIZE: usize = 1;

    async fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), FlashError> {
        let at = self.at(offset, bytes.len())?;
        self.file.read(at, bytes).await
    }

    fn capacity(&self) -> usize {
        self.len as usize
    }
}

impl<const WRITE: usize, const ERASE: usize> NorFlash for Region<WRITE, ERASE> {
    const WRITE_SIZE: usize = WRITE;
    const ERASE_SIZE: usize = ERASE;

    async fn erase(&mut self, from: u32, to: u32) -> Result<(), FlashError> {
        let len = to.checked_sub(from).ok_or(FlashError::OutOfBounds)? as usize;
        if from as usize % ERASE != 0 || len % ERASE != 0 {
            return Err(FlashError::NotAligned);
        }
        let at = self.at(from, len)?;
        self.file.erase(at, self.start + to).await
    }

    async fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), FlashError> {
        if offset as usize % WRITE != 0 || bytes.len() % WRITE != 0 {
            return Err(FlashError::NotAligned);
        }
        let at = self.at(offset, bytes.len())?;
        self.file.write(at, bytes).await
    }
}
