//! [`ImageStorage`] for the staging area at 0x90000 (spec §3.5 CreateFileForRx, WriteBlock).

use embedded_storage_async::nor_flash::NorFlash;
use ota_pal_traits::{FileInfo, ImageStorage, NorFlashImageStorage, PalError, PalErrorKind};

use crate::layout::{Layout, DESCRIPTOR_BLOCK_SIZE, ERASE_SIZE, ERASE_VALUE};
use crate::nvm;

/// Stores the downloaded application, raw, at `0x90000 + offset` (§3.5: the file *is* the
/// application binary; the descriptor is written later by
/// [`Same54Boot::request_trial_boot`](crate::Same54Boot)).
///
/// * [`prepare`](ImageStorage::prepare) erases the whole update bank 0x90000..0xFFFFF, the
///   upper descriptor block first (`AWS_FlashEraseUpdateBank`); a file larger than 0x6E000
///   bytes is [`PalErrorKind::RxFileTooLarge`].
/// * [`write`](ImageStorage::write) programs quad words at 0x90000 + offset; a write past the
///   file (and so past 0x6E000) fails. Blocks must start on a 16-byte boundary and, except the
///   last one, end on one (AWS block sizes are multiples of 256).
/// * [`abort`](ImageStorage::abort) erases the update bank again when a file is open (the
///   reference's `SetPlatformImageState(Aborted)` outside a trial); with nothing open it does
///   nothing. After the hand-over call [`release`](Self::release) so that the agent's
///   closing abort keeps the staged image.
///
/// `F` is a driver for the whole 1 MB NVM (offsets are NVM addresses). On a board the storage
/// and [`Same54Boot`](crate::Same54Boot) each need one; share one driver between them with a
/// mutex-protected wrapper (e.g. `embassy-embedded-hal`'s flash partition over the whole NVM).
///
/// RAM: the flash driver plus 32 bytes.
#[derive(Debug)]
pub struct Same54Storage<F> {
    inner: NorFlashImageStorage<F>,
    layout: Layout,
}

impl<F: NorFlash> Same54Storage<F> {
    /// Storage over `flash` with `layout`. Fails with [`PalErrorKind::Uninitialized`] when the
    /// flash geometry does not fit (see [`SUB_BAD_FLASH`](crate::SUB_BAD_FLASH)).
    pub fn new(flash: F, layout: Layout) -> Result<Self, PalError> {
        nvm::check_geometry(&flash, &layout)?;
        let inner = NorFlashImageStorage::new(
            flash,
            layout.staging_addr(),
            layout.app_max_size,
            ERASE_VALUE,
        )?;
        Ok(Self { inner, layout })
    }

    /// The layout this storage writes to.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The flash driver.
    pub fn flash(&mut self) -> &mut F {
        self.inner.flash()
    }

    /// Close the file without erasing it: the image has been verified and handed to the
    /// bootloader, so a later [`abort`](ImageStorage::abort) must keep it.
    pub fn release(&mut self) {
        self.inner.release();
    }

    /// Size of the open file, if any.
    pub fn file_size(&self) -> Option<u32> {
        self.inner.file_size()
    }

    /// Give the flash driver back.
    pub fn into_inner(self) -> F {
        self.inner.into_inner()
    }
}

impl<F: NorFlash> ImageStorage for Same54Storage<F> {
    fn capacity(&self) -> u32 {
        self.layout.app_max_size
    }

    async fn prepare(&mut self, file: &FileInfo<'_>) -> Result<(), PalError> {
        if file.size > self.layout.app_max_size {
            return Err(PalError::new(PalErrorKind::RxFileTooLarge));
        }
        self.inner.release();
        let k = PalErrorKind::RxFileCreateFailed;
        let up = self.layout.upper_descriptor_addr();
        let staging = self.layout.staging_addr();
        // The whole update bank, each sector once: descriptor block, the part past the file,
        // then (inside `prepare` of the inner storage) the sectors the file covers.
        nvm::erase(self.inner.flash(), up, up + DESCRIPTOR_BLOCK_SIZE, k).await?;
        let file_end = staging + file.size.div_ceil(ERASE_SIZE) * ERASE_SIZE;
        nvm::erase(self.inner.flash(), file_end.min(up), up, k).await?;
        self.inner.prepare(file).await
    }

    async fn resume(&mut self, file: &FileInfo<'_>) -> Result<(), PalError> {
        if file.size > self.layout.app_max_size {
            return Err(PalError::new(PalErrorKind::RxFileTooLarge));
        }
        self.inner.resume(file).await
    }

    async fn write(&mut self, offset: u32, data: &[u8]) -> Result<(), PalError> {
        self.inner.write(offset, data).await
    }

    async fn read(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), PalError> {
        self.inner.read(offset, buf).await
    }

    async fn abort(&mut self) -> Result<(), PalError> {
        if self.inner.file_size().is_none() {
            return Ok(());
        }
        let layout = self.layout;
        nvm::erase_update_bank(self.inner.flash(), &layout, PalErrorKind::AbortFailed).await?;
        self.inner.release();
        Ok(())
    }
}
