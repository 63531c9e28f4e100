//! A RAM NOR flash with real bit semantics, operation counters and power-cut injection.
//!
//! Board crates and the tests of this crate share it: the image storage, the download journal
//! and a simulated bootloader can all look at the same bytes at once.
//!
//! # Design
//!
//! * [`SimDevice`] is the flash chip. It owns (or borrows) the storage `M: AsRef<[u8]> +
//!   AsMut<[u8]>` — a `&mut [u8]`, a `[u8; N]` or, in tests, a `Vec<u8>` — so it needs no heap
//!   and can have any size. Its geometry (write unit, erase sector, erase value) is chosen at
//!   run time with [`SimConfig`]. Its state lives in a [`RefCell`], so any number of views
//!   can use it through shared references. No `unsafe`.
//! * [`SimFlash`] is a view: a window `[offset, offset + len)` of the device that implements
//!   the `embedded-storage-async` [`ReadNorFlash`](AsyncReadNorFlash) /
//!   [`NorFlash`](AsyncNorFlash) traits and their blocking `embedded-storage` twins. Those
//!   traits declare `WRITE_SIZE` and `ERASE_SIZE` as associated *constants*, so the view
//!   carries them as const generics (`SimFlash<'d, M, WRITE, ERASE>`);
//!   [`SimDevice::view`] checks that they agree with the device (each must be a whole multiple
//!   of the device's unit, so a view may be coarser than the chip, never finer).
//! * With both trait families in scope a method call such as `flash.write(..)` is ambiguous;
//!   import only the family you use (the PAL types here use the async one).
//! * Every operation completes at once: the async methods never return `Pending`, and
//!   [`block_on`] runs them without an executor.
//!
//! # NOR semantics
//!
//! Erasing sets every byte of a sector to the erase value (`0xFF` for most NOR, `0x00` for
//! PSoC 6 internal flash). Programming only moves bits *away* from the erase value: with
//! `0xFF` the result is `old & data`, with `0x00` it is `old | data`. Programming a unit that is
//! not erased is allowed and combines bits that way, unless the device is
//! [strict](SimConfig::strict) (ECC flash), where it fails with [`SimError::NotErased`] and
//! changes nothing.
//!
//! # Power cuts
//!
//! [`SimDevice::cut_power_at`] arms a cut at the Nth *mutating* operation (write or erase) from
//! now. That operation is torn, deterministically from a seed: a write programs a prefix of its
//! write units and half-applies the bits of the next one; an erase erases a prefix of its
//! sectors and leaves the next one part erased, part old, part garbage. The torn operation and
//! every later one (reads included) fail with [`SimError::PowerLost`] until
//! [`SimDevice::power_on`]; the flash then keeps its torn contents.

pub mod test_keys;

use core::cell::RefCell;
use core::future::Future;
use core::pin::pin;
use core::task::{Context, Poll, Waker};

use embedded_storage::nor_flash::{
    ErrorType, NorFlash as BlockingNorFlash, NorFlashError, NorFlashErrorKind,
    ReadNorFlash as BlockingReadNorFlash,
};
use embedded_storage_async::nor_flash::{
    NorFlash as AsyncNorFlash, ReadNorFlash as AsyncReadNorFlash,
};

/// Run a future to completion on the current thread with a no-op waker.
///
/// Meant for futures that never return `Pending`, such as every operation on a [`SimFlash`]
/// and the PAL types built on it, so tests and board crates need no async runtime. A future
/// that does pend is polled again in a busy loop: it must make progress on its own (it never
/// gets a wake-up), otherwise this never returns.
pub fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        core::hint::spin_loop();
    }
}

/// Errors of the simulated flash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SimError {
    /// An offset or length is not a multiple of the write unit or erase sector.
    NotAligned,
    /// An access reaches past the end of the view, or `from > to` in an erase.
    OutOfBounds,
    /// Strict mode: a write targets a unit that is not in the erased state.
    NotErased,
    /// The power was cut (see [`SimDevice::cut_power_at`]); call [`SimDevice::power_on`].
    PowerLost,
    /// The device is already borrowed: an operation was re-entered from inside
    /// [`SimDevice::inspect`] or [`SimDevice::modify`].
    Busy,
    /// The configuration or the view geometry is inconsistent.
    BadGeometry,
}

