#![doc = include_str!("../README.md")]
#![no_std]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod boot;
#[cfg(feature = "conformance")]
#[cfg_attr(docsrs, doc(cfg(feature = "conformance")))]
pub mod conformance;
mod error;
mod image;
pub mod journal;
pub mod nor;
mod signature;
#[cfg(feature = "sim")]
#[cfg_attr(docsrs, doc(cfg(feature = "sim")))]
pub mod sim;
pub mod verify;

pub use boot::{BootControl, PlatformImageState, Reset};
pub use error::{flash_sub_code, PalError, PalErrorKind};
pub use image::{FileInfo, ImageStorage};
pub use journal::{flash::FlashJournal, DownloadJournal, JournalHeader, NoJournal, MAX_JOB_ID_LEN};
pub use nor::{AbortPolicy, NorFlashImageStorage};
pub use signature::{HashAlgorithm, ImageVerifier, SignatureAlgorithm, SignatureKind};
pub use verify::{verify_stored_image, Sha256EcdsaP256Verifier};
