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
//! * **Swap** (`v1.8.x-cypress`): TEST/PERM exchange the slot contents, REVERT exchanges them
//!   back. The exchange covers the larger of the two images (header + payload + TLVs, whole
//!   rows) in 4 KB chunks through the scratch area (primary → scratch, secondary → primary,
//!   scratch → secondary; each step an erase and a program), then the primary trailer is
//!   rewritten (MAGIC, copy_done = 1, swap_info, and image_ok = 1 for PERM and REVERT, so a
//!   revert does not revert again) and the secondary trailer row erased. The swap is
//!   **resumable**: after every step a progress record is written to one of the first two rows
//!   of the swap-status partition (alternating, sequence-numbered, check word); at the next
//!   reset an interrupted swap is finished before anything else, as MCUboot does. That record
//!   is the simulation's own format, **not** the Cypress swap-status record of §1.7 point 5, and
//!   the real v1.8 bootloader also mirrors trailer state into the status partition, which the
//!   sim does not (it keeps trailers in the slots, §1.4 standard layout). The PAL never touches
//!   the status partition or the scratch area (tested); only the simulated bootloader does.

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
        if c.mode == UpgradeMode::SwapWithStatus {
            if let Some(rec) = self.read_record()? {
                // An interrupted swap: MCUboot finishes it before anything else.
                self.resume(rec)?;
                let chk = self.check(&c.primary)?;
                let swap = match rec.kind {
                    2 => SwapType::Test,
                    3 => SwapType::Perm,
                    _ => SwapType::Revert,
                };
                return Ok(match chk.version() {
                    Some(version) if self.valid(&chk) => BootOutcome::Booted {
                        slot: Slot::Primary,
                        version,
                        swap,
                    },
                    _ => BootOutcome::NoBootableImage,
                });
            }
        }
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

    /// The sim's swap progress record, if a swap was interrupted.
    fn read_record(&self) -> Result<Option<SwapRecord>, SimError> {
        use embedded_storage_async::nor_flash::ReadNorFlash;
        let Some(status) = self.config.status else {
            return Ok(None);
        };
        let mut f = flash_view(self.dev)?;
        let mut best: Option<SwapRecord> = None;
        for row in 0..2u32 {
            let mut b = [0u8; RECORD_LEN];
            block_on(f.read(status.offset() + row * ROW_SIZE, &mut b))?;
            if let Some(r) = SwapRecord::decode(&b) {
                if best.is_none_or(|x| r.seq > x.seq) {
                    best = Some(r);
                }
            }
        }
        Ok(best)
    }

    /// Write `rec` into the status row its sequence number selects (erase + program).
    fn write_record(&self, rec: &SwapRecord) -> Result<(), SimError> {
        use embedded_storage_async::nor_flash::NorFlash;
        let Some(status) = self.config.status else {
            return Err(SimError::BadGeometry);
        };
        let at = status.offset() + (rec.seq % 2) * ROW_SIZE;
        let mut row = [ERASE_VALUE; ROW];
        if let Some(d) = row.get_mut(..RECORD_LEN) {
            d.copy_from_slice(&rec.encode());
        }
        let mut f = flash_view(self.dev)?;
        block_on(f.erase(at, at + ROW_SIZE))?;
        block_on(f.write(at, &row))
    }

    /// Copy `len` bytes (whole rows) from `src` to `dst`: erase, then program.
    fn copy(&self, src: u32, dst: u32, len: u32) -> Result<(), SimError> {
        use embedded_storage_async::nor_flash::{NorFlash, ReadNorFlash};
        let mut f = flash_view(self.dev)?;
        let mut buf = [0u8; CHUNK as usize];
        let chunk = buf.get_mut(..len as usize).ok_or(SimError::OutOfBounds)?;
        block_on(f.read(src, chunk))?;
        block_on(f.erase(dst, dst + len))?;
        block_on(f.write(dst, chunk))
    }

    /// Bytes the swap must move: the larger of the two images, in whole chunks, within the
    /// image area of the slot.
    fn swap_len(&self) -> Result<u32, SimError> {
        let c = self.config;
        let mut len = 0u32;
        for area in [c.primary, c.secondary] {
            let mut f = flash_view(self.dev)?;
            let d = block_on(crate::image::stated_digest(&mut FlashRegion {
                flash: &mut f,
                offset: area.offset(),
                len: c.capacity(),
            }))
            .map_err(|_| self.lost())?;
            if let Some((h, _)) = d {
                let mut info = [0u8; 4];
                let at = area.offset() + h.hashed_len().unwrap_or(0);
                use embedded_storage_async::nor_flash::ReadNorFlash;
                block_on(f.read(at, &mut info))?;
                let tot = u16::from_le_bytes([info[2], info[3]]) as u32;
                len = len.max(h.hashed_len().unwrap_or(0) + tot);
            }
        }
        let cap = c.capacity();
        Ok((len.div_ceil(ROW_SIZE) * ROW_SIZE).min(cap))
    }

    /// The swap, resumable: chunk by chunk through the scratch area, with a progress record in
    /// the status partition (see the module docs).
    fn exchange(&self, swap: SwapType) -> Result<(), SimError> {
        let size = self.swap_len()?;
        let kind = match swap {
            SwapType::Test => 2,
            SwapType::Perm => 3,
            _ => SWAP_TYPE_REVERT,
        };
        let rec = SwapRecord {
            seq: 1,
            kind,
            size,
            chunk: 0,
            step: 0,
            finishing: false,
        };
        self.write_record(&rec)?;
        self.resume(rec)
    }

    /// Continue the swap from `rec` to the end.
    fn resume(&self, mut rec: SwapRecord) -> Result<(), SimError> {
        let c = self.config;
        let (p, s, x) = (c.primary.offset(), c.secondary.offset(), c.scratch.offset());
        let chunks = rec.size.div_ceil(CHUNK);
        while !rec.finishing && rec.chunk < chunks {
            let off = rec.chunk * CHUNK;
            let len = (rec.size - off).min(CHUNK);
            match rec.step {
                0 => self.copy(p + off, x, len)?,
                1 => self.copy(s + off, p + off, len)?,
                _ => self.copy(x, s + off, len)?,
            }
            rec.seq += 1;
            if rec.step >= 2 {
                rec.step = 0;
                rec.chunk += 1;
            } else {
                rec.step += 1;
            }
            self.write_record(&rec)?;
        }
        if !rec.finishing {
            rec.finishing = true;
            rec.seq += 1;
            self.write_record(&rec)?;
        }
        // Trailers: primary gets MAGIC, copy_done, swap_info (and image_ok unless TEST); the
        // secondary trailer row is erased.
        let mut tail = [ERASE_VALUE; TRAILER_LEN];
        put_magic(&mut tail);
        put_flag(&mut tail, COPY_DONE_AT, FLAG_SET, ERASE_VALUE);
        put_flag(&mut tail, SWAP_INFO_AT, swap_info(0, rec.kind), ERASE_VALUE);
        if rec.kind != 2 {
            put_flag(&mut tail, IMAGE_OK_AT, FLAG_SET, ERASE_VALUE);
        }
        let mut row = [ERASE_VALUE; ROW];
        if let Some(t) = row.get_mut(ROW - TRAILER_LEN..) {
            t.copy_from_slice(&tail);
        }
        {
            use embedded_storage_async::nor_flash::NorFlash;
            let mut f = flash_view(self.dev)?;
            let pt = c.primary.trailer_row_offset();
            block_on(f.erase(pt, pt + ROW_SIZE))?;
            block_on(f.write(pt, &row))?;
        }
        self.erase_rows(c.secondary.trailer_row_offset(), ROW_SIZE)?;
        if let Some(status) = c.status {
            self.erase_rows(status.offset(), 2 * ROW_SIZE)?;
        }
        Ok(())
    }
}

