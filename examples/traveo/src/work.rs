//! The work flash as the PAL sees it: a window of the flash file (the simulated device of
//! `pal_traveo::sim`: both code banks, then the work flash at 0x7F0000), 16-byte programs and
//! 2 KB sectors.

use embedded_storage_async::nor_flash::{ErrorType, NorFlash, ReadNorFlash};
use qemu_mps2::flash::{FlashError, SemihostingFlash};

/// The whole flash file: the work flash's program and sector units (the code banks are only
/// read by `qemu-boot`, which plays the DBM).
pub type FileFlash = SemihostingFlash<16, 2048>;
/// Bytes of the flash file (`pal_traveo::sim::SIM_DEVICE_SIZE`).
pub const FILE_SIZE: usize = 2 * 0x3F_8000 + 0x3_0000;
/// Where the work flash starts in the file.
const WORK_OFFSET: u32 = 2 * 0x3F_8000;
/// Bytes of the large-sector work flash.
const WORK_SIZE: usize = 0x3_0000;

/// The work-flash window.
pub struct WorkFlash(pub FileFlash);

impl WorkFlash {
    fn at(offset: u32, len: usize) -> Result<u32, FlashError> {
        match (offset as usize).checked_add(len) {
            Some(end) if end <= WORK_SIZE => Ok(WORK_OFFSET + offset),
            _ => Err(FlashError::OutOfBounds),
        }
    }
}

impl ErrorType for WorkFlash {
    type Error = FlashError;
}

impl ReadNorFlash for WorkFlash {
    const READ_SIZE: usize = 1;

    async fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), FlashError> {
        self.0.read(Self::at(offset, bytes.len())?, bytes).await
    }

    fn capacity(&self) -> usize {
        WORK_SIZE
    }
}

impl NorFlash for WorkFlash {
    const WRITE_SIZE: usize = 16;
    const ERASE_SIZE: usize = 2048;

    async fn erase(&mut self, from: u32, to: u32) -> Result<(), FlashError> {
        let len = to.checked_sub(from).ok_or(FlashError::OutOfBounds)? as usize;
        self.0.erase(Self::at(from, len)?, WORK_OFFSET + to).await
    }

    async fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), FlashError> {
        self.0.write(Self::at(offset, bytes.len())?, bytes).await
    }
}
