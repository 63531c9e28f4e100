//! Row-level flash access shared by the storage and the boot control (board-formats §1.7
//! point 1, §1.9).
//!
//! PSoC 6 programs whole 512-byte rows; the Cypress flash layer writes by read-modify-write of
//! a row. [`patch_row`] does the same over any `NorFlash` driver whose erase unit is the row:
//! it reads the row, patches it in RAM and, when the patch only moves bits away from the
//! erased value, programs the row in one write (what `Cy_Flash_WriteRow`'s erase+program
//! amounts to for such a patch); otherwise it erases the row and programs it.

use embedded_storage_async::nor_flash::NorFlash;
use ota_pal_traits::{flash_sub_code, PalError, PalErrorKind};

use crate::image::ImageSource;
use crate::layout::{Area, ROW_SIZE};
use crate::trailer::{Trailer, TRAILER_LEN};

/// Row size as a `usize`.
pub const ROW: usize = ROW_SIZE as usize;
/// Largest flash read unit supported.
pub const MAX_READ_UNIT: usize = 64;

/// Sub-code: the driver's geometry is not PSoC 6 rows (erase unit must be 512 bytes, write unit
/// a divisor of 512, read unit at most 64).
pub const SUB_BAD_GEOMETRY: u32 = 0x400;

/// Whether `F` can be driven row by row.
pub fn geometry_ok<F: NorFlash>() -> bool {
    F::ERASE_SIZE == ROW
        && F::WRITE_SIZE > 0
        && ROW % F::WRITE_SIZE == 0
        && F::READ_SIZE > 0
        && F::READ_SIZE <= MAX_READ_UNIT
}

fn ferr<E: embedded_storage_async::nor_flash::NorFlashError>(
    kind: PalErrorKind,
) -> impl Fn(E) -> PalError {
    move |e| PalError::with_sub(kind, flash_sub_code(&e))
}

/// Read any span, whatever the driver's read unit.
pub async fn read_any<F: NorFlash>(
    flash: &mut F,
    offset: u32,
    buf: &mut [u8],
    kind: PalErrorKind,
) -> Result<(), PalError> {
    let r = F::READ_SIZE;
    if r == 1 {
        return flash.read(offset, buf).await.map_err(ferr(kind));
    }
    let mut unit = [0u8; MAX_READ_UNIT];
    let unit = unit
        .get_mut(..r)
        .ok_or(PalError::with_sub(kind, SUB_BAD_GEOMETRY))?;
    let mut pos = offset as usize;
    let mut done = 0usize;
    while done < buf.len() {
        let skew = pos % r;
        flash
            .read((pos - skew) as u32, unit)
            .await
            .map_err(ferr(kind))?;
        let take = (r - skew).min(buf.len() - done);
        let dst = buf
            .get_mut(done..done + take)
            .ok_or(PalError::with_sub(kind, SUB_BAD_GEOMETRY))?;
        dst.copy_from_slice(unit.get(skew..skew + take).unwrap_or(&[]));
        done += take;
        pos += take;
    }
    Ok(())
}

/// Read the 48-byte trailer tail of `slot`, raw.
pub async fn read_tail<F: NorFlash>(
    flash: &mut F,
    slot: &Area,
    kind: PalErrorKind,
) -> Result<[u8; TRAILER_LEN], PalError> {
    let mut tail = [0u8; TRAILER_LEN];
    read_any(
        flash,
        slot.end_offset() - TRAILER_LEN as u32,
        &mut tail,
        kind,
    )
    .await?;
    Ok(tail)
}

/// Read and decode the trailer of `slot`.
pub async fn read_trailer<F: NorFlash>(
    flash: &mut F,
    slot: &Area,
    erase: u8,
    kind: PalErrorKind,
) -> Result<Trailer, PalError> {
    Ok(Trailer::decode(&read_tail(flash, slot, kind).await?, erase))
}

fn program_only(erase: u8, old: u8, new: u8) -> bool {
    if erase == 0 {
        old & !new == 0
    } else {
        !old & new == 0
    }
}

/// Read-modify-write the row at driver offset `row` (row-aligned). Does nothing when the patch
/// changes nothing.
pub async fn patch_row<F: NorFlash>(
    flash: &mut F,
    row: u32,
    erase: u8,
    kind: PalErrorKind,
    patch: impl FnOnce(&mut [u8; ROW]),
) -> Result<(), PalError> {
    let mut old = [0u8; ROW];
    read_any(flash, row, &mut old, kind).await?;
    let mut new = old;
    patch(&mut new);
    if new == old {
        return Ok(());
    }
    let direct = old
        .iter()
        .zip(new.iter())
        .all(|(&o, &n)| program_only(erase, o, n));
    if !direct {
        flash.erase(row, row + ROW_SIZE).await.map_err(ferr(kind))?;
    }
    flash.write(row, &new).await.map_err(ferr(kind))
}

