#![doc = include_str!("../README.md")]
#![no_std]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod boot;
pub mod flash;
pub mod image;
pub mod layout;
pub mod reset;
#[cfg(feature = "sim")]
#[cfg_attr(docsrs, doc(cfg(feature = "sim")))]
pub mod sim;
pub mod storage;
pub mod trailer;
pub mod verifier;

pub use boot::Psoc6BootControl;
pub use image::{check_image, ImageCheck, ImageHeader, ImageVersion};
pub use layout::{Area, Config, PendingMode, UpgradeMode};
pub use reset::FnReset;
pub use storage::Psoc6ImageStorage;
pub use verifier::McubootVerifier;
