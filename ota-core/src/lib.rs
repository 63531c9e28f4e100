#![doc = include_str!("../README.md")]
#![no_std]

pub mod agent;
pub mod driver;
pub mod wire;
