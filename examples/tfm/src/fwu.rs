//! A stand-in for TF-M's FWU partition on the firmware side, over the flash file.
//!
//! No TF-M runs in the emulation (the example runs in the Secure state of the an505 with no
//! secure firmware under it), so the PSA FWU calls the PAL makes are answered here. Only the
//! calls a booted image makes are served, the way `pal_tfm::sim::SimTfm` (and TF-M's MCUboot
//! shim) answer them:
//!
//! * the state of each component is derived at start-up from its primary slot's MCUboot
//!   trailer: magic GOOD with image_ok UNSET is TRIAL, anything else READY;
//! * `accept` writes image_ok = 0x01 (`boot_set_confirmed_multi`) in every TRIAL component's
//!   primary trailer: TRIAL → UPDATED; `clean` UPDATED → READY;
//! * `reject` TRIAL → REJECTED with `PSA_SUCCESS_REBOOT` and no flash write: BL2 reverts the
//!   unconfirmed image at the next reset.
//!
//! The download calls, as the agent's `TfmStorage` makes them, work on the secondary slot the
//! way `SimTfm` runs them on the host:
//!
//! * `start` (READY, empty manifest) erases the component's secondary slot: WRITING;
//! * `write` programs the secondary slot at the offset (within the slot minus its trailer
//!   sector, at most `PSA_FWU_MAX_WRITE_SIZE` bytes);
//! * `finish` hashes what was written (SHA-256, the candidate digest `query` reports and the
//!   `CandidateDigestVerifier` checks the job's signature against): CANDIDATE;
//! * `install` marks every candidate for a test swap (`boot_set_pending_multi(i, false)`: the
//!   secondary trailer's magic and swap-info record) and answers `PSA_SUCCESS_REBOOT`: STAGED;
//!   BL2 (played by `qemu-boot boot`) swaps at the next reset;
//! * `cancel` WRITING/CANDIDATE → FAILED, `clean` FAILED/UPDATED → READY, `request_reboot`
//!   succeeds (the agent's reset ends the QEMU run).
//!
//! The runtime states live in RAM, as in TF-M: a reset drops a half-written candidate.

use core::cell::{Cell, RefCell};

use embassy_futures::block_on;
use embedded_storage_async::nor_flash::{NorFlash, ReadNorFlash};
use pal_tfm::mcuboot::{
    flag_record, swap_info, FLAG_SET, IMAGE_OK_FROM_END, MAGIC, MAGIC_FROM_END, MAX_ALIGN,
    SWAP_INFO_FROM_END, SWAP_TYPE_TEST,
};
use pal_tfm::psa::{DEFAULT_MAX_WRITE_SIZE, FLAG_VOLATILE_STAGING, MAX_DIGEST_SIZE};
use pal_tfm::{
    ComponentId, ComponentInfo, ComponentState, ImageSlots, ImageVersion, Layout, PsaFwu, Status,
};
use qemu_mps2::flash::SemihostingFlash;
use sha2::{Digest, Sha256};

/// The Corstone flash: 64 KB sectors, 1-byte write unit (`wrapper.py --align 1`), erased 0xFF.
pub type Flash = SemihostingFlash<1, 0x1_0000>;

const ERASED: u8 = 0xFF;
const MAX_COMPONENTS: usize = 4;
/// Bytes read at a time when hashing a candidate.
const HASH_CHUNK: usize = 1024;

/// A trailer field's flash offset in the slot `[start, start + size)`.
const fn field(start: u32, size: u32, from_end: usize) -> u32 {
    start + size - from_end as u32
}

/// The FWU partition stand-in.
pub struct FlashFwu {
    flash: RefCell<Flash>,
    layout: Layout,
    states: [Cell<ComponentState>; MAX_COMPONENTS],
    /// Bytes written to each component's candidate (the highest end offset).
    loaded: [Cell<u32>; MAX_COMPONENTS],
    /// Each candidate's SHA-256, from `finish`.
    digests: [Cell<[u8; 32]>; MAX_COMPONENTS],
}

