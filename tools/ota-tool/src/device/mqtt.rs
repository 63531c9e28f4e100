//! The driver's `MqttClient` over rumqttc on tokio.
//!
//! The rumqttc event loop runs in its own task and feeds two channels: incoming publishes and
//! acknowledgements (SUBACK, UNSUBACK, PUBACK). `receive` is a channel receive, hence
//! cancel-safe. When the connection fails the task ends, both channels close and every call
//! fails: the runtime reconnects with a new session and runs the driver again.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use ota_core::driver::{MqttClient, MqttMessage};
use ota_core::wire::topic::Qos;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::timeout;

/// How long to wait for the broker's acknowledgement of a request.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MqttError {
    /// The connection is gone.
    Disconnected,
    /// No acknowledgement in time.
    Timeout,
    /// A message larger than the receive buffer.
    TooLarge,
}

/// Looks at each incoming publish (topic, payload) before it is queued for
/// [`Session::recv_owned`] / [`MqttClient::receive`]; `true` means the tap consumed it and it is
/// not queued. `ota module-sim` uses one to hand the host's own topics to the emulator while
/// the agent gets the Jobs and Streams topics.
pub type Tap = Arc<dyn Fn(&str, &[u8]) -> bool + Send + Sync>;

enum Ack {
    Sub,
    Unsub,
    Pub,
}

/// One MQTT session.
pub struct Session {
    client: AsyncClient,
    publishes: mpsc::UnboundedReceiver<(String, Vec<u8>)>,
    acks: mpsc::UnboundedReceiver<Ack>,
    task: JoinHandle<()>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Session {
    /// Connect as `client_id` to `host:port` (clean session); fails unless the broker accepts
    /// within `ACK_TIMEOUT`.
    pub async fn connect(client_id: &str, host: &str, port: u16) -> Result<Self> {
        Self::connect_tapped(client_id, host, port, None).await
    }

    /// [`Session::connect`] with a [`Tap`] on incoming publishes.
    pub async fn connect_tapped(
        client_id: &str,
        host: &str,
        port: u16,
        tap: Option<Tap>,
    ) -> Result<Self> {
        let mut opts = MqttOptions::new(client_id, host, port);
        opts.set_keep_alive(Duration::from_secs(30));
        opts.set_max_packet_size(1 << 20, 1 << 20);
        opts.set_clean_session(true);
        let (client, mut eventloop) = AsyncClient::new(opts, 64);
        let connack = timeout(ACK_TIMEOUT, async {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => return Ok(()),
                    Ok(_) => {}
                    Err(e) => return Err(e),
                }
            }
        })
        .await;
        match connack {
            Ok(Ok(())) => {}
            Ok(Err(e)) => bail!("connecting to {host}:{port}: {e}"),
            Err(_) => bail!("connecting to {host}:{port}: no CONNACK in {ACK_TIMEOUT:?}"),
        }
        let (ptx, publishes) = mpsc::unbounded_channel();
        let (atx, acks) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        if tap.as_ref().is_some_and(|t| t(&p.topic, &p.payload)) {
                            continue;
                        }
                        if ptx.send((p.topic, p.payload.to_vec())).is_err() {
                            return;
                        }
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        let _ = atx.send(Ack::Sub);
                    }
                    Ok(Event::Incoming(Packet::UnsubAck(_))) => {
                        let _ = atx.send(Ack::Unsub);
                    }
                    Ok(Event::Incoming(Packet::PubAck(_))) => {
                        let _ = atx.send(Ack::Pub);
                    }
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
        });
        Ok(Self {
            client,
            publishes,
            acks,
            task,
        })
    }

    /// Connect, retrying every 500 ms until `within` has passed.
    pub async fn connect_retrying(
        client_id: &str,
        host: &str,
        port: u16,
        within: Duration,
    ) -> Result<Self> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match Self::connect(client_id, host, port).await {
                Ok(s) => return Ok(s),
                Err(e) if tokio::time::Instant::now() >= deadline => {
                    return Err(e).context(format!("broker unreachable for {within:?}"))
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
    }

    /// A handle on the underlying rumqttc client, for publishes and subscriptions made
    /// outside the [`MqttClient`] calls (their acknowledgements are not waited for).
    pub fn client(&self) -> AsyncClient {
        self.client.clone()
    }

    /// Close the connection: a DISCONNECT if the link is up, then the event loop (and its
    /// socket) is dropped.
    pub async fn disconnect(&mut self) {
        let _ = timeout(Duration::from_secs(1), self.client.disconnect()).await;
        self.task.abort();
        let _ = timeout(Duration::from_secs(1), &mut self.task).await;
    }

    /// The next incoming publish, owned. Cancel-safe.
    pub async fn recv_owned(&mut self) -> Result<(String, Vec<u8>), MqttError> {
        self.publishes.recv().await.ok_or(MqttError::Disconnected)
    }

    async fn wait_ack(&mut self, want: fn(&Ack) -> bool) -> Result<(), MqttError> {
        timeout(ACK_TIMEOUT, async {
            loop {
                match self.acks.recv().await {
                    Some(a) if want(&a) => return Ok(()),
                    Some(_) => {}
                    None => return Err(MqttError::Disconnected),
                }
            }
        })
        .await
        .unwrap_or(Err(MqttError::Timeout))
    }
}

fn qos(q: Qos) -> QoS {
    match q {
        Qos::AtMostOnce => QoS::AtMostOnce,
        _ => QoS::AtLeastOnce,
    }
}

impl MqttClient for Session {
    type Error = MqttError;

    async fn subscribe(&mut self, topic: &str, q: Qos) -> Result<(), MqttError> {
        self.client
            .subscribe(topic, qos(q))
            .await
            .map_err(|_| MqttError::Disconnected)?;
        self.wait_ack(|a| matches!(a, Ack::Sub)).await
    }

    async fn unsubscribe(&mut self, topic: &str) -> Result<(), MqttError> {
        self.client
            .unsubscribe(topic)
            .await
            .map_err(|_| MqttError::Disconnected)?;
        self.wait_ack(|a| matches!(a, Ack::Unsub)).await
    }

    async fn publish(&mut self, topic: &str, payload: &[u8], q: Qos) -> Result<(), MqttError> {
        self.client
            .publish(topic, qos(q), false, payload.to_vec())
            .await
            .map_err(|_| MqttError::Disconnected)?;
        if q == Qos::AtMostOnce {
            return Ok(());
        }
        self.wait_ack(|a| matches!(a, Ack::Pub)).await
    }

    async fn receive<'b>(&mut self, buf: &'b mut [u8]) -> Result<MqttMessage<'b>, MqttError> {
        let (topic, payload) = self.publishes.recv().await.ok_or(MqttError::Disconnected)?;
        let total = topic.len() + payload.len();
        if total > buf.len() {
            return Err(MqttError::TooLarge);
        }
        let (tb, rest) = buf.split_at_mut(topic.len());
        tb.copy_from_slice(topic.as_bytes());
        let pb = rest.get_mut(..payload.len()).ok_or(MqttError::TooLarge)?;
        pb.copy_from_slice(&payload);
        let topic = std::str::from_utf8(tb).map_err(|_| MqttError::TooLarge)?;
        Ok(MqttMessage { topic, payload: pb })
    }
}
