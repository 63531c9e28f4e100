//! The Cypress MCUboot decision logic over one simulated PSoC 6 flash (`ota_pal_traits::sim`).
//!
//! [`SimBootloader::boot`] reads the same trailer bytes as the real bootloader, walks the
//! swap-type table (§1.5), validates the secondary before upgrading and the primary before
//! booting (SHA256 TLV, KEYHASH, ECDSA P-256 signature, with [`check_image`]), performs the
//! overwrite copy or the swap, rewrites the trailers and reports what runs.
//!
//! # What is modelled, and how
//!
//! * **Geometry**: one 2 MB device, 512-byte write and erase rows, erased value 0x00
//!   ([`sim_config`]); the PAL and the bootloader use views of the same device.
//! * **Overwrite-only** (`v1.5.0-cypress`): TEST or PERM → validate the secondary (invalid:
//!   erase its header and trailer rows, boot the primary); erase the primary slot (one erase
//!   operation; the exact extent v1.5.0 erases is not confirmed by the spec), copy the image
//!   (header + payload + TLVs) in 4 KB writes, then erase the secondary trailer row. Every
//!   step goes through the flash, so power cuts land inside the copy; the copy is restartable
//!   as on the real bootloader because the secondary MAGIC is erased last.
//! * **Swap** (`v1.8.x-cypress`): TEST/PERM exchange the slot contents (all rows but the
//!   trailer row), then write the primary trailer (MAGIC, copy_done = 1, swap_info, image_ok =
//!   1 for PERM) and erase the secondary trailer; REVERT exchanges them back and writes image_ok
//!   = 1 so it does not revert again. The exchange and trailer rewrite are modelled as
//!   **atomic** (done outside the power-cut counter): the real bootloader makes them resumable
//!   with its swap-status partition, whose record format (§1.7 point 5) this simulation does
//!   not reproduce. The status partition and the scratch area are left untouched by the sim, so
//!   tests can prove the PAL never writes them. The real v1.8 bootloader mirrors trailer state
//!   into the status partition; the sim keeps it in the slot trailers (§1.4 standard layout).

use ota_pal_traits::sim::{SimConfig, SimDevice, SimError, SimFlash};
use ota_pal_traits::Sha256EcdsaP256Verifier;

use crate::flash::{self, FlashRegion, ROW};
use crate::image::{check_image, ImageCheck, ImageVersion};
use crate::layout::{Area, Config, UpgradeMode, ERASE_VALUE, FLASH_SIZE, ROW_SIZE};
use crate::trailer::{
    decide, put_flag, put_magic, swap_info, SwapType, COPY_DONE_AT, FLAG_SET, IMAGE_OK_AT,
    SWAP_INFO_AT, SWAP_TYPE_REVERT, TRAILER_LEN,
};
use ota_pal_traits::sim::block_on;
use ota_pal_traits::PalErrorKind;

/// A view of the whole simulated internal flash with PSoC 6 rows.
pub type Psoc6SimFlash<'d, M> = SimFlash<'d, M, 512, 512>;

/// The PSoC 6 internal flash geometry: 512-byte rows, erased to 0x00.
pub const fn sim_config() -> SimConfig {
    SimConfig::new(ROW, ROW).erase_value(ERASE_VALUE)
}

/// Bytes of the simulated device (2 MB).
pub const SIM_FLASH_BYTES: usize = FLASH_SIZE as usize;

/// A view of the whole device, as the PAL's flash driver.
pub fn flash_view<M: AsRef<[u8]> + AsMut<[u8]>>(
    dev: &SimDevice<M>,
) -> Result<Psoc6SimFlash<'_, M>, SimError> {
    dev.view::<512, 512>(0, FLASH_SIZE)
}

