//! A file-backed simulated NOR flash: `ota_pal_traits::sim::SimDevice` loaded from
//! `<state>/flash.bin` at start, and every write or erase written through to the file at once,
//! so a killed device keeps everything the flash had.

use std::cell::RefCell;
use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use anyhow::{Context, Result};
use embedded_storage_async::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};
use ota_pal_traits::sim::{SimConfig, SimDevice, SimError};

/// Write unit of the simulated chip.
pub const WRITE: usize = 16;
/// Erase sector of the simulated chip.
pub const ERASE: usize = 4096;

/// The chip and its backing file.
pub struct PersistentChip {
    /// The simulated chip.
    pub dev: SimDevice<Vec<u8>>,
    file: RefCell<File>,
}

impl PersistentChip {
    /// Open `path` (created blank, `size` bytes of 0xFF, when missing). Returns the chip and
    /// whether it was created.
    pub fn open(path: &Path, size: u32, cfg: SimConfig, erase_value: u8) -> Result<(Self, bool)> {
        let created = !path.exists();
        let mem = if created {
            let mem = vec![erase_value; size as usize];
            std::fs::write(path, &mem).with_context(|| format!("writing {}", path.display()))?;
            mem
        } else {
            let mut mem =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            mem.resize(size as usize, erase_value);
            mem
        };
        let dev = SimDevice::new(mem, cfg).map_err(|e| anyhow::anyhow!("flash geometry: {e}"))?;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        Ok((
            Self {
                dev,
                file: RefCell::new(file),
            },
            created,
        ))
    }

    /// Copy `len` bytes from `at` of the chip to the file.
    fn sync(&self, at: u32, len: u32) -> std::io::Result<()> {
        let bytes = self
            .dev
            .inspect(|m| {
                m.get(at as usize..(at as usize).saturating_add(len as usize))
                    .map(<[u8]>::to_vec)
            })
            .ok()
            .flatten()
            .unwrap_or_default();
        let mut f = self.file.borrow_mut();
        f.seek(SeekFrom::Start(u64::from(at)))?;
        f.write_all(&bytes)
    }

    /// Write the whole chip to the file (after the bootloader changed it directly).
    pub fn sync_all(&self) -> Result<()> {
        let len = self.dev.len().map_err(|e| anyhow::anyhow!("flash: {e}"))?;
        self.sync(0, len)?;
        Ok(())
    }

    /// A window `[offset, offset + len)` that writes through.
    pub fn window<const W: usize, const E: usize>(
        &self,
        offset: u32,
        len: u32,
    ) -> Result<Window<'_, W, E>> {
        let inner = self
            .dev
            .view::<W, E>(offset, len)
            .map_err(|e| anyhow::anyhow!("flash window: {e}"))?;
        Ok(Window {
            chip: self,
            inner,
            base: offset,
        })
    }

    /// Raw bytes `[offset, offset + len)`.
    pub fn read(&self, offset: u32, len: u32) -> Vec<u8> {
        self.dev
            .inspect(|m| {
                m.get(offset as usize..(offset as usize).saturating_add(len as usize))
                    .map(<[u8]>::to_vec)
            })
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    /// Raw write (provisioning), written through.
    pub fn install(&self, offset: u32, data: &[u8]) -> Result<()> {
        self.dev
            .modify(|m| {
                if let Some(dst) = m.get_mut(offset as usize..offset as usize + data.len()) {
                    dst.copy_from_slice(data);
                }
            })
            .map_err(|e| anyhow::anyhow!("flash: {e}"))?;
        self.sync(offset, data.len() as u32)?;
        Ok(())
    }
}

/// A window of the chip.
pub struct Window<'c, const W: usize, const E: usize> {
    chip: &'c PersistentChip,
    inner: ota_pal_traits::sim::SimFlash<'c, Vec<u8>, W, E>,
    base: u32,
}

/// A flash or file error.
#[derive(Debug)]
pub enum FlashError {
    /// The simulated chip refused.
    Sim(SimError),
    /// The backing file could not be written.
    Io,
}

impl NorFlashError for FlashError {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            Self::Sim(e) => e.kind(),
            Self::Io => NorFlashErrorKind::Other,
        }
    }
}

impl<const W: usize, const E: usize> ErrorType for Window<'_, W, E> {
    type Error = FlashError;
}

impl<const W: usize, const E: usize> ReadNorFlash for Window<'_, W, E> {
    const READ_SIZE: usize = 1;

    async fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), FlashError> {
        self.inner
            .read(offset, bytes)
            .await
            .map_err(FlashError::Sim)
    }

    fn capacity(&self) -> usize {
        ReadNorFlash::capacity(&self.inner)
    }
}

impl<const W: usize, const E: usize> NorFlash for Window<'_, W, E> {
    const WRITE_SIZE: usize = W;
    const ERASE_SIZE: usize = E;

    async fn erase(&mut self, from: u32, to: u32) -> Result<(), FlashError> {
        let r = self.inner.erase(from, to).await.map_err(FlashError::Sim);
        self.chip
            .sync(self.base + from, to.saturating_sub(from))
            .map_err(|_| FlashError::Io)?;
        r
    }

    async fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), FlashError> {
        let r = self
            .inner
            .write(offset, bytes)
            .await
            .map_err(FlashError::Sim);
        self.chip
            .sync(self.base + offset, bytes.len() as u32)
            .map_err(|_| FlashError::Io)?;
        r
    }
}
