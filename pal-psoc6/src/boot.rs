//! [`BootControl`] over the MCUboot slot trailers (board-formats §1.4–§1.7).
//!
//! # State mapping (derived; see the crate README)
//!
//! Swap (`v1.8.x-cypress`):
//! * primary MAGIC GOOD + copy_done SET + image_ok UNSET → `PendingCommit` (running a TEST
//!   swap; MCUboot REVERTs at the next reset unless confirmed);
//! * otherwise `Valid`.
//!
//! Overwrite-only (`v1.5.0-cypress`) has no trial. `PendingCommit` means "the bootloader
//! copied the staged image over the primary and the application has not confirmed it yet":
//! the primary trailer is not confirmed (MAGIC GOOD + image_ok SET) **and** the secondary still
//! holds the same image (same header and SHA256 TLV) with no GOOD MAGIC in its trailer (the
//! bootloader erased it after the copy; a power cut during that erase leaves it BAD, which the
//! bootloader also ignores). A factory image (no secondary copy) reads `Valid`, so it never reset-loops.
//! Confirming writes MAGIC + image_ok into the primary trailer (as anycloud 5.x does).
//!
//! `Invalid` is reported after [`reject`](BootControl::reject) until the next
//! `request_trial_boot` (RAM only: no trailer byte the bootloader reads is spent on it, so it
//! does not survive a reset).

use embedded_storage_async::nor_flash::NorFlash;
use ota_pal_traits::{BootControl, FileInfo, PalError, PalErrorKind, PlatformImageState};

use crate::flash::{self, FlashRegion};
use crate::image::stated_digest;
use crate::layout::{Config, PendingMode, UpgradeMode, ERASE_VALUE};
use crate::storage::check_setup;
use crate::trailer::{
    put_flag, put_magic, swap_info, Flag, Magic, Trailer, FLAG_SET, IMAGE_OK_AT, SWAP_INFO_AT,
    SWAP_TYPE_PERM, SWAP_TYPE_TEST,
};

/// Sub-code (= `BOOT_EBADIMAGE`): the secondary trailer's MAGIC is BAD (§1.6).
pub const SUB_BAD_MAGIC: u32 = 3;
/// Sub-code: an image is running on trial; it must be confirmed or rejected first.
pub const SUB_TRIAL_RUNNING: u32 = 0x600;
/// Sub-code: overwrite-only cannot roll back the image it already copied.
pub const SUB_NO_ROLLBACK: u32 = 0x601;

/// Boot control for one MCUboot build ([`Config`]). `flash` covers the internal flash from
/// [`FLASH_BASE`](crate::layout::FLASH_BASE) with 512-byte erase rows; it may be a second handle
/// on the driver the [`Psoc6ImageStorage`](crate::Psoc6ImageStorage) uses.
///
/// RAM: the driver, the [`Config`] and a flag (72 B with the 16-byte sim driver handle); the
/// trailer-writing futures hold two 512-byte row buffers (old and patched row).
#[derive(Debug)]
pub struct Psoc6BootControl<F> {
    flash: F,
    config: Config,
    rejected: bool,
}

