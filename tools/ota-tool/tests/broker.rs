//! The embedded MQTT 3.1.1 broker, byte by byte with a raw TCP client (independent of any
//! MQTT library): CONNECT/CONNACK, SUBSCRIBE/SUBACK with wildcards, UNSUBSCRIBE, PUBLISH QoS 0
//! and 1 with PUBACK, PINGREQ, DISCONNECT, keep-alive, last will, client takeover.

use std::time::Duration;

use ota_tool::broker::Broker;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const WAIT: Duration = Duration::from_secs(10);

async fn start() -> (String, Broker) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let b = Broker::new(None, true);
    let b2 = b.clone();
    tokio::spawn(async move { b2.run(l).await });
    (addr, b)
}

fn string(s: &str) -> Vec<u8> {
    let mut v = (s.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(s.as_bytes());
    v
}

fn frame(first: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![first];
    let mut n = body.len();
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        v.push(b);
        if n == 0 {
            break;
        }
    }
    v.extend_from_slice(body);
    v
}

fn connect(id: &str, keep_alive: u16, will: Option<(&str, &[u8])>) -> Vec<u8> {
    let mut body = string("MQTT");
    body.push(4);
    body.push(0x02 | if will.is_some() { 0x04 } else { 0 });
    body.extend_from_slice(&keep_alive.to_be_bytes());
    body.extend(string(id));
    if let Some((t, p)) = will {
        body.extend(string(t));
        body.extend_from_slice(&(p.len() as u16).to_be_bytes());
        body.extend_from_slice(p);
    }
    frame(0x10, &body)
}

fn subscribe(pid: u16, filters: &[(&str, u8)]) -> Vec<u8> {
    let mut body = pid.to_be_bytes().to_vec();
    for (f, q) in filters {
        body.extend(string(f));
        body.push(*q);
    }
    frame(0x82, &body)
}

fn publish(topic: &str, payload: &[u8], qos: u8, pid: u16) -> Vec<u8> {
    let mut body = string(topic);
    if qos > 0 {
        body.extend_from_slice(&pid.to_be_bytes());
    }
    body.extend_from_slice(payload);
    frame(0x30 | (qos << 1), &body)
}

struct Raw(TcpStream);

impl Raw {
    async fn open(addr: &str, id: &str, keep_alive: u16, will: Option<(&str, &[u8])>) -> Raw {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(&connect(id, keep_alive, will)).await.unwrap();
        let mut r = Raw(s);
        assert_eq!(r.read().await, (0x20, vec![0, 0]), "CONNACK accepted");
        r
    }

    async fn send(&mut self, b: &[u8]) {
        self.0.write_all(b).await.unwrap();
    }

    async fn read(&mut self) -> (u8, Vec<u8>) {
        tokio::time::timeout(WAIT, async {
            let first = self.0.read_u8().await.unwrap();
            let mut len = 0usize;
            let mut shift = 0;
            loop {
                let b = self.0.read_u8().await.unwrap();
                len |= usize::from(b & 0x7f) << shift;
                shift += 7;
                if b & 0x80 == 0 {
                    break;
                }
            }
            let mut body = vec![0; len];
            self.0.read_exact(&mut body).await.unwrap();
            (first, body)
        })
        .await
        .expect("a packet within the bound")
    }

