//! A simulated device on the host, running the real `ota_core` agent through
//! `ota_core::driver::Driver`.
//!
//! - MQTT: [`mqtt::Session`], rumqttc on tokio (reconnects with a new session when it drops);
//! - clock: tokio time; HTTP range GETs ([`http_client`]) when the job offers HTTP and
//!   `DeviceOptions::http` is set;
//! - flash: `<state>/flash.bin`, a file-backed `ota_pal_traits::sim::SimDevice` written
//!   through on every write and erase ([`flash`]), laid out as two 1 MiB image slots and a
//!   16 KiB `FlashJournal`; the download goes through `NorFlashImageStorage` into the slot
//!   that is not running;
//! - boot: the generic A/B boot control and bootloader of [`boot`], state in
//!   `<state>/boot.json`;
//! - images: the header format of [`image`] carries the version the agent is started with
//!   after each simulated reboot, and the image's behaviour (normal, fails its self test,
//!   cannot connect, crashes).
//!
//! `--board psoc6|same54|traveo|tfm` run the board crates' PALs over their simulated bootloaders instead
//! (see [`runtime::Board`]).
//!
//! A reboot is `Exit::Reset` from the driver: the bootloader decides which slot runs, and a
//! new agent starts with that image's version.

pub mod boot;
pub mod cli;
pub mod flash;
pub mod http_client;
pub mod image;
pub mod mqtt;
pub mod runtime;
pub mod same54;
pub mod tfm;
pub mod traveo;

pub use runtime::{
    psoc6_image, run, running_version, Board, DeviceEvent, DeviceOptions, DeviceReport, Faults,
};