impl NorFlashError for SimError {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            SimError::NotAligned => NorFlashErrorKind::NotAligned,
            SimError::OutOfBounds => NorFlashErrorKind::OutOfBounds,
            _ => NorFlashErrorKind::Other,
        }
    }
}

impl core::fmt::Display for SimError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Debug::fmt(self, f)
    }
}

/// Geometry and behaviour of a [`SimDevice`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimConfig {
    /// Program unit in bytes (e.g. 1, 8, 16, 512).
    pub write_size: usize,
    /// Erase sector in bytes; a multiple of `write_size`.
    pub erase_size: usize,
    /// Value of an erased byte: `0xFF` (most NOR) or `0x00` (PSoC 6 internal flash).
    pub erase_value: u8,
    /// Refuse to program a unit that is not erased (ECC flash), instead of AND/OR-ing bits.
    pub strict: bool,
}

impl SimConfig {
    /// A device programming `write_size` bytes at a time and erasing `erase_size`-byte sectors
    /// to `0xFF`, not strict.
    pub const fn new(write_size: usize, erase_size: usize) -> Self {
        Self {
            write_size,
            erase_size,
            erase_value: 0xFF,
            strict: false,
        }
    }

    /// The same device erasing to `value` (only `0xFF` and `0x00` are accepted by
    /// [`SimDevice::new`]).
    pub const fn erase_value(mut self, value: u8) -> Self {
        self.erase_value = value;
        self
    }

    /// The same device in strict (ECC) mode or not.
    pub const fn strict(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }
}

/// Operation counters of a [`SimDevice`], counting operations that passed their argument
/// checks (the torn operation of a power cut included).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Read calls.
    pub reads: u64,
    /// Bytes read.
    pub bytes_read: u64,
    /// Write calls.
    pub writes: u64,
    /// Bytes written.
    pub bytes_written: u64,
    /// Erase calls.
    pub erases: u64,
    /// Sectors erased.
    pub sectors_erased: u64,
}

impl SimStats {
    /// Writes plus erases: the operations a power cut counts.
    pub const fn mutating(&self) -> u64 {
        self.writes + self.erases
    }
}

/// A deterministic pseudo-random generator (SplitMix64) for tearing operations.
#[derive(Debug, Clone, Copy)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `0..n` (0 when `n == 0`).
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    fn byte(&mut self) -> u8 {
        self.next().to_le_bytes()[0]
    }
}

#[derive(Debug)]
struct State<M> {
    mem: M,
    cfg: SimConfig,
    stats: SimStats,
    /// `Some(n)`: the nth mutating operation from now is torn.
    cut_in: Option<u64>,
    rng: Rng,
    powered: bool,
}

impl<M: AsRef<[u8]> + AsMut<[u8]>> State<M> {
    fn check_power(&self) -> Result<(), SimError> {
        if self.powered {
            Ok(())
        } else {
            Err(SimError::PowerLost)
        }
    }

    /// Count a mutating operation; `true` when this one is to be torn.
    fn tear_now(&mut self) -> bool {
        match self.cut_in {
            Some(n) if n <= 1 => {
                self.cut_in = None;
                self.powered = false;
                true
            }
            Some(n) => {
                self.cut_in = Some(n - 1);
                false
            }
            None => false,
        }
    }

    fn read(&mut self, at: usize, buf: &mut [u8]) -> Result<(), SimError> {
        self.check_power()?;
        let src = at
            .checked_add(buf.len())
            .and_then(|end| self.mem.as_ref().get(at..end))
            .ok_or(SimError::OutOfBounds)?;
        buf.copy_from_slice(src);
        self.stats.reads += 1;
        self.stats.bytes_read += buf.len() as u64;
        Ok(())
    }