/// Program `image` at the start of `area`, as a factory programmer would (no counters, no
/// power cuts). The rest of the area is left as it is.
pub fn program_area<M: AsRef<[u8]> + AsMut<[u8]>>(
    dev: &SimDevice<M>,
    area: &Area,
    image: &[u8],
) -> Result<(), SimError> {
    let at = area.offset() as usize;
    dev.modify(|m| {
        m.get_mut(at..at + image.len())
            .map(|d| d.copy_from_slice(image))
            .ok_or(SimError::OutOfBounds)
    })?
}

/// Which slot the bootloader started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// Slot 0. MCUboot always runs the primary slot (it copies or swaps into it).
    Primary,
}

/// What a simulated reset ends with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootOutcome {
    /// An image passed validation and runs.
    Booted {
        /// The slot it runs from.
        slot: Slot,
        /// Its header version.
        version: ImageVersion,
        /// The upgrade the bootloader performed on the way.
        swap: SwapType,
    },
    /// Nothing valid in the primary slot: the device is bricked.
    NoBootableImage,
    /// The power went off while the bootloader ran; power on and boot again.
    PowerLost,
}

/// The simulated bootloader of one [`Config`].
#[derive(Debug)]
pub struct SimBootloader<'d, M> {
    dev: &'d SimDevice<M>,
    config: Config,
    key: Option<Sha256EcdsaP256Verifier>,
}

fn row_range(off: u32, len: usize) -> core::ops::Range<usize> {
    off as usize..off as usize + len
}

impl<'d, M: AsRef<[u8]> + AsMut<[u8]>> SimBootloader<'d, M> {
    /// A bootloader built with `MCUBOOT_SIGN_EC256` for `key` (`None`: an unsigned build that
    /// checks the SHA256 TLV only, as the anycloud 1.x README's "Prepare MCUbootApp" makes).
    pub fn new(
        dev: &'d SimDevice<M>,
        config: Config,
        key: Option<Sha256EcdsaP256Verifier>,
    ) -> Self {
        Self { dev, config, key }
    }

    fn valid(&self, c: &ImageCheck) -> bool {
        if self.key.is_some() {
            c.is_valid_signed()
        } else {
            c.is_valid_unsigned()
        }
    }

    fn check(&self, area: &Area) -> Result<ImageCheck, SimError> {
        let mut f = flash_view(self.dev)?;
        let mut scratch = [0u8; 1024];
        let r = block_on(check_image(
            &mut FlashRegion {
                flash: &mut f,
                offset: area.offset(),
                len: self.config.capacity(),
            },
            self.key.as_ref(),
            &mut scratch,
        ));
        r.map_err(|_| self.lost())
    }

    fn lost(&self) -> SimError {
        if self.dev.is_powered().unwrap_or(false) {
            SimError::OutOfBounds
        } else {
            SimError::PowerLost
        }
    }

    /// Reset the device: decide, upgrade, validate, and report what runs.
    pub fn boot(&mut self) -> BootOutcome {
        match self.try_boot() {
            Ok(o) => o,
            Err(SimError::PowerLost) => BootOutcome::PowerLost,
            Err(_) => BootOutcome::NoBootableImage,
        }
    }

    fn try_boot(&mut self) -> Result<BootOutcome, SimError> {
        let c = self.config;
        let mut f = flash_view(self.dev)?;
        let k = PalErrorKind::Uninitialized;
        let (p, s) = block_on(async {
            let p = flash::read_trailer(&mut f, &c.primary, ERASE_VALUE, k).await?;
            let s = flash::read_trailer(&mut f, &c.secondary, ERASE_VALUE, k).await?;
            Ok::<_, ota_pal_traits::PalError>((p, s))
        })
        .map_err(|_| self.lost())?;
        let mut swap = decide(&p, &s);
        match (c.mode, swap) {
            (_, SwapType::Test | SwapType::Perm) => {
                let chk = self.check(&c.secondary)?;
                if !self.valid(&chk) {
                    // MCUboot erases a secondary image that fails validation.
                    self.erase_rows(c.secondary.offset(), ROW_SIZE)?;
                    self.erase_rows(c.secondary.trailer_row_offset(), ROW_SIZE)?;
                    swap = SwapType::None;
                } else if c.mode == UpgradeMode::OverwriteOnly {
                    self.overwrite(&chk)?;
                } else {
                    self.exchange(swap)?;
                }
            }
            (UpgradeMode::SwapWithStatus, SwapType::Revert) => self.exchange(swap)?,
            _ => swap = SwapType::None,
        }
        let chk = self.check(&c.primary)?;
        Ok(match chk.version() {
            Some(version) if self.valid(&chk) => BootOutcome::Booted {
                slot: Slot::Primary,
                version,
                swap,
            },
            _ => BootOutcome::NoBootableImage,
        })
    }

