#![doc = include_str!("../README.md")]
#![no_std]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod bank_swap;
mod boot;
mod close;
pub mod descriptor;
pub mod layout;
mod nvm;
#[cfg(feature = "sim")]
#[cfg_attr(docsrs, doc(cfg(feature = "sim")))]
pub mod sim;
mod storage;

pub use bank_swap::BankSwap;
pub use boot::{
    Config, ImageState, Same54Boot, SequencePolicy, SUB_EMPTY_FILE, SUB_NO_SIGNATURE,
    SUB_SEQUENCE_OVERFLOW,
};
pub use close::close_file;
pub use descriptor::{Descriptor, ImageFlags};
pub use layout::Layout;
pub use nvm::SUB_BAD_FLASH;
pub use storage::Same54Storage;
