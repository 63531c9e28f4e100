//! [`BootControl`] for the Dual Bank Manager: the vendor's marker protocol (spec §2.3, §2.4
//! step 8) plus this crate's [trial record](crate::trial).
//!
//! | Operation | Flash writes, in order |
//! |---|---|
//! | [`request_trial_boot`](BootControl::request_trial_boot) | erase trial sector, program TRIAL unit; erase marker sector, program marker with mode 0 (`boot_set_pending(0, 0)`) |
//! | [`startup`](TraveoBootControl::startup), once per boot | vendor `checkBank` (erase + program marker with mode 1 when the DBM fell back); on the first boot of a trial program the BOOTED unit; on a second boot of an unconfirmed trial erase + program the marker to the old bank |
//! | [`confirm`](BootControl::confirm) | erase the trial sector (the vendor's confirm is a no-op: the DBM verifies at every boot) |
//! | [`reject`](BootControl::reject) on trial | erase + program the marker to prefer the old bank (mode 0 as seen from the trial mapping) |
//! | [`reject`](BootControl::reject) with a trial staged | erase + program the marker with mode 1 (prefer the running bank) |
//!
//! The marker always gets exactly the vendor's bytes and sequence, so the DBM sees nothing new.

use embedded_storage_async::nor_flash::NorFlash;
use ota_pal_traits::{
    flash_sub_code, BootControl, FileInfo, PalError, PalErrorKind, PlatformImageState,
};

use crate::flashctl::BankMapping;
use crate::layout::{Config, WORK_PROGRAM_SIZE, WORK_SECTOR_SIZE};
use crate::marker::{
    rollback_detected, selector_for, FlashMarker, Mapping, PendingMode, MARKER_LEN,
};
use crate::trial::{
    booted_unit, unit_state, TrialRecord, UnitState, BOOTED_UNIT_OFFSET, TRIAL_UNIT_OFFSET,
    UNIT_LEN,
};

/// Sub-code: the work-flash driver's geometry or window does not fit the marker protocol.
pub const SUB_BAD_WORK_FLASH: u32 = 0x320;
/// Sub-code: a trial is running; confirm or reject it before staging another image.
pub const SUB_TRIAL_RUNNING: u32 = 0x321;
/// Sub-code: nothing is on trial (confirm).
pub const SUB_NOTHING_ON_TRIAL: u32 = 0x322;

/// What [`TraveoBootControl::startup`] found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartupReport {
    /// The mapping the DBM selected.
    pub mapping: Mapping,
    /// The marker selector as found, before any rewrite.
    pub selector: u32,
    /// The vendor `checkBank` found a rollback and rewrote the marker with mode 1.
    pub rollback_repaired: bool,
    /// The trial record, if a valid one was found.
    pub trial: Option<TrialRecord>,
    /// The running image's state.
    pub state: PlatformImageState,
    /// A second boot of an unconfirmed trial: the marker now prefers the old bank and the
    /// firmware must reset (without running the application) to boot it.
    pub reset_required: bool,
}

/// Boot control over the work flash and the `FLASH_CTL` mapping (see the [module docs](self)).
///
/// RAM: the work-flash driver and the mapping reader, plus 28 bytes of state (measured by
/// `tests/ram_cost.rs`); its futures hold at most two 16-byte buffers.
#[derive(Debug)]
pub struct TraveoBootControl<W, M> {
    work: W,
    mapping: M,
    marker_off: u32,
    trial_off: u32,
    started: Option<StartupReport>,
    rejected: bool,
}

fn flash_err<E: embedded_storage_async::nor_flash::NorFlashError>(
    kind: PalErrorKind,
) -> impl Fn(E) -> PalError {
    move |e| PalError::with_sub(kind, flash_sub_code(&e))
}

impl<W: NorFlash, M: BankMapping> TraveoBootControl<W, M> {
    /// Boot control over `work`, a work-flash driver whose offset 0 is CPU address `work_base`
    /// and which covers the marker and trial-record sectors of `cfg`.
    pub fn new(work: W, work_base: u32, mapping: M, cfg: &Config) -> Result<Self, PalError> {
        let bad = PalError::with_sub(PalErrorKind::Uninitialized, SUB_BAD_WORK_FLASH);
        let sector = WORK_SECTOR_SIZE as usize;
        if W::WRITE_SIZE == 0
            || WORK_PROGRAM_SIZE as usize % W::WRITE_SIZE != 0
            || W::ERASE_SIZE == 0
            || sector % W::ERASE_SIZE != 0
            || cfg.marker_addr == cfg.trial_record_addr
        {
            return Err(bad);
        }
        let place = |addr: u32| {
            addr.checked_sub(work_base)
                .filter(|off| off % WORK_SECTOR_SIZE == 0)
                .filter(|off| {
                    off.checked_add(WORK_SECTOR_SIZE)
                        .is_some_and(|end| end as usize <= work.capacity())
                })
                .ok_or(bad)
        };
        let marker_off = place(cfg.marker_addr)?;
        let trial_off = place(cfg.trial_record_addr)?;
        Ok(Self {
            work,
            mapping,
            marker_off,
            trial_off,
            started: None,
            rejected: false,
        })
    }

