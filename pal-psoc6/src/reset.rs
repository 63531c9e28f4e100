//! [`Reset`] adapter: the board supplies the reset (on PSoC 6 the CM4 calls
//! `NVIC_SystemReset`, as the IFX PAL's activate does, §1.7 point 7).

use ota_pal_traits::Reset;

/// A [`Reset`] that calls a closure, e.g. `FnReset(|| cortex_m::peripheral::SCB::sys_reset())`.
#[derive(Debug, Clone, Copy)]
pub struct FnReset<F>(pub F);

impl<F: FnMut()> Reset for FnReset<F> {
    fn reset(&mut self) {
        (self.0)();
    }
}
