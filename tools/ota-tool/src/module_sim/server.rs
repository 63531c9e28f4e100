//! The UART over loopback TCP: one host connection at a time, the module state kept across
//! connections (a host reconnecting is a host reset, not a module reset).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Result;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::emulator::Emulator;

/// How often the cloud is polled while the host is quiet.
pub const TICK: Duration = Duration::from_millis(10);

/// An emulator shared between the server and whoever watches it (tests, the CLI).
pub type Shared = Arc<Mutex<Emulator>>;

/// Lock the shared emulator (a poisoned lock is taken as is).
pub fn lock(emu: &Shared) -> MutexGuard<'_, Emulator> {
    match emu.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// Serve host connections one after the other, forever. With `verbose`, the emulator's log
/// lines go to stdout.
pub async fn serve(listener: TcpListener, emu: Shared, verbose: bool) -> Result<()> {
    loop {
        let (sock, peer) = listener.accept().await?;
        if verbose {
            println!("host connected from {peer}");
        }
        if let Err(e) = session(sock, &emu, verbose).await {
            if verbose {
                println!("host session ended: {e}");
            }
        } else if verbose {
            println!("host disconnected");
        }
    }
}

async fn session(mut sock: TcpStream, emu: &Shared, verbose: bool) -> Result<()> {
    sock.set_nodelay(true)?;
    let mut buf = vec![0u8; 4096];
    let mut tick = tokio::time::interval(TICK);
    loop {
        tokio::select! {
            r = sock.read(&mut buf) => {
                let n = r?;
                if n == 0 {
                    return Ok(());
                }
                let (out, log, delay) = {
                    let mut e = lock(emu);
                    let out = e.feed(buf.get(..n).unwrap_or_default());
                    (out, e.take_log(), e.take_delay_ms())
                };
                if delay > 0 {
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                }
                if verbose {
                    for l in log {
                        println!("{l}");
                    }
                }
                if !out.is_empty() {
                    sock.write_all(&out).await?;
                }
            }
            _ = tick.tick() => {
                let log = {
                    let mut e = lock(emu);
                    e.tick();
                    e.take_log()
                };
                if verbose {
                    for l in log {
                        println!("{l}");
                    }
                }
            }
        }
    }
}
