//! [`ImageStorage`] over a region of any `embedded-storage-async` NOR flash.
//!
//! [`NorFlashImageStorage`] takes a flash driver, a region `[offset, offset + len)` of it and
//! the flash's erase value, and stores one received file at the start of that region:
//!
//! * [`prepare`](ImageStorage::prepare) erases only the sectors the file needs;
//! * [`write`](ImageStorage::write) programs whole write units. Blocks may arrive in any order;
//!   the *last* block of the file may end inside a write unit and is padded with the erase
//!   value. Any other block must start and end on a write-unit boundary: padding it would
//!   later program the same unit twice (forbidden on ECC flash, and silent corruption if the
//!   pad were not the erase value), so it fails instead;
//! * [`read`](ImageStorage::read) reads any offset and length inside the region;
//! * [`abort`](ImageStorage::abort) erases every sector written since `prepare` / `resume`
//!   (see [`AbortPolicy`] for the cheaper variant). The reference agent also calls its
//!   `otaPal_Abort` after a *successful* close, where it only releases a file handle; here
//!   abort destroys the partial file, so once the image is handed to the bootloader call
//!   [`release`](NorFlashImageStorage::release) instead, after which abort is a no-op.
//!
//! A unit is therefore never programmed twice between erases, so the storage works on flash
//! that forbids it. Write units up to [`MAX_WRITE_SIZE`] and read units up to
//! [`MAX_READ_SIZE`] bytes are supported; the padded tail unit lives on the stack (in the
//! `write` future) for the duration of that one call.
//!
//! # Sub-codes
//!
//! Flash driver errors carry [`flash_sub_code`] (1 not aligned, 2 out of bounds, 3 other).
//! Errors found before touching the flash carry one of the `SUB_*` constants of this module.

use embedded_storage_async::nor_flash::NorFlash;

use crate::{flash_sub_code, FileInfo, ImageStorage, PalError, PalErrorKind};

/// Largest flash write unit supported (PSoC 6 / TRAVEO rows are 512 bytes).
pub const MAX_WRITE_SIZE: usize = 512;
/// Largest flash read unit supported.
pub const MAX_READ_SIZE: usize = 64;

/// Sub-code: the access reaches outside the file (write) or the region (read).
pub const SUB_OUT_OF_RANGE: u32 = 0x100;
/// Sub-code: a block offset is not a multiple of the flash write unit.
pub const SUB_UNALIGNED_OFFSET: u32 = 0x101;
/// Sub-code: a block that is not the last one does not end on a write-unit boundary.
pub const SUB_UNALIGNED_LENGTH: u32 = 0x102;
/// Sub-code (construction): region not aligned to the erase sector, or past the flash end.
pub const SUB_BAD_REGION: u32 = 0x103;
/// Sub-code (construction): the flash's write or read unit is larger than this module
/// supports, or its erase sector is not a multiple of its write unit.
pub const SUB_BAD_GEOMETRY: u32 = 0x104;

/// What [`abort`](ImageStorage::abort) does to the sectors written since `prepare`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AbortPolicy {
    /// Erase every sector written since `prepare` (or, after `resume`, every sector of the
    /// file). Slow on big images, but nothing of the partial file is left.
    #[default]
    EraseWritten,
    /// Erase only the first sector of the region, where image headers live (MCUboot header,
    /// amazon-freertos descriptor): cheap, and no bootloader will take the rest as an image.
    /// The next `prepare` erases the remainder anyway.
    EraseFirstSector,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    /// No file: `write` fails, `abort` does nothing.
    Idle,
    /// A file of `size` bytes; bytes `[lo, hi)` may have been programmed.
    File { size: u32, lo: u32, hi: u32 },
}

/// Stores a received file at the start of a region of a NOR flash (see the
/// [module docs](self)).
///
/// RAM: the flash driver plus 32 bytes of state. `write` futures hold a
/// [`MAX_WRITE_SIZE`]-byte tail buffer, `read` futures a [`MAX_READ_SIZE`]-byte one (measured
/// on a 64-bit host over the simulator: 632 B and 208 B).
#[derive(Debug)]
pub struct NorFlashImageStorage<F> {
    flash: F,
    offset: u32,
    len: u32,
    erase_value: u8,
    abort_policy: AbortPolicy,
    open: Open,
}

fn err(kind: PalErrorKind, sub: u32) -> PalError {
    PalError::with_sub(kind, sub)
}

fn round_up(x: u32, unit: u32) -> Option<u32> {
    x.div_ceil(unit).checked_mul(unit)
}