impl<F: NorFlash> Psoc6BootControl<F> {
    /// Boot control for `config` over `flash`.
    pub fn new(flash: F, config: Config) -> Result<Self, PalError> {
        check_setup::<F>(&config)?;
        Ok(Self {
            flash,
            config,
            rejected: false,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The flash driver.
    pub fn flash(&mut self) -> &mut F {
        &mut self.flash
    }

    /// Give the flash driver back.
    pub fn into_inner(self) -> F {
        self.flash
    }

    /// The primary and secondary trailers as the bootloader would decode them.
    pub async fn trailers(&mut self, kind: PalErrorKind) -> Result<(Trailer, Trailer), PalError> {
        let c = self.config;
        let p = flash::read_trailer(&mut self.flash, &c.primary, ERASE_VALUE, kind).await?;
        let s = flash::read_trailer(&mut self.flash, &c.secondary, ERASE_VALUE, kind).await?;
        Ok((p, s))
    }

    /// Whether the running image is an unconfirmed upgrade (see the module docs).
    async fn on_trial(&mut self, kind: PalErrorKind) -> Result<bool, PalError> {
        let (p, s) = self.trailers(kind).await?;
        Ok(match self.config.mode {
            UpgradeMode::SwapWithStatus => {
                p.magic == Magic::Good && p.copy_done == Flag::Set && p.image_ok == Flag::Unset
            }
            UpgradeMode::OverwriteOnly => {
                let confirmed = p.magic == Magic::Good && p.image_ok == Flag::Set;
                !confirmed && s.magic != Magic::Good && self.slots_hold_same_image(kind).await?
            }
        })
    }

    async fn slots_hold_same_image(&mut self, kind: PalErrorKind) -> Result<bool, PalError> {
        let c = self.config;
        let map = |e: PalError| PalError::with_sub(kind, e.sub());
        let p = stated_digest(&mut FlashRegion {
            flash: &mut self.flash,
            offset: c.primary.offset(),
            len: c.capacity(),
        })
        .await
        .map_err(map)?;
        let s = stated_digest(&mut FlashRegion {
            flash: &mut self.flash,
            offset: c.secondary.offset(),
            len: c.capacity(),
        })
        .await
        .map_err(map)?;
        Ok(matches!((p, s), (Some(a), Some(b)) if a == b))
    }
}

impl<F: NorFlash> BootControl for Psoc6BootControl<F> {
    async fn platform_state(&mut self) -> Result<PlatformImageState, PalError> {
        if self.rejected {
            return Ok(PlatformImageState::Invalid);
        }
        if self.on_trial(PalErrorKind::BadImageState).await? {
            Ok(PlatformImageState::PendingCommit)
        } else {
            Ok(PlatformImageState::Valid)
        }
    }

    /// `boot_set_pending` on the secondary slot (§1.6, §1.7 point 2), in one row
    /// read-modify-write: MAGIC already GOOD → nothing; BAD → `ActivateFailed` with
    /// [`SUB_BAD_MAGIC`]; UNSET → the fields of the configured [`PendingMode`].
    async fn request_trial_boot(&mut self, _file: &FileInfo<'_>) -> Result<(), PalError> {
        let k = PalErrorKind::ActivateFailed;
        if self.config.mode == UpgradeMode::SwapWithStatus && self.on_trial(k).await? {
            return Err(PalError::with_sub(k, SUB_TRIAL_RUNNING));
        }
        let c = self.config;
        let s = flash::read_trailer(&mut self.flash, &c.secondary, ERASE_VALUE, k).await?;
        match s.magic {
            Magic::Good => {}
            Magic::Bad => return Err(PalError::with_sub(k, SUB_BAD_MAGIC)),
            Magic::Unset => {
                flash::patch_trailer(&mut self.flash, &c.secondary, ERASE_VALUE, k, |t| {
                    put_magic(t);
                    match c.pending {
                        PendingMode::MagicOnly => {}
                        PendingMode::Test => {
                            put_flag(t, SWAP_INFO_AT, swap_info(0, SWAP_TYPE_TEST), ERASE_VALUE)
                        }
                        PendingMode::Permanent => {
                            put_flag(t, IMAGE_OK_AT, FLAG_SET, ERASE_VALUE);
                            put_flag(t, SWAP_INFO_AT, swap_info(0, SWAP_TYPE_PERM), ERASE_VALUE);
                        }
                    }
                })
                .await?;
            }
        }
        self.rejected = false;
        Ok(())
    }

    /// `boot_set_confirmed` the anycloud 5.x way (§1.6, §1.7 point 3): only while on trial
    /// (otherwise `CommitFailed`): MAGIC at primary S-16 if not there, then image_ok = 0x01 at
    /// primary S-24, in one row read-modify-write.
    async fn confirm(&mut self) -> Result<(), PalError> {
        let k = PalErrorKind::CommitFailed;
        if self.rejected || !self.on_trial(k).await? {
            return Err(PalError::new(k));
        }
        let c = self.config;
        flash::patch_trailer(&mut self.flash, &c.primary, ERASE_VALUE, k, |t| {
            put_magic(t);
            put_flag(t, IMAGE_OK_AT, FLAG_SET, ERASE_VALUE);
        })
        .await
    }

    /// Swap: leave the primary image_ok UNSET (MCUboot REVERTs at the next reset) and erase the
    /// secondary trailer row so nothing is pending. A staged but not yet booted request is
    /// withdrawn the same way. Overwrite-only, after the copy: nothing can roll back; the
    /// secondary copy's header row is erased so the image stops reading `PendingCommit`, and
    /// the call fails with `RejectFailed` / [`SUB_NO_ROLLBACK`].
    async fn reject(&mut self) -> Result<(), PalError> {
        let k = PalErrorKind::RejectFailed;
        let c = self.config;
        let trial = self.on_trial(k).await?;
        self.rejected = true;
        flash::erase_row_if_dirty(
            &mut self.flash,
            c.secondary.trailer_row_offset(),
            ERASE_VALUE,
            k,
        )
        .await?;
        if trial && c.mode == UpgradeMode::OverwriteOnly {
            flash::erase_row_if_dirty(&mut self.flash, c.secondary.offset(), ERASE_VALUE, k)
                .await?;
            return Err(PalError::with_sub(k, SUB_NO_ROLLBACK));
        }
        Ok(())
    }
}
