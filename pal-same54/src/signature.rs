//! Getting the job document's signature into the staged descriptor when the agent's driver
//! runs the PAL.
//!
//! The bootloader checks the signature the staged descriptor carries (spec §3.4 step 2), so
//! [`Same54Boot::request_trial_boot`](crate::Same54Boot) needs it; but
//! [`BootControl::request_trial_boot`](ota_pal_traits::BootControl::request_trial_boot) gets
//! only a [`FileInfo`], and `ota-core`'s driver calls the verifier and the boot control
//! separately: [`ImageVerifier::begin`] / [`update`](ImageVerifier::update) while the file
//! arrives, [`finish(signature)`](ImageVerifier::finish) at close, then `request_trial_boot`.
//!
//! [`SignatureCapture`] wraps the board's verifier and, when `finish` succeeds, copies the
//! signature into a [`SignatureSlot`]; [`Same54Boot::with_signature_slot`](crate::Same54Boot::with_signature_slot)
//! gives the boot control the same slot, and `request_trial_boot` takes the signature from it
//! when none was handed over with [`Same54Boot::set_signature`](crate::Same54Boot::set_signature).
//! `begin` and a failed `finish` empty the slot, so a signature is only ever used for the file
//! it verified.
//!
//! ```
//! # #[cfg(feature = "sim")] fn main() {
//! use ota_pal_traits::{ImageVerifier, Sha256EcdsaP256Verifier};
//! use pal_same54::sim::Same54Board;
//! use pal_same54::{Config, Layout, Same54Boot, SignatureCapture, SignatureSlot};
//! # let key = ota_pal_traits::sim::test_keys::TestKey::from_seed(1).unwrap();
//! # let code_signer: Sha256EcdsaP256Verifier = key.verifier();
//! # let board = Same54Board::new(vec![0xFF; 0x10_0000], Layout::SAME54_XPRO).unwrap();
//! // A local of the task that runs the driver (it outlives both users), or a `StaticCell`.
//! let slot = SignatureSlot::new();
//! let verifier = SignatureCapture::new(code_signer, &slot);
//! let boot = Same54Boot::new(board.nvm().unwrap(), Config::default(), 0x0100_0000)
//!     .unwrap()
//!     .with_signature_slot(&slot);
//! // ... hand `verifier` and `boot` (with the storage) to the agent's driver.
//! # let _ = (verifier, boot);
//! # }
//! # #[cfg(not(feature = "sim"))] fn main() {}
//! ```

use core::cell::Cell;

use ota_pal_traits::{FileInfo, ImageVerifier, PalError, PalErrorKind, SignatureKind};

use crate::descriptor::MAX_SIGNATURE_LEN;

/// Sub-code of [`PalErrorKind::SignatureCheckFailed`] from [`SignatureCapture`]: the signature
/// verified but is longer than the descriptor's 256 bytes, so the bootloader could not check it.
pub const SUB_SIGNATURE_TOO_LONG: u32 = 0x313;

/// Room for one signature (≤ 256 bytes, the descriptor's field), shared by a
/// [`SignatureCapture`] and a [`Same54Boot`](crate::Same54Boot) through `&` references. No heap;
/// interior mutability through [`Cell`] (so it is not `Sync`: both users live in the task that
/// runs the agent).
///
/// RAM: 258 bytes.
#[derive(Debug)]
pub struct SignatureSlot {
    bytes: Cell<[u8; MAX_SIGNATURE_LEN]>,
    len: Cell<u16>,
}

impl SignatureSlot {
    /// An empty slot.
    pub const fn new() -> Self {
        Self {
            bytes: Cell::new([0; MAX_SIGNATURE_LEN]),
            len: Cell::new(0),
        }
    }

    /// Store `signature`; `false` (and the slot emptied) when it is longer than 256 bytes.
    pub fn set(&self, signature: &[u8]) -> bool {
        let mut b = [0u8; MAX_SIGNATURE_LEN];
        match b.get_mut(..signature.len()) {
            Some(d) => {
                d.copy_from_slice(signature);
                self.bytes.set(b);
                self.len.set(signature.len() as u16);
                true
            }
            None => {
                self.clear();
                false
            }
        }
    }

