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
//!
//! It also drops one kind of packet before mqttrust sees it: a QoS 0 PUBLISH whose payload is
//! shorter than 2 bytes. mqttrust 1.0 panics decoding one (`packet.rs:70`, "slice index starts
//! at 26 but ends at 25", reproduced with `mosquitto_pub -m r` on a subscribed topic), and any
//! client allowed to publish on a topic the device subscribes to could send it. No OTA message
//! is that short (the smallest JSON document is `{}`), so dropping it loses nothing;
//! [`PacketReader::dropped`] counts them.

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
    /// The fixed header (at most 5 bytes), plus for a QoS 0 PUBLISH the 2-byte topic length
    /// that was read ahead to check the payload length.
    header: [u8; 7],
    header_len: u8,
    header_sent: u8,
    body_left: u32,
    dropped: u32,
}

/// Longest MQTT fixed header: 1 type byte and up to 4 remaining-length bytes.
const FIXED_HEADER_MAX: usize = 5;

impl PacketReader {
    /// At a packet boundary.
    pub const fn new() -> Self {
        Self {
            header: [0; 7],
            header_len: 0,
            header_sent: 0,
            body_left: 0,
            dropped: 0,
        }
    }

    /// QoS 0 PUBLISH packets dropped because their payload was shorter than 2 bytes.
    pub fn dropped(&self) -> u32 {
        self.dropped
    }

    /// Whether the last packet was handed out whole (no packet is half read).
    pub fn at_boundary(&self) -> bool {
        self.header_sent == self.header_len && self.body_left == 0
    }

    /// Reads from `inner` into `buf`: `min(buf.len(), what is left of the current packet)`
    /// bytes, starting the next packet when the current one is done.
    pub async fn read<R: Read>(
        &mut self,
        inner: &mut R,
        buf: &mut [u8],
    ) -> Result<usize, SerialError> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.at_boundary() {
            self.read_fixed_header(inner).await?;
        }
        let mut n = 0;
        let pending = self
            .header
            .get(usize::from(self.header_sent)..usize::from(self.header_len))
            .unwrap_or(&[]);
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
        loop {
            let (len, remaining) = self.read_one_fixed_header(inner).await?;
            let kind = self.header.first().copied().unwrap_or(0);
            let qos0_publish = kind >> 4 == 3 && (kind >> 1) & 3 == 0;
            if !qos0_publish {
                self.header_len = len as u8;
                self.header_sent = 0;
                self.body_left = remaining;
                return Ok(());
            }
            // A QoS 0 PUBLISH: topic length (2 bytes), topic, payload. Read the topic length
            // ahead and drop the packet when its payload would be under 2 bytes (see the
            // module docs: mqttrust 1.0 panics on it).
            if remaining < 2 {
                skip(inner, remaining).await?;
                self.dropped = self.dropped.saturating_add(1);
                continue;
            }
            let mut topic_len = [0u8; 2];
            read_exact(inner, &mut topic_len).await?;
            let topic = u32::from(u16::from_be_bytes(topic_len));
            let body = remaining - 2;
            if body < topic.saturating_add(2) {
                skip(inner, body).await?;
                self.dropped = self.dropped.saturating_add(1);
                continue;
            }
            if let Some(dst) = self.header.get_mut(len..len + 2) {
                dst.copy_from_slice(&topic_len);
            }
            self.header_len = (len + 2) as u8;
            self.header_sent = 0;
            self.body_left = body;
            return Ok(());
        }
    }

    /// Reads one fixed header into `self.header`; returns its length and the remaining length.
    async fn read_one_fixed_header<R: Read>(
        &mut self,
        inner: &mut R,
    ) -> Result<(usize, u32), SerialError> {
        let mut byte = [0u8; 1];
        read_exact(inner, &mut byte).await?;
        self.header = [byte[0], 0, 0, 0, 0, 0, 0];
        let mut remaining: u32 = 0;
        let mut len = 1usize;
        loop {
            read_exact(inner, &mut byte).await?;
            let slot = self.header.get_mut(len).ok_or(SerialError::Malformed)?;
            *slot = byte[0];
            remaining |= u32::from(byte[0] & 0x7F) << (7 * (len - 1));
            len += 1;
            if byte[0] & 0x80 == 0 {
                return Ok((len, remaining));
            }
            if len == FIXED_HEADER_MAX {
                return Err(SerialError::Malformed);
            }
        }
    }
}