/// Patch the 48-byte trailer tail of `slot` by row read-modify-write.
pub async fn patch_trailer<F: NorFlash>(
    flash: &mut F,
    slot: &Area,
    erase: u8,
    kind: PalErrorKind,
    patch: impl FnOnce(&mut [u8; TRAILER_LEN]),
) -> Result<(), PalError> {
    patch_row(flash, slot.trailer_row_offset(), erase, kind, |row| {
        let at = ROW - TRAILER_LEN;
        let mut tail = [0u8; TRAILER_LEN];
        if let Some(src) = row.get(at..) {
            tail.copy_from_slice(src);
        }
        patch(&mut tail);
        if let Some(dst) = row.get_mut(at..) {
            dst.copy_from_slice(&tail);
        }
    })
    .await
}

/// Erase one row unless it is already erased.
pub async fn erase_row_if_dirty<F: NorFlash>(
    flash: &mut F,
    row: u32,
    erase: u8,
    kind: PalErrorKind,
) -> Result<(), PalError> {
    let mut cur = [0u8; ROW];
    read_any(flash, row, &mut cur, kind).await?;
    if cur.iter().all(|&b| b == erase) {
        return Ok(());
    }
    flash.erase(row, row + ROW_SIZE).await.map_err(ferr(kind))
}

/// A flash area seen as an [`ImageSource`] (the image at the start of a slot).
#[derive(Debug)]
pub struct FlashRegion<'a, F> {
    /// The driver.
    pub flash: &'a mut F,
    /// Driver offset of the area.
    pub offset: u32,
    /// Readable length.
    pub len: u32,
}

impl<F: NorFlash> ImageSource for FlashRegion<'_, F> {
    fn len(&self) -> u32 {
        self.len
    }
    async fn read_at(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), PalError> {
        offset
            .checked_add(buf.len() as u32)
            .filter(|&e| e <= self.len)
            .ok_or(PalError::with_sub(
                PalErrorKind::FileClose,
                crate::image::SUB_IMAGE_TOO_LARGE,
            ))?;
        read_any(
            self.flash,
            self.offset + offset,
            buf,
            PalErrorKind::FileClose,
        )
        .await
    }
}

#[cfg(all(test, feature = "sim"))]
mod tests {
    extern crate std;
    use super::*;
    use crate::sim::{flash_view, sim_config};
    use ota_pal_traits::sim::{block_on, SimDevice};
    use std::vec;

    const K: PalErrorKind = PalErrorKind::FileClose;

    #[test]
    fn row_rmw_programs_when_it_only_sets_bits_and_erases_otherwise() {
        let dev = SimDevice::new(vec![0u8; 4096], sim_config()).unwrap();
        let mut f = dev.view::<512, 512>(0, 4096).unwrap();
        dev.modify(|m| m[512 + 3] = 0xAA).unwrap();
        // Setting bits on 0x00-erased flash: one program, neighbours kept.
        block_on(patch_row(&mut f, 512, 0x00, K, |r| r[10] = 0x01)).unwrap();
        let st = dev.stats().unwrap();
        assert_eq!((st.writes, st.erases), (1, 0));
        // Clearing a bit needs erase + program; the rest of the row survives.
        block_on(patch_row(&mut f, 512, 0x00, K, |r| r[3] = 0x0A)).unwrap();
        let st = dev.stats().unwrap();
        assert_eq!((st.writes, st.erases), (2, 1));
        dev.inspect(|m| assert_eq!((m[512 + 3], m[512 + 10]), (0x0A, 0x01)))
            .unwrap();
        // No change: nothing written.
        block_on(patch_row(&mut f, 512, 0x00, K, |r| r[10] = 0x01)).unwrap();
        assert_eq!(dev.stats().unwrap().mutating(), 3);
        // Already erased rows are not erased again.
        block_on(erase_row_if_dirty(&mut f, 1024, 0x00, K)).unwrap();
        assert_eq!(dev.stats().unwrap().mutating(), 3);
    }

    #[test]
    fn trailer_patch_touches_only_the_last_48_bytes_of_the_slot() {
        let dev =
            SimDevice::new(vec![0u8; crate::layout::FLASH_SIZE as usize], sim_config()).unwrap();
        let mut f = flash_view(&dev).unwrap();
        let slot = crate::layout::Config::V1_8_SWAP.secondary;
        block_on(patch_trailer(
            &mut f,
            &slot,
            0x00,
            K,
            crate::trailer::put_magic,
        ))
        .unwrap();
        let end = slot.end_offset() as usize;
        dev.inspect(|m| {
            assert_eq!(&m[end - 16..end], &crate::trailer::MAGIC);
            assert!(m[end - 4096..end - 16].iter().all(|&b| b == 0));
            assert!(m[end..end + 512].iter().all(|&b| b == 0));
        })
        .unwrap();
    }
}
