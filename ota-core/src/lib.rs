//! A `no_std`, heap-free AWS IoT OTA agent, wire-compatible with the FreeRTOS OTA library
//! (ota-for-aws-iot-embedded-sdk v3.4.0).
//!
//! The crate is layered like smoltcp and quinn-proto:
//!
//! - [`wire`]: pure, zero-copy, panic-free codecs over byte slices for everything the device
//!   exchanges with AWS IoT Jobs and MQTT Streams.
//! - [`agent`]: the OTA lifecycle as a deterministic sans-IO state machine (events in,
//!   commands out, time as an input).
//! - [`driver`]: a thin async loop that runs the agent over an MQTT client, a clock and the
//!   PAL traits of `ota-pal-traits`.
#![no_std]

pub mod agent;
pub mod driver;
pub mod wire;
