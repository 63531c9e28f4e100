//! [`BootControl`] through the aws_bootloader descriptors (spec §3.4, §3.5).

use embedded_storage_async::nor_flash::NorFlash;
use ota_pal_traits::{BootControl, FileInfo, PalError, PalErrorKind, PlatformImageState};

use crate::descriptor::{Descriptor, ImageFlags, MAX_SIGNATURE_LEN};
use crate::layout::Layout;
use crate::nvm;
use crate::signature::{NoSignatureSource, SignatureSlot, SignatureSource};

/// Sub-code of [`PalErrorKind::BootInfoCreateFailed`]: no signature was handed over with
/// [`Same54Boot::set_signature`] before [`BootControl::request_trial_boot`], and the signature
/// slot ([`Same54Boot::with_signature_slot`]) is empty or absent.
pub const SUB_NO_SIGNATURE: u32 = 0x310;
/// Sub-code of [`PalErrorKind::BootInfoCreateFailed`]: the next sequence number would
/// overflow a u32.
pub const SUB_SEQUENCE_OVERFLOW: u32 = 0x311;
/// Sub-code of [`PalErrorKind::BootInfoCreateFailed`]: the file is empty.
pub const SUB_EMPTY_FILE: u32 = 0x312;

/// How the staged descriptor's sequence number is chosen (spec §3.5 CloseFile).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequencePolicy {
    /// Exactly the vendor PAL: if the lower descriptor's sequence differs from the running
    /// AppVersion32, rewrite the lower descriptor with sequence = AppVersion32 (erase its
    /// 8 KB block and program it again), then stage with sequence = AppVersion32 + 1.
    ///
    /// A power cut inside that rewrite leaves *no* valid descriptor at all (the staged one is
    /// not written yet): the bootloader takes its "default" path (§3.4 step 6) and launches
    /// 0x10000 without checking a signature. The old application is still intact there, so
    /// the device runs, but unverified, and it has lost its rollback image. The power-loss
    /// tests count these cuts.
    VendorRewrite,
    /// Never touch the lower descriptor: stage with sequence =
    /// `max(AppVersion32, lower sequence) + 1`. The bootloader only compares sequences
    /// (highest valid wins, §3.4 step 2), so the outcome is the vendor's: the staged image
    /// wins, and the running one stays the fallback. When the lower sequence is below
    /// AppVersion32 + 1 (every normal update) the staged descriptor is byte-identical to the
    /// vendor's; only the needless rewrite and its power-loss window are gone.
    Monotonic,
}

/// Boot-control configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// The memory map of the bootloader build.
    pub layout: Layout,
    /// How the staged sequence number is chosen.
    pub sequence: SequencePolicy,
}

impl Config {
    /// The vendor PAL, byte for byte and step for step (including the lower-descriptor
    /// rewrite and its power-loss window).
    pub const VENDOR: Self = Self {
        layout: Layout::SAME54_XPRO,
        sequence: SequencePolicy::VendorRewrite,
    };
    /// The same descriptors for the bootloader, without the lower-descriptor rewrite:
    /// no power cut leaves the device without a verified image (see the crate README).
    pub const POWER_SAFE: Self = Self {
        layout: Layout::SAME54_XPRO,
        sequence: SequencePolicy::Monotonic,
    };
}

impl Default for Config {
    fn default() -> Self {
        Self::POWER_SAFE
    }
}

/// The reference `OtaImageState_t` values the vendor `SetPlatformImageState` handles (§3.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImageState {
    /// The new image runs on trial.
    Testing,
    /// Commit the image on trial.
    Accepted,
    /// Refuse the image on trial or staged.
    Rejected,
    /// Give up the update.
    Aborted,
}

