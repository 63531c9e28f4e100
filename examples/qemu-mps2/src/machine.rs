//! Constants of the selected QEMU machine.
//!
//! | machine    | CPU        | code / RAM (linked at)      | UART0        | SYSCLK  |
//! |------------|------------|-----------------------------|--------------|---------|
//! | mps2-an386 | Cortex-M4F | 0x0000_0000 / 0x2000_0000   | 0x4000_4000  | 25 MHz  |
//! | mps2-an500 | Cortex-M7  | 0x0000_0000 / 0x2000_0000   | 0x4000_4000  | 25 MHz  |
//! | mps2-an505 | Cortex-M33 | 0x1000_0000 / 0x3800_0000 S | 0x5020_0000 S| 20 MHz  |
//! | mps3-an547 | Cortex-M55 | 0x1000_0000 / 0x3000_0000 S | 0x5930_3000 S| 32 MHz  |
//!
//! an505/an547 boot in the Secure state, so images are linked at the Secure aliases and use the
//! Secure alias of the UART. All four boot `qemu-hello`; the SysTick clocks are QEMU's
//! (`mps2.c`, `mps2-tz.c`).

/// Base address of UART0, the one `-serial` wires to the broker.
#[cfg(any(feature = "mps2-an386", feature = "mps2-an500"))]
pub const UART0_BASE: usize = 0x4000_4000;
/// Base address of UART0 (Secure alias), the one `-serial` wires to the broker.
#[cfg(feature = "mps2-an505")]
pub const UART0_BASE: usize = 0x5020_0000;
/// Base address of UART0 (Secure alias), the one `-serial` wires to the broker.
#[cfg(feature = "mps3-an547")]
pub const UART0_BASE: usize = 0x5930_3000;

/// The CPU clock SysTick counts, in Hz.
#[cfg(any(feature = "mps2-an386", feature = "mps2-an500"))]
pub const SYSCLK_HZ: u32 = 25_000_000;
/// The CPU clock SysTick counts, in Hz.
#[cfg(feature = "mps2-an505")]
pub const SYSCLK_HZ: u32 = 20_000_000;
/// The CPU clock SysTick counts, in Hz.
#[cfg(feature = "mps3-an547")]
pub const SYSCLK_HZ: u32 = 32_000_000;

/// The QEMU machine name, for logs.
#[cfg(feature = "mps2-an386")]
pub const NAME: &str = "mps2-an386";
/// The QEMU machine name, for logs.
#[cfg(feature = "mps2-an500")]
pub const NAME: &str = "mps2-an500";
/// The QEMU machine name, for logs.
#[cfg(feature = "mps2-an505")]
pub const NAME: &str = "mps2-an505";
/// The QEMU machine name, for logs.
#[cfg(feature = "mps3-an547")]
pub const NAME: &str = "mps3-an547";
