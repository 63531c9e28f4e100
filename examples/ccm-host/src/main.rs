//! AIROC CCM / AWS IoT ExpressLink host example for QEMU mps2-an386: the host firmware of a
//! PSoC 6 board whose cloud connection is an ExpressLink module, updated through the module
//! (file type 202, "host OTA").
//!
//! UART0 is the module's UART: the runner wires it with `-chardev socket` to `ota module-sim`,
//! which plays the module (AT commands, CCM dialect) and takes its jobs from `ota serve`. The
//! board side is `pal-psoc6` (Cypress MCUboot v1.8 swap, [`Config::V1_8_SWAP`]) over the
//! persisted flash file, as in `examples/psoc6`; `qemu-boot` plays MCUboot between QEMU runs.
//!
//! 1. logs its version (`OTA_EXAMPLE_VERSION`, baked in) and the image state;
//! 2. on `PendingCommit` (the first run of a trial image) runs the self-test and confirms
//!    through [`confirm_after_reset`] (`OTA_EXAMPLE_SELF_TEST=fail` builds one that rejects);
//! 3. `AT+CONF? TechSpec` (dialect), `AT+CONNECT`, then polls `AT+OTA?` for a host update
//!    proposal for up to `OTA_EXAMPLE_WAIT_MS` emulated milliseconds (10 000 by default); none:
//!    `no update offered`, `PASS`, exit 0;
//! 4. takes the job's signature (`sig-sha256-ecdsa`, base64 DER) and size (`filesize`) from
//!    the state-2 metadata (the CCM shows the job's file entry there), then runs
//!    [`ExpressLink::host_update_staged`]: ACCEPT, wait for state 5, `AT+OTA READ` into the
//!    MCUboot secondary slot through a 2 KiB stage, the signature checked on the host with the
//!    OTA code-signing key baked in at build time (`OTA_EXAMPLE_SIGNER_KEY`, `qemu_mps2::signer`),
//!    CLOSE (the job SUCCEEDS), `request_trial_boot` (secondary MAGIC);
//! 5. "resets": logs `RESET for the trial boot of the host update` and exits QEMU with status
//!    0; the runner then plays the bootloader (`qemu-boot boot`) and starts the new image.
//!
//! A job whose signature does not verify with the baked-in key is refused (the flow erases the
//! partial image and FLUSHes, so the job FAILS): `host update refused`, `PASS`, exit 0, the
//! running image untouched. Any other failure prints a `FAIL` line and exits 1.
#![no_std]
#![no_main]

use embassy_executor::Spawner;
use embassy_time::{Duration, Instant};
use ota_expresslink::{
    confirm_after_reset, AcceptAll, Clock, ConfirmOutcome, Error, ExpressLink, HostJob, OtaCode,
    RX_FOR_2K_READS,
};
use ota_pal_traits::{BootControl, FileInfo, PlatformImageState};
use pal_psoc6::{Config, Psoc6BootControl, Psoc6ImageStorage};
use qemu_mps2::flash::SemihostingFlash;
use qemu_mps2::semihosting::exit;
use qemu_mps2::uart::CmsdkUart;
use qemu_mps2::{fail, log, machine};

/// The flash file, relative to QEMU's working directory.
const FLASH_FILE: &str = "ccm-host.flash";
/// The PSoC 6 internal flash: 2 MB, 512-byte program and erase rows, erased to 0x00.
type Flash = SemihostingFlash<512, 512>;
const FLASH_SIZE: usize = 0x20_0000;
const ERASE_VALUE: u8 = 0x00;
/// The MCUboot build `qemu-boot --board psoc6` simulates.
const CONFIG: Config = Config::V1_8_SWAP;
/// Staging for the flash: 4 rows of 512 bytes, so the CCM's 2 KiB READs go to flash without
/// a copy and any other READ size is re-blocked (a multiple of the row, as the flow requires).
const STAGE_LEN: usize = 2048;

/// This build's version (the MCUboot header carries the same one, set by `qemu-boot`).
const VERSION: &str = match option_env!("OTA_EXAMPLE_VERSION") {
    Some(v) => v,
    None => "0.0.0",
};

