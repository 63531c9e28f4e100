//! [`ImageStorage`] for the inactive bank (spec §2.5): the OTA file `app_combined_s.bin` is a raw
//! image of a bank from its start and is written verbatim at offset 0 of the inactive bank
//! (0x1200_0000 in dual-bank mode), whichever physical bank that is.
//!
//! Built on [`NorFlashImageStorage`]: prepare erases the 32 KB sectors the file needs, writes
//! program whole 512-byte rows (blocks must be row-aligned; the last row of the file is padded
//! with the code-flash erase value), abort erases what was written. On top of it, when a write
//! covers the first 24 bytes the [`AppHeader`] is checked (see [`Config::check_app_header`]),
//! so a file the DBM would never boot is refused before it is stored.

use embedded_storage_async::nor_flash::NorFlash;
use ota_pal_traits::{FileInfo, ImageStorage, NorFlashImageStorage, PalError, PalErrorKind};

use crate::header::{AppHeader, HeaderError, APP_HEADER_LEN};
use crate::layout::Config;

/// Sub-code: the inactive bank does not lie inside the flash driver's window.
pub const SUB_BANK_OUTSIDE_FLASH: u32 = 0x310;

/// The OTA file in the inactive bank (see the [module docs](self)).
///
/// RAM: the flash driver plus 36 bytes of state (measured by `tests/ram_cost.rs`); a `write`
/// future holds one 512-byte row buffer.
#[derive(Debug)]
pub struct TraveoImageStorage<F> {
    inner: NorFlashImageStorage<F>,
    check_header: bool,
    sig_limit: u32,
}

impl<F: NorFlash> TraveoImageStorage<F> {
    /// Storage over `flash`, a driver whose offset 0 is CPU address `flash_base` and which
    /// covers the inactive bank ([`Config::inactive_bank`], [`Config::bank_size`] bytes).
    pub fn new(flash: F, flash_base: u32, cfg: &Config) -> Result<Self, PalError> {
        let offset = cfg
            .inactive_bank
            .checked_sub(flash_base)
            .ok_or(PalError::with_sub(
                PalErrorKind::Uninitialized,
                SUB_BANK_OUTSIDE_FLASH,
            ))?;
        let inner = NorFlashImageStorage::new(flash, offset, cfg.bank_size, cfg.code_erase_value)?;
        Ok(Self {
            inner,
            check_header: cfg.check_app_header,
            sig_limit: cfg.cm0_signature_limit,
        })
    }

    /// Read and decode the application header of the stored file.
    pub async fn read_header(&mut self) -> Result<AppHeader, PalError> {
        let mut buf = [0u8; APP_HEADER_LEN];
        self.inner.read(0, &mut buf).await?;
        AppHeader::decode(&buf)
            .map_err(|e| PalError::with_sub(PalErrorKind::FileClose, e.sub_code()))
    }

    /// Read the header of the stored file and check it against what the DBM boots.
    pub async fn check_header(&mut self, file: &FileInfo<'_>) -> Result<AppHeader, PalError> {
        let h = self.read_header().await?;
        h.check(file.size, self.sig_limit)
            .map_err(|e| PalError::with_sub(PalErrorKind::FileClose, e.sub_code()))?;
        Ok(h)
    }

    /// After a successful verification and hand-over: forget the file without erasing it, so the
    /// agent's closing abort keeps the staged image.
    pub fn release(&mut self) {
        self.inner.release();
    }

    /// The flash driver.
    pub fn flash(&mut self) -> &mut F {
        self.inner.flash()
    }
}

impl<F: NorFlash> ImageStorage for TraveoImageStorage<F> {
    fn capacity(&self) -> u32 {
        self.inner.capacity()
    }

    async fn prepare(&mut self, file: &FileInfo<'_>) -> Result<(), PalError> {
        self.inner.prepare(file).await
    }

    async fn resume(&mut self, file: &FileInfo<'_>) -> Result<(), PalError> {
        self.inner.resume(file).await
    }

    async fn write(&mut self, offset: u32, data: &[u8]) -> Result<(), PalError> {
        if self.check_header && offset == 0 {
            if let (Some(size), Some(head)) = (self.inner.file_size(), data.get(..APP_HEADER_LEN)) {
                AppHeader::decode(head)
                    .and_then(|h| h.check(size, self.sig_limit))
                    .map_err(|e| PalError::with_sub(PalErrorKind::FileClose, e.sub_code()))?;
            } else if self.inner.file_size().is_some() {
                // A first block shorter than the header: the file cannot hold one.
                return Err(PalError::with_sub(
                    PalErrorKind::FileClose,
                    HeaderError::Truncated.sub_code(),
                ));
            }
        }
        self.inner.write(offset, data).await
    }

    async fn read(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), PalError> {
        self.inner.read(offset, buf).await
    }

    async fn abort(&mut self) -> Result<(), PalError> {
        self.inner.abort().await
    }
}
