//! SAME54 Xplained Pro example firmware for QEMU mps2-an386, run by `qemu-boot` as the
//! amazon-freertos `aws_bootloader` would launch it from 0x10000 of the lower bank, and updated
//! over MQTT by ota-core's agent.
//!
//! 1. opens the persisted flash file `same54.flash` (the 1 MB NVM as the CPU sees it: 16-byte
//!    write unit, 8 KB blocks, erased to 0xFF) and builds the PAL over it with
//!    [`Config::POWER_SAFE`] and [`Layout::SAME54_XPRO`], the memory map `qemu-boot` uses: the
//!    image storage writes the upper bank, the boot control writes its descriptor;
//! 2. the OTA signature the agent verified (with the key baked in at build time,
//!    `OTA_EXAMPLE_SIGNER_KEY`) is captured ([`SignatureCapture`]) and written into the new
//!    image's descriptor, because the aws_bootloader checks it again at every boot;
//! 3. hands them to [`qemu_mps2::ota::run`]: the agent downloads, marks the new image, resets
//!    (the runner plays the bootloader's bank swap), self-tests and confirms (flags 0xFC), or,
//!    built with `OTA_EXAMPLE_SELF_TEST=fail`, rejects, and the bootloader swaps back.
//!
//! The running version is baked in from `OTA_EXAMPLE_VERSION` (the PAL takes it as
//! `AppVersion32`). Run it with `examples/same54/run.sh`.
#![no_std]
#![no_main]

use embassy_executor::Spawner;
use pal_same54::{Config, Layout, Same54Boot, Same54Storage, SignatureCapture, SignatureSlot};
use qemu_mps2::flash::SemihostingFlash;
use qemu_mps2::log;
use qemu_mps2::ota::{self, fail};

/// The flash file, relative to QEMU's working directory.
const FLASH_FILE: &str = "same54.flash";
/// The download journal's file.
const JOURNAL_FILE: &str = "same54.journal";
/// The SAME54 NVM: 1 MB, 16-byte (quad word) write unit, 8 KB erase blocks, erased to 0xFF.
type Flash = SemihostingFlash<16, 8192>;
const FLASH_SIZE: usize = 0x10_0000;
const ERASE_VALUE: u8 = 0xFF;
/// The descriptors `qemu-boot --board same54` uses.
const CONFIG: Config = Config::POWER_SAFE;
/// The banks `qemu-boot --board same54` uses.
const LAYOUT: Layout = Layout::SAME54_XPRO;

fn flash() -> Flash {
    ota::open_flash(FLASH_FILE, FLASH_SIZE, ERASE_VALUE)
}

#[embassy_executor::main]
async fn main(spawner: Spawner) {
    let Some(core) = cortex_m::Peripherals::take() else {
        fail("core peripherals taken")
    };
    qemu_mps2::init(core.SYST);

    let example = qemu_mps2::example!("same54", 0);
    // Two handles on the one flash file: storage and boot control each own a `NorFlash`.
    let storage = match Same54Storage::new(flash(), LAYOUT) {
        Ok(s) => s,
        Err(e) => {
            log!("PAL error {:?}", e);
            fail("Same54Storage::new")
        }
    };
    let slot = SignatureSlot::new();
    let boot = match Same54Boot::new(flash(), CONFIG, example.version.to_u32()) {
        Ok(b) => b.with_signature_slot(&slot),
        Err(e) => {
            log!("PAL error {:?}", e);
            fail("Same54Boot::new")
        }
    };
    ota::run(
        spawner,
        example,
        storage,
        SignatureCapture::new(ota::signer(), &slot),
        boot,
        ota::journal(JOURNAL_FILE),
    )
    .await
}