    /// The report of this boot's [`startup`](Self::startup), if it ran on this instance.
    pub fn startup_report(&self) -> Option<StartupReport> {
        self.started
    }

    /// Hand this boot's startup report to another instance (e.g. firmware ran
    /// [`startup`](Self::startup) early and builds the agent's boot control later): the new
    /// instance must not run startup again in the same boot, since a second run would take the
    /// trial's first boot for a second one and revert it.
    pub fn with_startup_report(mut self, report: StartupReport) -> Self {
        self.started = Some(report);
        self
    }

    /// The current mapping, from `FLASH_CTL`.
    pub fn mapping(&mut self) -> Mapping {
        self.mapping.mapping()
    }

    /// Give the drivers back.
    pub fn into_inner(self) -> (W, M) {
        (self.work, self.mapping)
    }

    /// Read the marker as the DBM does.
    pub async fn read_marker(&mut self) -> Result<FlashMarker, PalError> {
        let mut buf = [0u8; MARKER_LEN];
        self.work
            .read(self.marker_off, &mut buf)
            .await
            .map_err(flash_err(PalErrorKind::Uninitialized))?;
        Ok(FlashMarker::decode(&buf))
    }

    /// Erase the marker sector and program `[selector, FF.., FF.., FF..]` (§2.3 sequence).
    async fn write_selector(&mut self, selector: u32, kind: PalErrorKind) -> Result<(), PalError> {
        let off = self.marker_off;
        self.work
            .erase(off, off + WORK_SECTOR_SIZE)
            .await
            .map_err(flash_err(kind))?;
        self.work
            .write(off, &FlashMarker::new(selector).encode())
            .await
            .map_err(flash_err(kind))
    }

    /// The vendor's `boot_set_pending(0, mode)` (§2.3) for the current mapping.
    pub async fn set_pending(&mut self, mode: PendingMode) -> Result<(), PalError> {
        let sel = selector_for(mode, self.mapping.mapping());
        self.write_selector(sel, PalErrorKind::ActivateFailed).await
    }

    /// The vendor's `checkBank` (§2.4 step 8): when the DBM booted the bank the marker does not
    /// prefer, rewrite the marker with mode 1. Returns the selector found and whether it
    /// rewrote it.
    pub async fn check_bank(&mut self) -> Result<(u32, bool), PalError> {
        let sel = self.read_marker().await?.selector;
        let map = self.mapping.mapping();
        if rollback_detected(sel, map) {
            self.write_selector(
                selector_for(PendingMode::PointToActive, map),
                PalErrorKind::Uninitialized,
            )
            .await?;
            Ok((sel, true))
        } else {
            Ok((sel, false))
        }
    }

    async fn read_unit(&mut self, at: u32) -> Result<[u8; UNIT_LEN], PalError> {
        let mut buf = [0u8; UNIT_LEN];
        self.work
            .read(self.trial_off + at, &mut buf)
            .await
            .map_err(flash_err(PalErrorKind::Uninitialized))?;
        Ok(buf)
    }

