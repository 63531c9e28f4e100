//! `ota module-sim`: an emulator of the AIROC CCM / AWS IoT ExpressLink module's UART.
//!
//! * [`emulator`]: the sans-IO core (framing, AT interpreter, OTA states 0–5, events, faults);
//! * [`cloud`]: the module's cloud side ([`ModuleCloud`]) and an in-process implementation;
//! * [`mqtt`]: [`ModuleCloud`] over MQTT (rumqttc) against `ota serve`: Jobs + Streams;
//! * [`server`]: the TCP listener playing the UART byte stream.

pub mod cli;
pub mod cloud;
pub mod config;
pub mod emulator;
pub mod mqtt;
pub mod server;

pub use cloud::{CloudEvent, JobKind, JobOutcome, LocalCloud, ModuleCloud, Proposal};
pub use config::{Dialect, Fault, OtaEventParam, SimConfig};
pub use emulator::Emulator;

#[cfg(test)]
mod tests;
