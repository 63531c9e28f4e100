//! TRAVEO T2G (KIT_T2G-B-H_LITE) example firmware for QEMU mps2-an500 (Cortex-M7), run by
//! `qemu-boot` as the ROM's Dual Bank Manager would map and start it, and updated over MQTT by
//! ota-core's agent.
//!
//! 1. opens the persisted flash file `traveo.flash` (both code-flash banks, then the work flash
//!    with the flash marker and the PAL's trial record, erased to 0xFF) and reads the bank
//!    mapping the DBM chose from `traveo.flash.mapping` (on the kit: `FLASH_CTL MAIN_MAP`);
//! 2. builds the PAL with [`Config::CYT4BF`]: `TraveoBootControl` over the work flash runs its
//!    start-up step first (the vendor `checkBank` and the trial record); on the second boot of
//!    an unconfirmed trial it has pointed the marker back at the old bank and the firmware
//!    resets at once; `TraveoImageStorage` writes the inactive bank;
//! 3. hands them to [`qemu_mps2::ota::run`] with the OTA code-signing key baked in at build
//!    time (`OTA_EXAMPLE_SIGNER_KEY`): the agent downloads the job (file type 141), verifies
//!    it, programs the marker for the new bank and resets; the runner plays the DBM (which
//!    checks the image's RSA signature); the new image self-tests and confirms, or, built with
//!    `OTA_EXAMPLE_SELF_TEST=fail`, rejects, and the marker points back at the old bank.
//!
//! The running version is baked in from `OTA_EXAMPLE_VERSION`. Run it with
//! `examples/traveo/run.sh`.
#![no_std]
#![no_main]

mod work;

use embassy_executor::Spawner;
use pal_traveo::{
    Config, FixedMapping, Mapping, TraveoBootControl, TraveoImageStorage, FIRMWARE_FILE_TYPE,
};
use qemu_mps2::log;
use qemu_mps2::ota::{self, fail, RESET_LINE};
use qemu_mps2::semihosting::{exit, HostFile, OpenMode};
use work::{CodeBank, FileFlash, WorkFlash, FILE_SIZE};

/// The flash file, relative to QEMU's working directory.
const FLASH_FILE: &str = "traveo.flash";
/// The download journal's file.
const JOURNAL_FILE: &str = "traveo.journal";
/// The bank mapping `qemu-boot` writes after the DBM's decision: `A` or `B`.
const MAPPING_FILE: &str = "traveo.flash.mapping";
const ERASE_VALUE: u8 = 0xFF;
/// The board configuration `qemu-boot --board traveo` uses.
const CONFIG: Config = Config::CYT4BF;
/// CPU address of the work flash (offset 0 of [`WorkFlash`]).
const WORK_FLASH_BASE: u32 = 0x1400_0000;

/// The mapping the DBM chose, as `qemu-boot` recorded it.
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

fn file() -> FileFlash {
    ota::open_flash(FLASH_FILE, FILE_SIZE, ERASE_VALUE)
}

#[embassy_executor::main]
async fn main(spawner: Spawner) {
    let Some(core) = cortex_m::Peripherals::take() else {
        fail("core peripherals taken")
    };
    qemu_mps2::init(core.SYST);

    let Some(mapping) = mapping() else {
        fail("no bank mapping in traveo.flash.mapping")
    };
    log!("bank mapping {:?}", mapping);
    let mut boot = match TraveoBootControl::new(
        WorkFlash::work(file()),
        WORK_FLASH_BASE,
        FixedMapping(mapping),
        &CONFIG,
    ) {
        Ok(b) => b,
        Err(e) => {
            log!("PAL error {:?}", e);
            fail("TraveoBootControl::new")
        }
    };
    match boot.startup().await {
        Ok(report) if report.reset_required => {
            // A second boot of an unconfirmed trial: the marker now prefers the old bank.
            log!("unconfirmed trial booted again: the old bank runs next");
            log!("{}", RESET_LINE);
            exit(0)
        }
        Ok(_) => {}
        Err(e) => {
            log!("PAL error {:?}", e);
            fail("TraveoBootControl::startup")
        }
    }
    let storage = match TraveoImageStorage::new(
        CodeBank::bank(file(), mapping.inactive_bank()),
        CONFIG.inactive_bank,
        &CONFIG,
    ) {
        Ok(s) => s,
        Err(e) => {
            log!("PAL error {:?}", e);
            fail("TraveoImageStorage::new")
        }
    };
    let example = qemu_mps2::example!("traveo", FIRMWARE_FILE_TYPE);
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
