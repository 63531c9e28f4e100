//! Timeouts without an executor dependency: a one-method clock trait and a tiny `select`.

use core::future::{poll_fn, Future};
use core::pin::pin;
use core::task::Poll;

/// A delay source: `embassy_time::Timer::after_millis`, an RTIC monotonic, `tokio::time::sleep`…
///
/// The driver races every command against [`Clock::delay_ms`] and uses it between polls.
#[allow(async_fn_in_trait)]
pub trait Clock {
    /// Complete after about `ms` milliseconds.
    async fn delay_ms(&mut self, ms: u32);
}

impl<C: Clock + ?Sized> Clock for &mut C {
    async fn delay_ms(&mut self, ms: u32) {
        (**self).delay_ms(ms).await;
    }
}

/// Which side of a [`select`] finished first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Either<A, B> {
    /// The first future.
    First(A),
    /// The second future.
    Second(B),
}

/// Poll both futures until one completes; the first one wins a tie. The other is dropped.
pub async fn select<A: Future, B: Future>(a: A, b: B) -> Either<A::Output, B::Output> {
    let mut a = pin!(a);
    let mut b = pin!(b);
    poll_fn(|cx| {
        if let Poll::Ready(v) = a.as_mut().poll(cx) {
            return Poll::Ready(Either::First(v));
        }
        if let Poll::Ready(v) = b.as_mut().poll(cx) {
            return Poll::Ready(Either::Second(v));
        }
        Poll::Pending
    })
    .await
}

/// The future timed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimedOut;

/// Run `fut` for at most `ms` milliseconds of `clock`.
pub async fn with_timeout<C: Clock, F: Future>(
    clock: &mut C,
    ms: u32,
    fut: F,
) -> Result<F::Output, TimedOut> {
    match select(fut, clock.delay_ms(ms)).await {
        Either::First(v) => Ok(v),
        Either::Second(()) => Err(TimedOut),
    }
}
