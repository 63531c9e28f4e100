//! Corstone + TF-M example firmware for QEMU mps2-an505 (Cortex-M33), run by `qemu-boot` as
//! TF-M's BL2 (MCUboot, swap using scratch) would run the non-secure image, and updated over
//! MQTT by ota-core's agent through the PSA Firmware Update API.
//!
//! 1. opens the persisted flash file `tfm.flash` (the Corstone flash of
//!    [`Layout::CORSTONE3XX`]: 7.5 MB, 64 KB sectors, erased to 0xFF) and serves the PSA FWU
//!    calls from a stand-in for TF-M's FWU partition over it ([`fwu::FlashFwu`]: no TF-M runs
//!    in the emulation);
//! 2. builds the PAL on those calls with [`Config::PAL_PSA_DEFAULT_NONSECURE`] (a job file
//!    without a known path updates the non-secure image, as on CS3XX): `TfmStorage` writes the
//!    candidate, `CandidateDigestVerifier` checks the job's signature against the candidate
//!    digest the partition computed, with the OTA code-signing key baked in at build time
//!    (`OTA_EXAMPLE_SIGNER_KEY`), `TfmBootControl` installs, accepts and rejects;
//! 3. hands them to [`qemu_mps2::ota::run`]: the agent downloads, installs (BL2 swaps at the
//!    reset the runner plays), self-tests the new image and accepts it, or, built with
//!    `OTA_EXAMPLE_SELF_TEST=fail`, rejects it and BL2 reverts at the next reset.
//!
//! The running version is baked in from `OTA_EXAMPLE_VERSION`; the runner gives the MCUboot
//! header the same one. Run it with `examples/tfm/run.sh`.
#![no_std]
#![no_main]

mod fwu;

use embassy_executor::Spawner;
use fwu::{Flash, FlashFwu};
use pal_tfm::{
    Algorithm, CandidateDigestVerifier, Config, Layout, P256Crypto, TfmBootControl, TfmStorage,
};
use qemu_mps2::log;
use qemu_mps2::ota::{self, fail};
use static_cell::StaticCell;

/// The flash file, relative to QEMU's working directory.
const FLASH_FILE: &str = "tfm.flash";
/// The download journal's file.
const JOURNAL_FILE: &str = "tfm.journal";
/// The flash layout `qemu-boot --board tfm` uses.
const LAYOUT: Layout = Layout::CORSTONE3XX;
const ERASE_VALUE: u8 = 0xFF;
/// How the agent's files map to PSA components.
const CONFIG: Config = Config::PAL_PSA_DEFAULT_NONSECURE;
/// The PSA key id the verifier names (`P256Crypto` holds one key and ignores it).
const KEY_ID: u32 = 0;

/// The FWU partition lives as long as the firmware: storage, verifier and boot control borrow it.
static FWU: StaticCell<FlashFwu> = StaticCell::new();

#[embassy_executor::main]
async fn main(spawner: Spawner) {
    let Some(core) = cortex_m::Peripherals::take() else {
        fail("core peripherals taken")
    };
    qemu_mps2::init(core.SYST);

    let flash: Flash = ota::open_flash(FLASH_FILE, LAYOUT.flash_size as usize, ERASE_VALUE);
    let fwu: &'static FlashFwu = match FlashFwu::new(flash, LAYOUT) {
        Ok(f) => FWU.init(f),
        Err(e) => {
            log!("PSA status {:?}", e);
            fail("FWU partition stand-in")
        }
    };
    let verifier = CandidateDigestVerifier::new(
        fwu,
        P256Crypto::new(*ota::signer().verifying_key()),
        KEY_ID,
        Algorithm::EcdsaSha256,
        CONFIG.components,
    );
    let example = qemu_mps2::example!("tfm", 0);
    ota::run(
        spawner,
        example,
        TfmStorage::new(fwu, CONFIG),
        verifier,
        TfmBootControl::new(fwu, CONFIG),
        ota::journal(JOURNAL_FILE),
    )
    .await
}
