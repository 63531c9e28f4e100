//! PSoC 6 example firmware for QEMU mps2-an386, booted by `qemu-boot` as the Cypress MCUboot
//! (swap, v1.8 preset) would boot it from the primary slot, and updated over MQTT by
//! ota-core's agent.
//!
//! 1. opens the persisted flash file `psoc6.flash` (the PSoC 6's 2 MB internal flash from
//!    0x1000_0000, 512-byte rows, erased to 0x00) and builds the PAL over it with
//!    [`Config::V1_8_SWAP`], the layout `qemu-boot` plays the bootloader on: the image
//!    storage writes the secondary slot, the boot control sets the MCUboot trailer;
//! 2. hands them to [`qemu_mps2::ota::run`], with the download journal in `psoc6.journal`
//!    and the OTA code-signing key baked in at build time (`OTA_EXAMPLE_SIGNER_KEY`): the
//!    agent downloads the job's MCUboot image, checks its signature, asks for a test swap and
//!    resets (QEMU exits; the runner plays MCUboot and boots again); the new image self-tests
//!    and confirms, or, built with `OTA_EXAMPLE_SELF_TEST=fail`, rejects, and MCUboot reverts
//!    at the next reset.
//!
//! The running version is baked in from `OTA_EXAMPLE_VERSION`; the runner gives the MCUboot
//! header the same one. Run it with `examples/psoc6/run.sh`.
#![no_std]
#![no_main]

use embassy_executor::Spawner;
use pal_psoc6::{Config, Psoc6BootControl, Psoc6ImageStorage};
use qemu_mps2::flash::SemihostingFlash;
use qemu_mps2::log;
use qemu_mps2::ota::{self, fail};

/// The flash file, relative to QEMU's working directory.
const FLASH_FILE: &str = "psoc6.flash";
/// The download journal's file.
const JOURNAL_FILE: &str = "psoc6.journal";
/// The PSoC 6 internal flash: 2 MB, 512-byte program and erase rows, erased to 0x00.
type Flash = SemihostingFlash<512, 512>;
const FLASH_SIZE: usize = 0x20_0000;
const ERASE_VALUE: u8 = 0x00;
/// The MCUboot build `qemu-boot --board psoc6` simulates.
const CONFIG: Config = Config::V1_8_SWAP;

fn flash() -> Flash {
    ota::open_flash(FLASH_FILE, FLASH_SIZE, ERASE_VALUE)
}

#[embassy_executor::main]
async fn main(spawner: Spawner) {
    let Some(core) = cortex_m::Peripherals::take() else {
        fail("core peripherals taken")
    };
    qemu_mps2::init(core.SYST);

    // Two handles on the one flash file: storage and boot control each own a `NorFlash`.
    let storage = match Psoc6ImageStorage::new(flash(), CONFIG) {
        Ok(s) => s,
        Err(e) => {
            log!("PAL error {:?}", e);
            fail("Psoc6ImageStorage::new")
        }
    };
    let boot = match Psoc6BootControl::new(flash(), CONFIG) {
        Ok(b) => b,
        Err(e) => {
            log!("PAL error {:?}", e);
            fail("Psoc6BootControl::new")
        }
    };
    let example = qemu_mps2::example!("psoc6", 0);
    ota::run(
        spawner,
        example,
        storage,
        ota::signer(),
        boot,
        ota::journal(JOURNAL_FILE),
    )
    .await
}
