//! The delay proxy of `ota bench`: bytes arrive intact and in order, each direction no
//! earlier than the configured delay. No upper bound on time is asserted.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use ota_tool::bench::DelayProxy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// An echo server on a free loopback port.
async fn echo() -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.into_split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delay_applied_and_bytes_intact() {
    let one_way = Duration::from_millis(30);
    let proxy = DelayProxy::start(echo().await, one_way).await.unwrap();
    let mut s = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    // Round trip of one small message: at least twice the one-way delay.
    let t0 = Instant::now();
    s.write_all(b"ping").await.unwrap();
    let mut b = [0u8; 4];
    s.read_exact(&mut b).await.unwrap();
    assert_eq!(&b, b"ping");
    assert!(t0.elapsed() >= 2 * one_way, "round trip {:?}", t0.elapsed());

    // 3 MiB of a non-repeating pattern, written while reading: same bytes, same order.
    let data: Vec<u8> = (0..3u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let (mut r, mut w) = s.into_split();
    let sent = data.clone();
    let writer = tokio::spawn(async move {
        for chunk in sent.chunks(10_000) {
            w.write_all(chunk).await.unwrap();
        }
        w
    });
    let mut got = vec![0u8; data.len()];
    tokio::time::timeout(Duration::from_secs(60), r.read_exact(&mut got))
        .await
        .expect("echo through the proxy in time")
        .unwrap();
    let _w = writer.await.unwrap();
    assert!(got == data, "bytes changed or reordered through the proxy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_delay_passes_through() {
    let proxy = DelayProxy::start(echo().await, Duration::ZERO)
        .await
        .unwrap();
    let mut s = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    s.write_all(b"hello proxy").await.unwrap();
    let mut b = [0u8; 11];
    s.read_exact(&mut b).await.unwrap();
    assert_eq!(&b, b"hello proxy");
}
