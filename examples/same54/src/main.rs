//! SAME54 Xplained Pro example firmware for QEMU mps2-an386, run by `qemu-boot` as the
//! amazon-freertos `aws_bootloader` would launch it from 0x10000 of the lower bank.
//!
//! 1. opens the persisted flash file `same54.flash` (the 1 MB NVM as the CPU sees it: 16-byte
//!    write unit, 8 KB blocks, erased to 0xFF) and builds the PAL's boot control over it with
//!    [`Config::POWER_SAFE`] (the `Layout::SAME54_XPRO` memory map `qemu-boot` uses);
//! 2. logs its version (baked in at build time from `OTA_EXAMPLE_VERSION`; the PAL takes it as
//!    `AppVersion32`) and `platform_state()` (the lower descriptor's flags);
//! 3. on `PendingCommit`, runs its self-test and confirms (flags 0xFC); built with
//!    `OTA_EXAMPLE_SELF_TEST=fail` it rejects instead, so the bootloader swaps back to the
//!    previous image at the next reset;
//! 4. exits QEMU with status 0 (any failure: a `FAIL` line and status 1).
#![no_std]
#![no_main]

use embassy_executor::Spawner;
use ota_pal_traits::{BootControl, PlatformImageState};
use pal_same54::{Config, Same54Boot};
use qemu_mps2::flash::SemihostingFlash;
use qemu_mps2::semihosting::exit;
use qemu_mps2::{log, machine};

/// The flash file, relative to QEMU's working directory.
const FLASH_FILE: &str = "same54.flash";
/// The SAME54 NVM: 1 MB, 16-byte (quad word) write unit, 8 KB erase blocks, erased to 0xFF.
type Flash = SemihostingFlash<16, 8192>;
const FLASH_SIZE: usize = 0x10_0000;
const ERASE_VALUE: u8 = 0xFF;
/// The descriptors `qemu-boot --board same54` uses.
const CONFIG: Config = Config::POWER_SAFE;

/// This build's version (the MCUboot header carries the same one, set by `qemu-boot`).
const VERSION: &str = match option_env!("OTA_EXAMPLE_VERSION") {
    Some(v) => v,
    None => "0.0.0",
};

/// `AppVersion32` of [`VERSION`]: major << 24 | minor << 16 | build (the third number).
fn app_version32() -> u32 {
    let mut parts = VERSION.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor, build) = (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    );
    (major & 0xFF) << 24 | (minor & 0xFF) << 16 | (build & 0xFFFF)
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
    log!("example-same54 {} on {}", VERSION, machine::NAME);

    let flash = match Flash::open(FLASH_FILE, FLASH_SIZE, ERASE_VALUE) {
        Ok(f) => f,
        Err(e) => {
            log!("flash error {:?}", e);
            fail("cannot open the flash file")
        }
    };
    let mut boot = match Same54Boot::new(flash, CONFIG, app_version32()) {
        Ok(b) => b,
        Err(e) => {
            log!("PAL error {:?}", e);
            fail("Same54Boot::new")
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
