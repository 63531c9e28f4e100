//! The OTA PAL over PSA FWU: [`TfmStorage`] ([`ImageStorage`]), [`TfmBootControl`]
//! ([`BootControl`]) and [`TfmReset`] ([`Reset`]), mapped call by call as PAL-PSA does
//! (§4.3 table).
//!
//! On TF-M the non-secure side has no access to the staging flash: it hands blocks to the
//! secure FWU partition, which writes them, hashes them and writes MCUboot's trailer. So this
//! PAL is generic over [`PsaFwu`], not over a flash driver; the flash geometry lives on the
//! secure side (and in the `sim` module, feature `sim`).

use ota_pal_traits::{
    BootControl, FileInfo, ImageStorage, PalError, PalErrorKind, PlatformImageState, Reset,
};

use crate::config::Config;
use crate::psa::{ComponentId, ComponentState, PsaFwu, Status};

/// Sub-code: the job's file path names no component and the map has no default.
pub const SUB_UNKNOWN_PATH: u32 = 0x100;
/// Sub-code: a trial image runs or a rejected one awaits its reboot: confirm/reject and reboot
/// before a new download.
pub const SUB_UPDATE_IN_PROGRESS: u32 = 0x101;
/// Sub-code: no component is on trial (confirm) or candidate (request_trial_boot).
pub const SUB_NOTHING_PENDING: u32 = 0x102;

fn err(kind: PalErrorKind, st: Status) -> PalError {
    PalError::with_sub(kind, st.sub_code())
}

/// The file being received: its component and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct OpenFile {
    component: ComponentId,
    size: u32,
}

/// Image storage through `psa_fwu_start` / `psa_fwu_write`.
///
/// * `prepare` = `psa_fwu_start(c, NULL, 0)`. A component left in WRITING/CANDIDATE by an
///   earlier download of this boot is cancelled and cleaned first, one in FAILED/UPDATED is
///   cleaned, one STAGED (install requested, no reboot yet) is rejected and cleaned, so that
///   a new download can always begin; TRIAL/REJECTED refuse with `RxFileCreateFailed`
///   ([`SUB_UPDATE_IN_PROGRESS`]) — confirm/reject and reboot first.
/// * `write` = `psa_fwu_write` in chunks of [`Config::max_write_size`].
/// * `read` is not available (TF-M has no API to read the staging area back):
///   `FileClose` with `PSA_ERROR_NOT_SUPPORTED`. The verifier uses the candidate digest.
/// * `resume` works within one boot (the component is still WRITING); after a reboot TF-M has
///   discarded the staging area (`PSA_FWU_FLAG_VOLATILE_STAGING`, state READY) and `resume`
///   fails with `RxFileCreateFailed` so the agent restarts the file from block 0.
/// * `abort` = `psa_fwu_cancel` + `psa_fwu_clean` of the open file's component (a STAGED one
///   is rejected and cleaned). With nothing open it does nothing and succeeds.
#[derive(Debug)]
pub struct TfmStorage<F> {
    fwu: F,
    cfg: Config,
    open: Option<OpenFile>,
}

impl<F: PsaFwu> TfmStorage<F> {
    /// Storage handing blocks to `fwu`.
    pub fn new(fwu: F, cfg: Config) -> Self {
        Self {
            fwu,
            cfg,
            open: None,
        }
    }

    /// Close the file without any PSA call (after a successful verification and hand-over,
    /// like `NorFlashImageStorage::release`): a later [`abort`](ImageStorage::abort) then
    /// keeps the CANDIDATE/STAGED image. Without it, `abort` after a successful close
    /// discards the candidate, so that a later `psa_fwu_install` (which stages *every*
    /// CANDIDATE) cannot pick up a file the agent gave up.
    pub fn release(&mut self) {
        self.open = None;
    }

    /// The component of the file being received.
    pub fn component(&self) -> Option<ComponentId> {
        self.open.map(|o| o.component)
    }

    fn component_for(&self, file: &FileInfo<'_>) -> Result<ComponentId, PalError> {
        self.cfg
            .components
            .component(file.path)
            .ok_or(PalError::with_sub(
                PalErrorKind::RxFileCreateFailed,
                SUB_UNKNOWN_PATH,
            ))
    }

    /// Bring `c` back to READY (see the type docs), mapping failures to `kind`.
    fn make_ready(&self, c: ComponentId, kind: PalErrorKind) -> Result<(), PalError> {
        let info = self.fwu.query(c).map_err(|s| err(kind, s))?;
        match info.state {
            ComponentState::Ready => Ok(()),
            ComponentState::Writing | ComponentState::Candidate => {
                self.fwu.cancel(c).ok().map_err(|s| err(kind, s))?;
                self.fwu.clean(c).ok().map(|_| ()).map_err(|s| err(kind, s))
            }
            ComponentState::Failed | ComponentState::Updated => {
                self.fwu.clean(c).ok().map(|_| ()).map_err(|s| err(kind, s))
            }
            ComponentState::Staged => {
                self.fwu
                    .reject(Status::NOT_PERMITTED)
                    .ok()
                    .map_err(|s| err(kind, s))?;
                self.fwu.clean(c).ok().map(|_| ()).map_err(|s| err(kind, s))
            }
            ComponentState::Trial | ComponentState::Rejected => {
                Err(PalError::with_sub(kind, SUB_UPDATE_IN_PROGRESS))
            }
        }
    }
}