/// Boot control over the two descriptors.
///
/// * [`platform_state`](BootControl::platform_state): from the lower descriptor (§3.5:
///   0xFE → PendingCommit, 0xFC → Valid, anything else or no magic → Invalid; the spec says
///   this mapping was **not confirmed** from the vendor source). Refinement of ours: with
///   lower 0xFC, the state is Invalid when the last update was refused — the upper descriptor
///   carries the magic and flags 0xFE or 0xF8 (the trial image the bootloader rolled back
///   from), or a verification failed / reject was requested since this value was created.
/// * [`request_trial_boot`](BootControl::request_trial_boot): writes the upper descriptor
///   (see [`SequencePolicy`]); the reset that follows makes the bootloader swap the banks.
///   The signature is not part of [`FileInfo`]: the firmware hands the job document's
///   decoded signature over with [`set_signature`](Self::set_signature) after it verified
///   the file (or uses [`close_file`](crate::close_file), which does both); under the agent's
///   driver, a [`SignatureCapture`](crate::SignatureCapture) verifier records it in a
///   [`SignatureSlot`] given here with [`with_signature_slot`](Self::with_signature_slot),
///   which is read when `set_signature` was not called.
/// * [`confirm`](BootControl::confirm) / [`reject`](BootControl::reject):
///   [`set_image_state`](Self::set_image_state) with Accepted / Rejected.
///
/// RAM: the flash driver plus 276 bytes (the 256-byte signature buffer and the config), plus
/// a reference with a [`SignatureSlot`].
#[derive(Debug)]
pub struct Same54Boot<F, S = NoSignatureSource> {
    flash: F,
    config: Config,
    app_version32: u32,
    signature: [u8; MAX_SIGNATURE_LEN],
    /// Length of the signature handed over with `set_signature` (0: none; then `source`).
    signature_len: u16,
    refused: bool,
    source: S,
}

impl<F: NorFlash> Same54Boot<F> {
    /// Boot control over `flash` (a driver for the whole NVM), for firmware whose own version
    /// is `app_version32` (the reference `AppVersion32`: major << 24 | minor << 16 | build).
    pub fn new(flash: F, config: Config, app_version32: u32) -> Result<Self, PalError> {
        nvm::check_geometry(&flash, &config.layout)?;
        Ok(Self {
            flash,
            config,
            app_version32,
            signature: [0; MAX_SIGNATURE_LEN],
            signature_len: 0,
            refused: false,
            source: NoSignatureSource,
        })
    }

    /// Read the signature from `slot` at [`request_trial_boot`](BootControl::request_trial_boot)
    /// when none was handed over with [`set_signature`](Self::set_signature): the slot a
    /// [`SignatureCapture`](crate::SignatureCapture) verifier fills (see
    /// [`signature`](crate::signature)). This is how the signature gets into the descriptor
    /// when `ota-core`'s driver runs the PAL.
    pub fn with_signature_slot(self, slot: &SignatureSlot) -> Same54Boot<F, &SignatureSlot> {
        Same54Boot {
            flash: self.flash,
            config: self.config,
            app_version32: self.app_version32,
            signature: self.signature,
            signature_len: self.signature_len,
            refused: self.refused,
            source: slot,
        }
    }
}

impl<F: NorFlash, S: SignatureSource> Same54Boot<F, S> {
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

    /// Hand over the job document's (base64-decoded, DER) signature of the file, which the
    /// staged descriptor must carry for the bootloader to check (§3.4 step 2). Call it after
    /// the file verified; it is kept in RAM until the next call, a failed verification, a
    /// reject or an abort, and takes precedence over a signature slot. Fails with
    /// [`PalErrorKind::BootInfoCreateFailed`] when longer than 256 bytes.
    pub fn set_signature(&mut self, signature: &[u8]) -> Result<(), PalError> {
        let n = signature.len();
        self.signature
            .get_mut(..n)
            .ok_or(PalError::with_sub(PalErrorKind::BootInfoCreateFailed, 1))?
            .copy_from_slice(signature);
        self.signature_len = n as u16;
        Ok(())
    }

    /// Record that the last download failed its verification: [`platform_state`] reads
    /// Invalid until the next trial boot is requested (spec §8.5: Invalid after a failed
    /// close).
    ///
    /// [`platform_state`]: BootControl::platform_state
    pub fn mark_verification_failed(&mut self) {
        self.refused = true;
        self.forget_signature();
    }

    /// Drop the handed-over signature and empty the signature slot.
    fn forget_signature(&mut self) {
        self.signature_len = 0;
        self.source.clear_signature();
    }

