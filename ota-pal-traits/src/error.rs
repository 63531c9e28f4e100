//! The one error type every PAL operation returns.
//!
//! It carries the reference agent's `OtaPalStatus_t` split (spec §5): a main code in bits
//! 31..24 and a platform sub-code in bits 23..0. The agent prints it verbatim in a job's
//! `FAILED` reason (`0x000000e3: 0x00001234`), so the cloud sees the same numbers it would see
//! from a C PAL.

use core::fmt;

/// Main PAL error codes (`OtaPalMainStatus_t`, spec §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum PalErrorKind {
    /// The PAL has not been set up, or the operation came before the file was prepared.
    Uninitialized = 0xe0,
    /// A buffer or resource ran out.
    OutOfMemory = 0xe1,
    /// No file is open for this operation.
    NullFileContext = 0xe2,
    /// The image's signature does not verify.
    SignatureCheckFailed = 0xe3,
    /// The receive area could not be prepared (erase failed, bad path, ...).
    RxFileCreateFailed = 0xe4,
    /// The file does not fit in the receive area.
    RxFileTooLarge = 0xe5,
    /// Boot information (descriptor, trailer, marker) could not be written.
    BootInfoCreateFailed = 0xe6,
    /// The signer's key or certificate is missing or unusable.
    BadSignerCert = 0xe7,
    /// The requested image state is not valid now.
    BadImageState = 0xe8,
    /// Discarding the partial download failed.
    AbortFailed = 0xe9,
    /// Rejecting (rolling back) the image failed.
    RejectFailed = 0xea,
    /// Committing (confirming) the image failed, or there is nothing to commit.
    CommitFailed = 0xeb,
    /// The new image could not be scheduled for boot.
    ActivateFailed = 0xec,
    /// Access to the receive file failed while aborting.
    FileAbort = 0xed,
    /// Reading or writing the receive file failed.
    FileClose = 0xee,
}

/// A PAL failure: a [`PalErrorKind`] plus a 24-bit platform detail (a flash driver code, a PSA
/// status, a bootloader return code...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PalError {
    kind: PalErrorKind,
    sub: u32,
}

impl PalError {
    /// Largest sub-code that fits the 24-bit field.
    pub const MAX_SUB: u32 = 0x00ff_ffff;

    /// An error with no platform detail.
    pub const fn new(kind: PalErrorKind) -> Self {
        Self { kind, sub: 0 }
    }

    /// An error with a platform detail; bits above the low 24 are dropped.
    pub const fn with_sub(kind: PalErrorKind, sub: u32) -> Self {
        Self {
            kind,
            sub: sub & Self::MAX_SUB,
        }
    }

    /// The main code.
    pub const fn kind(&self) -> PalErrorKind {
        self.kind
    }

    /// The 24-bit platform detail.
    pub const fn sub(&self) -> u32 {
        self.sub
    }

    /// The packed `OtaPalStatus_t` value: main code in bits 31..24, detail in 23..0.
    pub const fn status(&self) -> u32 {
        ((self.kind as u32) << 24) | self.sub
    }
}

impl From<PalErrorKind> for PalError {
    fn from(kind: PalErrorKind) -> Self {
        Self::new(kind)
    }
}

impl fmt::Display for PalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} (0x{:08x})", self.kind, self.status())
    }
}

/// Map a flash driver error to the coarse `embedded-storage` kind, as a sub-code.
///
/// Sub-codes: 1 not aligned, 2 out of bounds, 3 other.
pub fn flash_sub_code<E: embedded_storage::nor_flash::NorFlashError>(e: &E) -> u32 {
    use embedded_storage::nor_flash::NorFlashErrorKind as K;
    match e.kind() {
        K::NotAligned => 1,
        K::OutOfBounds => 2,
        _ => 3,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_packs_main_and_sub_codes_like_the_reference() {
        let e = PalError::with_sub(PalErrorKind::SignatureCheckFailed, 0x1234);
        assert_eq!(e.status(), 0xe300_1234);
        assert_eq!(
            PalError::new(PalErrorKind::CommitFailed).status(),
            0xeb00_0000
        );
    }

    #[test]
    fn sub_code_is_truncated_to_24_bits() {
        let e = PalError::with_sub(PalErrorKind::FileClose, 0xdead_beef);
        assert_eq!(e.sub(), 0x00ad_beef);
        assert_eq!(e.status(), 0xeead_beef);
    }
}
