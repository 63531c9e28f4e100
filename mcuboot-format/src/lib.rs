#![doc = include_str!("../README.md")]
#![no_std]

pub mod header;
pub mod tlv;
pub mod trailer;

pub use header::{ImageHeader, ImageVersion, IMAGE_HEADER_SIZE, IMAGE_MAGIC};
pub use trailer::{decide, Flag, Magic, SwapType, Trailer, TrailerLayout};