    /// The descriptor at 0x7E000 (the running image's).
    pub async fn lower_descriptor(&mut self) -> Result<Descriptor, PalError> {
        let a = self.config.layout.lower_descriptor_addr();
        nvm::read_descriptor(&mut self.flash, a, PalErrorKind::Uninitialized).await
    }

    /// The descriptor at 0xFE000 (the staged or fallback image's).
    pub async fn upper_descriptor(&mut self) -> Result<Descriptor, PalError> {
        let a = self.config.layout.upper_descriptor_addr();
        nvm::read_descriptor(&mut self.flash, a, PalErrorKind::Uninitialized).await
    }

    /// The vendor `SetPlatformImageState` (§3.5):
    ///
    /// | lower flags | Testing | Accepted | Rejected | Aborted |
    /// |---|---|---|---|---|
    /// | 0xFE (on trial) | Ok | lower → 0xFC | lower → 0xF8 | lower → 0xF8 |
    /// | otherwise | Ok (not in the table: nothing to do) | CommitFailed | upper → 0xF8 (if it has a descriptor) | erase the update bank |
    ///
    /// Flag changes erase the descriptor's 8 KB block and program it again (vendor way; see
    /// the README for the power-cut window).
    pub async fn set_image_state(&mut self, state: ImageState) -> Result<(), PalError> {
        let kind = match state {
            ImageState::Testing => PalErrorKind::BadImageState,
            ImageState::Accepted => PalErrorKind::CommitFailed,
            ImageState::Rejected => PalErrorKind::RejectFailed,
            ImageState::Aborted => PalErrorKind::AbortFailed,
        };
        let layout = self.config.layout;
        let lower_addr = layout.lower_descriptor_addr();
        let (magic, flags, _) =
            nvm::head_fields(&nvm::read_head(&mut self.flash, lower_addr, kind).await?);
        if magic && flags == ImageFlags::COMMIT_PENDING {
            let flags = match state {
                ImageState::Testing => return Ok(()),
                ImageState::Accepted => ImageFlags::VALID,
                ImageState::Rejected | ImageState::Aborted => ImageFlags::INVALID,
            };
            return self.rewrite_flags(lower_addr, flags, kind).await;
        }
        match state {
            ImageState::Testing => Ok(()),
            ImageState::Accepted => Err(PalError::new(PalErrorKind::CommitFailed)),
            ImageState::Rejected => {
                self.refused = true;
                self.forget_signature();
                let up = layout.upper_descriptor_addr();
                let (magic, flags, _) =
                    nvm::head_fields(&nvm::read_head(&mut self.flash, up, kind).await?);
                if magic && flags != ImageFlags::INVALID {
                    self.rewrite_flags(up, ImageFlags::INVALID, kind).await?;
                }
                Ok(())
            }
            ImageState::Aborted => {
                self.forget_signature();
                nvm::erase_update_bank(&mut self.flash, &layout, kind).await
            }
        }
    }

    /// Read the descriptor at `addr`, set its flags, erase its block and program it back.
    async fn rewrite_flags(
        &mut self,
        addr: u32,
        flags: ImageFlags,
        kind: PalErrorKind,
    ) -> Result<(), PalError> {
        let mut raw = nvm::read_raw(&mut self.flash, addr, kind).await?;
        if let Some(f) = raw.get_mut(crate::descriptor::offset::FLAGS) {
            *f = flags.0;
        }
        nvm::rewrite_raw(&mut self.flash, addr, &raw, kind).await
    }

    fn next_sequence(&self, lower_magic: bool, lower_sequence: u32) -> Result<u32, PalError> {
        let base = match self.config.sequence {
            SequencePolicy::VendorRewrite => self.app_version32,
            SequencePolicy::Monotonic if lower_magic => self.app_version32.max(lower_sequence),
            SequencePolicy::Monotonic => self.app_version32,
        };
        base.checked_add(1).ok_or(PalError::with_sub(
            PalErrorKind::BootInfoCreateFailed,
            SUB_SEQUENCE_OVERFLOW,
        ))
    }
}

