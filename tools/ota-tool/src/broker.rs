//! A small MQTT 3.1.1 broker on tokio, enough for devices and the `ota` stand-in: CONNECT /
//! CONNACK, SUBSCRIBE / SUBACK with `+` and `#`, UNSUBSCRIBE, PUBLISH at QoS 0 and 1 with
//! PUBACK, PINGREQ, DISCONNECT, keep-alive (1.5 × the client's interval), last will, and the
//! `$`-topic rule (a filter starting with a wildcard does not match `$aws/...`).
//!
//! Not supported, on purpose: QoS 2 (a QoS 2 PUBLISH closes the connection), retained messages
//! (the flag is ignored), persistent sessions (every session is clean; a second connection with
//! the same client id takes the first one over), retransmission (QoS 1 messages to clients are
//! sent once: TCP does not lose them, and sessions do not outlive connections).
//!
//! A [`Hook`] sees every PUBLISH and gives messages to publish in return: that is where the
//! Jobs + Streams stand-in plugs in. With `aws_reply_delivery`, a message the hook marks as a
//! reply to the requester also reaches the publishing client when it has no matching
//! subscription, as AWS IoT delivers Jobs replies.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::cloud::Outgoing;

/// Sees every PUBLISH (topic, payload) and gives what to publish in return.
pub type Hook = Arc<dyn Fn(&str, &[u8]) -> Vec<Outgoing> + Send + Sync>;

/// Largest packet accepted (a 128 KiB stream block plus headers fits easily).
pub const MAX_PACKET: usize = 1 << 20;

/// Whether a topic filter matches a topic name (MQTT 3.1.1 §4.7).
pub fn topic_matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Whether a topic filter is well formed (`#` last and alone in its level, `+` alone).
pub fn valid_filter(filter: &str) -> bool {
    if filter.is_empty() {
        return false;
    }
    let levels: Vec<&str> = filter.split('/').collect();
    levels.iter().enumerate().all(|(i, l)| {
        (*l == "#" && i == levels.len() - 1) || *l == "+" || (!l.contains('#') && !l.contains('+'))
    })
}

enum Frame {
    Bytes(Vec<u8>),
    Close,
}

struct Client {
    conn: u64,
    tx: mpsc::UnboundedSender<Frame>,
    subs: Vec<(String, u8)>,
    next_pid: u16,
}

#[derive(Default)]
struct State {
    clients: HashMap<String, Client>,
    next_conn: u64,
}

/// The broker: cheap to clone, shared by every connection.
#[derive(Clone)]
pub struct Broker {
    state: Arc<Mutex<State>>,
    hook: Option<Hook>,
    aws_reply_delivery: bool,
}

fn encode_len(mut n: usize, out: &mut Vec<u8>) {
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        out.push(b);
        if n == 0 {
            break;
        }
    }
}

fn packet(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 5);
    out.push(first);
    encode_len(body.len(), &mut out);
    out.extend_from_slice(body);
    out
}

fn publish_packet(topic: &str, payload: &[u8], qos: u8, pid: u16) -> Vec<u8> {
    let mut body = Vec::with_capacity(topic.len() + payload.len() + 4);
    body.extend_from_slice(&(topic.len() as u16).to_be_bytes());
    body.extend_from_slice(topic.as_bytes());
    if qos > 0 {
        body.extend_from_slice(&pid.to_be_bytes());
    }
    body.extend_from_slice(payload);
    packet(0x30 | (qos << 1), &body)
}

struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn u8(&mut self) -> Result<u8> {
        let Some(v) = self.b.get(self.pos) else {
            bail!("packet too short")
        };
        self.pos += 1;
        Ok(*v)
    }
    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_be_bytes([self.u8()?, self.u8()?]))
    }
    fn bytes(&mut self) -> Result<&'a [u8]> {
        let n = self.u16()? as usize;
        let Some(s) = self.b.get(self.pos..self.pos + n) else {
            bail!("packet too short")
        };
        self.pos += n;
        Ok(s)
    }
    fn string(&mut self) -> Result<String> {
        Ok(String::from_utf8(self.bytes()?.to_vec())?)
    }
    fn rest(&self) -> &'a [u8] {
        self.b.get(self.pos..).unwrap_or_default()
    }
}

async fn read_packet<R: AsyncReadExt + Unpin>(r: &mut R) -> Result<(u8, Vec<u8>)> {
    let first = r.read_u8().await?;
    let mut len = 0usize;
    for i in 0..4 {
        let b = r.read_u8().await?;
        len |= usize::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            break;
        }
        if i == 3 {
            bail!("malformed remaining length");
        }
    }
    if len > MAX_PACKET {
        bail!("packet of {len} bytes is over the {MAX_PACKET} limit");
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).await?;
    Ok((first, body))
}