impl FlashFwu {
    /// Reads every component's state from its primary trailer, as TF-M does at start-up.
    pub fn new(flash: Flash, layout: Layout) -> Result<Self, Status> {
        let fwu = Self {
            flash: RefCell::new(flash),
            layout,
            states: [const { Cell::new(ComponentState::Ready) }; MAX_COMPONENTS],
            loaded: [const { Cell::new(0) }; MAX_COMPONENTS],
            digests: [const { Cell::new([0; 32]) }; MAX_COMPONENTS],
        };
        for (i, s) in layout.images.iter().enumerate() {
            let mut magic = [0u8; 16];
            let mut ok = [0u8; 1];
            fwu.read(field(s.primary, s.size, MAGIC_FROM_END), &mut magic)?;
            fwu.read(field(s.primary, s.size, IMAGE_OK_FROM_END), &mut ok)?;
            if magic == MAGIC && ok == [ERASED] {
                if let Some(c) = fwu.states.get(i) {
                    c.set(ComponentState::Trial);
                }
            }
        }
        Ok(fwu)
    }

    fn read(&self, at: u32, buf: &mut [u8]) -> Result<(), Status> {
        block_on(self.flash.borrow_mut().read(at, buf)).map_err(|_| Status::STORAGE_FAILURE)
    }

    fn program(&self, at: u32, bytes: &[u8]) -> Result<(), Status> {
        block_on(self.flash.borrow_mut().write(at, bytes)).map_err(|_| Status::STORAGE_FAILURE)
    }

    fn index(&self, c: ComponentId) -> Option<usize> {
        self.layout.images.iter().position(|s| s.component == c)
    }

    /// The component's index, slots and state cell.
    fn component(&self, c: ComponentId) -> Option<(usize, ImageSlots, &Cell<ComponentState>)> {
        let i = self.index(c)?;
        Some((i, *self.layout.images.get(i)?, self.states.get(i)?))
    }

    /// Bytes of a slot an image may use: all but the trailer sector.
    fn usable(&self, s: &ImageSlots) -> u32 {
        s.size.saturating_sub(self.layout.sector_size)
    }

    fn hash(&self, at: u32, len: u32) -> Result<[u8; 32], Status> {
        let mut h = Sha256::new();
        let mut buf = [0u8; HASH_CHUNK];
        let mut pos = 0;
        while pos < len {
            let n = (len - pos).min(HASH_CHUNK as u32);
            let b = buf.get_mut(..n as usize).ok_or(Status::GENERIC_ERROR)?;
            self.read(at + pos, b)?;
            h.update(&*b);
            pos += n;
        }
        Ok(h.finalize().into())
    }

    /// `boot_set_pending_multi(i, false)` on the secondary slot: magic + swap type TEST.
    fn set_pending(&self, i: usize, s: &ImageSlots) -> Result<(), Status> {
        let mut magic = [0u8; 16];
        self.read(field(s.secondary, s.size, MAGIC_FROM_END), &mut magic)?;
        if magic == MAGIC {
            return Ok(());
        }
        if magic != [ERASED; 16] {
            return Err(Status::GENERIC_ERROR);
        }
        let info = swap_info(u8::try_from(i).unwrap_or(0), SWAP_TYPE_TEST);
        self.program(field(s.secondary, s.size, MAGIC_FROM_END), &MAGIC)?;
        self.program(
            field(s.secondary, s.size, SWAP_INFO_FROM_END),
            &flag_record::<MAX_ALIGN>(info, ERASED),
        )
    }

    fn set_all(&self, from: ComponentState, to: ComponentState) -> bool {
        let mut any = false;
        for s in &self.states {
            if s.get() == from {
                s.set(to);
                any = true;
            }
        }
        any
    }
}

impl PsaFwu for FlashFwu {
    fn query(&self, c: ComponentId) -> Result<ComponentInfo, Status> {
        let i = self.index(c).ok_or(Status::DOES_NOT_EXIST)?;
        let slots = self.layout.images.get(i).ok_or(Status::DOES_NOT_EXIST)?;
        let state = self.states.get(i).ok_or(Status::DOES_NOT_EXIST)?.get();
        let mut h = [0u8; 8];
        self.read(slots.primary + 20, &mut h)?;
        let [major, minor, p0, p1, b0, b1, b2, b3] = h;
        Ok(ComponentInfo {
            state,
            error: Status::SUCCESS,
            version: ImageVersion {
                major,
                minor,
                patch: u16::from_le_bytes([p0, p1]),
                build: u32::from_le_bytes([b0, b1, b2, b3]),
            },
            max_size: slots.size,
            flags: FLAG_VOLATILE_STAGING,
            location: 0,
            candidate_digest: match state {
                ComponentState::Candidate | ComponentState::Staged => {
                    self.digests.get(i).map_or([0; MAX_DIGEST_SIZE], Cell::get)
                }
                _ => [0; MAX_DIGEST_SIZE],
            },
        })
    }

