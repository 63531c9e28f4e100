//! The smallest firmware around ota-core's agent and driver, to measure what they cost in
//! flash and RAM (`scripts/size-report.sh`, `SIZES.md`).
//!
//! Every board part is a no-op: an MQTT client that never receives, storage, verifier, boot
//! control, reset and journal that do nothing. What they *return* is not a constant, though:
//! every result (success or a PAL error, the platform image state, whether a message is
//! pending, its bytes) comes from a volatile read of [`INPUT`], a byte nobody writes. The
//! compiler must assume any outcome, so the agent's code for every path (job parsing, block
//! writes, verification, self test, resume, errors) stays in the image; with constant `Ok`s
//! fat LTO would drop the error paths, and with a receive that is visibly `Pending` forever it
//! would drop the whole message handling. The exception is the HTTP data path: this is an
//! MQTT-only device (`NoHttp` fails every request), so the handling of HTTP bodies is dropped.
//!
//! The firmware calls [`Driver::run`] once, for [`RUN_MS`] of emulated time, on a tiny
//! `block_on` that sleeps in `wfi` between SysTick interrupts, then checks that the agent
//! subscribed and published its `$next/get` request (and retried it after the 5 s backoff),
//! prints a line and exits QEMU with status 0 (1 if the agent did not run as expected).
//!
//! ```sh
//! qemu-system-arm -M mps2-an386 -nographic -monitor none \
//!   -semihosting-config enable=on,target=native -icount shift=4,align=off,sleep=off \
//!   -kernel target/thumbv7em-none-eabihf/release/agent-min
//! ```
#![no_std]

use core::fmt::Write as _;
use core::future::{poll_fn, Future};
use core::pin::pin;
use core::ptr::{read_volatile, write_volatile};
use core::sync::atomic::AtomicU8;
use core::task::{Context, Poll, Waker};

use embedded_storage::nor_flash::{ErrorType, NorFlashErrorKind};
use embedded_storage_async::nor_flash::{NorFlash, ReadNorFlash};
use ota_core::agent::{Agent, Config, Instant, State};
use ota_core::driver::{
    select, Application, Clock, Driver, Either, MqttClient, MqttMessage, NoHttp,
};
use ota_core::wire::topic::Qos;
use ota_core::wire::version::AppVersion;
use ota_pal_traits::{
    BootControl, DownloadJournal, FileInfo, ImageStorage, ImageVerifier, JournalHeader, PalError,
    PalErrorKind, PlatformImageState, Reset, SignatureKind,
};
use qemu_mps2::semihosting::{self, HostStdout};
use static_cell::{ConstStaticCell, StaticCell};

/// Emulated milliseconds the agent runs before the firmware reports and exits: long enough for
/// the first `$next/get` and its retry after the 5 s backoff.
pub const RUN_MS: u64 = 7_000;

/// The agent as sized here: 1024 blocks (4 MiB at 4 KiB, the reference agent's limit), MQTT
/// only (no URL buffer). The defaults (`Agent`, 16 MiB files, HTTP) add 1,920 bytes of RAM.
pub type MinAgent = Agent<128, 0>;

/// The driver's receive buffer: one 4 KiB block message or one job document. The same size as
/// `Config::rx_buffer_len`'s default and the reference agent's event buffer (5,626 bytes).
pub const RX_LEN: usize = 4096 + 1500 + 30;

/// The byte every no-op part reads its outcome from. Nothing writes it (it stays 0: success,
/// no message), but the reads are volatile, so the compiler cannot know that.
pub static INPUT: AtomicU8 = AtomicU8::new(0);

/// One opaque byte (see [`INPUT`]).
#[inline(never)]
pub fn opaque() -> u8 {
    // SAFETY: a volatile read of a static byte, always valid.
    unsafe { read_volatile(INPUT.as_ptr()) }
}

fn opaque_u32() -> u32 {
    u32::from_le_bytes([opaque(), opaque(), opaque(), opaque()])
}

/// `Ok(())`, or a PAL error when [`INPUT`] says so.
fn pal_result() -> Result<(), PalError> {
    if opaque() & 1 != 0 {
        Err(PalError::with_sub(PalErrorKind::FileAbort, opaque_u32()))
    } else {
        Ok(())
    }
}

/// MQTT client that counts what it is asked and never receives.
#[derive(Debug, Default)]
pub struct NullMqtt {
    /// Subscriptions requested.
    pub subscribes: u32,
    /// Publishes requested.
    pub publishes: u32,
}