struct Will {
    topic: String,
    payload: Vec<u8>,
    qos: u8,
}

impl Broker {
    /// A broker; `hook` sees every PUBLISH.
    pub fn new(hook: Option<Hook>, aws_reply_delivery: bool) -> Self {
        Self {
            state: Arc::default(),
            hook,
            aws_reply_delivery,
        }
    }

    /// Accepts connections until the listener fails.
    pub async fn run(self, listener: TcpListener) -> Result<()> {
        loop {
            let (sock, _) = listener.accept().await?;
            let b = self.clone();
            tokio::spawn(async move {
                let _ = b.connection(sock).await;
            });
        }
    }

    /// Number of connected clients.
    pub fn client_count(&self) -> usize {
        self.state.lock().map(|s| s.clients.len()).unwrap_or(0)
    }

    /// Publishes to every matching subscription (one copy per client, at the highest matching
    /// subscription QoS capped by `qos`), and with `direct_to` also to that client when it has
    /// no matching subscription.
    pub fn publish(&self, topic: &str, payload: &[u8], qos: u8, direct_to: Option<&str>) {
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        for (id, c) in st.clients.iter_mut() {
            let sub_qos = c
                .subs
                .iter()
                .filter(|(f, _)| topic_matches(f, topic))
                .map(|(_, q)| *q)
                .max();
            let q = match sub_qos {
                Some(q) => q.min(qos),
                None if direct_to == Some(id.as_str()) => qos.min(1),
                None => continue,
            };
            let pid = if q > 0 {
                c.next_pid = c.next_pid.checked_add(1).unwrap_or(1);
                c.next_pid
            } else {
                0
            };
            let _ =
                c.tx.send(Frame::Bytes(publish_packet(topic, payload, q, pid)));
        }
    }

    fn deliver(&self, from: &str, topic: &str, payload: &[u8], qos: u8) {
        self.publish(topic, payload, qos, None);
        if let Some(hook) = &self.hook {
            for out in hook(topic, payload) {
                let direct = (out.reply_to_requester && self.aws_reply_delivery).then_some(from);
                self.publish(&out.topic, &out.payload, out.qos, direct);
            }
        }
    }

    async fn connection(self, sock: TcpStream) -> Result<()> {
        sock.set_nodelay(true)?;
        let (rd, mut wr) = sock.into_split();
        let mut rd = BufReader::new(rd);
        // CONNECT must come first, within a reasonable time.
        let (first, body) =
            tokio::time::timeout(Duration::from_secs(10), read_packet(&mut rd)).await??;
        if first >> 4 != 1 {
            bail!("first packet is not CONNECT");
        }
        let mut c = Cursor { b: &body, pos: 0 };
        let proto = c.string()?;
        let level = c.u8()?;
        if !((proto == "MQTT" && level == 4) || (proto == "MQIsdp" && level == 3)) {
            wr.write_all(&packet(0x20, &[0, 1])).await?;
            bail!("unsupported protocol {proto} level {level}");
        }
        let flags = c.u8()?;
        let keep_alive = c.u16()?;
        let mut client_id = c.string()?;
        let will = if flags & 0x04 != 0 {
            let topic = c.string()?;
            let payload = c.bytes()?.to_vec();
            Some(Will {
                topic,
                payload,
                qos: ((flags >> 3) & 3).min(1),
            })
        } else {
            None
        };
        let (tx, mut rx) = mpsc::unbounded_channel();
        let conn = {
            let Ok(mut st) = self.state.lock() else {
                bail!("broker state poisoned")
            };
            st.next_conn += 1;
            let conn = st.next_conn;
            if client_id.is_empty() {
                client_id = format!("ota-broker-{conn}");
            }
            if let Some(old) = st.clients.insert(
                client_id.clone(),
                Client {
                    conn,
                    tx: tx.clone(),
                    subs: Vec::new(),
                    next_pid: 0,
                },
            ) {
                let _ = old.tx.send(Frame::Close);
            }
            conn
        };
        let _ = tx.send(Frame::Bytes(packet(0x20, &[0, 0])));
        let writer = tokio::spawn(async move {
            while let Some(f) = rx.recv().await {
                match f {
                    Frame::Bytes(b) => {
                        if wr.write_all(&b).await.is_err() {
                            break;
                        }
                    }
                    Frame::Close => break,
                }
            }
            let _ = wr.shutdown().await;
        });
        let result = self.session(&client_id, &tx, &mut rd, keep_alive).await;
        let mut owned = false;
        if let Ok(mut st) = self.state.lock() {
            if st.clients.get(&client_id).is_some_and(|c| c.conn == conn) {
                st.clients.remove(&client_id);
                owned = true;
            }
        }
        if owned {
            let _ = tx.send(Frame::Close);
        }
        drop(tx);
        let _ = writer.await;
        if let (Err(_), Some(w)) = (&result, will) {
            self.deliver(&client_id, &w.topic, &w.payload, w.qos);
        }
        result
    }