    /// Empty the slot.
    pub fn clear(&self) {
        self.len.set(0);
    }

    /// Bytes held (0: empty).
    pub fn len(&self) -> usize {
        self.len.get() as usize
    }

    /// Whether the slot is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Copy the signature into `out`; returns its length (0: empty).
    pub fn copy_to(&self, out: &mut [u8; MAX_SIGNATURE_LEN]) -> usize {
        *out = self.bytes.get();
        self.len()
    }
}

impl Default for SignatureSlot {
    fn default() -> Self {
        Self::new()
    }
}

/// Where [`Same54Boot`](crate::Same54Boot) looks for the signature when none was handed over
/// with [`set_signature`](crate::Same54Boot::set_signature): nowhere ([`NoSignatureSource`],
/// the default) or a [`SignatureSlot`].
pub trait SignatureSource {
    /// Copy the signature into `out` and return its length; 0 when there is none.
    fn read_signature(&self, out: &mut [u8; MAX_SIGNATURE_LEN]) -> usize;
    /// Forget the signature (the file was refused or given up).
    fn clear_signature(&self);
}

/// No shared slot: only [`Same54Boot::set_signature`](crate::Same54Boot::set_signature) (or
/// [`close_file`](crate::close_file)) provides the signature.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NoSignatureSource;

impl SignatureSource for NoSignatureSource {
    fn read_signature(&self, _out: &mut [u8; MAX_SIGNATURE_LEN]) -> usize {
        0
    }
    fn clear_signature(&self) {}
}

impl SignatureSource for &SignatureSlot {
    fn read_signature(&self, out: &mut [u8; MAX_SIGNATURE_LEN]) -> usize {
        self.copy_to(out)
    }
    fn clear_signature(&self) {
        self.clear();
    }
}

/// An [`ImageVerifier`] that passes everything to `inner` and, when
/// [`finish`](ImageVerifier::finish) succeeds, records the signature in a [`SignatureSlot`]
/// (see the [module docs](self)). [`begin`](ImageVerifier::begin) and a failing `finish` empty
/// the slot. A signature over 256 bytes that `inner` accepted fails with
/// `SignatureCheckFailed` / [`SUB_SIGNATURE_TOO_LONG`]: the descriptor cannot carry it.
///
/// RAM: `inner` plus a reference.
#[derive(Debug)]
pub struct SignatureCapture<'a, V> {
    inner: V,
    slot: &'a SignatureSlot,
}

impl<'a, V: ImageVerifier> SignatureCapture<'a, V> {
    /// Wrap `inner`, recording verified signatures in `slot`.
    pub fn new(inner: V, slot: &'a SignatureSlot) -> Self {
        Self { inner, slot }
    }

    /// The wrapped verifier.
    pub fn inner(&mut self) -> &mut V {
        &mut self.inner
    }

    /// The slot the signatures go to.
    pub fn slot(&self) -> &'a SignatureSlot {
        self.slot
    }

    /// Give the wrapped verifier back.
    pub fn into_inner(self) -> V {
        self.inner
    }
}

impl<V: ImageVerifier> ImageVerifier for SignatureCapture<'_, V> {
    fn kind(&self) -> SignatureKind {
        self.inner.kind()
    }

    fn needs_image_bytes(&self) -> bool {
        self.inner.needs_image_bytes()
    }

    fn begin(&mut self, file: &FileInfo<'_>) {
        self.slot.clear();
        self.inner.begin(file);
    }

    fn update(&mut self, data: &[u8]) {
        self.inner.update(data);
    }

    async fn finish(&mut self, signature: &[u8]) -> Result<(), PalError> {
        self.slot.clear();
        self.inner.finish(signature).await?;
        if self.slot.set(signature) {
            Ok(())
        } else {
            Err(PalError::with_sub(
                PalErrorKind::SignatureCheckFailed,
                SUB_SIGNATURE_TOO_LONG,
            ))
        }
    }
}
