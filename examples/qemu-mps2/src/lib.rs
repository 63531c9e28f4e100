//! Support for ota-rs example firmware on QEMU's Arm MPS2/MPS3 machines.
//!
//! What a board example needs to run under `qemu-system-arm` and talk to a real MQTT broker:
//!
//! - [`machine`]: the memory map, UART base and clock of the selected machine (one cargo
//!   feature: `mps2-an386`, `mps2-an500`, `mps2-an505`, `mps3-an547`); the build script writes
//!   the matching `memory.x` for `cortex-m-rt`.
//! - [`uart`]: the CMSDK APB UART as `embedded-io-async` `Read + Write`, polled with yields.
//! - [`time`]: an `embassy-time` driver on SysTick, counting the emulated CPU clock (with
//!   `-icount` this is virtual time: the same instructions take the same time on every run).
//! - [`semihosting`]: raw semihosting calls, exit with a status code, and [`log!`] lines to the
//!   host's stdout.
//! - [`flash`]: an `embedded-storage-async` `NorFlash` whose bytes live in a host file, so they
//!   survive a QEMU restart (= a reboot), with NOR bit semantics.
//! - [`mqtt`]: an `embedded-nal-async` `TcpConnect` over the UART (which QEMU wires to the
//!   broker's TCP port) whose reads never stop inside an MQTT packet, for mqttrust's
//!   `NalTransport`.
//! - [`ota`] (feature `ota`, Cortex-M only): the OTA application the board examples run, the
//!   agent and driver of `ota-core` over mqttrust with the board's PAL parts.
//! - [`signer`] (feature `signer`, part of `ota`): the OTA code-signing key baked in at build
//!   time (`OTA_EXAMPLE_SIGNER_KEY`) and its verifier.
//!
//! `qemu-hello` passes `examples/run-qemu.sh` on all four machines; the timing and MQTT
//! measurements in `examples/README.md` were made on `mps2-an386`.
#![cfg_attr(not(test), no_std)]

pub mod flash;
pub mod machine;
pub mod mqtt;
#[cfg(all(feature = "ota", target_os = "none"))]
pub mod ota;
pub mod semihosting;
#[cfg(feature = "signer")]
pub mod signer;
#[cfg(target_os = "none")]
pub mod time;
pub mod uart;

/// Logs `FAIL: what` and exits QEMU with status 1: how an example stops on an error.
pub fn fail(what: &str) -> ! {
    log!("FAIL: {}", what);
    semihosting::exit(1)
}

/// Brings up what every example needs: the SysTick time driver. Call once, first thing in
/// `main`, with the core peripherals taken from `cortex_m::Peripherals::take()`.
#[cfg(target_os = "none")]
pub fn init(syst: cortex_m::peripheral::SYST) {
    time::start(syst);
}

#[cfg(all(feature = "handlers", target_os = "none"))]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    log!("panic: {}", info);
    semihosting::exit(101)
}

#[cfg(all(feature = "handlers", target_os = "none"))]
#[cortex_m_rt::exception]
unsafe fn HardFault(frame: &cortex_m_rt::ExceptionFrame) -> ! {
    log!("hard fault at pc={:#010x}", frame.pc());
    semihosting::exit(102)
}