impl<F: PsaFwu> ImageStorage for TfmStorage<F> {
    /// The largest `max_size` of the components the map can name (0 if none answers).
    fn capacity(&self) -> u32 {
        let mut ids = [ComponentId(0); 8];
        let n = self.cfg.components.components(&mut ids);
        ids.iter()
            .take(n)
            .filter_map(|&c| self.fwu.query(c).ok())
            .map(|i| i.max_size)
            .max()
            .unwrap_or(0)
    }

    async fn prepare(&mut self, file: &FileInfo<'_>) -> Result<(), PalError> {
        self.open = None;
        let c = self.component_for(file)?;
        let info = self
            .fwu
            .query(c)
            .map_err(|s| err(PalErrorKind::RxFileCreateFailed, s))?;
        if file.size > info.max_size {
            return Err(PalError::new(PalErrorKind::RxFileTooLarge));
        }
        self.make_ready(c, PalErrorKind::RxFileCreateFailed)?;
        self.fwu
            .start(c, &[])
            .ok()
            .map_err(|s| err(PalErrorKind::RxFileCreateFailed, s))?;
        self.open = Some(OpenFile {
            component: c,
            size: file.size,
        });
        Ok(())
    }

    async fn resume(&mut self, file: &FileInfo<'_>) -> Result<(), PalError> {
        let c = self.component_for(file)?;
        let info = self
            .fwu
            .query(c)
            .map_err(|s| err(PalErrorKind::RxFileCreateFailed, s))?;
        if info.state != ComponentState::Writing {
            return Err(PalError::with_sub(
                PalErrorKind::RxFileCreateFailed,
                Status::BAD_STATE.sub_code(),
            ));
        }
        self.open = Some(OpenFile {
            component: c,
            size: file.size,
        });
        Ok(())
    }

    async fn write(&mut self, offset: u32, data: &[u8]) -> Result<(), PalError> {
        let open = self
            .open
            .ok_or(PalError::new(PalErrorKind::NullFileContext))?;
        let end = offset.checked_add(u32::try_from(data.len()).unwrap_or(u32::MAX));
        if end.is_none_or(|e| e > open.size) {
            return Err(PalError::with_sub(
                PalErrorKind::FileClose,
                Status::INVALID_ARGUMENT.sub_code(),
            ));
        }
        let chunk = self.cfg.max_write_size.max(1);
        let mut pos = offset;
        for block in data.chunks(chunk) {
            self.fwu
                .write(open.component, pos, block)
                .ok()
                .map_err(|s| err(PalErrorKind::FileClose, s))?;
            pos = pos.saturating_add(block.len() as u32);
        }
        Ok(())
    }

    async fn read(&mut self, _offset: u32, _buf: &mut [u8]) -> Result<(), PalError> {
        Err(err(PalErrorKind::FileClose, Status::NOT_SUPPORTED))
    }

    async fn abort(&mut self) -> Result<(), PalError> {
        let Some(open) = self.open.take() else {
            return Ok(());
        };
        let info = self
            .fwu
            .query(open.component)
            .map_err(|s| err(PalErrorKind::AbortFailed, s))?;
        match info.state {
            ComponentState::Trial | ComponentState::Rejected | ComponentState::Ready => Ok(()),
            _ => self.make_ready(open.component, PalErrorKind::AbortFailed),
        }
    }
}

/// Boot control through `psa_fwu_install` / `accept` / `reject` / `query` (§4.3).
///
/// * `platform_state`: any component of the map in TRIAL → PendingCommit; all READY or
///   UPDATED → Valid; anything else (WRITING, CANDIDATE, STAGED, FAILED, REJECTED) → Invalid
///   (PAL-PSA maps one component the same way; with several, TRIAL wins, then Invalid).
/// * `request_trial_boot(file)`: `psa_fwu_install()` when the file's component is CANDIDATE
///   (REBOOT/RESTART/SUCCESS accepted). TF-M's install stages *every* CANDIDATE, so for a job
///   with a secure and a non-secure image the second call finds its component already STAGED:
///   that succeeds without a second install. The reset is the agent's, through [`TfmReset`].
/// * `confirm` = `psa_fwu_accept()` then `psa_fwu_clean(c)` for each UPDATED component;
///   `CommitFailed` when nothing is on TRIAL. A failed clean is not an error (the update is
///   committed; the next `prepare` cleans).
/// * `reject` = `psa_fwu_reject(PSA_ERROR_NOT_PERMITTED)` when a component is TRIAL or STAGED;
///   a WRITING/CANDIDATE one (a failed verification) is cancelled (→ FAILED, state Invalid).
#[derive(Debug)]
pub struct TfmBootControl<F> {
    fwu: F,
    cfg: Config,
}