    /// Run once at every startup, before the OTA agent (**exactly once per boot**: keep this
    /// instance for the agent, or hand the report over with
    /// [`with_startup_report`](Self::with_startup_report)) (the vendor calls `checkBank` there):
    /// repairs the marker after a DBM fallback, and tracks the trial across resets (see
    /// [`crate::trial`]). Later calls in the same boot return the first report.
    ///
    /// When the report says [`reset_required`](StartupReport::reset_required), reset at once.
    pub async fn startup(&mut self) -> Result<StartupReport, PalError> {
        if let Some(rep) = self.started {
            return Ok(rep);
        }
        let (selector, rollback_repaired) = self.check_bank().await?;
        let mapping = self.mapping.mapping();
        let trial = TrialRecord::decode(&self.read_unit(TRIAL_UNIT_OFFSET).await?);
        let mut reset_required = false;
        let state = match trial {
            None => PlatformImageState::Valid,
            Some(t) if t.trial_mapping != mapping => PlatformImageState::Invalid,
            Some(_) => {
                let booted = self.read_unit(BOOTED_UNIT_OFFSET).await?;
                match unit_state(&booted, &booted_unit()) {
                    UnitState::Erased => {
                        self.work
                            .write(self.trial_off + BOOTED_UNIT_OFFSET, &booted_unit())
                            .await
                            .map_err(flash_err(PalErrorKind::Uninitialized))?;
                        PlatformImageState::PendingCommit
                    }
                    UnitState::Written | UnitState::Torn => {
                        // Second boot without confirm: send the next boot to the old bank.
                        self.write_selector(mapping.other().selector(), PalErrorKind::RejectFailed)
                            .await?;
                        reset_required = true;
                        PlatformImageState::Invalid
                    }
                }
            }
        };
        let rep = StartupReport {
            mapping,
            selector,
            rollback_repaired,
            trial,
            state,
            reset_required,
        };
        self.started = Some(rep);
        Ok(rep)
    }

    fn set_state(&mut self, state: PlatformImageState) {
        if let Some(rep) = self.started.as_mut() {
            rep.state = state;
        }
    }

    async fn erase_trial(&mut self, kind: PalErrorKind) -> Result<(), PalError> {
        let off = self.trial_off;
        self.work
            .erase(off, off + WORK_SECTOR_SIZE)
            .await
            .map_err(flash_err(kind))
    }
}

fn with_kind(kind: PalErrorKind) -> impl Fn(PalError) -> PalError {
    move |e| PalError::with_sub(kind, e.sub())
}

impl<W: NorFlash, M: BankMapping> BootControl for TraveoBootControl<W, M> {
    async fn platform_state(&mut self) -> Result<PlatformImageState, PalError> {
        let rep = self.startup().await?;
        Ok(if self.rejected {
            PlatformImageState::Invalid
        } else {
            rep.state
        })
    }

    async fn request_trial_boot(&mut self, file: &FileInfo<'_>) -> Result<(), PalError> {
        let kind = PalErrorKind::ActivateFailed;
        let rep = self.startup().await.map_err(with_kind(kind))?;
        if rep.state == PlatformImageState::PendingCommit && !self.rejected {
            return Err(PalError::with_sub(kind, SUB_TRIAL_RUNNING));
        }
        let trial = TrialRecord {
            trial_mapping: self.mapping.mapping().other(),
            file_size: file.size,
        };
        // The record first: whatever boots after a cut past this point knows about the trial.
        self.erase_trial(kind).await?;
        self.work
            .write(self.trial_off + TRIAL_UNIT_OFFSET, &trial.encode())
            .await
            .map_err(flash_err(kind))?;
        self.set_pending(PendingMode::MakeInactiveActive).await?;
        self.rejected = false;
        Ok(())
    }

    async fn confirm(&mut self) -> Result<(), PalError> {
        let kind = PalErrorKind::CommitFailed;
        let rep = self.startup().await.map_err(with_kind(kind))?;
        if self.rejected || rep.state != PlatformImageState::PendingCommit {
            return Err(PalError::with_sub(kind, SUB_NOTHING_ON_TRIAL));
        }
        self.erase_trial(kind).await?;
        let map = self.mapping.mapping();
        let sel = self.read_marker().await.map_err(with_kind(kind))?.selector;
        if rollback_detected(sel, map) {
            self.write_selector(map.selector(), kind).await?;
        }
        self.set_state(PlatformImageState::Valid);
        Ok(())
    }

    async fn reject(&mut self) -> Result<(), PalError> {
        let kind = PalErrorKind::RejectFailed;
        let rep = self.startup().await.map_err(with_kind(kind))?;
        let map = self.mapping.mapping();
        if rep.state == PlatformImageState::PendingCommit {
            // On trial: the next boot must take the old bank.
            self.write_selector(map.other().selector(), kind).await?;
            self.set_state(PlatformImageState::Invalid);
        } else {
            let sel = self.read_marker().await.map_err(with_kind(kind))?.selector;
            if rollback_detected(sel, map) {
                // A trial is staged: point back at the running bank (mode 1).
                self.write_selector(selector_for(PendingMode::PointToActive, map), kind)
                    .await?;
            }
        }
        self.rejected = true;
        Ok(())
    }
}
