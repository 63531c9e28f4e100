//! The ExpressLink host driver's UART and clock on tokio: a TCP stream to `ota module-sim`
//! (the module's UART) and tokio's timer.

use std::time::Duration;

use ota_expresslink::embedded_io_async::{ErrorKind, ErrorType, Read, Write};
use ota_expresslink::Clock;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The UART: a TCP stream to the emulator.
pub struct Uart(pub TcpStream);

impl ErrorType for Uart {
    type Error = ErrorKind;
}

impl Read for Uart {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, ErrorKind> {
        self.0.read(buf).await.map_err(|_| ErrorKind::Other)
    }
}

impl Write for Uart {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, ErrorKind> {
        self.0.write(buf).await.map_err(|_| ErrorKind::Other)
    }
    async fn flush(&mut self) -> Result<(), ErrorKind> {
        self.0.flush().await.map_err(|_| ErrorKind::Other)
    }
}

/// The driver's clock: tokio's timer.
pub struct TokioClock;

impl Clock for TokioClock {
    async fn delay_ms(&mut self, ms: u32) {
        tokio::time::sleep(Duration::from_millis(u64::from(ms))).await;
    }
}
