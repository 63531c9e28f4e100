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
//! The download calls (`start`, `write`, `finish`, `install`, `cancel`) answer
//! `PSA_ERROR_NOT_SUPPORTED`: `qemu-boot stage` runs them on the host, through the same PAL
//! and the crate's `SimTfm`, until the agent runs here.

use core::cell::{Cell, RefCell};

use embassy_futures::block_on;
use embedded_storage_async::nor_flash::{NorFlash, ReadNorFlash};
use pal_tfm::psa::{FLAG_VOLATILE_STAGING, MAX_DIGEST_SIZE};
use pal_tfm::{ComponentId, ComponentInfo, ComponentState, ImageVersion, Layout, PsaFwu, Status};
use qemu_mps2::flash::SemihostingFlash;

/// The Corstone flash: 64 KB sectors, 1-byte write unit (`wrapper.py --align 1`), erased 0xFF.
pub type Flash = SemihostingFlash<1, 0x1_0000>;

/// MCUboot's trailer magic (`boot_img_magic`, `BOOT_MAX_ALIGN` = 8), at the slot's end - 16.
const BOOT_MAGIC: [u8; 16] = [
    0x77, 0xC2, 0x95, 0xF3, 0x60, 0xD2, 0xEF, 0x7F, 0x35, 0x52, 0x50, 0x0F, 0x2C, 0xB6, 0x79, 0x80,
];
/// image_ok at the slot's end - 24, one byte padded to 8 with the erased value.
const IMAGE_OK_FROM_END: u32 = 24;
const MAGIC_FROM_END: u32 = 16;
const ERASED: u8 = 0xFF;
const FLAG_SET: u8 = 0x01;
const MAX_COMPONENTS: usize = 4;

/// The FWU partition stand-in.
pub struct FlashFwu {
    flash: RefCell<Flash>,
    layout: Layout,
    states: [Cell<ComponentState>; MAX_COMPONENTS],
}

impl FlashFwu {
    /// Reads every component's state from its primary trailer, as TF-M does at start-up.
    pub fn new(flash: Flash, layout: Layout) -> Result<Self, Status> {
        let fwu = Self {
            flash: RefCell::new(flash),
            layout,
            states: [const { Cell::new(ComponentState::Ready) }; MAX_COMPONENTS],
        };
        for (i, s) in layout.images.iter().enumerate() {
            let end = s.primary + s.size;
            let mut magic = [0u8; 16];
            let mut ok = [0u8; 1];
            fwu.read(end - MAGIC_FROM_END, &mut magic)?;
            fwu.read(end - IMAGE_OK_FROM_END, &mut ok)?;
            if magic == BOOT_MAGIC && ok == [ERASED] {
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

    fn index(&self, c: ComponentId) -> Option<usize> {
        self.layout.images.iter().position(|s| s.component == c)
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
            candidate_digest: [0; MAX_DIGEST_SIZE],
        })
    }

    fn start(&self, _c: ComponentId, _manifest: &[u8]) -> Status {
        Status::NOT_SUPPORTED
    }

    fn write(&self, _c: ComponentId, _offset: u32, _block: &[u8]) -> Status {
        Status::NOT_SUPPORTED
    }

    fn finish(&self, _c: ComponentId) -> Status {
        Status::NOT_SUPPORTED
    }

    fn install(&self) -> Status {
        Status::NOT_SUPPORTED
    }

    fn request_reboot(&self) -> Status {
        Status::NOT_SUPPORTED
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
            let at = s.primary + s.size - IMAGE_OK_FROM_END;
            let mut record = [ERASED; 8];
            record[0] = FLAG_SET;
            if block_on(self.flash.borrow_mut().write(at, &record)).is_err() {
                return Status::STORAGE_FAILURE;
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

    fn cancel(&self, _c: ComponentId) -> Status {
        Status::NOT_SUPPORTED
    }

    fn clean(&self, c: ComponentId) -> Status {
        match self.index(c).and_then(|i| self.states.get(i)) {
            Some(s) if s.get() == ComponentState::Updated => {
                s.set(ComponentState::Ready);
                Status::SUCCESS
            }
            Some(_) => Status::BAD_STATE,
            None => Status::DOES_NOT_EXIST,
        }
    }
}
