#![cfg_attr(feature = "sim", doc = include_str!("../README.md"))]
#![cfg_attr(
    not(feature = "sim"),
    doc = "ota-rs PAL for Arm Corstone-300/310 + TF-M over the PSA Firmware Update 1.0 API. \
           The full documentation (README, with a usage example on the simulator) is built \
           with `--features sim`."
)]
#![no_std]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod config;
#[cfg(feature = "ffi")]
#[cfg_attr(docsrs, doc(cfg(feature = "ffi")))]
#[allow(non_camel_case_types)]
pub mod ffi;
pub mod mcuboot;
pub mod pal;
pub mod psa;
#[cfg(feature = "sim")]
#[cfg_attr(docsrs, doc(cfg(feature = "sim")))]
pub mod sim;
pub mod verify;

pub use config::{ComponentMap, Config, ImageSlots, Layout};
pub use pal::{TfmBootControl, TfmReset, TfmStorage};
pub use psa::{ComponentId, ComponentInfo, ComponentState, ImageVersion, PsaFwu, Status};
pub use verify::{Algorithm, CandidateDigestVerifier, P256Crypto, PsaCrypto};