    fn write(&mut self, at: usize, data: &[u8]) -> Result<(), SimError> {
        self.check_power()?;
        let ev = self.cfg.erase_value;
        let unit = self.cfg.write_size;
        let end = at.checked_add(data.len()).ok_or(SimError::OutOfBounds)?;
        if self.cfg.strict {
            let cur = self
                .mem
                .as_ref()
                .get(at..end)
                .ok_or(SimError::OutOfBounds)?;
            if cur.iter().any(|&b| b != ev) {
                return Err(SimError::NotErased);
            }
        }
        self.stats.writes += 1;
        self.stats.bytes_written += data.len() as u64;
        let torn = self.tear_now();
        let mut rng = self.rng;
        let dst = self
            .mem
            .as_mut()
            .get_mut(at..end)
            .ok_or(SimError::OutOfBounds)?;
        if !torn {
            for (d, &s) in dst.iter_mut().zip(data) {
                *d = program(ev, *d, s);
            }
            return Ok(());
        }
        // A prefix of whole units lands, the next unit gets some of its bits, the rest nothing.
        let units = data.len() / unit.max(1);
        let whole = rng.below(units + 1);
        let split = whole * unit;
        for (i, (d, &s)) in dst.iter_mut().zip(data).enumerate() {
            if i < split {
                *d = program(ev, *d, s);
            } else if i < split + unit {
                let full = program(ev, *d, s);
                let moving = *d ^ full;
                *d ^= moving & rng.byte();
            }
        }
        self.rng = rng;
        Err(SimError::PowerLost)
    }

    fn erase(&mut self, from: usize, to: usize) -> Result<(), SimError> {
        self.check_power()?;
        let ev = self.cfg.erase_value;
        let sector = self.cfg.erase_size.max(1);
        self.stats.erases += 1;
        self.stats.sectors_erased += ((to - from) / sector) as u64;
        let torn = self.tear_now();
        let mut rng = self.rng;
        let dst = self
            .mem
            .as_mut()
            .get_mut(from..to)
            .ok_or(SimError::OutOfBounds)?;
        if !torn {
            dst.fill(ev);
            return Ok(());
        }
        // A prefix of sectors is erased; the next one is part erased, part old, part garbage.
        let sectors = dst.len() / sector;
        let whole = rng.below(sectors);
        for (i, chunk) in dst.chunks_mut(sector).enumerate() {
            if i < whole {
                chunk.fill(ev);
            } else if i == whole {
                let erased_prefix = rng.below(sector + 1);
                for (j, b) in chunk.iter_mut().enumerate() {
                    if j < erased_prefix {
                        *b = ev;
                    } else {
                        match rng.below(3) {
                            0 => *b = ev,
                            1 => {}
                            _ => *b = rng.byte(),
                        }
                    }
                }
            }
        }
        self.rng = rng;
        Err(SimError::PowerLost)
    }
}

/// Program one byte over `old` on a device erasing to `erase_value`.
fn program(erase_value: u8, old: u8, data: u8) -> u8 {
    if erase_value == 0 {
        old | data
    } else {
        old & data
    }
}

/// A simulated NOR flash chip over caller-provided storage.
///
/// Hand out windows of it with [`view`](Self::view); all views of one device see the same
/// bytes and share its counters and power state.
#[derive(Debug)]
pub struct SimDevice<M> {
    state: RefCell<State<M>>,
}

impl<M: AsRef<[u8]> + AsMut<[u8]>> SimDevice<M> {
    /// A device over `mem`, whose contents are kept as they are (call
    /// [`erase_all`](Self::erase_all) for a blank chip).
    ///
    /// Fails with [`SimError::BadGeometry`] unless `write_size > 0`, `erase_size` is a
    /// multiple of `write_size`, `mem.len()` is a multiple of `erase_size`, `mem.len()` fits a
    /// `u32` and the erase value is `0xFF` or `0x00`.
    pub fn new(mem: M, cfg: SimConfig) -> Result<Self, SimError> {
        let len = mem.as_ref().len();
        let ok = cfg.write_size > 0
            && cfg.erase_size > 0
            && cfg.erase_size % cfg.write_size == 0
            && len % cfg.erase_size == 0
            && u32::try_from(len).is_ok()
            && (cfg.erase_value == 0xFF || cfg.erase_value == 0x00);
        if !ok {
            return Err(SimError::BadGeometry);
        }
        Ok(Self {
            state: RefCell::new(State {
                mem,
                cfg,
                stats: SimStats::default(),
                cut_in: None,
                rng: Rng(0),
                powered: true,
            }),
        })
    }

