//! [`MqttClient`] over [mqttrust](https://docs.rs/mqttrust) 1.0 (feature `mqttrust`).
//!
//! mqttrust 1.0 hands out one `Subscription` stream per subscribe call; the adapter keeps one
//! per topic the agent subscribes to (at most `N`, default 8; the agent uses 7) and merges
//! them in [`MqttClient::receive`]. Unsubscribing drops the topic's stream.
//!
//! Traps (DESIGN.md, measured):
//!
//! - mqttrust 1.0 **panics** decoding a QoS 0 PUBLISH whose payload is shorter than 2 bytes
//!   (`packet.rs:70`), which any client allowed to publish on a subscribed topic can send.
//!   Filter such packets in the transport before mqttrust reads them, as the QEMU examples'
//!   `qemu_mps2::mqtt::PacketReader` does (`examples/run-qemu.sh` sends one on every boot).
//! - mqttrust drops an incoming publish that does not fit its RX buffer (the `RX` of its
//!   `State<M, TX, RX>`: **transmit first**, then receive) **silently**: size it for `n` data
//!   messages in flight
//!   (`n × (block size + 64)`, see [`Config::rx_buffer_len`](crate::agent::Config::rx_buffer_len))
//!   and for the largest job document, and give the agent the same figure.
//! - Topics longer than mqttrust's `MAX_TOPIC_LEN` are refused; this feature enables
//!   `max-topic-len-256` (AWS allows 256-byte topics; a 128-character thing name needs it).
//! - Use `transport::embedded_nal::NalTransport` over your `embedded_nal_async::TcpConnect`
//!   to run the `MqttStack`; with transports that return partial reads (UARTs, fragmenting
//!   stacks) check the mqttrust version in use handles them.
//! - A subscription ends (`None`) when the broker reports a clean session; `receive` then
//!   returns [`MqttrustError::SessionLost`] so that `Driver::run` returns and, run again,
//!   re-subscribes everything.

use core::future::poll_fn;
use core::pin::Pin;
use core::task::Poll;

use embassy_sync::blocking_mutex::raw::RawMutex;
use futures_util::Stream;
use mqttrust::{Publish, QoS, Subscribe, SubscribeTopic, Subscription};

use super::{MqttClient, MqttMessage};
use crate::wire::topic::{Qos, Topic};

/// Errors of the adapter.
#[derive(Debug)]
pub enum MqttrustError {
    /// mqttrust failed (timeout, transport, encoding...).
    Mqtt(mqttrust::Error),
    /// More than `N` subscriptions.
    TooManySubscriptions,
    /// A topic longer than 256 bytes.
    TopicTooLong,
    /// A received message does not fit the driver's receive buffer.
    MessageTooLarge,
    /// The broker dropped the subscriptions (clean session): run the driver again.
    SessionLost,
}

impl From<mqttrust::Error> for MqttrustError {
    fn from(e: mqttrust::Error) -> Self {
        Self::Mqtt(e)
    }
}

fn qos(q: Qos) -> QoS {
    match q {
        Qos::AtMostOnce => QoS::AtMostOnce,
        Qos::AtLeastOnce => QoS::AtLeastOnce,
    }
}

/// The driver's [`MqttClient`] over a mqttrust client handle.
pub struct MqttrustClient<'a, 'b, M: RawMutex, const N: usize = 8> {
    client: &'b mqttrust::MqttClient<'a, M>,
    subscriptions: heapless::Vec<(Topic, Subscription<'a, 'b, M, 1>), N>,
}

impl<'a, 'b, M: RawMutex, const N: usize> MqttrustClient<'a, 'b, M, N> {
    /// An adapter over `client` (the `MqttStack` must run in another task).
    pub fn new(client: &'b mqttrust::MqttClient<'a, M>) -> Self {
        Self {
            client,
            subscriptions: heapless::Vec::new(),
        }
    }
}

impl<M: RawMutex, const N: usize> MqttClient for MqttrustClient<'_, '_, M, N> {
    type Error = MqttrustError;

    async fn subscribe(&mut self, topic: &str, q: Qos) -> Result<(), MqttrustError> {
        if self.subscriptions.iter().any(|(t, _)| t == topic) {
            return Ok(());
        }
        if self.subscriptions.is_full() {
            return Err(MqttrustError::TooManySubscriptions);
        }
        let name = Topic::try_from(topic).map_err(|_| MqttrustError::TopicTooLong)?;
        let topics = [SubscribeTopic::builder()
            .topic_path(topic)
            .maximum_qos(qos(q))
            .build()];
        let sub = self
            .client
            .subscribe::<1>(Subscribe::builder().topics(&topics).build())
            .await?;
        self.subscriptions
            .push((name, sub))
            .map_err(|_| MqttrustError::TooManySubscriptions)
    }

    async fn unsubscribe(&mut self, topic: &str) -> Result<(), MqttrustError> {
        let Some(i) = self.subscriptions.iter().position(|(t, _)| t == topic) else {
            return Ok(());
        };
        let (_, sub) = self.subscriptions.swap_remove(i);
        sub.unsubscribe().await.map_err(MqttrustError::Mqtt)
    }

    async fn publish(&mut self, topic: &str, payload: &[u8], q: Qos) -> Result<(), MqttrustError> {
        let packet = Publish::builder()
            .topic_name(topic)
            .payload(payload)
            .qos(qos(q))
            .build();
        self.client
            .publish(packet)
            .await
            .map_err(MqttrustError::Mqtt)
    }

    async fn receive<'m>(&mut self, buf: &'m mut [u8]) -> Result<MqttMessage<'m>, MqttrustError> {
        let subs = &mut self.subscriptions;
        let lens = poll_fn(|cx| {
            for (_, sub) in subs.iter_mut() {
                match Pin::new(sub).poll_next(cx) {
                    Poll::Ready(Some(msg)) => {
                        let topic = msg.topic_name().as_bytes();
                        let payload = msg.payload();
                        let (t, p) = (topic.len(), payload.len());
                        let Some(dst) = buf.get_mut(..t + p) else {
                            return Poll::Ready(Err(MqttrustError::MessageTooLarge));
                        };
                        let (dt, dp) = dst.split_at_mut(t);
                        dt.copy_from_slice(topic);
                        dp.copy_from_slice(payload);
                        return Poll::Ready(Ok((t, p)));
                    }
                    Poll::Ready(None) => return Poll::Ready(Err(MqttrustError::SessionLost)),
                    Poll::Pending => {}
                }
            }
            Poll::Pending
        })
        .await;
        if lens.is_err() {
            self.subscriptions.clear();
        }
        let (t, p) = lens?;
        let (topic, rest) = buf.split_at(t);
        let topic = core::str::from_utf8(topic).map_err(|_| MqttrustError::MessageTooLarge)?;
        let payload = rest.get(..p).ok_or(MqttrustError::MessageTooLarge)?;
        Ok(MqttMessage { topic, payload })
    }
}