/// How long to wait for a proposal, in emulated milliseconds.
const WAIT_MS: u64 = match option_env!("OTA_EXAMPLE_WAIT_MS") {
    Some(v) => parse_u64(v),
    None => 10_000,
};

/// Decimal digits of `s` (others ignored), at compile time.
const fn parse_u64(s: &str) -> u64 {
    let mut b = s.as_bytes();
    let mut n: u64 = 0;
    while let [d, rest @ ..] = b {
        if d.is_ascii_digit() {
            n = n * 10 + (*d - b'0') as u64;
        }
        b = rest;
    }
    n
}

/// The application's self-test before it commits to a new image. Trivial here; a build with
/// `OTA_EXAMPLE_SELF_TEST=fail` fails it to show the rollback.
fn self_test() -> bool {
    option_env!("OTA_EXAMPLE_SELF_TEST") != Some("fail")
}

/// The driver's clock. It spins (yielding to the executor) instead of sleeping: with QEMU's
/// `-icount ...,sleep=off` an idle CPU jumps emulated time to the next timer, so a sleeping
/// wait would take no real time at all, while the module on the other end of the UART lives
/// in real time. Spinning keeps emulated time at the instruction rate (about 3.3 emulated
/// seconds per real one at shift 4), so timeouts and poll intervals keep a real-time meaning.
struct SpinClock;

impl Clock for SpinClock {
    async fn delay_ms(&mut self, ms: u32) {
        let until = Instant::now().checked_add(Duration::from_millis(u64::from(ms)));
        while until.is_some_and(|t| Instant::now() < t) {
            embassy_futures::yield_now().await;
        }
    }
}

type Module = ExpressLink<CmsdkUart, SpinClock, RX_FOR_2K_READS>;

/// What the host takes from the state-2 metadata (the job's file entry on the CCM dialect).
struct Offer {
    /// DER ECDSA P-256 signature (at most 72 bytes).
    sig: [u8; 80],
    sig_len: usize,
    /// 0 when the metadata has no `filesize` (then the `OTA? 5 {size}` hint is used).
    size: u32,
}

fn parse_offer(meta: &[u8]) -> Result<Offer, &'static str> {
    use ota_core::wire::{base64, json};
    let v = json::parse(meta).map_err(|_| "the proposal's metadata is not JSON")?;
    let sig = v
        .get("sig-sha256-ecdsa")
        .and_then(|s| s.as_str())
        .and_then(|s| s.as_plain())
        .ok_or("the proposal's metadata has no sig-sha256-ecdsa")?;
    let mut offer = Offer {
        sig: [0; 80],
        sig_len: 0,
        size: 0,
    };
    offer.sig_len = base64::decode(sig.as_bytes(), &mut offer.sig)
        .map_err(|_| "sig-sha256-ecdsa is not base64 of at most 80 bytes")?
        .len();
    offer.size = v
        .get("filesize")
        .and_then(|n| n.as_number())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    Ok(offer)
}

fn open_flash() -> Flash {
    qemu_mps2::flash::open_or_fail(FLASH_FILE, FLASH_SIZE, ERASE_VALUE)
}

/// Polls `OTA?` until a host update is proposed, for [`WAIT_MS`] emulated milliseconds.
async fn wait_for_offer(el: &mut Module) -> Option<Offer> {
    let start = Instant::now();
    let mut last = None;
    while Instant::now().duration_since(start).as_millis() < WAIT_MS {
        match el.ota_status().await {
            Ok(s) if s.code == OtaCode::HostProposed => {
                log!(
                    "host update proposed: {}",
                    core::str::from_utf8(s.detail).unwrap_or("(metadata not UTF-8)")
                );
                match parse_offer(s.detail) {
                    Ok(o) => return Some(o),
                    Err(e) => fail(e),
                }
            }
            Ok(s) => {
                if last != Some(s.code) {
                    log!("module OTA state {:?}", s.code);
                    last = Some(s.code);
                }
            }
            Err(e) if e.is_transient() => log!("OTA? failed ({:?}); polling on", e),
            Err(e) => {
                log!("module error {:?}", e);
                fail("AT+OTA?")
            }
        }
        let t = el.config().poll_interval_ms;
        el.clock_mut().delay_ms(t).await;
    }
    None
}

