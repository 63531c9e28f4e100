//! The Dual Bank Manager's decision rules (spec §2.4), as pure functions, and the pluggable
//! signature check it calls.
//!
//! The `sim` module (feature `sim`) runs these over the simulated flash; firmware can use
//! [`AppVerifier`] to run the same RSA check as the ROM before staging an image.

use crate::layout::SIGNATURE_LEN;
use crate::marker::{preferred_mapping, Bank, Mapping};

/// The ROM's `Cy_FB_VerifyApplication(start, objSize, sigAddr, key)` (§2.4 step 4): RSA-2048
/// PKCS#1 v1.5 over SHA-256 of `app` (`objSize` bytes from the bank start) with the public key
/// at 0x17006408, returning 1 on success.
///
/// `signature` is the 256 bytes stored at `start + objSize`, passed as stored. Whether
/// `cymcuelftool` stores them big-endian (as PKCS#1 does) or reversed was **not confirmed** by
/// the spec; an implementation must match the signer it is used with.
pub trait AppVerifier {
    /// Whether `signature` signs `app`.
    fn verify_application(&mut self, app: &[u8], signature: &[u8]) -> bool;
}

impl<T: AppVerifier + ?Sized> AppVerifier for &mut T {
    fn verify_application(&mut self, app: &[u8], signature: &[u8]) -> bool {
        (**self).verify_application(app, signature)
    }
}

/// `AUTHENTICATION_CHECK = 0x55555555` (§2.4 step 4): the DBM skips the signature check and
/// takes every image whose signature address is in range. For bring-up only.
#[derive(Debug, Clone, Copy, Default)]
pub struct SkipAuthentication;

impl AppVerifier for SkipAuthentication {
    fn verify_application(&mut self, _app: &[u8], _signature: &[u8]) -> bool {
        true
    }
}

/// The bytes the DBM hands to the ROM for an image whose first word is `obj_size`: the signed
/// span `[0, obj_size)` and the signature span `[obj_size, obj_size + 256)`, both relative to
/// the bank start; `None` when `start + obj_size` passes the limit, which the DBM treats as a
/// failed check (§2.4 step 4).
pub const fn signed_spans(obj_size: u32, sig_limit: u32) -> Option<(u32, u32)> {
    if obj_size > sig_limit {
        return None;
    }
    match obj_size.checked_add(SIGNATURE_LEN) {
        Some(end) => Some((obj_size, end)),
        None => None,
    }
}

/// The DBM's choice (§2.4 steps 2–3): with the button pressed, mapping A; otherwise the marker's
/// preferred bank if it verifies, else the other one if it verifies, else `None` (the DBM
/// hangs). `verify` is called at most once per bank, in the DBM's order.
///
/// On the button path the spec says only "use mapping A / lower bank, skipping the marker";
/// whether the lower image is still verified there is **not confirmed**. This models the
/// conservative reading: the lower image is verified and the DBM hangs if it fails.
pub fn choose_mapping(
    button_pressed: bool,
    selector: u32,
    mut verify: impl FnMut(Bank) -> bool,
) -> Option<Mapping> {
    if button_pressed {
        return verify(Bank::Lower).then_some(Mapping::A);
    }
    let first = preferred_mapping(selector);
    let second = first.other();
    if verify(first.active_bank()) {
        Some(first)
    } else if verify(second.active_bank()) {
        Some(second)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::CM0_SIGNATURE_LIMIT;

    fn run(
        button: bool,
        sel: u32,
        lower: bool,
        upper: bool,
    ) -> (Option<Mapping>, [Option<Bank>; 2]) {
        let mut order = [None; 2];
        let mut n = 0;
        let m = choose_mapping(button, sel, |b| {
            if let Some(slot) = order.get_mut(n) {
                *slot = Some(b);
            }
            n += 1;
            match b {
                Bank::Lower => lower,
                Bank::Upper => upper,
            }
        });
        (m, order)
    }

    #[test]
    fn marker_aa_verifies_upper_then_lower() {
        use Bank::*;
        assert_eq!(
            run(false, 0xAAAA_AAAA, true, true),
            (Some(Mapping::B), [Some(Upper), None])
        );
        assert_eq!(
            run(false, 0xAAAA_AAAA, true, false),
            (Some(Mapping::A), [Some(Upper), Some(Lower)])
        );
        assert_eq!(run(false, 0xAAAA_AAAA, false, false).0, None);
    }

    #[test]
    fn any_other_marker_verifies_lower_then_upper() {
        use Bank::*;
        for sel in [0xFFFF_FFFF, 0, 0x1234_5678] {
            assert_eq!(
                run(false, sel, true, true),
                (Some(Mapping::A), [Some(Lower), None])
            );
            assert_eq!(
                run(false, sel, false, true),
                (Some(Mapping::B), [Some(Lower), Some(Upper)])
            );
            assert_eq!(run(false, sel, false, false).0, None);
        }
    }

    #[test]
    fn button_forces_lower() {
        assert_eq!(
            run(true, 0xAAAA_AAAA, true, true),
            (Some(Mapping::A), [Some(Bank::Lower), None])
        );
        assert_eq!(run(true, 0xAAAA_AAAA, false, true).0, None);
    }

    #[test]
    fn signature_must_sit_below_the_limit() {
        assert_eq!(
            signed_spans(0xFF00, CM0_SIGNATURE_LIMIT),
            Some((0xFF00, 0x1_0000))
        );
        assert_eq!(signed_spans(0xFF01, CM0_SIGNATURE_LIMIT), None);
        assert_eq!(signed_spans(0xFFFF_FFFF, u32::MAX), None);
        assert!(SkipAuthentication.verify_application(&[], &[]));
    }
}
