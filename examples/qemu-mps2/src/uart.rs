//! The CMSDK APB UART (Arm DDI 0479, "Cortex-M System Design Kit", APB UART) as
//! `embedded-io-async` `Read + Write`.
//!
//! Registers: DATA (0x00), STATE (0x04: bit 0 TX buffer full, bit 1 RX buffer full), CTRL
//! (0x08: bit 0 TX enable, bit 1 RX enable), INTSTATUS (0x0C), BAUDDIV (0x10, at least 16).
//! QEMU transmits at once and ignores the baud rate; the receive buffer holds one byte.
//!
//! Polled, with a yield to the executor whenever there is nothing to do: no interrupt setup,
//! and the CPU never sleeps while a transfer waits, so virtual time under `-icount` keeps moving
//! at the instruction rate (see `examples/README.md` on why this matters for timeouts).

use core::convert::Infallible;
use core::ptr::{read_volatile, write_volatile};

const DATA: usize = 0x00;
const STATE: usize = 0x04;
const CTRL: usize = 0x08;
const BAUDDIV: usize = 0x10;
const STATE_TX_FULL: u32 = 1 << 0;
const STATE_RX_FULL: u32 = 1 << 1;
const CTRL_TX_EN: u32 = 1 << 0;
const CTRL_RX_EN: u32 = 1 << 1;

/// One CMSDK APB UART.
#[derive(Debug)]
pub struct CmsdkUart {
    base: usize,
}

impl CmsdkUart {
    /// Takes the UART at `base` and enables its transmitter and receiver.
    ///
    /// # Safety
    /// `base` must be the address of a CMSDK APB UART that nothing else drives.
    pub unsafe fn new(base: usize) -> Self {
        let uart = Self { base };
        uart.write_reg(BAUDDIV, 16);
        uart.write_reg(CTRL, CTRL_TX_EN | CTRL_RX_EN);
        uart
    }

    /// UART0 of the selected machine, the one `-serial` wires to the broker.
    ///
    /// # Safety
    /// Call once: the returned value owns the UART.
    pub unsafe fn uart0() -> Self {
        // SAFETY: the machine module names the UART0 of this machine; the caller owns it.
        unsafe { Self::new(crate::machine::UART0_BASE) }
    }

    fn read_reg(&self, offset: usize) -> u32 {
        // SAFETY: `base` is a CMSDK UART (constructor contract); offsets are its registers.
        unsafe { read_volatile((self.base + offset) as *const u32) }
    }

    fn write_reg(&self, offset: usize, value: u32) {
        // SAFETY: as in `read_reg`.
        unsafe { write_volatile((self.base + offset) as *mut u32, value) }
    }

    /// A received byte, if one is waiting.
    pub fn try_read_byte(&mut self) -> Option<u8> {
        if self.read_reg(STATE) & STATE_RX_FULL != 0 {
            Some(self.read_reg(DATA) as u8)
        } else {
            None
        }
    }

    /// Queues `byte` if the transmitter has room.
    pub fn try_write_byte(&mut self, byte: u8) -> bool {
        if self.read_reg(STATE) & STATE_TX_FULL == 0 {
            self.write_reg(DATA, u32::from(byte));
            true
        } else {
            false
        }
    }
}

impl embedded_io_async::ErrorType for CmsdkUart {
    type Error = Infallible;
}

impl embedded_io_async::Read for CmsdkUart {
    /// Waits for at least one byte, then returns what has arrived (never more than `buf`).
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
        let mut n = 0;
        for slot in buf.iter_mut() {
            loop {
                if let Some(b) = self.try_read_byte() {
                    *slot = b;
                    n += 1;
                    break;
                }
                if n > 0 {
                    return Ok(n);
                }
                embassy_futures::yield_now().await;
            }
        }
        Ok(n)
    }
}

impl embedded_io_async::Write for CmsdkUart {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
        let mut n = 0;
        for &b in buf {
            while !self.try_write_byte(b) {
                if n > 0 {
                    return Ok(n);
                }
                embassy_futures::yield_now().await;
            }
            n += 1;
        }
        Ok(n)
    }

    async fn flush(&mut self) -> Result<(), Infallible> {
        while self.read_reg(STATE) & STATE_TX_FULL != 0 {
            embassy_futures::yield_now().await;
        }
        Ok(())
    }
}