    fn with<R>(&self, f: impl FnOnce(&mut State<M>) -> R) -> Result<R, SimError> {
        let mut st = self.state.try_borrow_mut().map_err(|_| SimError::Busy)?;
        Ok(f(&mut st))
    }

    /// The configuration the device was built with.
    pub fn config(&self) -> Result<SimConfig, SimError> {
        self.with(|s| s.cfg)
    }

    /// Size of the whole device in bytes.
    pub fn len(&self) -> Result<u32, SimError> {
        self.with(|s| s.mem.as_ref().len() as u32)
    }

    /// Whether the device has no bytes at all.
    pub fn is_empty(&self) -> Result<bool, SimError> {
        self.with(|s| s.mem.as_ref().is_empty())
    }

    /// A view of `len` bytes from `offset` with write unit `WRITE` and erase sector `ERASE`.
    ///
    /// `WRITE` must be a multiple of the device's write unit, `ERASE` a multiple of the
    /// device's erase sector and of `WRITE` ([`SimError::BadGeometry`]); `offset` and `len`
    /// multiples of `ERASE` ([`SimError::NotAligned`]), inside the device
    /// ([`SimError::OutOfBounds`]).
    pub fn view<const WRITE: usize, const ERASE: usize>(
        &self,
        offset: u32,
        len: u32,
    ) -> Result<SimFlash<'_, M, WRITE, ERASE>, SimError> {
        let (cfg, size) = self.with(|s| (s.cfg, s.mem.as_ref().len()))?;
        if WRITE == 0
            || ERASE == 0
            || WRITE % cfg.write_size != 0
            || ERASE % cfg.erase_size != 0
            || ERASE % WRITE != 0
        {
            return Err(SimError::BadGeometry);
        }
        if offset as usize % ERASE != 0 || len as usize % ERASE != 0 {
            return Err(SimError::NotAligned);
        }
        let end = offset.checked_add(len).ok_or(SimError::OutOfBounds)?;
        if end as usize > size {
            return Err(SimError::OutOfBounds);
        }
        Ok(SimFlash {
            dev: self,
            offset,
            len,
        })
    }

    /// Set every byte of the device to the erase value, bypassing counters and power state.
    pub fn erase_all(&self) -> Result<(), SimError> {
        self.with(|s| {
            let ev = s.cfg.erase_value;
            s.mem.as_mut().fill(ev);
        })
    }

    /// Look at the raw bytes, bypassing counters and power state (a debugger's view).
    pub fn inspect<R>(&self, f: impl FnOnce(&[u8]) -> R) -> Result<R, SimError> {
        self.with(|s| f(s.mem.as_ref()))
    }

    /// Change the raw bytes without NOR rules, counters or power state (to preload an image
    /// or corrupt one on purpose).
    pub fn modify<R>(&self, f: impl FnOnce(&mut [u8]) -> R) -> Result<R, SimError> {
        self.with(|s| f(s.mem.as_mut()))
    }

    /// The operation counters since creation or the last [`reset_stats`](Self::reset_stats).
    pub fn stats(&self) -> Result<SimStats, SimError> {
        self.with(|s| s.stats)
    }

    /// Zero the operation counters.
    pub fn reset_stats(&self) -> Result<(), SimError> {
        self.with(|s| s.stats = SimStats::default())
    }

    /// Arm a power cut: the `nth` mutating operation from now (1 = the next write or erase)
    /// is torn, deterministically from `seed`, and the power goes off. `nth == 0` cuts the
    /// power now without tearing anything. Replaces any cut already armed.
    pub fn cut_power_at(&self, nth: u64, seed: u64) -> Result<(), SimError> {
        self.with(|s| {
            s.rng = Rng(seed);
            if nth == 0 {
                s.cut_in = None;
                s.powered = false;
            } else {
                s.cut_in = Some(nth);
            }
        })
    }

    /// Disarm a pending power cut (the power stays as it is).
    pub fn disarm(&self) -> Result<(), SimError> {
        self.with(|s| s.cut_in = None)
    }

    /// Whether the power is on.
    pub fn is_powered(&self) -> Result<bool, SimError> {
        self.with(|s| s.powered)
    }

    /// Turn the power back on after a cut; the flash keeps whatever the cut left.
    pub fn power_on(&self) -> Result<(), SimError> {
        self.with(|s| s.powered = true)
    }

    /// Give the storage back.
    pub fn into_inner(self) -> M {
        self.state.into_inner().mem
    }
}

