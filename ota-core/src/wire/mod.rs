//! Wire formats: pure functions over byte slices, no I/O, no heap, no panics.
//!
//! | Module | Format | Spec |
//! |---|---|---|
//! | [`json`] | a strict, zero-copy JSON scanner (RFC 8259) the job parser stands on | §2.2 |
//! | [`number`] | `strtoul`-style numbers as the reference agent reads them | §2.2 |
//! | [`base64`] | signature base64 with the reference agent's rules | §2.5 |
//! | [`job`] | job documents (`$next/get/accepted`, `notify-next`) | §1.5, §2 |
//! | [`cbor`] | GetStream request, DataBlock, stream rejection | §3 |
//! | [`bitmap`] | the block bitmap | §3.2 |
//! | [`topic`] | topic builders and the incoming-topic router | §1.1, §1.2 |
//! | [`status`] | job status updates and the get-next request | §1.3, §1.4 |
//! | [`version`] | the 32-bit application version | §6 |

pub mod base64;
pub mod bitmap;
pub mod cbor;
pub mod job;
pub mod json;
pub mod number;
pub mod status;
pub mod topic;
pub mod version;

// Bounded text writer shared by `status` (crate-private).
mod writer;