impl<F: PsaFwu> TfmBootControl<F> {
    /// Boot control over `fwu`.
    pub fn new(fwu: F, cfg: Config) -> Self {
        Self { fwu, cfg }
    }

    fn states<E>(
        &self,
        kind: PalErrorKind,
        mut f: impl FnMut(ComponentId, ComponentState) -> Result<(), E>,
    ) -> Result<Result<(), E>, PalError> {
        let mut ids = [ComponentId(0); 8];
        let n = self.cfg.components.components(&mut ids);
        for &c in ids.iter().take(n) {
            let info = self.fwu.query(c).map_err(|s| err(kind, s))?;
            if let Err(e) = f(c, info.state) {
                return Ok(Err(e));
            }
        }
        Ok(Ok(()))
    }
}

impl<F: PsaFwu> BootControl for TfmBootControl<F> {
    async fn platform_state(&mut self) -> Result<PlatformImageState, PalError> {
        let mut trial = false;
        let mut invalid = false;
        let _ = self.states::<()>(PalErrorKind::BadImageState, |_, s| {
            match s {
                ComponentState::Trial => trial = true,
                ComponentState::Ready | ComponentState::Updated => {}
                _ => invalid = true,
            }
            Ok(())
        })?;
        Ok(if trial {
            PlatformImageState::PendingCommit
        } else if invalid {
            PlatformImageState::Invalid
        } else {
            PlatformImageState::Valid
        })
    }

    async fn request_trial_boot(&mut self, file: &FileInfo<'_>) -> Result<(), PalError> {
        let c = self
            .cfg
            .components
            .component(file.path)
            .ok_or(PalError::with_sub(
                PalErrorKind::ActivateFailed,
                SUB_UNKNOWN_PATH,
            ))?;
        let info = self
            .fwu
            .query(c)
            .map_err(|s| err(PalErrorKind::ActivateFailed, s))?;
        match info.state {
            ComponentState::Staged => Ok(()),
            ComponentState::Candidate => self
                .fwu
                .install()
                .ok()
                .map(|_| ())
                .map_err(|s| err(PalErrorKind::ActivateFailed, s)),
            _ => Err(PalError::with_sub(
                PalErrorKind::ActivateFailed,
                SUB_NOTHING_PENDING,
            )),
        }
    }

    async fn confirm(&mut self) -> Result<(), PalError> {
        let mut trial = false;
        let _ = self.states::<()>(PalErrorKind::CommitFailed, |_, s| {
            trial |= s == ComponentState::Trial;
            Ok(())
        })?;
        if !trial {
            return Err(PalError::with_sub(
                PalErrorKind::CommitFailed,
                SUB_NOTHING_PENDING,
            ));
        }
        self.fwu
            .accept()
            .ok()
            .map_err(|s| err(PalErrorKind::CommitFailed, s))?;
        let fwu = &self.fwu;
        let _ = self.states::<()>(PalErrorKind::CommitFailed, |c, s| {
            if s == ComponentState::Updated {
                let _ = fwu.clean(c);
            }
            Ok(())
        });
        Ok(())
    }

    async fn reject(&mut self) -> Result<(), PalError> {
        let mut installed = false;
        let fwu = &self.fwu;
        self.states(PalErrorKind::RejectFailed, |c, s| match s {
            ComponentState::Trial | ComponentState::Staged => {
                installed = true;
                Ok(())
            }
            ComponentState::Writing | ComponentState::Candidate => fwu.cancel(c).ok().map(|_| ()),
            _ => Ok(()),
        })?
        .map_err(|s| err(PalErrorKind::RejectFailed, s))?;
        if installed {
            self.fwu
                .reject(Status::NOT_PERMITTED)
                .ok()
                .map_err(|s| err(PalErrorKind::RejectFailed, s))?;
        }
        Ok(())
    }
}

/// [`Reset`] through `psa_fwu_request_reboot()` (PAL-PSA's `ResetDevice`). On hardware the
/// call does not return; if TF-M refuses, `reset` returns and the caller may fall back to
/// `SCB::sys_reset`.
#[derive(Debug)]
pub struct TfmReset<F> {
    fwu: F,
}

impl<F: PsaFwu> TfmReset<F> {
    /// Reset through `fwu`.
    pub fn new(fwu: F) -> Self {
        Self { fwu }
    }
}

impl<F: PsaFwu> Reset for TfmReset<F> {
    fn reset(&mut self) {
        let _ = self.fwu.request_reboot();
    }
}
