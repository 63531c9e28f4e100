//! Arm semihosting: the calls QEMU answers when started with
//! `-semihosting-config enable=on,target=native`.
//!
//! Without that flag a semihosting call is a `bkpt` with no debugger: the CPU faults. Operation
//! numbers and argument blocks are from Arm's "Semihosting for AArch32 and AArch64" spec.

use core::fmt;

const SYS_OPEN: u32 = 0x01;
const SYS_CLOSE: u32 = 0x02;
const SYS_WRITE0: u32 = 0x04;
const SYS_WRITE: u32 = 0x05;
const SYS_READ: u32 = 0x06;
const SYS_SEEK: u32 = 0x0A;
const SYS_FLEN: u32 = 0x0C;
const SYS_EXIT: u32 = 0x18;
const SYS_EXIT_EXTENDED: u32 = 0x20;
const ADP_STOPPED_APPLICATION_EXIT: u32 = 0x2_0026;

/// Issues semihosting operation `op` with parameter `arg` (usually the address of a block).
///
/// # Safety
/// `arg` must be what the operation expects: a block of words valid for its reads and, for
/// buffers it names, valid for the host's writes.
unsafe fn call(op: u32, arg: usize) -> isize {
    #[cfg(target_arch = "arm")]
    {
        let ret: isize;
        // SAFETY: `bkpt 0xab` is the Thumb semihosting trap; QEMU reads r0/r1 and writes r0.
        unsafe {
            core::arch::asm!("bkpt #0xab", inout("r0") op as isize => ret, in("r1") arg, options(nostack));
        }
        ret
    }
    // Host builds (unit tests): there is no semihosting host; every call fails.
    #[cfg(not(target_arch = "arm"))]
    {
        let _ = (op, arg);
        -1
    }
}

/// Host file open modes (ISO C `fopen` modes, by their semihosting number).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    /// `"rb"`: read an existing file.
    Read = 1,
    /// `"r+b"`: read and write an existing file.
    ReadWrite = 3,
    /// `"w+b"`: create or truncate, then read and write.
    Create = 7,
}

/// A host file handle.
#[derive(Debug)]
pub struct HostFile(usize);

/// A semihosting call failed (the host returned an error or a short transfer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostError;

impl HostFile {
    /// Opens `path` (relative to QEMU's working directory) in `mode`.
    pub fn open(path: &str, mode: OpenMode) -> Result<Self, HostError> {
        // SYS_OPEN wants a NUL-terminated name as well as its length.
        let mut name = [0u8; 128];
        let bytes = path.as_bytes();
        let slot = name.get_mut(..bytes.len()).ok_or(HostError)?;
        slot.copy_from_slice(bytes);
        if bytes.len() >= name.len() {
            return Err(HostError);
        }
        let block = [name.as_ptr() as usize, mode as usize, bytes.len()];
        // SAFETY: block = {name, mode, length}, name NUL-terminated and alive across the call.
        let handle = unsafe { call(SYS_OPEN, block.as_ptr() as usize) };
        if handle < 0 {
            Err(HostError)
        } else {
            Ok(Self(handle as usize))
        }
    }

    /// The file's length in bytes.
    pub fn len(&self) -> Result<usize, HostError> {
        let block = [self.0];
        // SAFETY: block = {handle}.
        let n = unsafe { call(SYS_FLEN, block.as_ptr() as usize) };
        usize::try_from(n).map_err(|_| HostError)
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> Result<bool, HostError> {
        self.len().map(|n| n == 0)
    }

    /// Moves the file position to `pos` bytes from the start.
    pub fn seek(&mut self, pos: usize) -> Result<(), HostError> {
        let block = [self.0, pos];
        // SAFETY: block = {handle, position}.
        match unsafe { call(SYS_SEEK, block.as_ptr() as usize) } {
            0 => Ok(()),
            _ => Err(HostError),
        }
    }

    /// Reads exactly `buf.len()` bytes at the current position.
    pub fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), HostError> {
        let block = [self.0, buf.as_mut_ptr() as usize, buf.len()];
        // SAFETY: block = {handle, buffer, length}; the buffer is valid for writes of its length.
        // The call returns the number of bytes *not* read.
        match unsafe { call(SYS_READ, block.as_ptr() as usize) } {
            0 => Ok(()),
            _ => Err(HostError),
        }
    }

    /// Writes all of `buf` at the current position.
    pub fn write_all(&mut self, buf: &[u8]) -> Result<(), HostError> {
        let block = [self.0, buf.as_ptr() as usize, buf.len()];
        // SAFETY: block = {handle, buffer, length}. Returns the number of bytes *not* written.
        match unsafe { call(SYS_WRITE, block.as_ptr() as usize) } {
            0 => Ok(()),
            _ => Err(HostError),
        }
    }
}

impl Drop for HostFile {
    fn drop(&mut self) {
        let block = [self.0];
        // SAFETY: block = {handle}; the handle is not used after this.
        unsafe { call(SYS_CLOSE, block.as_ptr() as usize) };
    }
}

/// Ends the emulation: QEMU exits with `status` as its own exit code.
///
/// Uses `SYS_EXIT_EXTENDED` (QEMU supports it on 32-bit Arm), falling back to `SYS_EXIT`, which
/// can only say success (0) or failure (1).
pub fn exit(status: u32) -> ! {
    let block = [ADP_STOPPED_APPLICATION_EXIT as usize, status as usize];
    // SAFETY: block = {reason, subcode}.
    unsafe { call(SYS_EXIT_EXTENDED, block.as_ptr() as usize) };
    let reason = if status == 0 {
        ADP_STOPPED_APPLICATION_EXIT
    } else {
        0x2_0023
    };
    // SAFETY: on AArch32 SYS_EXIT takes the reason itself in r1.
    unsafe { call(SYS_EXIT, reason as usize) };
    // Only reached without `-semihosting-config enable=on`, where the calls above fault anyway.
    cortex_m::asm::udf()
}

/// A line writer to the host's stdout (`SYS_WRITE0`), buffered to keep the number of traps low.
pub struct HostStdout {
    buf: [u8; 160],
    len: usize,
}

impl HostStdout {
    /// An empty writer.
    pub const fn new() -> Self {
        Self {
            buf: [0; 160],
            len: 0,
        }
    }

    /// Sends what is buffered.
    pub fn flush(&mut self) {
        if self.len == 0 {
            return;
        }
        if let Some(end) = self.buf.get_mut(self.len) {
            *end = 0;
        } else {
            return;
        }
        // SAFETY: SYS_WRITE0 takes the address of a NUL-terminated string, set just above.
        unsafe { call(SYS_WRITE0, self.buf.as_ptr() as usize) };
        self.len = 0;
    }
}

impl Default for HostStdout {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Write for HostStdout {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            // Keep one byte for the terminating NUL; a NUL inside would cut the line short.
            if self.len + 1 >= self.buf.len() {
                self.flush();
            }
            if let Some(slot) = self.buf.get_mut(self.len) {
                *slot = if b == 0 { b'?' } else { b };
                self.len += 1;
            }
        }
        Ok(())
    }
}

/// Writes one line to the host's stdout through semihosting, like `println!`.
#[macro_export]
macro_rules! log {
    ($($arg:tt)*) => {{
        use core::fmt::Write as _;
        let mut out = $crate::semihosting::HostStdout::new();
        let _ = core::writeln!(out, $($arg)*);
        out.flush();
    }};
}
