//! An MQTT transport for mqttrust 1.0 over a serial line that QEMU wires to the broker.
//!
//! mqttrust plugs transports in through its `Transport` trait, which cannot be implemented
//! outside the crate (its error type is not exported), or through
//! `mqttrust::transport::embedded_nal::NalTransport` over any `embedded_nal_async::TcpConnect`.
//! [`SerialNetwork`] is such a `TcpConnect`: QEMU's `-chardev socket,...` already holds the TCP
//! connection to the broker, so "connecting" hands out the serial line itself.
//!
//! mqttrust 1.0's packet reader reads one byte at a time until the fixed header (and for a
//! PUBLISH the topic) parses, then issues a *single* read for the rest of the packet and decodes
//! whatever that read returned as if it were the whole packet. A UART returns what has arrived,
//! often a few bytes, so CONNACK and SUBACK decode as garbage. [`PacketReader`] closes that trap
//! for any byte stream: it parses each packet's fixed header and remaining length itself, and a
//! read returns `min(buf.len(), bytes left in the current packet)`, waiting for them as needed,
//! so a read never comes back short inside a packet, and never reads past one.

use core::cell::{RefCell, RefMut};
use core::net::SocketAddr;

use embedded_io_async::{ErrorKind, ErrorType, Read, Write};

/// Errors of the serial MQTT transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SerialError {
    /// The line is already handed out to a connection.
    Busy,
    /// The line reported end of stream.
    Closed,
    /// A fixed header with a remaining length longer than 4 bytes (MQTT 3.1.1 §2.2.3).
    Malformed,
    /// The underlying stream failed.
    Io(ErrorKind),
}

impl embedded_io_async::Error for SerialError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Busy => ErrorKind::AddrInUse,
            Self::Closed => ErrorKind::NotConnected,
            Self::Malformed => ErrorKind::InvalidData,
            Self::Io(kind) => *kind,
        }
    }
}

impl core::fmt::Display for SerialError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Debug::fmt(self, f)
    }
}

impl core::error::Error for SerialError {}

/// Where the reader is in the incoming MQTT packet stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PacketReader {
    header: [u8; 5],
    header_len: u8,
    header_sent: u8,
    body_left: u32,
}

impl PacketReader {
    /// At a packet boundary.
    pub const fn new() -> Self {
        Self { header: [0; 5], header_len: 0, header_sent: 0, body_left: 0 }
    }

    /// Whether the last packet was handed out whole (no packet is half read).
    pub fn at_boundary(&self) -> bool {
        self.header_sent == self.header_len && self.body_left == 0
    }

    /// Reads from `inner` into `buf`: `min(buf.len(), what is left of the current packet)`
    /// bytes, starting the next packet when the current one is done.
    pub async fn read<R: Read>(&mut self, inner: &mut R, buf: &mut [u8]) -> Result<usize, SerialError> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.at_boundary() {
            self.read_fixed_header(inner).await?;
        }
        let mut n = 0;
        let pending = self.header.get(usize::from(self.header_sent)..usize::from(self.header_len)).unwrap_or(&[]);
        let k = pending.len().min(buf.len());
        if let (Some(dst), Some(src)) = (buf.get_mut(..k), pending.get(..k)) {
            dst.copy_from_slice(src);
        }
        self.header_sent += k as u8;
        n += k;
        let body = (buf.len() - n).min(self.body_left as usize);
        if body > 0 {
            let dst = buf.get_mut(n..n + body).ok_or(SerialError::Malformed)?;
            read_exact(inner, dst).await?;
            self.body_left -= body as u32;
            n += body;
        }
        Ok(n)
    }

    async fn read_fixed_header<R: Read>(&mut self, inner: &mut R) -> Result<(), SerialError> {
        let mut byte = [0u8; 1];
        read_exact(inner, &mut byte).await?;
        self.header = [byte[0], 0, 0, 0, 0];
        let mut remaining: u32 = 0;
        let mut len = 1usize;
        loop {
            read_exact(inner, &mut byte).await?;
            let slot = self.header.get_mut(len).ok_or(SerialError::Malformed)?;
            *slot = byte[0];
            remaining |= u32::from(byte[0] & 0x7F) << (7 * (len - 1));
            len += 1;
            if byte[0] & 0x80 == 0 {
                break;
            }
            if len == self.header.len() {
                return Err(SerialError::Malformed);
            }
        }
        self.header_len = len as u8;
        self.header_sent = 0;
        self.body_left = remaining;
        Ok(())
    }
}

async fn read_exact<R: Read>(inner: &mut R, mut buf: &mut [u8]) -> Result<(), SerialError> {
    use embedded_io_async::Error as _;
    while !buf.is_empty() {
        match inner.read(buf).await {
            Ok(0) => return Err(SerialError::Closed),
            Ok(n) => buf = buf.get_mut(n..).unwrap_or(&mut []),
            Err(e) => return Err(SerialError::Io(e.kind())),
        }
    }
    Ok(())
}

/// A serial line that QEMU has connected to the MQTT broker, as an `embedded-nal-async`
/// network with one connection at a time.
///
/// The address given to `connect` is ignored: the runner decides where the line goes. A new
/// connection starts at a packet boundary. Dropping it does not close the broker's TCP
/// connection (the serial line cannot say so); mqttrust's reconnect after an error therefore
/// sends a second CONNECT on the same stream, which a broker answers by closing it.
#[derive(Debug)]
pub struct SerialNetwork<S> {
    line: RefCell<S>,
}

impl<S: Read + Write> SerialNetwork<S> {
    /// Wraps the serial line.
    pub const fn new(line: S) -> Self {
        Self { line: RefCell::new(line) }
    }
}

/// The connection handed out by [`SerialNetwork`]: the line, read one MQTT packet at a time.
#[derive(Debug)]
pub struct SerialConnection<'a, S> {
    line: RefMut<'a, S>,
    reader: PacketReader,
}

impl<S: Read + Write> embedded_nal_async::TcpConnect for SerialNetwork<S> {
    type Error = SerialError;
    type Connection<'a>
        = SerialConnection<'a, S>
    where
        Self: 'a;

    async fn connect<'a>(&'a self, _remote: SocketAddr) -> Result<SerialConnection<'a, S>, SerialError> {
        let line = self.line.try_borrow_mut().map_err(|_| SerialError::Busy)?;
        Ok(SerialConnection { line, reader: PacketReader::new() })
    }
}

impl<S: Read + Write> ErrorType for SerialConnection<'_, S> {
    type Error = SerialError;
}

impl<S: Read + Write> Read for SerialConnection<'_, S> {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, SerialError> {
        self.reader.read(&mut *self.line, buf).await
    }
}

impl<S: Read + Write> Write for SerialConnection<'_, S> {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, SerialError> {
        use embedded_io_async::Error as _;
        self.line.write(buf).await.map_err(|e| SerialError::Io(e.kind()))
    }

    async fn flush(&mut self) -> Result<(), SerialError> {
        use embedded_io_async::Error as _;
        self.line.flush().await.map_err(|e| SerialError::Io(e.kind()))
    }
}
