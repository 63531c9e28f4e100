//! Corstone + TF-M example firmware for QEMU mps2-an505 (Cortex-M33), run by `qemu-boot` as
//! TF-M's BL2 (MCUboot, swap using scratch) would run the non-secure image.
//!
//! 1. opens the persisted flash file `tfm.flash` (the Corstone flash of
//!    [`Layout::CORSTONE3XX`]: 7.5 MB, 64 KB sectors, erased to 0xFF) and builds the PAL's
//!    `TfmBootControl` over a stand-in for TF-M's FWU partition ([`fwu::FlashFwu`]: no TF-M
//!    runs in the emulation);
//! 2. logs its version (baked in at build time from `OTA_EXAMPLE_VERSION`) and
//!    `platform_state()`;
//! 3. on `PendingCommit`, runs its self-test and confirms (`psa_fwu_accept`); built with
//!    `OTA_EXAMPLE_SELF_TEST=fail` it rejects (`psa_fwu_reject`) instead, so BL2 reverts at the
//!    next reset;
//! 4. exits QEMU with status 0 (any failure: a `FAIL` line and status 1).
#![no_std]
#![no_main]

mod fwu;

use embassy_executor::Spawner;
use fwu::{Flash, FlashFwu};
use ota_pal_traits::{BootControl, PlatformImageState};
use pal_tfm::{Config, Layout, TfmBootControl};
use qemu_mps2::semihosting::exit;
use qemu_mps2::{log, machine};

/// The flash file, relative to QEMU's working directory.
const FLASH_FILE: &str = "tfm.flash";
/// The flash layout `qemu-boot --board tfm` uses.
const LAYOUT: Layout = Layout::CORSTONE3XX;
const ERASE_VALUE: u8 = 0xFF;
/// PAL-PSA's job-file paths and TF-M's default write size.
const CONFIG: Config = Config::PAL_PSA;

/// This build's version (the MCUboot header carries the same one, set by `qemu-boot`).
const VERSION: &str = match option_env!("OTA_EXAMPLE_VERSION") {
    Some(v) => v,
    None => "0.0.0",
};

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
    log!("example-tfm {} on {}", VERSION, machine::NAME);

    let flash = match Flash::open(FLASH_FILE, LAYOUT.flash_size as usize, ERASE_VALUE) {
        Ok(f) => f,
        Err(e) => {
            log!("flash error {:?}", e);
            fail("cannot open the flash file")
        }
    };
    let fwu = match FlashFwu::new(flash, LAYOUT) {
        Ok(f) => f,
        Err(e) => {
            log!("PSA status {:?}", e);
            fail("FWU partition stand-in")
        }
    };
    let mut boot = TfmBootControl::new(&fwu, CONFIG);
    let state = match boot.platform_state().await {
        Ok(s) => s,
        Err(e) => {
            log!("PAL error {:?}", e);
            fail("platform_state")
        }
    };
    log!("running version {} state {:?}", VERSION, state);

    if state == PlatformImageState::PendingCommit {
        if self_test() {
            log!("self-test passed: confirming (psa_fwu_accept)");
            if let Err(e) = boot.confirm().await {
                log!("PAL error {:?}", e);
                fail("confirm");
            }
        } else {
            log!("self-test failed: rejecting (psa_fwu_reject)");
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