    fn start(&self, c: ComponentId, manifest: &[u8]) -> Status {
        let Some((i, s, state)) = self.component(c) else {
            return Status::DOES_NOT_EXIST;
        };
        if !manifest.is_empty() {
            return Status::NOT_SUPPORTED;
        }
        if state.get() != ComponentState::Ready {
            return Status::BAD_STATE;
        }
        let erased = block_on(
            self.flash
                .borrow_mut()
                .erase(s.secondary, s.secondary + s.size),
        );
        if erased.is_err() {
            return Status::STORAGE_FAILURE;
        }
        if let Some(l) = self.loaded.get(i) {
            l.set(0);
        }
        state.set(ComponentState::Writing);
        Status::SUCCESS
    }

    fn write(&self, c: ComponentId, offset: u32, block: &[u8]) -> Status {
        let Some((i, s, state)) = self.component(c) else {
            return Status::DOES_NOT_EXIST;
        };
        if state.get() != ComponentState::Writing {
            return Status::BAD_STATE;
        }
        let end = match offset.checked_add(block.len() as u32) {
            Some(end) if block.len() <= DEFAULT_MAX_WRITE_SIZE && end <= self.usable(&s) => end,
            _ => return Status::INVALID_ARGUMENT,
        };
        if let Err(e) = self.program(s.secondary + offset, block) {
            return e;
        }
        if let Some(l) = self.loaded.get(i) {
            l.set(l.get().max(end));
        }
        Status::SUCCESS
    }

    fn finish(&self, c: ComponentId) -> Status {
        let Some((i, s, state)) = self.component(c) else {
            return Status::DOES_NOT_EXIST;
        };
        if state.get() != ComponentState::Writing {
            return Status::BAD_STATE;
        }
        let loaded = self.loaded.get(i).map_or(0, Cell::get);
        match self.hash(s.secondary, loaded) {
            Ok(d) => {
                if let Some(cell) = self.digests.get(i) {
                    cell.set(d);
                }
                state.set(ComponentState::Candidate);
                Status::SUCCESS
            }
            Err(e) => e,
        }
    }

    fn install(&self) -> Status {
        let mut any = false;
        for (i, s) in self.layout.images.iter().enumerate() {
            let Some(state) = self.states.get(i) else {
                continue;
            };
            if state.get() != ComponentState::Candidate {
                continue;
            }
            if let Err(e) = self.set_pending(i, s) {
                return e;
            }
            state.set(ComponentState::Staged);
            any = true;
        }
        if any {
            Status::SUCCESS_REBOOT
        } else {
            Status::BAD_STATE
        }
    }

    fn request_reboot(&self) -> Status {
        Status::SUCCESS
    }

    fn accept(&self) -> Status {
        let mut any = false;
        for (i, s) in self.layout.images.iter().enumerate() {
            let Some(state) = self.states.get(i) else {
                continue;
            };
            if state.get() != ComponentState::Trial {
                continue;
            }
            let at = field(s.primary, s.size, IMAGE_OK_FROM_END);
            if let Err(e) = self.program(at, &flag_record::<MAX_ALIGN>(FLAG_SET, ERASED)) {
                return e;
            }
            state.set(ComponentState::Updated);
            any = true;
        }
        if any {
            Status::SUCCESS
        } else {
            Status::BAD_STATE
        }
    }

    fn reject(&self, _error: Status) -> Status {
        if self.set_all(ComponentState::Trial, ComponentState::Rejected) {
            Status::SUCCESS_REBOOT
        } else {
            Status::BAD_STATE
        }
    }

    fn cancel(&self, c: ComponentId) -> Status {
        match self.index(c).and_then(|i| self.states.get(i)) {
            Some(s) if matches!(s.get(), ComponentState::Writing | ComponentState::Candidate) => {
                s.set(ComponentState::Failed);
                Status::SUCCESS
            }
            Some(_) => Status::BAD_STATE,
            None => Status::DOES_NOT_EXIST,
        }
    }

    fn clean(&self, c: ComponentId) -> Status {
        match self.index(c).and_then(|i| self.states.get(i)) {
            Some(s) if matches!(s.get(), ComponentState::Updated | ComponentState::Failed) => {
                s.set(ComponentState::Ready);
                Status::SUCCESS
            }
            Some(_) => Status::BAD_STATE,
            None => Status::DOES_NOT_EXIST,
        }
    }
}
