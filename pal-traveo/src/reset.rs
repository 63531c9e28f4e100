//! [`Reset`] adapters. The vendor's activate waits 1 s (to let the job status go out) and then
//! calls `NVIC_SystemReset` (spec §2.5); the agent publishes before resetting, so a plain
//! system reset is enough here.

use ota_pal_traits::Reset;

/// A [`Reset`] from a function, e.g. `FnReset(|| cortex_m::peripheral::SCB::sys_reset())`.
#[derive(Debug, Clone, Copy)]
pub struct FnReset<F: FnMut()>(pub F);

impl<F: FnMut()> Reset for FnReset<F> {
    fn reset(&mut self) {
        (self.0)()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fn_reset_calls_the_function() {
        let mut n = 0;
        FnReset(|| n += 1).reset();
        assert_eq!(n, 1);
    }
}