impl<F: NorFlash> NorFlashImageStorage<F> {
    /// Storage over `len` bytes of `flash` from `offset`, erasing to `erase_value`.
    ///
    /// `offset` and `len` must be multiples of `F::ERASE_SIZE` and inside the flash
    /// ([`PalErrorKind::Uninitialized`] with [`SUB_BAD_REGION`]); the flash geometry must be
    /// supported ([`SUB_BAD_GEOMETRY`]).
    pub fn new(flash: F, offset: u32, len: u32, erase_value: u8) -> Result<Self, PalError> {
        let (w, e, r) = (F::WRITE_SIZE, F::ERASE_SIZE, F::READ_SIZE);
        if w == 0 || w > MAX_WRITE_SIZE || r == 0 || r > MAX_READ_SIZE || e == 0 || e % w != 0 {
            return Err(err(PalErrorKind::Uninitialized, SUB_BAD_GEOMETRY));
        }
        let end = offset.checked_add(len);
        let aligned = offset as usize % e == 0 && len as usize % e == 0;
        match end {
            Some(end) if aligned && end as usize <= flash.capacity() => Ok(Self {
                flash,
                offset,
                len,
                erase_value,
                abort_policy: AbortPolicy::default(),
                open: Open::Idle,
            }),
            _ => Err(err(PalErrorKind::Uninitialized, SUB_BAD_REGION)),
        }
    }

    /// The same storage with another [`AbortPolicy`].
    pub fn with_abort_policy(mut self, policy: AbortPolicy) -> Self {
        self.abort_policy = policy;
        self
    }

    /// The flash driver, e.g. to hand the region to a bootloader simulation.
    pub fn flash(&mut self) -> &mut F {
        &mut self.flash
    }

    /// Give the flash driver back.
    pub fn into_inner(self) -> F {
        self.flash
    }

    /// Close the file without touching the flash (after a successful verification and
    /// hand-over): a later [`abort`](ImageStorage::abort) then keeps the image.
    pub fn release(&mut self) {
        self.open = Open::Idle;
    }

    /// Size of the file being received, if one is open.
    pub fn file_size(&self) -> Option<u32> {
        match self.open {
            Open::Idle => None,
            Open::File { size, .. } => Some(size),
        }
    }

    fn sector(&self) -> u32 {
        F::ERASE_SIZE as u32
    }

    /// Erase region bytes `[from, to)`, rounded out to whole sectors and clipped to the region.
    async fn erase_span(&mut self, from: u32, to: u32, kind: PalErrorKind) -> Result<(), PalError> {
        let sector = self.sector();
        let from = from - from % sector;
        let to = round_up(to, sector).unwrap_or(self.len).min(self.len);
        if from >= to {
            return Ok(());
        }
        self.flash
            .erase(self.offset + from, self.offset + to)
            .await
            .map_err(|e| err(kind, flash_sub_code(&e)))
    }

    fn check_size(&self, file: &FileInfo<'_>) -> Result<(), PalError> {
        if file.size > self.len {
            Err(PalError::new(PalErrorKind::RxFileTooLarge))
        } else {
            Ok(())
        }
    }
}

impl<F: NorFlash> ImageStorage for NorFlashImageStorage<F> {
    fn capacity(&self) -> u32 {
        self.len
    }

    async fn prepare(&mut self, file: &FileInfo<'_>) -> Result<(), PalError> {
        self.check_size(file)?;
        self.open = Open::Idle;
        self.erase_span(0, file.size, PalErrorKind::RxFileCreateFailed)
            .await?;
        self.open = Open::File {
            size: file.size,
            lo: u32::MAX,
            hi: 0,
        };
        Ok(())
    }

    async fn resume(&mut self, file: &FileInfo<'_>) -> Result<(), PalError> {
        self.check_size(file)?;
        self.open = Open::File {
            size: file.size,
            lo: 0,
            hi: file.size,
        };
        Ok(())
    }