/// Chunk of the simulated swap: the v1.8 scratch area (0x1000).
const CHUNK: u32 = 0x1000;
/// Bytes of a [`SwapRecord`] on flash.
const RECORD_LEN: usize = 32;
const RECORD_MAGIC: [u8; 8] = *b"SIMSWAP1";

/// The simulation's own swap progress record (NOT the Cypress swap-status format of §1.7
/// point 5): magic, sequence number, swap type, swap size, next chunk and step, a "trailers
/// pending" flag and a SHA-256-based check word. Two copies alternate between the first two
/// rows of the status partition; the valid one with the highest sequence number wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SwapRecord {
    seq: u32,
    kind: u8,
    size: u32,
    chunk: u32,
    step: u8,
    finishing: bool,
}

impl SwapRecord {
    fn check(b: &[u8]) -> [u8; 4] {
        use sha2::{Digest, Sha256};
        let d: [u8; 32] = Sha256::digest(b).into();
        [d[0], d[1], d[2], d[3]]
    }

    fn encode(&self) -> [u8; RECORD_LEN] {
        let mut b = [0u8; RECORD_LEN];
        b[0..8].copy_from_slice(&RECORD_MAGIC);
        b[8..12].copy_from_slice(&self.seq.to_le_bytes());
        b[12] = self.kind;
        b[13] = self.step;
        b[14] = u8::from(self.finishing);
        b[16..20].copy_from_slice(&self.size.to_le_bytes());
        b[20..24].copy_from_slice(&self.chunk.to_le_bytes());
        let c = Self::check(&b[..28]);
        b[28..32].copy_from_slice(&c);
        b
    }

    fn decode(b: &[u8; RECORD_LEN]) -> Option<Self> {
        let (body, check) = b.split_at(28);
        if body.get(..8)? != RECORD_MAGIC || check != Self::check(body) {
            return None;
        }
        let u32_at = |i: usize| -> Option<u32> {
            Some(u32::from_le_bytes(b.get(i..i + 4)?.try_into().ok()?))
        };
        Some(Self {
            seq: u32_at(8)?,
            kind: b[12],
            step: b[13],
            finishing: b[14] != 0,
            size: u32_at(16)?,
            chunk: u32_at(20)?,
        })
    }
}