/// A window of a [`SimDevice`] seen as a NOR flash with write unit `WRITE` and erase sector
/// `ERASE` (see [`SimDevice::view`]). Offsets are relative to the window.
#[derive(Debug)]
pub struct SimFlash<'d, M, const WRITE: usize, const ERASE: usize> {
    dev: &'d SimDevice<M>,
    offset: u32,
    len: u32,
}

impl<M, const WRITE: usize, const ERASE: usize> Clone for SimFlash<'_, M, WRITE, ERASE> {
    fn clone(&self) -> Self {
        Self {
            dev: self.dev,
            offset: self.offset,
            len: self.len,
        }
    }
}

impl<'d, M: AsRef<[u8]> + AsMut<[u8]>, const WRITE: usize, const ERASE: usize>
    SimFlash<'d, M, WRITE, ERASE>
{
    /// The device this view looks into.
    pub fn device(&self) -> &'d SimDevice<M> {
        self.dev
    }

    /// Offset of the window in the device.
    pub fn offset(&self) -> u32 {
        self.offset
    }

    /// Absolute device position of `len` bytes at window offset `offset`, if in bounds.
    fn span(&self, offset: u32, len: usize) -> Result<usize, SimError> {
        let len = u32::try_from(len).map_err(|_| SimError::OutOfBounds)?;
        let end = offset.checked_add(len).ok_or(SimError::OutOfBounds)?;
        if end > self.len {
            return Err(SimError::OutOfBounds);
        }
        Ok((self.offset + offset) as usize)
    }

    fn do_read(&self, offset: u32, bytes: &mut [u8]) -> Result<(), SimError> {
        let at = self.span(offset, bytes.len())?;
        self.dev.with(|s| s.read(at, bytes))?
    }

    fn do_write(&self, offset: u32, bytes: &[u8]) -> Result<(), SimError> {
        let at = self.span(offset, bytes.len())?;
        if offset as usize % WRITE != 0 || bytes.len() % WRITE != 0 {
            return Err(SimError::NotAligned);
        }
        self.dev.with(|s| s.write(at, bytes))?
    }

    fn do_erase(&self, from: u32, to: u32) -> Result<(), SimError> {
        if from > to || to > self.len {
            return Err(SimError::OutOfBounds);
        }
        if from as usize % ERASE != 0 || to as usize % ERASE != 0 {
            return Err(SimError::NotAligned);
        }
        let (a, b) = ((self.offset + from) as usize, (self.offset + to) as usize);
        self.dev.with(|s| s.erase(a, b))?
    }
}

impl<M, const WRITE: usize, const ERASE: usize> ErrorType for SimFlash<'_, M, WRITE, ERASE> {
    type Error = SimError;
}

impl<M: AsRef<[u8]> + AsMut<[u8]>, const WRITE: usize, const ERASE: usize> AsyncReadNorFlash
    for SimFlash<'_, M, WRITE, ERASE>
{
    const READ_SIZE: usize = 1;

    async fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), SimError> {
        self.do_read(offset, bytes)
    }

    fn capacity(&self) -> usize {
        self.len as usize
    }
}

impl<M: AsRef<[u8]> + AsMut<[u8]>, const WRITE: usize, const ERASE: usize> AsyncNorFlash
    for SimFlash<'_, M, WRITE, ERASE>
{
    const WRITE_SIZE: usize = WRITE;
    const ERASE_SIZE: usize = ERASE;

    async fn erase(&mut self, from: u32, to: u32) -> Result<(), SimError> {
        self.do_erase(from, to)
    }

    async fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), SimError> {
        self.do_write(offset, bytes)
    }
}

impl<M: AsRef<[u8]> + AsMut<[u8]>, const WRITE: usize, const ERASE: usize> BlockingReadNorFlash
    for SimFlash<'_, M, WRITE, ERASE>
{
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), SimError> {
        self.do_read(offset, bytes)
    }

    fn capacity(&self) -> usize {
        self.len as usize
    }
}