    async fn write(&mut self, offset: u32, data: &[u8]) -> Result<(), PalError> {
        let Open::File { size, lo, hi } = self.open else {
            return Err(PalError::new(PalErrorKind::NullFileContext));
        };
        let w = F::WRITE_SIZE;
        let len = u32::try_from(data.len())
            .map_err(|_| err(PalErrorKind::FileClose, SUB_OUT_OF_RANGE))?;
        let end = offset
            .checked_add(len)
            .filter(|&end| end <= size)
            .ok_or(err(PalErrorKind::FileClose, SUB_OUT_OF_RANGE))?;
        if data.is_empty() {
            return Ok(());
        }
        if offset as usize % w != 0 {
            return Err(err(PalErrorKind::FileClose, SUB_UNALIGNED_OFFSET));
        }
        let tail_len = data.len() % w;
        if tail_len != 0 && end != size {
            return Err(err(PalErrorKind::FileClose, SUB_UNALIGNED_LENGTH));
        }
        self.open = Open::File {
            size,
            lo: lo.min(offset),
            hi: hi.max(round_up(end, w as u32).unwrap_or(u32::MAX)),
        };
        let (body, tail) = data.split_at(data.len() - tail_len);
        let at = self.offset + offset;
        if !body.is_empty() {
            self.flash
                .write(at, body)
                .await
                .map_err(|e| err(PalErrorKind::FileClose, flash_sub_code(&e)))?;
        }
        if !tail.is_empty() {
            let mut unit = [self.erase_value; MAX_WRITE_SIZE];
            let unit = unit
                .get_mut(..w)
                .ok_or(err(PalErrorKind::FileClose, SUB_BAD_GEOMETRY))?;
            if let Some(head) = unit.get_mut(..tail.len()) {
                head.copy_from_slice(tail);
            }
            self.flash
                .write(at + body.len() as u32, unit)
                .await
                .map_err(|e| err(PalErrorKind::FileClose, flash_sub_code(&e)))?;
        }
        Ok(())
    }

    async fn read(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), PalError> {
        let range = err(PalErrorKind::FileClose, SUB_OUT_OF_RANGE);
        let len = u32::try_from(buf.len()).map_err(|_| range)?;
        offset
            .checked_add(len)
            .filter(|&end| end <= self.len)
            .ok_or(range)?;
        let r = F::READ_SIZE;
        let flash_err = |e: F::Error| err(PalErrorKind::FileClose, flash_sub_code(&e));
        let mut pos = offset as usize;
        let mut rest = buf;
        while !rest.is_empty() {
            let skew = pos % r;
            let direct = if skew == 0 {
                rest.len() - rest.len() % r
            } else {
                0
            };
            let abs = self.offset + pos as u32;
            if direct > 0 {
                let (now, later) = rest.split_at_mut(direct);
                self.flash.read(abs, now).await.map_err(flash_err)?;
                rest = later;
                pos += direct;
            } else {
                // A partial read unit: read the whole unit and copy the part we need. The
                // region is sector-aligned, so the unit lies inside the flash.
                let mut unit = [0u8; MAX_READ_SIZE];
                let unit = unit.get_mut(..r).ok_or(range)?;
                self.flash
                    .read(abs - skew as u32, unit)
                    .await
                    .map_err(flash_err)?;
                let take = (r - skew).min(rest.len());
                let (now, later) = rest.split_at_mut(take);
                now.copy_from_slice(unit.get(skew..skew + take).ok_or(range)?);
                rest = later;
                pos += take;
            }
        }
        Ok(())
    }

    async fn abort(&mut self) -> Result<(), PalError> {
        let Open::File { lo, hi, .. } = self.open else {
            return Ok(());
        };
        match self.abort_policy {
            AbortPolicy::EraseWritten => self.erase_span(lo, hi, PalErrorKind::AbortFailed).await?,
            AbortPolicy::EraseFirstSector => {
                if lo < hi {
                    let s = self.sector();
                    self.erase_span(0, s, PalErrorKind::AbortFailed).await?;
                }
            }
        }
        self.open = Open::Idle;
        Ok(())
    }
}

#[cfg(test)]
#[cfg(feature = "sim")]
mod tests {
    extern crate std;
    use super::*;
    use crate::sim::{block_on, SimConfig, SimDevice};
    use std::{vec, vec::Vec};

