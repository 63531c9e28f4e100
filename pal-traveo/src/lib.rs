#![doc = include_str!("../README.md")]
#![no_std]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod boot;
pub mod dbm;
pub mod flashctl;
pub mod header;
pub mod layout;
pub mod marker;
pub mod reset;
#[cfg(feature = "sim")]
#[cfg_attr(docsrs, doc(cfg(feature = "sim")))]
pub mod sim;
pub mod storage;
pub mod trial;

pub use boot::{StartupReport, TraveoBootControl};
pub use dbm::AppVerifier;
pub use flashctl::{BankMapping, FixedMapping};
pub use header::{AppHeader, AppVersion};
pub use layout::{Config, FIRMWARE_FILE_TYPE};
pub use marker::{Bank, FlashMarker, Mapping, PendingMode};
pub use reset::FnReset;
pub use storage::TraveoImageStorage;
pub use trial::TrialRecord;