impl<M: AsRef<[u8]> + AsMut<[u8]>, const WRITE: usize, const ERASE: usize> BlockingNorFlash
    for SimFlash<'_, M, WRITE, ERASE>
{
    const WRITE_SIZE: usize = WRITE;
    const ERASE_SIZE: usize = ERASE;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), SimError> {
        self.do_erase(from, to)
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), SimError> {
        self.do_write(offset, bytes)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::{block_on, program, SimConfig, SimDevice, SimError, SimStats};
    use embedded_storage::nor_flash::{NorFlashError, NorFlashErrorKind};
    use embedded_storage_async::nor_flash::{NorFlash, ReadNorFlash};
    use std::{vec, vec::Vec};

    fn dev(ev: u8, write: usize, erase: usize, size: usize) -> SimDevice<Vec<u8>> {
        let d = SimDevice::new(
            vec![0u8; size],
            SimConfig::new(write, erase).erase_value(ev),
        )
        .unwrap();
        d.erase_all().unwrap();
        d
    }

    #[test]
    fn block_on_runs_a_ready_future() {
        assert_eq!(block_on(async { 7 }), 7);
    }

    #[test]
    fn erase_ff_programs_with_and() {
        let d = dev(0xFF, 1, 16, 64);
        let mut f = d.view::<1, 16>(0, 64).unwrap();
        block_on(async {
            f.write(0, &[0b1010_1010]).await.unwrap();
            f.write(0, &[0b1100_1100]).await.unwrap();
            let mut b = [0u8; 2];
            f.read(0, &mut b).await.unwrap();
            assert_eq!(b, [0b1000_1000, 0xFF]);
            f.erase(0, 16).await.unwrap();
            f.read(0, &mut b).await.unwrap();
            assert_eq!(b, [0xFF, 0xFF]);
        });
    }

    #[test]
    fn erase_00_programs_with_or() {
        let d = dev(0x00, 1, 16, 64);
        let mut f = d.view::<1, 16>(0, 64).unwrap();
        block_on(async {
            f.write(3, &[0b1010_0000]).await.unwrap();
            f.write(3, &[0b0000_0101]).await.unwrap();
            let mut b = [0xAAu8; 1];
            f.read(3, &mut b).await.unwrap();
            assert_eq!(b, [0b1010_0101]);
            f.erase(0, 16).await.unwrap();
            f.read(3, &mut b).await.unwrap();
            assert_eq!(b, [0x00]);
        });
    }

    #[test]
    fn strict_mode_refuses_writes_to_programmed_units() {
        let d = SimDevice::new(vec![0xFFu8; 64], SimConfig::new(16, 32).strict(true)).unwrap();
        let mut f = d.view::<16, 32>(0, 64).unwrap();
        block_on(async {
            f.write(0, &[0x11; 16]).await.unwrap();
            assert_eq!(f.write(0, &[0x01; 16]).await, Err(SimError::NotErased));
            let mut b = [0u8; 16];
            f.read(0, &mut b).await.unwrap();
            assert_eq!(b, [0x11; 16]);
            f.erase(0, 32).await.unwrap();
            f.write(0, &[0x01; 16]).await.unwrap();
        });
    }

    #[test]
    fn alignment_and_bounds_errors() {
        let d = dev(0xFF, 16, 512, 2048);
        let mut f = d.view::<16, 512>(512, 1024).unwrap();
        block_on(async {
            assert_eq!(f.write(8, &[0; 16]).await, Err(SimError::NotAligned));
            assert_eq!(f.write(0, &[0; 8]).await, Err(SimError::NotAligned));
            assert_eq!(f.write(1024, &[0; 16]).await, Err(SimError::OutOfBounds));
            assert_eq!(f.erase(0, 100).await, Err(SimError::NotAligned));
            assert_eq!(f.erase(512, 0).await, Err(SimError::OutOfBounds));
            assert_eq!(f.erase(0, 1536).await, Err(SimError::OutOfBounds));
            let mut b = [0u8; 2];
            assert_eq!(f.read(1023, &mut b).await, Err(SimError::OutOfBounds));
            assert_eq!(f.read(u32::MAX, &mut b).await, Err(SimError::OutOfBounds));
            assert_eq!(SimError::NotAligned.kind(), NorFlashErrorKind::NotAligned);
            assert_eq!(SimError::OutOfBounds.kind(), NorFlashErrorKind::OutOfBounds);
            assert_eq!(SimError::PowerLost.kind(), NorFlashErrorKind::Other);
        });
        // Views: finer than the device, misaligned, or past the end.
        assert_eq!(d.view::<8, 512>(0, 512).err(), Some(SimError::BadGeometry));
        assert_eq!(d.view::<16, 256>(0, 512).err(), Some(SimError::BadGeometry));
        assert_eq!(
            d.view::<16, 512>(100, 512).err(),
            Some(SimError::NotAligned)
        );
        assert_eq!(
            d.view::<16, 512>(1536, 1024).err(),
            Some(SimError::OutOfBounds)
        );
        assert!(d.view::<32, 1024>(0, 2048).is_ok());
        assert_eq!(
            SimDevice::new(vec![0u8; 100], SimConfig::new(16, 64)).err(),
            Some(SimError::BadGeometry)
        );
        assert_eq!(
            SimDevice::new(vec![0u8; 128], SimConfig::new(16, 64).erase_value(0x5A)).err(),
            Some(SimError::BadGeometry)
        );
    }

    #[test]
    fn counters_count_checked_operations() {
        let d = dev(0xFF, 4, 16, 64);
        let mut f = d.view::<4, 16>(0, 64).unwrap();
        block_on(async {
            f.write(0, &[0; 8]).await.unwrap();
            f.write(8, &[0; 4]).await.unwrap();
            let _ = f.write(1, &[0; 4]).await; // rejected: not counted
            f.erase(0, 32).await.unwrap();
            let mut b = [0u8; 5];
            f.read(0, &mut b).await.unwrap();
        });
        let s = d.stats().unwrap();
        assert_eq!(
            s,
            SimStats {
                reads: 1,
                bytes_read: 5,
                writes: 2,
                bytes_written: 12,
                erases: 1,
                sectors_erased: 2,
            }
        );
        assert_eq!(s.mutating(), 3);
        d.reset_stats().unwrap();
        assert_eq!(d.stats().unwrap(), SimStats::default());
    }

    /// Tear a 64-byte write (four 16-byte units) with `seed` and return the flash contents.
    fn torn_write(ev: u8, seed: u64) -> Vec<u8> {
        let d = dev(ev, 16, 64, 128);
        let mut f = d.view::<16, 64>(0, 128).unwrap();
        let data: Vec<u8> = (0..64u8).map(|i| i.wrapping_mul(37) ^ 0x5A).collect();
        d.cut_power_at(2, seed).unwrap();
        block_on(async {
            f.write(64, &[0x00; 16]).await.unwrap(); // op 1: completes
            assert_eq!(f.write(0, &data).await, Err(SimError::PowerLost)); // op 2: torn
            let mut b = [0u8; 1];
            assert_eq!(f.read(0, &mut b).await, Err(SimError::PowerLost));
            assert_eq!(f.erase(0, 64).await, Err(SimError::PowerLost));
            assert_eq!(f.write(80, &[0; 16]).await, Err(SimError::PowerLost));
        });
        assert!(!d.is_powered().unwrap());
        d.power_on().unwrap();
        let mut out = vec![0u8; 64];
        block_on(f.read(0, &mut out)).unwrap();
        // Every byte lies between the old (erased) and the new value, bit by bit.
        for (&o, &n) in out.iter().zip(&data) {
            let full = program(ev, ev, n);
            assert_eq!(
                (o ^ ev) & !(full ^ ev),
                0,
                "bit moved that the write never asked for"
            );
        }
        // Units fully written form a prefix; the units after the torn one are untouched.
        let units: Vec<(bool, bool)> = out
            .chunks(16)
            .zip(data.chunks(16))
            .map(|(o, n)| (o == n, o.iter().all(|&b| b == ev)))
            .collect();
        let whole = units.iter().take_while(|u| u.0).count();
        assert!(units.iter().skip(whole + 1).all(|u| u.1), "{units:?}");
        out
    }

    #[test]
    fn torn_write_is_partial_and_deterministic() {
        for ev in [0xFF, 0x00] {
            let mut partial = 0;
            for seed in 0..32 {
                let a = torn_write(ev, seed);
                assert_eq!(a, torn_write(ev, seed), "same seed, same tear");
                let data: Vec<u8> = (0..64u8).map(|i| i.wrapping_mul(37) ^ 0x5A).collect();
                if a != data && a.iter().any(|&b| b != ev) {
                    partial += 1;
                }
            }
            assert!(partial > 0, "some seeds tear mid-write");
        }
    }

    #[test]
    fn torn_erase_leaves_a_partly_erased_sector() {
        let mut seen_garbage = false;
        for seed in 0..16 {
            let d = dev(0xFF, 1, 32, 128);
            d.modify(|m| m.fill(0x00)).unwrap();
            let mut f = d.view::<1, 32>(0, 128).unwrap();
            d.cut_power_at(1, seed).unwrap();
            assert_eq!(block_on(f.erase(0, 128)), Err(SimError::PowerLost));
            d.power_on().unwrap();
            let mem = d.inspect(|m| m.to_vec()).unwrap();
            let sectors: Vec<&[u8]> = mem.chunks(32).collect();
            let erased = sectors
                .iter()
                .take_while(|s| s.iter().all(|&b| b == 0xFF))
                .count();
            assert!(erased < 4, "a torn erase never completes");
            // After the torn sector, nothing was touched.
            for s in sectors.iter().skip(erased + 1) {
                assert!(s.iter().all(|&b| b == 0x00));
            }
            if sectors[erased].iter().any(|&b| b != 0x00 && b != 0xFF) {
                seen_garbage = true;
            }
        }
        assert!(seen_garbage);
    }

    #[test]
    fn power_off_now_and_disarm() {
        let d = dev(0xFF, 1, 16, 32);
        let mut f = d.view::<1, 16>(0, 32).unwrap();
        d.cut_power_at(0, 0).unwrap();
        assert_eq!(block_on(f.write(0, &[0])), Err(SimError::PowerLost));
        d.power_on().unwrap();
        d.cut_power_at(1, 0).unwrap();
        d.disarm().unwrap();
        block_on(f.write(0, &[0])).unwrap();
        assert!(d.is_powered().unwrap());
    }

    #[test]
    fn views_of_one_device_share_bytes_but_not_windows() {
        let d = dev(0xFF, 1, 16, 64);
        let mut a = d.view::<1, 16>(0, 32).unwrap();
        let mut b = d.view::<1, 16>(32, 32).unwrap();
        let mut whole = d.view::<1, 16>(0, 64).unwrap();
        block_on(async {
            a.write(0, &[1, 2, 3]).await.unwrap();
            b.write(0, &[4, 5, 6]).await.unwrap();
            b.erase(0, 32).await.unwrap();
            assert_eq!(a.write(32, &[0]).await, Err(SimError::OutOfBounds));
            let mut buf = [0u8; 64];
            whole.read(0, &mut buf).await.unwrap();
            assert_eq!(&buf[..4], &[1, 2, 3, 0xFF]);
            assert!(buf[32..].iter().all(|&x| x == 0xFF));
            b.write(31, &[9]).await.unwrap();
            whole.read(63, &mut buf[..1]).await.unwrap();
            assert_eq!(buf[0], 9);
        });
        assert_eq!(a.capacity(), 32);
        assert_eq!(b.offset(), 32);
    }

    #[test]
    fn blocking_traits_match_async_ones() {
        let mut mem = [0xFFu8; 64];
        let d = SimDevice::new(&mut mem[..], SimConfig::new(2, 32)).unwrap();
        let mut f = d.view::<2, 32>(0, 64).unwrap();
        embedded_storage::nor_flash::NorFlash::write(&mut f, 2, &[0x12, 0x34]).unwrap();
        let mut b = [0u8; 2];
        embedded_storage::nor_flash::ReadNorFlash::read(&mut f, 2, &mut b).unwrap();
        assert_eq!(b, [0x12, 0x34]);
        embedded_storage::nor_flash::NorFlash::erase(&mut f, 0, 32).unwrap();
        let _ = f;
        let mem = d.into_inner();
        assert_eq!(&mem[2..4], &[0xFF, 0xFF]);
    }
}