    fn erase_rows(&self, off: u32, len: u32) -> Result<(), SimError> {
        use embedded_storage_async::nor_flash::NorFlash;
        let mut f = flash_view(self.dev)?;
        block_on(f.erase(off, off + len))
    }

    fn overwrite(&self, chk: &ImageCheck) -> Result<(), SimError> {
        use embedded_storage_async::nor_flash::{NorFlash, ReadNorFlash};
        let c = self.config;
        let hashed = chk.header.and_then(|h| h.hashed_len()).unwrap_or(0);
        // Image length = hashed part + unprotected TLV area (its info header says how long).
        let mut f = flash_view(self.dev)?;
        let mut info = [0u8; 4];
        block_on(f.read(c.secondary.offset() + hashed, &mut info))?;
        let tot = u16::from_le_bytes([info[2], info[3]]) as u32;
        let len = (hashed + tot).div_ceil(ROW_SIZE) * ROW_SIZE;
        self.erase_rows(c.primary.offset(), c.primary.size)?;
        let mut buf = [0u8; 4096];
        let mut pos = 0u32;
        while pos < len {
            let n = (len - pos).min(buf.len() as u32) as usize;
            let chunk = buf.get_mut(..n).ok_or(SimError::OutOfBounds)?;
            block_on(f.read(c.secondary.offset() + pos, chunk))?;
            block_on(f.write(c.primary.offset() + pos, chunk))?;
            pos += n as u32;
        }
        self.erase_rows(c.secondary.trailer_row_offset(), ROW_SIZE)
    }

    /// The swap, atomic (see the module docs).
    fn exchange(&self, swap: SwapType) -> Result<(), SimError> {
        let c = self.config;
        let cap = c.capacity() as usize;
        let (p, s) = (c.primary.offset() as usize, c.secondary.offset() as usize);
        let (pt, st) = (
            c.primary.trailer_row_offset(),
            c.secondary.trailer_row_offset(),
        );
        let mut tail = [ERASE_VALUE; TRAILER_LEN];
        put_magic(&mut tail);
        put_flag(&mut tail, COPY_DONE_AT, FLAG_SET, ERASE_VALUE);
        let ty = match swap {
            SwapType::Test => 2,
            SwapType::Perm => 3,
            _ => SWAP_TYPE_REVERT,
        };
        put_flag(&mut tail, SWAP_INFO_AT, swap_info(0, ty), ERASE_VALUE);
        if swap != SwapType::Test {
            put_flag(&mut tail, IMAGE_OK_AT, FLAG_SET, ERASE_VALUE);
        }
        self.dev.modify(|m| {
            if p.max(s) + cap > m.len() {
                return;
            }
            for i in 0..cap {
                m.swap(p + i, s + i);
            }
            if let Some(srow) = m.get_mut(row_range(st, ROW)) {
                srow.fill(ERASE_VALUE);
            }
            if let Some(prow) = m.get_mut(row_range(pt, ROW)) {
                prow.fill(ERASE_VALUE);
                if let Some(t) = prow.get_mut(ROW - TRAILER_LEN..) {
                    t.copy_from_slice(&tail);
                }
            }
        })
    }
}
