//! The mqttrust adapter against a real broker: a local `mosquitto` (the tests FAIL when it is
//! not installed: run `scripts/setup.sh`, or `sudo apt-get install mosquitto`). Subscribe,
//! publish, receive through the driver's `MqttClient` trait.
#![cfg(feature = "mqttrust")]
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

use core::net::{Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use embassy_sync::blocking_mutex::raw::NoopRawMutex;
use embedded_io_adapters::tokio_1::FromTokio;
use embedded_nal_async::TcpConnect;
use mqttrust::{transport::embedded_nal::NalTransport, Config, IpBroker, State};
use ota_core::driver::mqttrust::{MqttrustClient, MqttrustError};
use ota_core::driver::{select, Either, MqttClient};
use ota_core::wire::topic::Qos;

struct Tokio;

impl TcpConnect for Tokio {
    type Error = std::io::Error;
    type Connection<'a> = FromTokio<tokio::net::TcpStream>;

    async fn connect(&self, remote: SocketAddr) -> Result<Self::Connection<'_>, Self::Error> {
        Ok(FromTokio::new(
            tokio::net::TcpStream::connect(remote).await?,
        ))
    }
}

struct Broker(Child);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const INSTALL: &str =
    "mosquitto is required by this test: run `scripts/setup.sh` (or `sudo apt-get install mosquitto`)";

fn start_mosquitto(port: u16) -> Broker {
    // Debian installs the broker in /usr/sbin, which is not on every user's PATH.
    let program = [
        "mosquitto",
        "/usr/sbin/mosquitto",
        "/usr/local/sbin/mosquitto",
    ]
    .into_iter()
    .find(|p| {
        Command::new(p)
            .arg("-h")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
    })
    .unwrap_or_else(|| panic!("{INSTALL}"));
    let child = Command::new(program)
        .args(["-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{INSTALL} ({e})"));
    std::thread::sleep(Duration::from_millis(300));
    Broker(child)
}

const A: &str = "$aws/things/thing1/jobs/notify-next";
const B: &str = "$aws/things/thing1/streams/AFR_OTA-XYZ/data/cbor";

async fn receive(mqtt: &mut MqttrustClient<'_, '_, NoopRawMutex>) -> (String, Vec<u8>) {
    let mut buf = [0u8; 512];
    let m = mqtt.receive(&mut buf).await.unwrap();
    (m.topic.to_string(), m.payload.to_vec())
}

/// Runs `$body` with `$mqtt`, an adapter over a connected mqttrust client, on a fresh
/// mosquitto.
macro_rules! with_broker {
    ($offset:expr, |$mqtt:ident| $body:block) => {{
        let port = 20_000 + (std::process::id() % 20_000) as u16 + $offset;
        let _broker = start_mosquitto(port);
        let network = Tokio;
        let mut transport = NalTransport::new(&network, IpBroker::new(Ipv4Addr::LOCALHOST, port));
        let mut state = State::<NoopRawMutex, 4096, 4096>::new();
        let config = Config::builder()
            .client_id("ota-rs-adapter-test".try_into().unwrap())
            .build();
        let (mut stack, client) = mqttrust::new(&mut state, config);
        let test = async {
            client.wait_connected().await;
            let mut $mqtt: MqttrustClient<'_, '_, NoopRawMutex> = MqttrustClient::new(&client);
            $body
        };
        let timeout = tokio::time::sleep(Duration::from_secs(20));
        match select(select(test, stack.run(&mut transport)), timeout).await {
            Either::First(Either::First(())) => {}
            Either::First(Either::Second(())) => panic!("the MQTT stack stopped"),
            Either::Second(()) => panic!("timed out"),
        }
    }};
}

#[tokio::test(flavor = "current_thread")]
async fn subscribe_publish_receive_through_the_adapter() {
    with_broker!(0, |mqtt| {
        mqtt.subscribe(A, Qos::AtLeastOnce).await.unwrap();
        mqtt.subscribe(B, Qos::AtMostOnce).await.unwrap();
        mqtt.publish(A, br#"{"timestamp":1}"#, Qos::AtLeastOnce)
            .await
            .unwrap();
        assert_eq!(
            receive(&mut mqtt).await,
            (A.into(), br#"{"timestamp":1}"#.to_vec())
        );
        mqtt.publish(B, &[0xa5, 0x61], Qos::AtMostOnce)
            .await
            .unwrap();
        assert_eq!(receive(&mut mqtt).await, (B.into(), vec![0xa5, 0x61]));
        // A burst on one topic (blocks in flight).
        for i in 0..4u8 {
            mqtt.publish(B, &[i; 300], Qos::AtLeastOnce).await.unwrap();
        }
        for i in 0..4u8 {
            assert_eq!(receive(&mut mqtt).await, (B.into(), vec![i; 300]));
        }
        // A message that does not fit the driver's buffer is an error, not a truncation.
        mqtt.publish(A, &[b'x'; 100], Qos::AtLeastOnce)
            .await
            .unwrap();
        let mut small = [0u8; 40];
        assert!(matches!(
            mqtt.receive(&mut small).await,
            Err(MqttrustError::MessageTooLarge)
        ));
    });
}

/// Messages queued for two *different* subscriptions at once: both are delivered, whatever
/// the order (reported as a hang before the adapter used one wildcard subscription).
#[tokio::test(flavor = "current_thread")]
async fn messages_pending_on_two_subscriptions() {
    with_broker!(1, |mqtt| {
        mqtt.subscribe(A, Qos::AtLeastOnce).await.unwrap();
        mqtt.subscribe(B, Qos::AtLeastOnce).await.unwrap();
        mqtt.publish(B, b"b", Qos::AtLeastOnce).await.unwrap();
        mqtt.publish(A, b"a", Qos::AtLeastOnce).await.unwrap();
        let mut got = vec![receive(&mut mqtt).await, receive(&mut mqtt).await];
        got.sort();
        assert_eq!(got, [(A.into(), b"a".to_vec()), (B.into(), b"b".to_vec())]);
    });
}

/// Interleaved bursts on every subscription the agent makes, some received while others are
/// still queued; an unsubscribed topic is no longer delivered.
#[tokio::test(flavor = "current_thread")]
async fn interleaved_bursts_on_many_subscriptions() {
    const T: [&str; 4] = [
        A,
        B,
        "$aws/things/thing1/jobs/$next/get/accepted",
        "$aws/things/thing1/streams/AFR_OTA-XYZ/rejected/cbor",
    ];
    with_broker!(2, |mqtt| {
        for t in T {
            mqtt.subscribe(t, Qos::AtLeastOnce).await.unwrap();
        }
        let mut expected = Vec::new();
        for round in 0..3u8 {
            for (i, t) in T.iter().enumerate() {
                let p = vec![round, i as u8];
                mqtt.publish(t, &p, Qos::AtLeastOnce).await.unwrap();
                expected.push((t.to_string(), p));
            }
        }
        let mut got = Vec::new();
        for _ in 0..expected.len() {
            got.push(receive(&mut mqtt).await);
        }
        got.sort();
        expected.sort();
        assert_eq!(got, expected);
        // After an unsubscribe only the other topics arrive.
        mqtt.unsubscribe(T[3]).await.unwrap();
        mqtt.publish(T[3], b"gone", Qos::AtLeastOnce).await.unwrap();
        mqtt.publish(T[0], b"here", Qos::AtLeastOnce).await.unwrap();
        assert_eq!(receive(&mut mqtt).await, (A.into(), b"here".to_vec()));
    });
}