    async fn session<R: AsyncReadExt + Unpin>(
        &self,
        client_id: &str,
        tx: &mpsc::UnboundedSender<Frame>,
        rd: &mut R,
        keep_alive: u16,
    ) -> Result<()> {
        let limit = (keep_alive > 0).then(|| Duration::from_millis(u64::from(keep_alive) * 1500));
        loop {
            let next = match limit {
                Some(d) => match tokio::time::timeout(d, read_packet(rd)).await {
                    Ok(r) => r?,
                    Err(_) => bail!("keep-alive expired"),
                },
                None => read_packet(rd).await?,
            };
            let (first, body) = next;
            let mut c = Cursor { b: &body, pos: 0 };
            match first >> 4 {
                3 => {
                    let qos = (first >> 1) & 3;
                    let topic = c.string()?;
                    if topic.is_empty() || topic.contains(['+', '#']) {
                        bail!("invalid topic name '{topic}'");
                    }
                    let pid = if qos > 0 { Some(c.u16()?) } else { None };
                    if qos > 1 {
                        bail!("QoS 2 is not supported");
                    }
                    let payload = c.rest().to_vec();
                    if let Some(pid) = pid {
                        let mut b = vec![0x40, 2];
                        b.extend_from_slice(&pid.to_be_bytes());
                        let _ = tx.send(Frame::Bytes(b));
                    }
                    self.deliver(client_id, &topic, &payload, qos);
                }
                4 => {} // PUBACK for a message we sent: nothing to retransmit.
                8 => {
                    let pid = c.u16()?;
                    let mut codes = Vec::new();
                    let mut added = Vec::new();
                    while !c.rest().is_empty() {
                        let filter = c.string()?;
                        let q = c.u8()? & 3;
                        if valid_filter(&filter) {
                            let q = q.min(1);
                            codes.push(q);
                            added.push((filter, q));
                        } else {
                            codes.push(0x80);
                        }
                    }
                    if codes.is_empty() {
                        bail!("SUBSCRIBE without filters");
                    }
                    if let Ok(mut st) = self.state.lock() {
                        if let Some(cl) = st.clients.get_mut(client_id) {
                            for (f, q) in added {
                                cl.subs.retain(|(x, _)| *x != f);
                                cl.subs.push((f, q));
                            }
                        }
                    }
                    let mut b = pid.to_be_bytes().to_vec();
                    b.extend_from_slice(&codes);
                    let _ = tx.send(Frame::Bytes(packet(0x90, &b)));
                }
                10 => {
                    let pid = c.u16()?;
                    let mut gone = Vec::new();
                    while !c.rest().is_empty() {
                        gone.push(c.string()?);
                    }
                    if let Ok(mut st) = self.state.lock() {
                        if let Some(cl) = st.clients.get_mut(client_id) {
                            cl.subs.retain(|(x, _)| !gone.contains(x));
                        }
                    }
                    let _ = tx.send(Frame::Bytes(packet(0xb0, &pid.to_be_bytes())));
                }
                12 => {
                    let _ = tx.send(Frame::Bytes(vec![0xd0, 0]));
                }
                14 => return Ok(()),
                t => bail!("unexpected packet type {t}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_and_dollar_topics() {
        assert!(topic_matches("a/+/c", "a/b/c"));
        assert!(topic_matches("a/#", "a"));
        assert!(topic_matches("a/#", "a/b/c"));
        assert!(!topic_matches("a/+", "a/b/c"));
        assert!(!topic_matches("a/b", "a/b/c"));
        assert!(topic_matches(
            "$aws/things/+/jobs/#",
            "$aws/things/t/jobs/$next/get"
        ));
        assert!(!topic_matches("#", "$aws/things/t"));
        assert!(!topic_matches("+/things/t", "$aws/things/t"));
        assert!(topic_matches("#", "a/b"));
        assert!(valid_filter("a/+/#"));
        assert!(!valid_filter("a/#/b"));
        assert!(!valid_filter("a/b+"));
        assert!(!valid_filter(""));
    }

    #[test]
    fn remaining_length_encoding() {
        let mut v = Vec::new();
        encode_len(321, &mut v);
        assert_eq!(v, [0xc1, 0x02]);
        v.clear();
        encode_len(127, &mut v);
        assert_eq!(v, [0x7f]);
        assert_eq!(
            publish_packet("a/b", b"x", 1, 7),
            [0x32, 8, 0, 3, b'a', b'/', b'b', 0, 7, b'x']
        );
    }
}