/// Reads and discards `n` bytes of `inner`.
async fn skip<R: Read>(inner: &mut R, mut n: u32) -> Result<(), SerialError> {
    let mut scratch = [0u8; 32];
    while n > 0 {
        let k = (n as usize).min(scratch.len());
        read_exact(inner, scratch.get_mut(..k).unwrap_or(&mut [])).await?;
        n -= k as u32;
    }
    Ok(())
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
        Self {
            line: RefCell::new(line),
        }
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

    async fn connect<'a>(
        &'a self,
        _remote: SocketAddr,
    ) -> Result<SerialConnection<'a, S>, SerialError> {
        let line = self.line.try_borrow_mut().map_err(|_| SerialError::Busy)?;
        Ok(SerialConnection {
            line,
            reader: PacketReader::new(),
        })
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
        self.line
            .write(buf)
            .await
            .map_err(|e| SerialError::Io(e.kind()))
    }

    async fn flush(&mut self) -> Result<(), SerialError> {
        use embedded_io_async::Error as _;
        self.line
            .flush()
            .await
            .map_err(|e| SerialError::Io(e.kind()))
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used)]
mod tests {
    use super::*;
    use core::convert::Infallible;
    use embassy_futures::block_on;

    /// A stream that hands out at most `chunk` bytes per read, like a UART or a fragmenting stack.
    struct Trickle<'a> {
        data: &'a [u8],
        chunk: usize,
    }

    impl ErrorType for Trickle<'_> {
        type Error = Infallible;
    }

    impl Read for Trickle<'_> {
        async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
            let n = buf.len().min(self.chunk).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    const CONNACK: &[u8] = &[0x20, 0x02, 0x00, 0x00];
    const SUBACK: &[u8] = &[0x90, 0x03, 0x00, 0x01, 0x01];
    const PINGRESP: &[u8] = &[0xD0, 0x00];

    /// A QoS 1 PUBLISH of `payload_len` bytes to topic "t"; 200 bytes need a 2-byte length.
    fn publish(payload_len: usize) -> Vec<u8> {
        let remaining = 2 + 1 + 2 + payload_len;
        let mut p = vec![0x32];
        let mut x = remaining;
        loop {
            let mut b = (x % 128) as u8;
            x /= 128;
            if x > 0 {
                b |= 0x80;
            }
            p.push(b);
            if x == 0 {
                break;
            }
        }
        p.extend_from_slice(&[0x00, 0x01, b't', 0x00, 0x07]);
        p.extend((0..payload_len).map(|i| i as u8));
        p
    }

    fn stream() -> Vec<u8> {
        [CONNACK, SUBACK, &publish(200), PINGRESP].concat()
    }

    #[test]
    fn a_large_read_returns_exactly_one_whole_packet_from_a_one_byte_stream() {
        let data = stream();
        let mut line = Trickle {
            data: &data,
            chunk: 1,
        };
        let mut reader = PacketReader::new();
        let mut buf = [0u8; 512];
        for expected in [CONNACK, SUBACK, &publish(200), PINGRESP] {
            let n = block_on(reader.read(&mut line, &mut buf)).unwrap();
            assert_eq!(&buf[..n], expected);
            assert!(reader.at_boundary());
        }
        assert_eq!(
            block_on(reader.read(&mut line, &mut buf)),
            Err(SerialError::Closed)
        );
    }

    /// mqttrust 1.0 reads single bytes until the header parses, then one read for the rest.
    #[test]
    fn the_read_after_the_header_gets_the_whole_rest_of_the_packet() {
        for chunk in [1, 2, 3, 7, 64] {
            let data = stream();
            let mut line = Trickle { data: &data, chunk };
            let mut reader = PacketReader::new();
            for expected in [CONNACK, SUBACK, &publish(200), PINGRESP] {
                let mut got = Vec::new();
                let mut one = [0u8; 1];
                for _ in 0..2 {
                    assert_eq!(block_on(reader.read(&mut line, &mut one)).unwrap(), 1);
                    got.push(one[0]);
                }
                let mut rest = vec![0u8; expected.len() - 2];
                if !rest.is_empty() {
                    let n = block_on(reader.read(&mut line, &mut rest)).unwrap();
                    assert_eq!(n, rest.len(), "short read with chunk {chunk}");
                    got.extend_from_slice(&rest);
                }
                assert_eq!(got, expected, "chunk {chunk}");
            }
        }
    }

    /// A QoS 0 PUBLISH to topic "t" with `payload` (no packet identifier).
    fn publish_qos0(payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x30, (2 + 1 + payload.len()) as u8, 0x00, 0x01, b't'];
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn qos0_publishes_with_a_payload_under_2_bytes_are_dropped_before_mqttrust_sees_them() {
        for chunk in [1, 3, 64] {
            let data = [
                &publish_qos0(b"r")[..],
                &publish_qos0(b"")[..],
                CONNACK,
                &publish_qos0(b"ok")[..],
                &publish_qos0(b"x")[..],
                PINGRESP,
            ]
            .concat();
            let mut line = Trickle { data: &data, chunk };
            let mut reader = PacketReader::new();
            let mut buf = [0u8; 64];
            for expected in [CONNACK, &publish_qos0(b"ok")[..], PINGRESP] {
                let n = block_on(reader.read(&mut line, &mut buf)).unwrap();
                assert_eq!(&buf[..n], expected, "chunk {chunk}");
                assert!(reader.at_boundary());
            }
            assert_eq!(reader.dropped(), 3, "chunk {chunk}");
        }
    }

    #[test]
    fn a_qos0_publish_is_handed_out_whole_with_its_peeked_topic_length() {
        let p = publish_qos0(&[7u8; 100]);
        let mut line = Trickle { data: &p, chunk: 1 };
        let mut reader = PacketReader::new();
        // mqttrust's pattern: single bytes first, then one read for the rest.
        let mut got = Vec::new();
        let mut one = [0u8; 1];
        for _ in 0..4 {
            assert_eq!(block_on(reader.read(&mut line, &mut one)).unwrap(), 1);
            got.push(one[0]);
        }
        let mut rest = vec![0u8; p.len() - 4];
        assert_eq!(
            block_on(reader.read(&mut line, &mut rest)).unwrap(),
            rest.len()
        );
        got.extend_from_slice(&rest);
        assert_eq!(got, p);
        assert_eq!(reader.dropped(), 0);
    }

    #[test]
    fn a_read_never_crosses_into_the_next_packet() {
        let data = [CONNACK, PINGRESP].concat();
        let mut line = Trickle {
            data: &data,
            chunk: 64,
        };
        let mut reader = PacketReader::new();
        let mut buf = [0u8; 3];
        assert_eq!(block_on(reader.read(&mut line, &mut buf)).unwrap(), 3);
        assert_eq!(block_on(reader.read(&mut line, &mut buf)).unwrap(), 1);
        assert_eq!(buf[0], 0x00);
        assert_eq!(block_on(reader.read(&mut line, &mut buf)).unwrap(), 2);
        assert_eq!(&buf[..2], PINGRESP);
    }

    #[test]
    fn a_remaining_length_of_five_bytes_is_malformed() {
        let data = [0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01];
        let mut line = Trickle {
            data: &data,
            chunk: 1,
        };
        let mut buf = [0u8; 8];
        assert_eq!(
            block_on(PacketReader::new().read(&mut line, &mut buf)),
            Err(SerialError::Malformed)
        );
    }

    #[test]
    fn the_largest_remaining_length_parses() {
        // 268_435_455 = 0xFF 0xFF 0xFF 0x7F (MQTT 3.1.1 §2.2.3). A QoS 1 PUBLISH: a QoS 0 one
        // would have its topic length read ahead (two body bytes) for the short-payload check.
        let data = [0x32, 0xFF, 0xFF, 0xFF, 0x7F, 0xAA];
        let mut line = Trickle {
            data: &data,
            chunk: 1,
        };
        let mut reader = PacketReader::new();
        let mut buf = [0u8; 6];
        assert_eq!(block_on(reader.read(&mut line, &mut buf)).unwrap(), 6);
        assert_eq!(reader.body_left, 268_435_455 - 1);
    }

    #[test]
    fn a_stream_that_ends_inside_a_packet_is_closed() {
        let data = [0x20, 0x02, 0x00];
        let mut line = Trickle {
            data: &data,
            chunk: 1,
        };
        let mut buf = [0u8; 4];
        assert_eq!(
            block_on(PacketReader::new().read(&mut line, &mut buf)),
            Err(SerialError::Closed)
        );
    }
}
