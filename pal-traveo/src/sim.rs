//! A simulated KIT_T2G-B-H_LITE: one [`SimDevice`] holding both code-flash banks (in the
//! single-bank linear view) and the large-sector work flash, and the Dual Bank Manager's boot
//! (spec §2.4) over it.
//!
//! | Device offset | Size | CPU address (linear view) |
//! |---|---|---|
//! | [`SIM_CODE_OFFSET`] = 0 | 2 × 0x3F8000 | 0x1000_0000 lower bank, 0x103F_8000 upper bank |
//! | [`SIM_WORK_OFFSET`] = 0x7F0000 | 0x30000 | 0x1400_0000 work flash (marker at 0x1401_2000) |
//!
//! The device programs 16-byte units and erases 2 KB sectors (the work flash); code-flash views
//! are coarser (512-byte rows, 32 KB sectors), as the real controller is. It is strict (ECC:
//! no unit programmed twice). One device has one erase value, so with
//! [`Config::CYT4BF_WORK_ERASED_ZERO`] the simulated code flash erases to 0x00 too; the DBM's
//! decision does not depend on the code-flash erase value.
//!
//! [`SimBoard::boot`] reads the marker through the work-flash view and hands the signed span of
//! each candidate bank to an [`AppVerifier`] straight from the flash bytes (the ROM reads
//! memory-mapped flash), then sets the mapping. The DBM writes no flash, so no power cut can land
//! inside it; cuts in the application's `checkBank` rewrite are part of the cycle under test.
//! Not modelled: the CM0+ application's check of the CM7_0 image (§2.4 step 7), the SRAM ECC
//! init, and cache invalidation.

use ota_pal_traits::sim::{SimConfig, SimDevice, SimError, SimFlash};
use ota_pal_traits::PalError;

use crate::boot::TraveoBootControl;
use crate::dbm::{choose_mapping, signed_spans, AppVerifier};
use crate::flashctl::FixedMapping;
use crate::header::{AppHeader, APP_HEADER_LEN};
use crate::layout::{
    Config, BANK_SIZE, CODE_ROW_SIZE, CODE_SECTOR_SIZE, WORK_FLASH_BASE, WORK_FLASH_LARGE_SIZE,
    WORK_PROGRAM_SIZE, WORK_SECTOR_SIZE,
};
use crate::marker::{Bank, FlashMarker, Mapping, MARKER_LEN};
use crate::storage::TraveoImageStorage;

/// Device offset of the code flash (linear address 0x1000_0000).
pub const SIM_CODE_OFFSET: u32 = 0;
/// Device offset of the work flash (0x1400_0000).
pub const SIM_WORK_OFFSET: u32 = 2 * BANK_SIZE;
/// Size of the simulated device.
pub const SIM_DEVICE_SIZE: usize = (SIM_WORK_OFFSET + WORK_FLASH_LARGE_SIZE) as usize;

/// A view of one code-flash bank: 512-byte rows, 32 KB sectors.
pub type SimCodeFlash<'d, M> =
    SimFlash<'d, M, { CODE_ROW_SIZE as usize }, { CODE_SECTOR_SIZE as usize }>;
/// The work-flash view: 128-bit programs, 2 KB sectors.
pub type SimWorkFlash<'d, M> =
    SimFlash<'d, M, { WORK_PROGRAM_SIZE as usize }, { WORK_SECTOR_SIZE as usize }>;

/// The simulator configuration for `cfg` (geometry of the work flash, its erase value, strict).
pub const fn sim_config(cfg: &Config) -> SimConfig {
    SimConfig::new(WORK_PROGRAM_SIZE as usize, WORK_SECTOR_SIZE as usize)
        .erase_value(cfg.work_erase_value)
        .strict(true)
}

/// Device offset of a bank.
pub const fn bank_offset(bank: Bank) -> u32 {
    match bank {
        Bank::Lower => SIM_CODE_OFFSET,
        Bank::Upper => SIM_CODE_OFFSET + BANK_SIZE,
    }
}

/// The image the DBM started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunningImage {
    /// The mapping it switched to.
    pub mapping: Mapping,
    /// The physical bank that runs.
    pub bank: Bank,
    /// Its application header.
    pub header: AppHeader,
}

impl RunningImage {
    /// The version in its CM0+ header.
    pub const fn version(&self) -> crate::header::AppVersion {
        self.header.version()
    }
}

/// What a power-on does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootOutcome {
    /// The DBM verified an image and jumped to it.
    Runs(RunningImage),
    /// Neither bank verified: the DBM hangs (§2.4 step 3).
    Hang,
}

/// The simulated board (see the [module docs](self)).
#[derive(Debug)]
pub struct SimBoard<'d, M> {
    dev: &'d SimDevice<M>,
    cfg: Config,
    button: bool,
    mapping: Option<Mapping>,
}

impl<'d, M: AsRef<[u8]> + AsMut<[u8]>> SimBoard<'d, M> {
    /// A board over `dev` (made with [`sim_config`], [`SIM_DEVICE_SIZE`] bytes), not booted.
    pub fn new(dev: &'d SimDevice<M>, cfg: Config) -> Result<Self, SimError> {
        if dev.len()? as usize != SIM_DEVICE_SIZE {
            return Err(SimError::BadGeometry);
        }
        Ok(Self {
            dev,
            cfg,
            button: false,
            mapping: None,
        })
    }

    /// The device.
    pub fn device(&self) -> &'d SimDevice<M> {
        self.dev
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Hold the user button P5.3 down (or release it) for the next boots (§2.4 step 2).
    pub fn press_button(&mut self, pressed: bool) {
        self.button = pressed;
    }