#[embassy_executor::main]
async fn main(_spawner: Spawner) {
    let Some(core) = cortex_m::Peripherals::take() else {
        fail("core peripherals taken")
    };
    qemu_mps2::init(core.SYST);
    log!("example-ccm-host {} on {}", VERSION, machine::NAME);

    // Two handles on the flash file: the image storage and the boot control each own one
    // (semihosting writes go straight to the host file, so each sees the other's writes).
    let mut boot = match Psoc6BootControl::new(open_flash(), CONFIG) {
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
        match confirm_after_reset(&mut boot, self_test).await {
            Ok(ConfirmOutcome::Confirmed) => log!("self-test passed: confirmed"),
            Ok(ConfirmOutcome::Rejected) => log!("self-test failed: rejected"),
            Ok(ConfirmOutcome::NothingPending(s)) => log!("nothing pending ({:?})", s),
            Err(e) => {
                log!("PAL error {:?}", e);
                fail("confirm_after_reset")
            }
        }
        match boot.platform_state().await {
            Ok(s) => log!("state now {:?}", s),
            Err(e) => {
                log!("PAL error {:?}", e);
                fail("platform_state after the decision")
            }
        }
        if !self_test() {
            // A rejected image does not go on: the next reset reverts to the previous one.
            log!("RESET to roll back");
            exit(0)
        }
    }

    // SAFETY: UART0 is used by nothing else in this firmware.
    let uart = unsafe { CmsdkUart::uart0() };
    let cfg = ota_expresslink::Config {
        command_timeout_ms: 10_000,
        connect_timeout_ms: 60_000,
        quiet_ms: 200,
        poll_interval_ms: 200,
        max_polls: 1_500,
        read_size: 2048,
        max_retries: 5,
    };
    let mut el: Module = ExpressLink::new(uart, SpinClock, cfg);
    match el.detect_dialect().await {
        Ok(d) => log!("module dialect {:?}", d),
        Err(e) => {
            log!("module error {:?}", e);
            fail("no answer to AT+CONF? TechSpec")
        }
    }
    if let Err(e) = el.connect().await {
        log!("module error {:?}", e);
        fail("AT+CONNECT");
    }
    log!("module connected");

    let Some(offer) = wait_for_offer(&mut el).await else {
        log!("no update offered within {} ms (emulated)", WAIT_MS);
        log!("PASS");
        exit(0)
    };
    let sig = offer.sig.get(..offer.sig_len).unwrap_or_default();

    let mut storage = match Psoc6ImageStorage::new(open_flash(), CONFIG) {
        Ok(s) => s,
        Err(e) => {
            log!("PAL error {:?}", e);
            fail("Psoc6ImageStorage::new")
        }
    };
    let mut verifier = qemu_mps2::signer::verifier();
    let job = HostJob {
        file: FileInfo {
            index: 0,
            path: "host.bin",
            size: offer.size,
            file_type: 202,
            attributes: 0,
            cert_path: "",
        },
        signature: Some(sig),
    };
    let mut stage = [0u8; STAGE_LEN];
    let started = Instant::now();
    let report = match el
        .host_update_staged(
            &job,
            &mut AcceptAll,
            &mut storage,
            &mut verifier,
            &mut boot,
            &mut stage,
        )
        .await
    {
        Ok(r) => r,
        Err(Error::SignatureRejected(e)) => {
            // Not a failure of this firmware: it refused an image it cannot trust. The flow
            // erased what it had stored and FLUSHed the module (the job FAILS); the running
            // image stays, its boot state untouched.
            log!(
                "host update refused: signature check failed ({:?}); keeping {}",
                e,
                VERSION
            );
            log!("PASS");
            exit(0)
        }
        Err(e) => {
            log!("host update error {:?}", e);
            fail("host update")
        }
    };
    // The image is the bootloader's now: never erase it from here.
    storage.release();
    log!(
        "host update: {} bytes in {} READs ({} sum16, {} sum8 checksums), {} re-reads, signature checked: {}, {} ms (emulated)",
        report.bytes,
        report.chunks,
        report.sum16_chunks,
        report.sum8_chunks,
        report.retries,
        report.signature_checked,
        started.elapsed().as_millis()
    );
    log!("RESET for the trial boot of the host update");
    exit(0)
}
