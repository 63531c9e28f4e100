//! The generic board's A/B boot control and its simulated bootloader.
//!
//! Two image slots; the download always goes to the slot that is not running. The state is a
//! small JSON file (`<state>/boot.json`), rewritten on every change:
//!
//! - `request_trial_boot` marks the other slot *staged*;
//! - the bootloader (at every boot) turns a staged slot into the *trial* slot and runs it; a
//!   trial slot found at a boot that was not confirmed is rolled back (the previous slot runs
//!   again, the platform reports `Invalid` until the next update);
//! - `confirm` makes the trial slot the active one; `reject` drops the trial (or staged) slot.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use anyhow::{Context, Result};
use ota_pal_traits::{BootControl, FileInfo, PalError, PalErrorKind, PlatformImageState, Reset};
use serde::{Deserialize, Serialize};

/// What `boot.json` holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootState {
    /// The confirmed slot (0 or 1).
    pub active: u8,
    /// Slot verified and waiting for the next reset.
    pub staged: Option<u8>,
    /// Slot running on trial (not confirmed yet).
    pub trial: Option<u8>,
    /// The last trial was rejected or rolled back.
    pub rejected: bool,
    /// Resets so far.
    pub boots: u64,
}

impl BootState {
    /// The slot that runs now.
    pub fn running(&self) -> u8 {
        self.trial.unwrap_or(self.active)
    }

    /// The slot downloads go to.
    pub fn spare(&self) -> u8 {
        1 - self.running().min(1)
    }
}

/// What the bootloader did at a boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootDecision {
    /// Ran the confirmed image.
    Normal,
    /// Ran the staged image on trial.
    Trial,
    /// Found an unconfirmed trial: rolled back to the confirmed image.
    RolledBack,
}

/// The boot state shared by the boot control and the runtime.
#[derive(Clone)]
pub struct GenericBoot {
    state: Rc<RefCell<BootState>>,
    path: PathBuf,
}

impl GenericBoot {
    /// Load `<dir>/boot.json` (fresh state when missing).
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join("boot.json");
        let state = if path.exists() {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?
        } else {
            BootState::default()
        };
        let me = Self {
            state: Rc::new(RefCell::new(state)),
            path,
        };
        me.save().map_err(|e| anyhow::anyhow!("{e:?}"))?;
        Ok(me)
    }

    /// A copy of the state.
    pub fn get(&self) -> BootState {
        *self.state.borrow()
    }

    fn save(&self) -> Result<(), PalError> {
        let text = serde_json::to_string_pretty(&*self.state.borrow())
            .map_err(|_| PalError::new(PalErrorKind::BootInfoCreateFailed))?;
        let tmp = self.path.with_extension("json.tmp");
        std::fs::write(&tmp, text)
            .map_err(|_| PalError::new(PalErrorKind::BootInfoCreateFailed))?;
        std::fs::rename(&tmp, &self.path)
            .map_err(|_| PalError::new(PalErrorKind::BootInfoCreateFailed))
    }

    fn update(&self, f: impl FnOnce(&mut BootState)) -> Result<(), PalError> {
        f(&mut self.state.borrow_mut());
        self.save()
    }

    /// The bootloader's decision at a reset (or power-on).
    pub fn boot(&self) -> Result<BootDecision> {
        let mut decision = BootDecision::Normal;
        self.update(|s| {
            s.boots += 1;
            if let Some(slot) = s.staged.take() {
                s.trial = Some(slot);
                s.rejected = false;
                decision = BootDecision::Trial;
            } else if s.trial.take().is_some() {
                s.rejected = true;
                decision = BootDecision::RolledBack;
            }
        })
        .map_err(|e| anyhow::anyhow!("saving boot state: {e:?}"))?;
        Ok(decision)
    }

    /// The trial image must survive one more boot (the runtime calls this after a boot into a
    /// trial image has been started, so that the *next* unconfirmed reset rolls back).
    pub fn has_trial(&self) -> bool {
        self.state.borrow().trial.is_some()
    }
}

impl BootControl for GenericBoot {
    async fn platform_state(&mut self) -> Result<PlatformImageState, PalError> {
        let s = self.get();
        Ok(if s.trial.is_some() {
            PlatformImageState::PendingCommit
        } else if s.rejected {
            PlatformImageState::Invalid
        } else {
            PlatformImageState::Valid
        })
    }

    async fn request_trial_boot(&mut self, _file: &FileInfo<'_>) -> Result<(), PalError> {
        self.update(|s| s.staged = Some(s.spare()))
    }

    async fn confirm(&mut self) -> Result<(), PalError> {
        if self.get().trial.is_none() {
            return Err(PalError::new(PalErrorKind::CommitFailed));
        }
        self.update(|s| {
            if let Some(t) = s.trial.take() {
                s.active = t;
            }
            s.rejected = false;
        })
    }

    async fn reject(&mut self) -> Result<(), PalError> {
        self.update(|s| {
            s.staged = None;
            s.rejected = true;
            // A rejected trial keeps running until the reset; the bootloader then rolls back.
        })
    }
}

/// Counts resets (the driver ends its run with `Exit::Reset` after it).
#[derive(Debug, Default)]
pub struct SimReset;

impl Reset for SimReset {
    fn reset(&mut self) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use ota_pal_traits::sim::block_on;

    fn file() -> FileInfo<'static> {
        FileInfo {
            index: 0,
            path: "/fw",
            size: 10,
            file_type: 0,
            attributes: 0,
            cert_path: "",
        }
    }

    #[test]
    fn trial_confirm_rollback_and_persistence() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = GenericBoot::load(dir.path()).unwrap();
        assert_eq!(b.boot().unwrap(), BootDecision::Normal);
        assert_eq!(block_on(b.platform_state()), Ok(PlatformImageState::Valid));
        // Stage, reboot on trial, confirm.
        block_on(b.request_trial_boot(&file())).unwrap();
        assert_eq!(b.boot().unwrap(), BootDecision::Trial);
        assert_eq!(b.get().running(), 1);
        assert_eq!(
            block_on(b.platform_state()),
            Ok(PlatformImageState::PendingCommit)
        );
        block_on(b.confirm()).unwrap();
        assert_eq!(b.get().active, 1);
        assert!(block_on(b.confirm()).is_err(), "nothing on trial");
        // Stage slot 0, reboot, then reset without confirm: rolled back to slot 1.
        block_on(b.request_trial_boot(&file())).unwrap();
        assert_eq!(b.boot().unwrap(), BootDecision::Trial);
        assert_eq!(b.get().running(), 0);
        let reloaded = GenericBoot::load(dir.path()).unwrap();
        assert_eq!(reloaded.get(), b.get(), "persisted");
        assert_eq!(reloaded.boot().unwrap(), BootDecision::RolledBack);
        assert_eq!(reloaded.get().running(), 1);
        let mut r = reloaded;
        assert_eq!(
            block_on(r.platform_state()),
            Ok(PlatformImageState::Invalid)
        );
        // A rejected trial is rolled back at the next boot too.
        block_on(r.request_trial_boot(&file())).unwrap();
        assert_eq!(r.boot().unwrap(), BootDecision::Trial);
        block_on(r.reject()).unwrap();
        assert_eq!(r.boot().unwrap(), BootDecision::RolledBack);
        assert_eq!(r.get().running(), 1);
    }
}