    /// The mapping set by the last boot (`None` before a boot or after a hang).
    pub fn mapping(&self) -> Option<Mapping> {
        self.mapping
    }

    /// Factory-program `image` at the start of `bank` (no NOR rules, no counters).
    pub fn factory_program(&self, bank: Bank, image: &[u8]) -> Result<(), SimError> {
        let at = bank_offset(bank) as usize;
        self.dev.modify(|mem| {
            mem.get_mut(at..at + image.len())
                .map(|dst| dst.copy_from_slice(image))
                .ok_or(SimError::OutOfBounds)
        })?
    }

    /// Read the marker the way the DBM does (through the work flash).
    pub fn read_marker(&self) -> Result<FlashMarker, SimError> {
        use embedded_storage_async::nor_flash::ReadNorFlash;
        let mut work = self.work_flash()?;
        let mut buf = [0u8; MARKER_LEN];
        ota_pal_traits::sim::block_on(work.read(self.cfg.marker_addr - WORK_FLASH_BASE, &mut buf))?;
        Ok(FlashMarker::decode(&buf))
    }

    fn verify_bank<V: AppVerifier>(
        &self,
        bank: Bank,
        v: &mut V,
    ) -> Result<Option<AppHeader>, SimError> {
        let start = bank_offset(bank) as usize;
        let limit = self.cfg.cm0_signature_limit;
        self.dev.inspect(|mem| {
            let header = mem
                .get(start..start + APP_HEADER_LEN)
                .and_then(|b| AppHeader::decode(b).ok())?;
            let (sig_at, sig_end) = signed_spans(header.obj_size, limit)?;
            let app = mem.get(start..start + sig_at as usize)?;
            let sig = mem.get(start + sig_at as usize..start + sig_end as usize)?;
            v.verify_application(app, sig).then_some(header)
        })
    }

    /// Power on: run the DBM (§2.4 steps 2–6) and report what runs. Turns the power back on
    /// after a cut first.
    pub fn boot<V: AppVerifier>(&mut self, verifier: &mut V) -> Result<BootOutcome, SimError> {
        self.dev.power_on()?;
        self.mapping = None;
        let selector = self.read_marker()?.selector;
        let mut failure = None;
        let mut found = [None, None];
        let chosen = choose_mapping(self.button, selector, |bank| {
            match self.verify_bank(bank, verifier) {
                Ok(h) => {
                    if let Some(slot) = found.get_mut(bank as usize) {
                        *slot = h;
                    }
                    h.is_some()
                }
                Err(e) => {
                    failure = Some(e);
                    false
                }
            }
        });
        if let Some(e) = failure {
            return Err(e);
        }
        let Some(mapping) = chosen else {
            return Ok(BootOutcome::Hang);
        };
        let bank = mapping.active_bank();
        let header = found
            .get(bank as usize)
            .copied()
            .flatten()
            .ok_or(SimError::BadGeometry)?;
        self.mapping = Some(mapping);
        Ok(BootOutcome::Runs(RunningImage {
            mapping,
            bank,
            header,
        }))
    }

    /// The inactive bank as the application sees it at 0x1200_0000 (dual-bank mode): the upper
    /// bank in mapping A, the lower one in mapping B. Its offset 0 is 0x1200_0000.
    pub fn inactive_bank(&self) -> Result<SimCodeFlash<'d, M>, SimError> {
        let mapping = self.mapping.ok_or(SimError::PowerLost)?;
        self.bank(mapping.inactive_bank())
    }

    /// A view of one physical bank.
    pub fn bank(&self, bank: Bank) -> Result<SimCodeFlash<'d, M>, SimError> {
        self.dev.view(bank_offset(bank), BANK_SIZE)
    }

    /// The work flash; its offset 0 is 0x1400_0000.
    pub fn work_flash(&self) -> Result<SimWorkFlash<'d, M>, SimError> {
        self.dev.view(SIM_WORK_OFFSET, WORK_FLASH_LARGE_SIZE)
    }

    /// The PAL's image storage over the inactive bank of the running mapping.
    pub fn image_storage(&self) -> Result<TraveoImageStorage<SimCodeFlash<'d, M>>, PalError> {
        let flash = self.inactive_bank().map_err(sim_err)?;
        TraveoImageStorage::new(flash, self.cfg.inactive_bank, &self.cfg)
    }

    /// The PAL's boot control for the running mapping.
    pub fn boot_control(
        &self,
    ) -> Result<TraveoBootControl<SimWorkFlash<'d, M>, FixedMapping>, PalError> {
        let mapping = self
            .mapping
            .ok_or(PalError::new(ota_pal_traits::PalErrorKind::Uninitialized))?;
        let work = self.work_flash().map_err(sim_err)?;
        TraveoBootControl::new(work, WORK_FLASH_BASE, FixedMapping(mapping), &self.cfg)
    }
}

fn sim_err(e: SimError) -> PalError {
    PalError::with_sub(
        ota_pal_traits::PalErrorKind::Uninitialized,
        ota_pal_traits::flash_sub_code(&e),
    )
}

/// A [`Reset`](ota_pal_traits::Reset) that records the request (the test then "reboots" by
/// calling [`SimBoard::boot`]).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SimReset {
    /// Resets requested so far.
    pub count: u32,
}

impl ota_pal_traits::Reset for SimReset {
    fn reset(&mut self) {
        self.count += 1;
    }
}
