//! PSoC 6 example firmware for QEMU mps2-an386, run by `qemu-boot` as the Cypress MCUboot
//! (swap, v1.8 preset) would run it from the primary slot.
//!
//! 1. opens the persisted flash file `psoc6.flash` (the PSoC 6's 2 MB internal flash from
//!    0x1000_0000, 512-byte rows, erased to 0x00) and builds the PAL's boot control over it
//!    with [`Config::V1_8_SWAP`], the layout `qemu-boot` plays the bootloader on;
//! 2. logs its version (baked in at build time from `OTA_EXAMPLE_VERSION`) and
//!    `platform_state()`;
//! 3. on `PendingCommit`, runs its self-test and confirms the image; built with
//!    `OTA_EXAMPLE_SELF_TEST=fail` the self-test fails and it rejects the image instead, so the
//!    next reset through the bootloader reverts to the previous one;
//! 4. exits QEMU with status 0 (any failure: a `FAIL` line and status 1).
//!
//! The OTA agent will run here (download over MQTT, then reset); until it lands,
//! `qemu-boot stage` stores the new image with the same PAL calls from the host.
#![no_std]
#![no_main]

use embassy_executor::Spawner;
use ota_pal_traits::{BootControl, PlatformImageState};
use pal_psoc6::{Config, Psoc6BootControl};
use qemu_mps2::flash::SemihostingFlash;
use qemu_mps2::semihosting::exit;
use qemu_mps2::{log, machine};

/// The flash file, relative to QEMU's working directory.
const FLASH_FILE: &str = "psoc6.flash";
/// The PSoC 6 internal flash: 2 MB, 512-byte program and erase rows, erased to 0x00.
type Flash = SemihostingFlash<512, 512>;
const FLASH_SIZE: usize = 0x20_0000;
const ERASE_VALUE: u8 = 0x00;
/// The MCUboot build `qemu-boot --board psoc6` simulates.
const CONFIG: Config = Config::V1_8_SWAP;

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
    log!("example-psoc6 {} on {}", VERSION, machine::NAME);

    let flash = match Flash::open(FLASH_FILE, FLASH_SIZE, ERASE_VALUE) {
        Ok(f) => f,
        Err(e) => {
            log!("flash error {:?}", e);
            fail("cannot open the flash file")
        }
    };
    let mut boot = match Psoc6BootControl::new(flash, CONFIG) {
        Ok(b) => b,
        Err(e) => {
            log!("PAL error {:?}", e);
            fail("Psoc6BootControl::new")
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
