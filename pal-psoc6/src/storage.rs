//! [`ImageStorage`] for the MCUboot secondary slot (board-formats §1.7 point 7: create erases
//! the secondary slot, writes land at slot offset 0, the file is the signed `.bin` from header
//! to end of TLVs).

use embedded_storage_async::nor_flash::NorFlash;
use ota_pal_traits::{FileInfo, ImageStorage, NorFlashImageStorage, PalError, PalErrorKind};

use crate::flash::{self, geometry_ok, SUB_BAD_GEOMETRY};
use crate::layout::{Config, UpgradeMode, ERASE_VALUE, ROW_SIZE};
use crate::trailer::{Flag, Magic};

/// Sub-code: `prepare` refused because the swap bootloader's revert copy of the previous image
/// sits in the secondary slot while the running image is on trial.
pub const SUB_TRIAL_RUNNING: u32 = 0x500;
/// Sub-code: the configuration is inconsistent (areas overlap or leave the flash).
pub const SUB_BAD_CONFIG: u32 = 0x501;

/// What both PAL constructors refuse: a flash driver without PSoC 6 geometry
/// (`Uninitialized` / [`SUB_BAD_GEOMETRY`]) or an inconsistent `config`
/// (`Uninitialized` / [`SUB_BAD_CONFIG`]), checked in that order.
pub(crate) fn check_setup<F: NorFlash>(config: &Config) -> Result<(), PalError> {
    if !geometry_ok::<F>() {
        return Err(PalError::with_sub(
            PalErrorKind::Uninitialized,
            SUB_BAD_GEOMETRY,
        ));
    }
    if !config.is_consistent() {
        return Err(PalError::with_sub(
            PalErrorKind::Uninitialized,
            SUB_BAD_CONFIG,
        ));
    }
    Ok(())
}

/// The download goes to the secondary slot: bytes `[0, capacity)` where
/// `capacity = slot size - 512` (the last row is the trailer's, see [`Config::capacity`]).
///
/// * `prepare` first erases the secondary trailer row (so no stale MAGIC can make the
///   bootloader take a half-written image), then the rows the file needs. In swap mode it
///   refuses while an image runs on trial ([`SUB_TRIAL_RUNNING`]): the secondary then holds the
///   image MCUboot reverts to.
/// * `write` takes any block at a row-aligned offset; only the file's last block may end
///   inside a row. `abort` erases what was written. Never call `abort` after
///   [`request_trial_boot`](ota_pal_traits::BootControl::request_trial_boot): use
///   [`release`](Self::release).
///
/// The swap-status partition and the scratch area are never addressed.
///
/// RAM: the driver, the [`Config`] and a few words (96 B with the 16-byte sim driver handle);
/// `prepare` futures hold a 512-byte row buffer.
#[derive(Debug)]
pub struct Psoc6ImageStorage<F> {
    inner: NorFlashImageStorage<F>,
    config: Config,
    resumed: bool,
}

impl<F: NorFlash> Psoc6ImageStorage<F> {
    /// Storage over the secondary slot of `config`. `flash` covers the internal flash from
    /// [`FLASH_BASE`](crate::layout::FLASH_BASE) with 512-byte erase rows.
    pub fn new(flash: F, config: Config) -> Result<Self, PalError> {
        check_setup::<F>(&config)?;
        let inner = NorFlashImageStorage::new(
            flash,
            config.secondary.offset(),
            config.capacity(),
            ERASE_VALUE,
        )?;
        Ok(Self {
            inner,
            config,
            resumed: false,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Forget the open file without erasing it (after the hand-over to the bootloader).
    pub fn release(&mut self) {
        self.inner.release();
    }

    /// The flash driver.
    pub fn flash(&mut self) -> &mut F {
        self.inner.flash()
    }

    /// Give the flash driver back.
    pub fn into_inner(self) -> F {
        self.inner.into_inner()
    }
}

impl<F: NorFlash> ImageStorage for Psoc6ImageStorage<F> {
    fn capacity(&self) -> u32 {
        self.inner.capacity()
    }

    async fn prepare(&mut self, file: &FileInfo<'_>) -> Result<(), PalError> {
        if file.size > self.capacity() {
            return Err(PalError::new(PalErrorKind::RxFileTooLarge));
        }
        let k = PalErrorKind::RxFileCreateFailed;
        let cfg = self.config;
        if cfg.mode == UpgradeMode::SwapWithStatus {
            let p = flash::read_trailer(self.inner.flash(), &cfg.primary, ERASE_VALUE, k).await?;
            if p.magic == Magic::Good && p.copy_done == Flag::Set && p.image_ok == Flag::Unset {
                return Err(PalError::with_sub(k, SUB_TRIAL_RUNNING));
            }
        }
        self.inner.release();
        self.resumed = false;
        flash::erase_row_if_dirty(
            self.inner.flash(),
            cfg.secondary.trailer_row_offset(),
            ERASE_VALUE,
            k,
        )
        .await?;
        self.inner.prepare(file).await
    }

    async fn resume(&mut self, file: &FileInfo<'_>) -> Result<(), PalError> {
        self.inner.resume(file).await?;
        self.resumed = true;
        Ok(())
    }

    /// After [`resume`](ImageStorage::resume) the rows of the block are erased first: a block
    /// whose write a power cut tore is not in the journal and is written again, and PSoC 6
    /// rows are rewritten by erase + program (`Cy_Flash_WriteRow`), never programmed over.
    async fn write(&mut self, offset: u32, data: &[u8]) -> Result<(), PalError> {
        let fits = self
            .inner
            .file_size()
            .zip(offset.checked_add(data.len() as u32))
            .is_some_and(|(size, end)| end <= size);
        if self.resumed && fits && !data.is_empty() && offset % ROW_SIZE == 0 {
            let from = self.config.secondary.offset() + offset;
            let to = from + (data.len() as u32).div_ceil(ROW_SIZE) * ROW_SIZE;
            let cap_end = self.config.secondary.offset() + self.capacity();
            self.inner
                .flash()
                .erase(from, to.min(cap_end))
                .await
                .map_err(|e| {
                    PalError::with_sub(PalErrorKind::FileClose, ota_pal_traits::flash_sub_code(&e))
                })?;
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
