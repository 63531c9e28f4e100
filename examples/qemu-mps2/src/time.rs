//! An `embassy-time` driver on SysTick.
//!
//! SysTick counts the CPU clock ([`crate::machine::SYSCLK_HZ`]) and interrupts once per tick
//! (`tick-hz-1_000` in the workspace: 1 ms); the handler counts ticks and wakes expired timers.
//! Under `-icount shift=N` QEMU's CPU clock is virtual time (2^N ns per instruction), so the
//! same firmware sees the same times on every run, however loaded the host is.

use core::cell::{Cell, RefCell};
use core::task::Waker;

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::SYST;
use cortex_m_rt::exception;
use critical_section::Mutex;
use embassy_time_driver::{Driver, TICK_HZ};
use embassy_time_queue_utils::Queue;

struct SysTickDriver {
    ticks: Mutex<Cell<u64>>,
    queue: Mutex<RefCell<Queue>>,
    /// The earliest tick at which a timer in `queue` expires (`u64::MAX`: none).
    next: Mutex<Cell<u64>>,
}

embassy_time_driver::time_driver_impl!(static DRIVER: SysTickDriver = SysTickDriver {
    ticks: Mutex::new(Cell::new(0)),
    queue: Mutex::new(RefCell::new(Queue::new())),
    next: Mutex::new(Cell::new(u64::MAX)),
});

impl Driver for SysTickDriver {
    fn now(&self) -> u64 {
        critical_section::with(|cs| self.ticks.borrow(cs).get())
    }

    fn schedule_wake(&self, at: u64, waker: &Waker) {
        critical_section::with(|cs| {
            let mut queue = self.queue.borrow(cs).borrow_mut();
            if queue.schedule_wake(at, waker) {
                let now = self.ticks.borrow(cs).get();
                self.next.borrow(cs).set(queue.next_expiration(now));
            }
        });
    }
}

impl SysTickDriver {
    fn on_tick(&self) {
        critical_section::with(|cs| {
            let ticks = self.ticks.borrow(cs);
            let now = ticks.get().wrapping_add(1);
            ticks.set(now);
            let next = self.next.borrow(cs);
            if now >= next.get() {
                next.set(self.queue.borrow(cs).borrow_mut().next_expiration(now));
            }
        });
    }
}

/// Starts SysTick on the CPU clock at `TICK_HZ`.
pub(crate) fn start(mut syst: SYST) {
    let reload = crate::machine::SYSCLK_HZ / TICK_HZ as u32 - 1;
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(reload);
    syst.clear_current();
    syst.enable_interrupt();
    syst.enable_counter();
}

#[exception]
fn SysTick() {
    DRIVER.on_tick();
}
