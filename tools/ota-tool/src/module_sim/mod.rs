//! `ota module-sim`: an emulator of the AIROC CCM / AWS IoT ExpressLink module's UART.
//!
//! * [`emulator`]: the sans-IO core (framing, AT interpreter, OTA states 0–5, events, faults);
//! * [`cloud`]: the module's cloud side ([`ModuleCloud`]) and an in-process implementation
//!   ([`LocalCloud`], fed with images);
//! * [`mqtt`]: [`ModuleCloud`] over MQTT against `ota serve` (or AWS IoT): the module's cloud
//!   side is ota-core's own agent and driver, with the PAL parts of [`agent`];
//! * [`server`]: the TCP listener playing the UART byte stream.
//!
//! # What is emulated
//!
//! The host's side of the module, byte for byte in either dialect (`ccm` = PG v0.5 / AIROC
//! CCM, `v1.3`): the AT commands, the OTA states 0–5 with `READ`/`SEEK`/`CLOSE`/`APPLY`/
//! `FLUSH`, events, configuration keys, messaging, and the faults of [`Fault`]. With
//! `--broker`, the module's cloud connection is real: the thing's jobs come from AWS IoT Jobs
//! (or `ota serve`), files of type 101 (module firmware) and 202 (host image) are downloaded
//! over MQTT Streams by ota-core's agent into the emulated OTA buffer (RAM, at most
//! [`agent::CAPACITY`]), with the job statuses a real ota-core device publishes
//! (`IN_PROGRESS` progress, `self_test` ready / active, `SUCCEEDED` / `FAILED`). A module
//! update ends on the new firmware version after `APPLY` and the new firmware's
//! `AT+CONNECT` (its self test); the agent's anti-rollback check refuses a module image that
//! is not newer than the running one. A host update ends `SUCCEEDED` on the host's `CLOSE`,
//! `FAILED` on `FLUSH`.
//!
//! # What is not
//!
//! * the module's own image check with its vendor's key: module images are checked only
//!   against `OTAcertificate` when the host set one (host images against `HOTAcertificate`,
//!   as the real module does), P-256 only; jobs must carry `sig-sha256-ecdsa` (the agent
//!   fails a job without it);
//! * the version of a module image is its job's `filepath` (`[v]A.B.C`; a path that is no
//!   version is refused, `FAILED aborted: 0xe4000002`); the AWS job document carries none,
//!   the real module reads it from the image;
//! * forced updates (`force:YES`), file types 103/107/204 (refused: `FAILED aborted:
//!   0xe401xxxx`), multi-file jobs mixing 101 and 202, the HTTP data path;
//! * power loss of the module's cloud side: the MQTT session and the agent live across the
//!   module's emulated resets (a reset mid-download does not restart the download; with
//!   `--no-persist-ota` the job is reported `FAILED`), and the OTA buffer is RAM;
//! * TLS, the endpoint and the `CONNECT` hints of a real network (any broker address works).

pub mod agent;
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
