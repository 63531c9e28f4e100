// The README links `sim` items: these reference definitions (before the README, as a definition
// cannot follow its last list item) point at the module with the feature and at the docs.rs
// build (every feature) without it, so `cargo doc` passes either way.
#![cfg_attr(
    feature = "sim",
    doc = "[`sim::Bootloader`]: crate::sim::Bootloader\n\
           [`sim::Same54Board`]: crate::sim::Same54Board\n\
           [`sim::write_factory_image`]: crate::sim::write_factory_image"
)]
#![cfg_attr(
    not(feature = "sim"),
    doc = "[`sim::Bootloader`]: https://docs.rs/pal-same54/latest/pal_same54/sim/struct.Bootloader.html\n\
           [`sim::Same54Board`]: https://docs.rs/pal-same54/latest/pal_same54/sim/struct.Same54Board.html\n\
           [`sim::write_factory_image`]: https://docs.rs/pal-same54/latest/pal_same54/sim/fn.write_factory_image.html"
)]
#![doc = include_str!("../README.md")]
#![no_std]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod bank_swap;
mod boot;
mod close;
pub mod descriptor;
pub mod layout;
mod nvm;
pub mod signature;
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
pub use signature::{SignatureCapture, SignatureSlot, SUB_SIGNATURE_TOO_LONG};
pub use storage::Same54Storage;