fn mqtt_result() -> Result<(), ()> {
    if opaque() & 2 != 0 {
        Err(())
    } else {
        Ok(())
    }
}

impl MqttClient for NullMqtt {
    type Error = ();

    async fn subscribe(&mut self, _topic: &str, _qos: Qos) -> Result<(), ()> {
        self.subscribes = self.subscribes.wrapping_add(1);
        mqtt_result()
    }

    async fn unsubscribe(&mut self, _topic: &str) -> Result<(), ()> {
        mqtt_result()
    }

    async fn publish(&mut self, _topic: &str, _payload: &[u8], _qos: Qos) -> Result<(), ()> {
        self.publishes = self.publishes.wrapping_add(1);
        mqtt_result()
    }

    async fn receive<'b>(&mut self, buf: &'b mut [u8]) -> Result<MqttMessage<'b>, ()> {
        // "A message is pending" is an opaque byte: 0, so this waits forever, but the compiler
        // keeps everything the agent does with a message.
        poll_fn(|_| {
            if opaque() == 0 {
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })
        .await;
        let len = usize::from(opaque()) << 8 | usize::from(opaque());
        let len = len.min(buf.len());
        let (message, _) = buf.split_at_mut(len);
        for b in message.iter_mut() {
            *b = opaque();
        }
        let split = usize::from(opaque()).min(len);
        let (topic, payload) = message.split_at(split);
        let topic = core::str::from_utf8(topic).map_err(|_| ())?;
        Ok(MqttMessage { topic, payload })
    }
}

/// Milliseconds from qemu-mps2's SysTick driver (1 kHz). `sleep_until` registers no waker:
/// [`block_on`] polls again after every interrupt, and SysTick interrupts every millisecond.
#[derive(Debug, Default, Clone, Copy)]
pub struct SysTickClock;

impl Clock for SysTickClock {
    fn now(&mut self) -> Instant {
        Instant(embassy_time_driver::now())
    }