    fn file(size: u32) -> FileInfo<'static> {
        FileInfo::new("", size)
    }

    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + i / 251) as u8 ^ 0xA5).collect()
    }

    /// Store a file of `blocks` blocks (the last one partial) out of order on a strict device
    /// with write unit `W` and erase sector `E`, check contents, padding and the untouched
    /// rest, then abort.
    fn round_trip<const W: usize, const E: usize>(ev: u8) {
        let sectors = 8usize;
        let region_off = E as u32; // keep a sentinel sector in front
        let dev = SimDevice::new(
            vec![0x3Cu8; E * (sectors + 2)],
            SimConfig::new(W, E).erase_value(ev).strict(true),
        )
        .unwrap();
        dev.modify(|m| m[E..E * (sectors + 1)].fill(ev ^ 0xFF))
            .unwrap(); // "old image"
        let flash = dev.view::<W, E>(0, (E * (sectors + 2)) as u32).unwrap();
        let mut st =
            NorFlashImageStorage::new(flash, region_off, (E * sectors) as u32, ev).unwrap();
        assert_eq!(st.capacity(), (E * sectors) as u32);
        let block = (E / 2).max(W).max(64);
        let size = block * 5 + block / 3 + 1; // partial last block
        let data = pattern(size);
        block_on(async {
            st.prepare(&file(size as u32)).await.unwrap();
            let needed = size.div_ceil(E) as u64;
            assert_eq!(dev.stats().unwrap().sectors_erased, needed);
            for i in [3usize, 5, 0, 4, 1, 2] {
                let chunk = &data[i * block..((i + 1) * block).min(size)];
                st.write((i * block) as u32, chunk).await.unwrap();
            }
            let mut back = vec![0u8; size];
            st.read(0, &mut back).await.unwrap();
            assert_eq!(back, data);
            // Odd offsets and lengths read back too.
            let mut small = [0u8; 7];
            st.read(13, &mut small).await.unwrap();
            assert_eq!(&small[..], &data[13..20]);
        });
        let mem = dev.inspect(|m| m.to_vec()).unwrap();
        let start = region_off as usize;
        assert_eq!(&mem[start..start + size], &data[..]);
        let padded = size.div_ceil(W) * W;
        assert!(
            mem[start + size..start + padded].iter().all(|&b| b == ev),
            "pad"
        );
        assert!(
            mem[..E].iter().all(|&b| b == 0x3C),
            "sentinel before the region"
        );
        assert!(
            mem[E * (sectors + 1)..].iter().all(|&b| b == 0x3C),
            "sentinel after"
        );
        let needed_end = start + size.div_ceil(E) * E;
        assert!(mem[needed_end..E * (sectors + 1)]
            .iter()
            .all(|&b| b == ev ^ 0xFF));
        block_on(st.abort()).unwrap();
        let mem = dev.inspect(|m| m.to_vec()).unwrap();
        assert!(
            mem[start..needed_end].iter().all(|&b| b == ev),
            "abort erased the file"
        );
        block_on(st.abort()).unwrap();
    }

    #[test]
    fn round_trip_write_unit_1() {
        round_trip::<1, 256>(0xFF);
        round_trip::<1, 256>(0x00);
    }

    #[test]
    fn round_trip_write_unit_16() {
        round_trip::<16, 1024>(0xFF);
        round_trip::<16, 1024>(0x00);
    }

    #[test]
    fn round_trip_write_unit_512() {
        round_trip::<512, 512>(0xFF);
        round_trip::<512, 512>(0x00);
        round_trip::<512, 4096>(0x00);
    }

    fn storage(
        dev: &SimDevice<Vec<u8>>,
    ) -> NorFlashImageStorage<crate::sim::SimFlash<'_, Vec<u8>, 16, 256>> {
        let flash = dev.view::<16, 256>(0, 1024).unwrap();
        NorFlashImageStorage::new(flash, 0, 1024, 0xFF).unwrap()
    }

    fn blank() -> SimDevice<Vec<u8>> {
        SimDevice::new(vec![0xFFu8; 1024], SimConfig::new(16, 256).strict(true)).unwrap()
    }

    #[test]
    fn errors_are_values_with_sub_codes() {
        let dev = blank();
        let mut st = storage(&dev);
        block_on(async {
            assert_eq!(
                st.write(0, &[1; 16]).await,
                Err(PalError::new(PalErrorKind::NullFileContext))
            );
            assert_eq!(
                st.prepare(&file(1025)).await,
                Err(PalError::new(PalErrorKind::RxFileTooLarge))
            );
            st.prepare(&file(100)).await.unwrap();
            assert_eq!(
                st.write(8, &[1; 16]).await,
                Err(err(PalErrorKind::FileClose, SUB_UNALIGNED_OFFSET))
            );
            assert_eq!(
                st.write(0, &[1; 20]).await,
                Err(err(PalErrorKind::FileClose, SUB_UNALIGNED_LENGTH))
            );
            assert_eq!(
                st.write(96, &[1; 16]).await,
                Err(err(PalErrorKind::FileClose, SUB_OUT_OF_RANGE))
            );
            assert_eq!(
                st.write(u32::MAX, &[1]).await,
                Err(err(PalErrorKind::FileClose, SUB_OUT_OF_RANGE))
            );
            st.write(96, &[7; 4]).await.unwrap(); // the last block may be partial
            let mut b = [0u8; 2];
            assert_eq!(
                st.read(1023, &mut b).await,
                Err(err(PalErrorKind::FileClose, SUB_OUT_OF_RANGE))
            );
            // Writing the same block twice is a flash error on strict (ECC) flash.
            assert_eq!(
                st.write(96, &[7; 4]).await,
                Err(err(PalErrorKind::FileClose, 3))
            );
            // A power cut shows as a flash error too.
            dev.cut_power_at(1, 0).unwrap();
            assert_eq!(
                st.write(0, &[1; 16]).await,
                Err(err(PalErrorKind::FileClose, 3))
            );
            assert_eq!(st.abort().await, Err(err(PalErrorKind::AbortFailed, 3)));
            dev.power_on().unwrap();
            st.abort().await.unwrap();
            assert_eq!(st.file_size(), None);
        });
        let bad = dev.view::<16, 256>(0, 512).unwrap();
        assert_eq!(
            NorFlashImageStorage::new(bad.clone(), 100, 256, 0xFF).err(),
            Some(err(PalErrorKind::Uninitialized, SUB_BAD_REGION))
        );
        assert_eq!(
            NorFlashImageStorage::new(bad, 256, 512, 0xFF).err(),
            Some(err(PalErrorKind::Uninitialized, SUB_BAD_REGION))
        );
    }

    #[test]
    fn abort_erases_only_what_was_written() {
        let dev = blank();
        let mut st = storage(&dev);
        block_on(async {
            st.abort().await.unwrap(); // nothing prepared
            st.prepare(&file(1000)).await.unwrap();
            dev.reset_stats().unwrap();
            st.abort().await.unwrap(); // prepared but nothing written: nothing to erase
            assert_eq!(dev.stats().unwrap().erases, 0);
            st.prepare(&file(1000)).await.unwrap();
            st.write(512, &[0u8; 256]).await.unwrap();
            dev.reset_stats().unwrap();
            st.abort().await.unwrap();
            assert_eq!(dev.stats().unwrap().sectors_erased, 1);
        });
    }

    #[test]
    fn abort_first_sector_policy_and_resume() {
        let dev = blank();
        let mut st = storage(&dev).with_abort_policy(AbortPolicy::EraseFirstSector);
        block_on(async {
            st.prepare(&file(1000)).await.unwrap();
            st.write(0, &[0u8; 512]).await.unwrap();
            dev.reset_stats().unwrap();
            st.abort().await.unwrap();
            assert_eq!(dev.stats().unwrap().sectors_erased, 1);
            // After a reboot, resume keeps the bytes and accepts the missing blocks.
            let mut st = storage(&dev);
            st.resume(&file(1000)).await.unwrap();
            st.write(768, &[1u8; 232]).await.unwrap();
            let mut b = [0u8; 2];
            st.read(510, &mut b).await.unwrap();
            assert_eq!(b, [0, 0]);
            // Released after hand-over: abort keeps the image.
            st.release();
            dev.reset_stats().unwrap();
            st.abort().await.unwrap();
            assert_eq!(dev.stats().unwrap().erases, 0);
            assert_eq!(
                st.resume(&file(2000)).await,
                Err(PalError::new(PalErrorKind::RxFileTooLarge))
            );
        });
    }

    /// A flash whose reads must be 4-byte aligned.
    struct Read4<'a>(crate::sim::SimFlash<'a, Vec<u8>, 4, 64>);

    impl embedded_storage_async::nor_flash::ErrorType for Read4<'_> {
        type Error = crate::sim::SimError;
    }

    impl embedded_storage_async::nor_flash::ReadNorFlash for Read4<'_> {
        const READ_SIZE: usize = 4;
        async fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
            assert!(offset % 4 == 0 && bytes.len() % 4 == 0, "unaligned read");
            self.0.read(offset, bytes).await
        }
        fn capacity(&self) -> usize {
            self.0.capacity()
        }
    }

    impl NorFlash for Read4<'_> {
        const WRITE_SIZE: usize = 4;
        const ERASE_SIZE: usize = 64;
        async fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
            self.0.erase(from, to).await
        }
        async fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
            self.0.write(offset, bytes).await
        }
    }

    #[test]
    fn reads_handle_a_read_unit_larger_than_one() {
        let dev = SimDevice::new(vec![0xFFu8; 256], SimConfig::new(4, 64)).unwrap();
        let data = pattern(200);
        let flash = Read4(dev.view::<4, 64>(0, 256).unwrap());
        let mut st = NorFlashImageStorage::new(flash, 0, 256, 0xFF).unwrap();
        block_on(async {
            st.prepare(&file(200)).await.unwrap();
            st.write(0, &data).await.unwrap();
            for (off, len) in [(0, 200), (1, 1), (3, 6), (5, 190), (199, 1), (2, 0)] {
                let mut b = vec![0u8; len];
                st.read(off as u32, &mut b).await.unwrap();
                assert_eq!(&b[..], &data[off..off + len], "{off} {len}");
            }
        });
    }
}
