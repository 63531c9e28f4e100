//! Descriptor and update-bank operations on the NVM, shared by the storage, the boot control
//! and the simulated bootloader.

use embedded_storage_async::nor_flash::NorFlash;
use ota_pal_traits::{flash_sub_code, PalError, PalErrorKind};

use crate::descriptor::{offset, Descriptor, ImageFlags, DESCRIPTOR_LEN, MAGIC};
use crate::layout::{Layout, DESCRIPTOR_BLOCK_SIZE, ERASE_VALUE, WRITE_SIZE};

/// Sub-code (construction): the flash driver's geometry cannot program a descriptor the way
/// the bootloader expects (write unit not dividing 16, erase sector not dividing 8 KB) or the
/// flash is smaller than the layout.
pub const SUB_BAD_FLASH: u32 = 0x300;

/// Check that `F` can do quad-word writes and 8 KB block erases over `layout`.
pub(crate) fn check_geometry<F: NorFlash>(flash: &F, layout: &Layout) -> Result<(), PalError> {
    let (w, e) = (F::WRITE_SIZE as u32, F::ERASE_SIZE as u32);
    let ok = w > 0
        && WRITE_SIZE % w == 0
        && e > 0
        && DESCRIPTOR_BLOCK_SIZE % e == 0
        && flash.capacity() >= layout.flash_size() as usize;
    if ok {
        Ok(())
    } else {
        Err(PalError::with_sub(
            PalErrorKind::Uninitialized,
            SUB_BAD_FLASH,
        ))
    }
}

fn flash_err<E: embedded_storage_async::nor_flash::NorFlashError>(
    kind: PalErrorKind,
) -> impl Fn(E) -> PalError {
    move |e| PalError::with_sub(kind, flash_sub_code(&e))
}

/// Read the 336 descriptor bytes at `addr`.
pub(crate) async fn read_raw<F: NorFlash>(
    flash: &mut F,
    addr: u32,
    kind: PalErrorKind,
) -> Result<[u8; DESCRIPTOR_LEN], PalError> {
    let mut b = [0u8; DESCRIPTOR_LEN];
    flash.read(addr, &mut b).await.map_err(flash_err(kind))?;
    Ok(b)
}

/// Read and decode the descriptor at `addr`.
pub(crate) async fn read_descriptor<F: NorFlash>(
    flash: &mut F,
    addr: u32,
    kind: PalErrorKind,
) -> Result<Descriptor, PalError> {
    Ok(Descriptor::decode(&read_raw(flash, addr, kind).await?))
}

/// The first two quad words of a descriptor: magic, flags, reserved, sequence...
pub(crate) type Head = [u8; 32];

/// Read the first 32 bytes of the descriptor at `addr` (magic, flags, sequence).
pub(crate) async fn read_head<F: NorFlash>(
    flash: &mut F,
    addr: u32,
    kind: PalErrorKind,
) -> Result<Head, PalError> {
    let mut b = [0u8; 32];
    flash.read(addr, &mut b).await.map_err(flash_err(kind))?;
    Ok(b)
}

/// Magic, flags and sequence of a descriptor head.
pub(crate) fn head_fields(h: &Head) -> (bool, ImageFlags, u32) {
    let magic = h.get(offset::MAGIC..offset::MAGIC + MAGIC.len()) == Some(&MAGIC[..]);
    let flags = ImageFlags(h.get(offset::FLAGS).copied().unwrap_or(ERASE_VALUE));
    let mut seq = [0u8; 4];
    if let Some(s) = h.get(offset::SEQUENCE..offset::SEQUENCE + 4) {
        seq.copy_from_slice(s);
    }
    (magic, flags, u32::from_le_bytes(seq))
}

/// Program descriptor bytes into an erased block: one call of 21 quad words.
pub(crate) async fn program_raw<F: NorFlash>(
    flash: &mut F,
    addr: u32,
    bytes: &[u8; DESCRIPTOR_LEN],
    kind: PalErrorKind,
) -> Result<(), PalError> {
    flash.write(addr, bytes).await.map_err(flash_err(kind))
}

/// The vendor's descriptor update (§3.4 step 4, §3.5): erase the 8 KB block holding the
/// descriptor, then program the descriptor again with quad-word writes.
///
/// Power safety: between the start of the erase and the end of the program the descriptor
/// is gone or torn, and the bootloader no longer sees that image (it is not "valid", §3.4
/// step 2). Only the 336 descriptor bytes are programmed back; whatever else the block held
/// is lost (the vendor helper's handling of the rest of the block was not read).
pub(crate) async fn rewrite_raw<F: NorFlash>(
    flash: &mut F,
    addr: u32,
    bytes: &[u8; DESCRIPTOR_LEN],
    kind: PalErrorKind,
) -> Result<(), PalError> {
    let block = addr - addr % DESCRIPTOR_BLOCK_SIZE;
    flash
        .erase(block, block + DESCRIPTOR_BLOCK_SIZE)
        .await
        .map_err(flash_err(kind))?;
    program_raw(flash, addr, bytes, kind).await
}

/// What the descriptor area at `addr` holds compared with `bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compare {
    /// Exactly `bytes`.
    Same,
    /// All erased.
    Erased,
    /// Something else.
    Other,
}

/// Compare the descriptor area at `addr` with `bytes`, one quad word at a time.
pub(crate) async fn compare<F: NorFlash>(
    flash: &mut F,
    addr: u32,
    bytes: &[u8; DESCRIPTOR_LEN],
    kind: PalErrorKind,
) -> Result<Compare, PalError> {
    let (mut same, mut erased) = (true, true);
    let mut unit = [0u8; WRITE_SIZE as usize];
    for (i, want) in bytes.chunks(unit.len()).enumerate() {
        let at = addr + (i * unit.len()) as u32;
        flash.read(at, &mut unit).await.map_err(flash_err(kind))?;
        same &= unit.as_slice() == want;
        erased &= unit.iter().all(|&b| b == ERASE_VALUE);
    }
    Ok(if same {
        Compare::Same
    } else if erased {
        Compare::Erased
    } else {
        Compare::Other
    })
}

/// Erase `[from, to)` (sector-aligned), mapping errors to `kind`.
pub(crate) async fn erase<F: NorFlash>(
    flash: &mut F,
    from: u32,
    to: u32,
    kind: PalErrorKind,
) -> Result<(), PalError> {
    if from >= to {
        return Ok(());
    }
    flash.erase(from, to).await.map_err(flash_err(kind))
}

/// `AWS_FlashEraseUpdateBank` (§3.5): erase the staging area and the upper descriptor block.
///
/// The upper descriptor block is erased *first*, so that a cut in the middle never leaves a
/// descriptor pointing at a half-erased image (the bootloader would reject it by its
/// signature anyway, §3.4 step 2). The vendor's erase order was not read.
pub(crate) async fn erase_update_bank<F: NorFlash>(
    flash: &mut F,
    layout: &Layout,
    kind: PalErrorKind,
) -> Result<(), PalError> {
    let up = layout.upper_descriptor_addr();
    erase(flash, up, up + DESCRIPTOR_BLOCK_SIZE, kind).await?;
    erase(flash, layout.staging_addr(), up, kind).await
}