    /// Whether the broker closed the connection (EOF) within the bound.
    async fn closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(
            tokio::time::timeout(WAIT, self.0.read(&mut b)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }

    /// Nothing arrives for `d` (negative check, bounded).
    async fn quiet(&mut self, d: Duration) -> bool {
        let mut b = [0u8; 1];
        tokio::time::timeout(d, self.0.read(&mut b)).await.is_err()
    }
}

#[tokio::test]
async fn subscribe_publish_qos0_and_qos1_with_wildcards() {
    let (addr, _b) = start().await;
    let mut sub = Raw::open(&addr, "sub", 0, None).await;
    sub.send(&subscribe(
        7,
        &[("$aws/things/+/jobs/#", 1), ("a/+", 0), ("bad/#/x", 1)],
    ))
    .await;
    assert_eq!(
        sub.read().await,
        (0x90, vec![0, 7, 1, 0, 0x80]),
        "SUBACK, bad filter 0x80"
    );
    let mut publ = Raw::open(&addr, "pub", 0, None).await;
    publ.send(&publish("$aws/things/t1/jobs/notify-next", b"{}", 1, 42))
        .await;
    assert_eq!(publ.read().await, (0x40, vec![0, 42]), "PUBACK");
    let (first, body) = sub.read().await;
    assert_eq!(first, 0x32, "QoS 1 delivery");
    let t = b"$aws/things/t1/jobs/notify-next";
    assert_eq!(&body[..2], &(t.len() as u16).to_be_bytes());
    assert_eq!(&body[2..2 + t.len()], t);
    let pid = [body[2 + t.len()], body[3 + t.len()]];
    assert_eq!(&body[4 + t.len()..], b"{}");
    // Acknowledge it.
    sub.send(&[0x40, 2, pid[0], pid[1]]).await;
    // QoS 0 publish on a QoS 1 subscription arrives at QoS 0 (the lower of the two).
    publ.send(&publish("$aws/things/t1/jobs/x", b"0", 0, 0))
        .await;
    assert_eq!(
        sub.read().await,
        (
            0x30,
            [string("$aws/things/t1/jobs/x"), b"0".to_vec()].concat()
        )
    );
    // QoS 1 publish on a QoS 0 subscription arrives at QoS 0.
    publ.send(&publish("a/b", b"x", 1, 43)).await;
    assert_eq!(publ.read().await, (0x40, vec![0, 43]));
    assert_eq!(
        sub.read().await,
        (0x30, [string("a/b"), b"x".to_vec()].concat())
    );
    // No match: nothing.
    publ.send(&publish("a/b/c", b"x", 0, 0)).await;
    assert!(sub.quiet(Duration::from_millis(300)).await);
    // UNSUBSCRIBE.
    sub.send(&frame(0xa2, &[[0u8, 9].to_vec(), string("a/+")].concat()))
        .await;
    assert_eq!(sub.read().await, (0xb0, vec![0, 9]));
    publ.send(&publish("a/b", b"x", 0, 0)).await;
    assert!(sub.quiet(Duration::from_millis(300)).await);
    // PINGREQ / DISCONNECT.
    sub.send(&[0xc0, 0]).await;
    assert_eq!(sub.read().await, (0xd0, vec![]));
    sub.send(&[0xe0, 0]).await;
    assert!(sub.closed().await);
}

#[tokio::test]
async fn a_wildcard_first_level_does_not_match_dollar_topics() {
    let (addr, _b) = start().await;
    let mut sub = Raw::open(&addr, "sub", 0, None).await;
    sub.send(&subscribe(1, &[("#", 0), ("+/things/t/x", 0)]))
        .await;
    sub.read().await;
    let mut publ = Raw::open(&addr, "pub", 0, None).await;
    publ.send(&publish("$aws/things/t/x", b"1", 0, 0)).await;
    assert!(sub.quiet(Duration::from_millis(300)).await);
    publ.send(&publish("plain/t", b"2", 0, 0)).await;
    assert_eq!(
        sub.read().await.1,
        [string("plain/t"), b"2".to_vec()].concat()
    );
}

#[tokio::test]
async fn keep_alive_expiry_closes_and_publishes_the_will() {
    let (addr, b) = start().await;
    let mut watcher = Raw::open(&addr, "watcher", 0, None).await;
    watcher.send(&subscribe(1, &[("wills/#", 0)])).await;
    watcher.read().await;
    // Keep-alive 1 s: the broker closes after 1.5 s of silence.
    let mut quiet = Raw::open(&addr, "quiet", 1, Some(("wills/quiet", b"gone"))).await;
    assert!(quiet.closed().await);
    assert_eq!(
        watcher.read().await.1,
        [string("wills/quiet"), b"gone".to_vec()].concat()
    );
    // A clean DISCONNECT sends no will.
    let mut polite = Raw::open(&addr, "polite", 0, Some(("wills/polite", b"x"))).await;
    polite.send(&[0xe0, 0]).await;
    assert!(polite.closed().await);
    assert!(watcher.quiet(Duration::from_millis(300)).await);
    assert_eq!(b.client_count(), 1);
}

#[tokio::test]
async fn same_client_id_takes_over_and_protocol_errors_close() {
    let (addr, b) = start().await;
    let mut first = Raw::open(&addr, "dup", 0, None).await;
    let _second = Raw::open(&addr, "dup", 0, None).await;
    assert!(first.closed().await, "the older connection is closed");
    assert_eq!(b.client_count(), 1);
    // Wrong protocol level: CONNACK 0x01 and close.
    let mut s = TcpStream::connect(&addr).await.unwrap();
    let mut body = string("MQTT");
    body.extend_from_slice(&[5, 0x02, 0, 0]);
    body.extend(string("v5"));
    s.write_all(&frame(0x10, &body)).await.unwrap();
    let mut r = Raw(s);
    assert_eq!(r.read().await, (0x20, vec![0, 1]));
    assert!(r.closed().await);
    // QoS 2 is not supported: the connection is closed.
    let mut q2 = Raw::open(&addr, "q2", 0, None).await;
    q2.send(&publish("a", b"x", 2, 1)).await;
    assert!(q2.closed().await);
    // A first packet that is not CONNECT.
    let mut s = Raw(TcpStream::connect(&addr).await.unwrap());
    s.send(&[0xc0, 0]).await;
    assert!(s.closed().await);
}

#[tokio::test]
async fn large_messages_cross_intact() {
    let (addr, _b) = start().await;
    let mut sub = Raw::open(&addr, "sub", 0, None).await;
    sub.send(&subscribe(1, &[("big", 0)])).await;
    sub.read().await;
    let mut publ = Raw::open(&addr, "pub", 0, None).await;
    let payload: Vec<u8> = (0..131_072 + 100).map(|i| (i % 253) as u8).collect();
    publ.send(&publish("big", &payload, 0, 0)).await;
    let (first, body) = sub.read().await;
    assert_eq!(first, 0x30);
    assert_eq!(&body[5..], payload.as_slice());
}
