// The README links `sim` items: these reference definitions (before the README, as a definition
// cannot follow its last list item) point at the module with the feature and at the docs.rs
// build (every feature) without it, so `cargo doc` passes either way.
#![cfg_attr(
    feature = "sim",
    doc = "[`sim::SimBootloader`]: crate::sim::SimBootloader"
)]
#![cfg_attr(
    not(feature = "sim"),
    doc = "[`sim::SimBootloader`]: https://docs.rs/pal-psoc6/latest/pal_psoc6/sim/struct.SimBootloader.html"
)]
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