impl<F: NorFlash, S: SignatureSource> BootControl for Same54Boot<F, S> {
    async fn platform_state(&mut self) -> Result<PlatformImageState, PalError> {
        let kind = PalErrorKind::Uninitialized;
        let layout = self.config.layout;
        let lower = nvm::read_head(&mut self.flash, layout.lower_descriptor_addr(), kind).await?;
        let (magic, flags, _) = nvm::head_fields(&lower);
        if !magic {
            return Ok(PlatformImageState::Invalid);
        }
        Ok(match flags {
            ImageFlags::COMMIT_PENDING => PlatformImageState::PendingCommit,
            ImageFlags::VALID => {
                let upper =
                    nvm::read_head(&mut self.flash, layout.upper_descriptor_addr(), kind).await?;
                let (magic, flags, _) = nvm::head_fields(&upper);
                let rolled_back =
                    magic && (flags == ImageFlags::COMMIT_PENDING || flags == ImageFlags::INVALID);
                if self.refused || rolled_back {
                    PlatformImageState::Invalid
                } else {
                    PlatformImageState::Valid
                }
            }
            _ => PlatformImageState::Invalid,
        })
    }

    /// The CloseFile tail of the vendor PAL (§3.5): optionally rewrite the lower descriptor's
    /// sequence ([`SequencePolicy`]), then write the upper descriptor {`@AFRTOS`, 0xFF,
    /// sequence, `sig-sha256-ecdsa`, signature, size}. The signature is the one handed over
    /// with [`set_signature`](Same54Boot::set_signature), else the one in the signature slot
    /// ([`with_signature_slot`](Same54Boot::with_signature_slot)); with neither it fails with
    /// `BootInfoCreateFailed` / [`SUB_NO_SIGNATURE`]. Idempotent: asking again for the same
    /// file leaves the flash as it is.
    async fn request_trial_boot(&mut self, file: &FileInfo<'_>) -> Result<(), PalError> {
        let kind = PalErrorKind::BootInfoCreateFailed;
        let layout = self.config.layout;
        if file.size > layout.app_max_size {
            return Err(PalError::new(PalErrorKind::RxFileTooLarge));
        }
        if file.size == 0 {
            return Err(PalError::with_sub(kind, SUB_EMPTY_FILE));
        }
        let len = match self.signature_len {
            0 => self.source.read_signature(&mut self.signature),
            n => n as usize,
        };
        let sig = self
            .signature
            .get(..len)
            .filter(|s| !s.is_empty())
            .ok_or(PalError::with_sub(kind, SUB_NO_SIGNATURE))?;
        let lower_addr = layout.lower_descriptor_addr();
        let (magic, _, lower_sequence) =
            nvm::head_fields(&nvm::read_head(&mut self.flash, lower_addr, kind).await?);
        let sequence = self.next_sequence(magic, lower_sequence)?;
        let staged = Descriptor::staged(sequence, sig, file.size)?.encode();
        if self.config.sequence == SequencePolicy::VendorRewrite
            && magic
            && lower_sequence != self.app_version32
        {
            // Vendor quirk (§3.5): the running image's descriptor gets sequence =
            // AppVersion32 so that AppVersion32 + 1 wins. A torn descriptor (no magic) is
            // left alone: there is nothing to keep in it.
            let mut raw = nvm::read_raw(&mut self.flash, lower_addr, kind).await?;
            let at = crate::descriptor::offset::SEQUENCE;
            if let Some(s) = raw.get_mut(at..at + 4) {
                s.copy_from_slice(&self.app_version32.to_le_bytes());
            }
            nvm::rewrite_raw(&mut self.flash, lower_addr, &raw, kind).await?;
        }
        let up = layout.upper_descriptor_addr();
        match nvm::compare(&mut self.flash, up, &staged, kind).await? {
            nvm::Compare::Same => {}
            nvm::Compare::Erased => nvm::program_raw(&mut self.flash, up, &staged, kind).await?,
            nvm::Compare::Other => nvm::rewrite_raw(&mut self.flash, up, &staged, kind).await?,
        }
        self.refused = false;
        Ok(())
    }

    async fn confirm(&mut self) -> Result<(), PalError> {
        self.set_image_state(ImageState::Accepted).await
    }

    async fn reject(&mut self) -> Result<(), PalError> {
        self.set_image_state(ImageState::Rejected).await
    }
}
