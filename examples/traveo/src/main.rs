//! TRAVEO T2G (KIT_T2G-B-H_LITE) example firmware for QEMU mps2-an500 (Cortex-M7), run by
//! `qemu-boot` as the ROM's Dual Bank Manager would map and start it.
//!
//! 1. opens the persisted flash file `traveo.flash` (both code-flash banks, then the work flash
//!    with the flash marker and the PAL's trial record, erased to 0xFF) and reads the bank
//!    mapping the DBM chose from `traveo.flash.mapping` (on the kit: `FLASH_CTL MAIN_MAP`);
//! 2. builds the PAL's `TraveoBootControl` over the work flash with [`Config::CYT4BF`], logs
//!    its version (baked in from `OTA_EXAMPLE_VERSION`) and `platform_state()` (the vendor
//!    `checkBank` and the trial record run first);
//! 3. on `PendingCommit`, runs its self-test and confirms; built with
//!    `OTA_EXAMPLE_SELF_TEST=fail` it rejects (the marker points back at the old bank);
//! 4. exits QEMU with status 0 (any failure: a `FAIL` line and status 1).
#![no_std]
#![no_main]

mod work;

use embassy_executor::Spawner;
use ota_pal_traits::{BootControl, PlatformImageState};
use pal_traveo::{Config, FixedMapping, Mapping, TraveoBootControl};
use qemu_mps2::semihosting::exit;
use qemu_mps2::semihosting::{HostFile, OpenMode};
use qemu_mps2::{log, machine};
use work::{FileFlash, WorkFlash};

/// The flash file, relative to QEMU's working directory.
const FLASH_FILE: &str = "traveo.flash";
/// The bank mapping `qemu-boot` writes after the DBM's decision: `A` or `B`.
const MAPPING_FILE: &str = "traveo.flash.mapping";
const ERASE_VALUE: u8 = 0xFF;
/// The board configuration `qemu-boot --board traveo` uses.
const CONFIG: Config = Config::CYT4BF;
/// CPU address of the work flash (offset 0 of [`WorkFlash`]).
const WORK_FLASH_BASE: u32 = 0x1400_0000;

/// This build's version (the MCUboot header carries the same one, set by `qemu-boot`).
const VERSION: &str = match option_env!("OTA_EXAMPLE_VERSION") {
    Some(v) => v,
    None => "0.0.0",
};

/// The mapping the DBM selected (the kit reads `FLASH_CTL`).
fn mapping() -> Option<Mapping> {
    let mut f = HostFile::open(MAPPING_FILE, OpenMode::Read).ok()?;
    let mut b = [0u8; 1];
    f.read_exact(&mut b).ok()?;
    match &b {
        b"A" => Some(Mapping::A),
        b"B" => Some(Mapping::B),
        _ => None,
    }
}

fn fail(what: &str) -> ! {
    log!("FAIL: {}", what);
    exit(1)
}

/// The application's self-test before it commits to a new image. Trivial here; a build with
/// `OTA_EXAMPLE_SELF_TEST=fail` fails it to show the rollback.
fn self_test() -> bool {
    option_env!("OTA_EXAMPLE_SELF_TEST") != Some("fail")
}

#[embassy_executor::main]
async fn main(_spawner: Spawner) {
    let Some(core) = cortex_m::Peripherals::take() else {
        fail("core peripherals taken")
    };
    qemu_mps2::init(core.SYST);
    log!("example-traveo {} on {}", VERSION, machine::NAME);

    let Some(mapping) = mapping() else {
        fail("no bank mapping in traveo.flash.mapping")
    };
    let flash = match FileFlash::open(FLASH_FILE, work::FILE_SIZE, ERASE_VALUE) {
        Ok(f) => f,
        Err(e) => {
            log!("flash error {:?}", e);
            fail("cannot open the flash file")
        }
    };
    log!("bank mapping {:?}", mapping);
    let work = WorkFlash(flash);
    let mut boot =
        match TraveoBootControl::new(work, WORK_FLASH_BASE, FixedMapping(mapping), &CONFIG) {
            Ok(b) => b,
            Err(e) => {
                log!("PAL error {:?}", e);
                fail("TraveoBootControl::new")
            }
        };
    let state = match boot.platform_state().await {
        Ok(s) => s,
        Err(e) => {
            log!("PAL error {:?}", e);
            fail("platform_state")
        }
    };
    log!("running version {} state {:?}", VERSION, state);
    if boot.startup_report().is_some_and(|r| r.reset_required) {
        // A second boot of an unconfirmed trial: the marker now points at the old bank.
        log!("reset required: the old bank runs next");
        log!("PASS");
        exit(0)
    }

    if state == PlatformImageState::PendingCommit {
        if self_test() {
            log!("self-test passed: confirming");
            if let Err(e) = boot.confirm().await {
                log!("PAL error {:?}", e);
                fail("confirm");
            }
        } else {
            log!("self-test failed: rejecting");
            if let Err(e) = boot.reject().await {
                log!("PAL error {:?}", e);
                fail("reject");
            }
        }
        match boot.platform_state().await {
            Ok(s) => log!("state now {:?}", s),
            Err(e) => {
                log!("PAL error {:?}", e);
                fail("platform_state after the decision")
            }
        }
    }
    log!("PASS");
    exit(0)
}