    async fn sleep_until(&mut self, at: Instant) {
        poll_fn(|_| {
            if embassy_time_driver::now() >= at.0 {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }
}

/// Application whose self test passes or fails as [`INPUT`] says.
#[derive(Debug, Default)]
pub struct NullApp;

impl Application for NullApp {
    async fn self_test(&mut self) -> bool {
        opaque() & 4 == 0
    }
}

/// Image storage that stores nothing.
#[derive(Debug, Default)]
pub struct NullStorage;

impl ImageStorage for NullStorage {
    fn capacity(&self) -> u32 {
        1 << 22
    }

    async fn prepare(&mut self, _file: &FileInfo<'_>) -> Result<(), PalError> {
        pal_result()
    }

    async fn resume(&mut self, _file: &FileInfo<'_>) -> Result<(), PalError> {
        pal_result()
    }

    async fn write(&mut self, _offset: u32, _data: &[u8]) -> Result<(), PalError> {
        pal_result()
    }

    async fn read(&mut self, _offset: u32, _buf: &mut [u8]) -> Result<(), PalError> {
        pal_result()
    }

    async fn abort(&mut self) -> Result<(), PalError> {
        pal_result()
    }
}

/// Verifier that hashes nothing and accepts or refuses as [`INPUT`] says.
#[derive(Debug, Default)]
pub struct NullVerifier;

impl ImageVerifier for NullVerifier {
    fn kind(&self) -> SignatureKind {
        SignatureKind::SHA256_ECDSA
    }

    fn begin(&mut self, _file: &FileInfo<'_>) {}

    fn update(&mut self, _data: &[u8]) {}

    async fn finish(&mut self, _signature: &[u8]) -> Result<(), PalError> {
        pal_result()
    }
}

/// Boot control that changes nothing.
#[derive(Debug, Default)]
pub struct NullBoot;

impl BootControl for NullBoot {
    async fn platform_state(&mut self) -> Result<PlatformImageState, PalError> {
        pal_result()?;
        Ok(match opaque() & 3 {
            0 => PlatformImageState::Valid,
            1 => PlatformImageState::PendingCommit,
            2 => PlatformImageState::Invalid,
            _ => PlatformImageState::Unknown,
        })
    }

    async fn request_trial_boot(&mut self, _file: &FileInfo<'_>) -> Result<(), PalError> {
        pal_result()
    }

    async fn confirm(&mut self) -> Result<(), PalError> {
        pal_result()
    }

    async fn reject(&mut self) -> Result<(), PalError> {
        pal_result()
    }
}

/// Reset that returns (the driver then ends the run with `Exit::Reset`).
#[derive(Debug, Default)]
pub struct NullReset;

impl Reset for NullReset {
    fn reset(&mut self) {}
}

/// Journal that records nothing; what it loads is opaque, so the resume path stays.
#[derive(Debug, Default)]
pub struct NullJournal;

impl DownloadJournal for NullJournal {
    async fn load(
        &mut self,
        received: &mut dyn FnMut(u32),
    ) -> Result<Option<JournalHeader>, PalError> {
        pal_result()?;
        if opaque() & 8 == 0 {
            return Ok(None);
        }
        received(opaque_u32());
        let mut job_id = heapless::String::new();
        job_id
            .push(char::from(opaque()))
            .map_err(|_| PalErrorKind::Uninitialized)?;
        Ok(Some(JournalHeader {
            job_id,
            file_index: opaque(),
            file_size: opaque_u32(),
            block_size: opaque_u32(),
            signature_digest: [opaque(); 32],
        }))
    }

    async fn begin(&mut self, _header: &JournalHeader) -> Result<(), PalError> {
        pal_result()
    }

    async fn record_block(&mut self, _index: u32) -> Result<(), PalError> {
        pal_result()
    }

    async fn clear(&mut self) -> Result<(), PalError> {
        pal_result()
    }
}

/// A NOR flash driver that programs nothing (1 MiB, 16-byte write unit, 4 KiB sectors), for
/// `NorFlashImageStorage` in `agent-min-pal`.
#[derive(Debug, Default)]
pub struct NullFlash;

fn flash_result() -> Result<(), NorFlashErrorKind> {
    if opaque() & 16 != 0 {
        Err(NorFlashErrorKind::Other)
    } else {
        Ok(())
    }
}

impl ErrorType for NullFlash {
    type Error = NorFlashErrorKind;
}

impl ReadNorFlash for NullFlash {
    const READ_SIZE: usize = 1;

    async fn read(&mut self, _offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        for b in bytes.iter_mut() {
            *b = opaque();
        }
        flash_result()
    }

    fn capacity(&self) -> usize {
        1 << 20
    }
}

impl NorFlash for NullFlash {
    const WRITE_SIZE: usize = 16;
    const ERASE_SIZE: usize = 4096;

    async fn erase(&mut self, _from: u32, _to: u32) -> Result<(), Self::Error> {
        flash_result()
    }

    async fn write(&mut self, _offset: u32, _bytes: &[u8]) -> Result<(), Self::Error> {
        flash_result()
    }
}

/// Polls `fut` to completion, sleeping in `wfi` between polls (SysTick wakes the CPU every
/// millisecond, so no waker is needed).
pub fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
        cortex_m::asm::wfi();
    }
}

// ---- stack high-water mark ------------------------------------------------------------------

const PAINT: u32 = 0x5AC3_5AC3;
/// How far below `main`'s frame the stack is painted.
const PAINT_BYTES: usize = 32 * 1024;

#[cfg(target_os = "none")]
extern "C" {
    /// Top of the stack (end of RAM), from cortex-m-rt's `link.x`.
    static _stack_start: u32;
}

#[cfg(target_os = "none")]
fn stack_top() -> usize {
    // Only the address of the linker symbol is taken, never its value.
    core::ptr::addr_of!(_stack_start) as usize
}

#[cfg(not(target_os = "none"))]
fn stack_top() -> usize {
    0
}

fn paint_bottom() -> usize {
    stack_top().saturating_sub(PAINT_BYTES)
}

/// Fills the stack below the current frame (minus a margin for this function's own frame)
/// with a pattern, down to [`PAINT_BYTES`] below the top of RAM.
#[inline(never)]
fn paint_stack() {
    let sp = cortex_m::register::msp::read() as usize;
    let mut addr = paint_bottom();
    let end = sp.saturating_sub(256);
    while addr < end {
        // SAFETY: [bottom, sp - 256) is unused stack in the 4 MiB RAM, far above the statics;
        // this function's frame lies above sp - 256.
        unsafe { write_volatile(addr as *mut u32, PAINT) };
        addr += 4;
    }
}

/// Deepest stack use since [`paint_stack`], in bytes from the top of RAM (`None`: the painted
/// area was used up).
fn stack_high_water() -> Option<usize> {
    let mut addr = paint_bottom();
    let top = stack_top();
    // SAFETY: reads of the painted area, word aligned, inside RAM.
    if unsafe { read_volatile(addr as *const u32) } != PAINT {
        return None;
    }
    while addr < top {
        // SAFETY: as above.
        if unsafe { read_volatile(addr as *const u32) } != PAINT {
            break;
        }
        addr += 4;
    }
    Some(top - addr)
}

// ---- output ---------------------------------------------------------------------------------

fn put(out: &mut HostStdout, s: &str) {
    let _ = out.write_str(s);
}

fn put_num(out: &mut HostStdout, mut n: usize) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        if let Some(d) = digits.get_mut(i) {
            *d = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || i == 0 {
            break;
        }
    }
    if let Some(text) = digits.get(i..).and_then(|d| core::str::from_utf8(d).ok()) {
        put(out, text);
    }
}

/// Prints `name: FAIL: what` and exits QEMU with status 1.
pub fn fail(name: &str, what: &str) -> ! {
    let mut out = HostStdout::new();
    put(&mut out, name);
    put(&mut out, ": FAIL: ");
    put(&mut out, what);
    put(&mut out, "\n");
    out.flush();
    semihosting::exit(1)
}

// ---- the firmware ---------------------------------------------------------------------------

/// Start-up shared by the three binaries: SysTick at 1 kHz, then the stack paint.
pub fn start(name: &str) {
    let Some(core) = cortex_m::Peripherals::take() else {
        fail(name, "core peripherals taken")
    };
    qemu_mps2::init(core.SYST);
    paint_stack();
}

fn report(name: &str, what: &[(&str, usize)]) -> ! {
    let mut out = HostStdout::new();
    put(&mut out, name);
    put(&mut out, ": ");
    for (label, value) in what {
        put(&mut out, label);
        put(&mut out, " ");
        put_num(&mut out, *value);
        put(&mut out, ", ");
    }
    put(&mut out, "stack high-water ");
    match stack_high_water() {
        Some(bytes) => put_num(&mut out, bytes),
        None => put(&mut out, "> 32768"),
    }
    put(&mut out, " bytes\n");
    out.flush();
    semihosting::exit(0)
}

static AGENT: StaticCell<MinAgent> = StaticCell::new();
// Zero-initialised in .bss, not built on the stack and copied.
static RX: ConstStaticCell<[u8; RX_LEN]> = ConstStaticCell::new([0; RX_LEN]);

/// Runs the agent with these storage and verifier (no-op everything else) for [`RUN_MS`], then
/// checks that it subscribed and published at least twice, reports and exits.
pub fn run_agent<S: ImageStorage, V: ImageVerifier>(name: &str, storage: S, verifier: V) -> ! {
    let config = Config::new("agent-min", AppVersion::new(1, 0, 0));
    let Ok(agent) = MinAgent::new(config) else {
        fail(name, "agent config")
    };
    let agent = AGENT.init(agent);
    let rx = RX.take();
    let mut driver = Driver::new(
        NullMqtt::default(),
        SysTickClock,
        NullApp,
        NoHttp,
        storage,
        verifier,
        NullBoot,
        NullReset,
        NullJournal,
    );
    let run = driver.run(agent, rx);
    let run_future = core::mem::size_of_val(&run);
    let outcome = block_on(select(run, SysTickClock.sleep_until(Instant(RUN_MS))));
    if !matches!(outcome, Either::Second(())) {
        fail(name, "Driver::run returned");
    }
    let NullMqtt {
        subscribes,
        publishes,
    } = driver.mqtt;
    if subscribes == 0 || publishes < 2 || agent.state() != State::RequestingJob {
        fail(name, "the agent did not subscribe, request a job and retry");
    }
    report(
        name,
        &[
            ("ran ms (emulated)", embassy_time_driver::now() as usize),
            ("subscribes", subscribes as usize),
            ("publishes", publishes as usize),
            ("Driver::run future bytes", run_future),
        ],
    )
}

/// The baseline: the same start-up, clock, `block_on`, report and exit, without the agent.
pub fn run_baseline(name: &str) -> ! {
    block_on(SysTickClock.sleep_until(Instant(RUN_MS)));
    report(
        name,
        &[("ran ms (emulated)", embassy_time_driver::now() as usize)],
    )
}

#[cfg(target_os = "none")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // No message: formatting it would pull core::fmt into the size being measured.
    semihosting::exit(101)
}

#[cfg(target_os = "none")]
#[cortex_m_rt::exception]
unsafe fn HardFault(_frame: &cortex_m_rt::ExceptionFrame) -> ! {
    semihosting::exit(102)
}
