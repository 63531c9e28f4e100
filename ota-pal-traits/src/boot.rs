//! Boot control and reset: handing a verified image to the board's bootloader.

use crate::{FileInfo, PalError};

/// What the platform says about the image it is running (spec §5, `OtaPalImageState_t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PlatformImageState {
    /// Running a new image on trial: it must be confirmed or it will be rolled back.
    PendingCommit,
    /// Running a confirmed image.
    Valid,
    /// The last update was rejected or failed verification.
    Invalid,
    /// The PAL cannot tell (an implementation error in the reference contract).
    Unknown,
}

/// Talks to the board's bootloader.
///
/// The agent calls [`request_trial_boot`](Self::request_trial_boot) once a file has been
/// written and verified, publishes the job status, and only then resets. After the reset the
/// bootloader runs the new image on trial; the agent self-tests it and calls
/// [`confirm`](Self::confirm) or [`reject`](Self::reject).
#[allow(async_fn_in_trait)]
pub trait BootControl {
    /// The state of the running image.
    async fn platform_state(&mut self) -> Result<PlatformImageState, PalError>;

    /// Arrange for the verified file to boot on trial at the next reset (MCUboot TEST pending,
    /// a bank-swap marker, a PSA install...). Must not reset.
    async fn request_trial_boot(&mut self, file: &FileInfo<'_>) -> Result<(), PalError>;

    /// Make the running trial image permanent. Fails with
    /// [`PalErrorKind::CommitFailed`](crate::PalErrorKind::CommitFailed) when nothing is on trial.
    async fn confirm(&mut self) -> Result<(), PalError>;

    /// Refuse the image on trial (or the one staged for trial): the next reset boots the
    /// previous image.
    async fn reject(&mut self) -> Result<(), PalError>;
}

/// Resets the device.
pub trait Reset {
    /// Reset now. On hardware this does not return. A simulation returns, and the agent's driver
    /// then ends its run reporting the reset, so a test can "reboot" by running it again.
    fn reset(&mut self);
}
