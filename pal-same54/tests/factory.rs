//! The factory image exactly as spec §3.6 describes `factory_image_generator.py` (SAME54
//! variant) building it, laid out byte by byte here rather than through the crate's
//! `Descriptor::factory` / `sim::write_factory_image`, placed where the unified hex puts it
//! (`srec_cat ... -offset 0x10000`, merged with the bootloader hex at 0x0), then parsed and
//! booted through the simulated aws_bootloader.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use common::*;
use ota_pal_traits::PlatformImageState;
use pal_same54::descriptor::DESCRIPTOR_LEN;
use pal_same54::sim::{write_factory_image_without_copy, BootOutcome, Same54Board};
use pal_same54::{Config, Descriptor, ImageFlags, Layout};

const APP_ADDR: usize = 0x10000;
const APP_MAX: usize = 0x6E000;
const LOWER: u32 = 0x7E000;

/// `<name>.initial.bin` per §3.6: the app padded to 0x6E000, `@AFRTOS` + 0xFC, 24 zero bytes,
/// {sigtype[32], u32 sig size, sig[256]}, the file size 3× (u32 LE). The pad byte the SAME54
/// generator uses was not read (spec: "pads the binary to 0x6E000"), so both candidates are
/// tried; the bootloader hashes only `[0x10000, + size)`, so it must not matter.
fn initial_bin(app: &[u8], signature: &[u8], pad: u8) -> Vec<u8> {
    let mut out = app.to_vec();
    out.resize(APP_MAX, pad);
    out.extend_from_slice(b"@AFRTOS");
    out.push(0xFC);
    out.extend_from_slice(&[0u8; 24]);
    let mut sig_type = [0u8; 32];
    sig_type[..16].copy_from_slice(b"sig-sha256-ecdsa");
    out.extend_from_slice(&sig_type);
    out.extend_from_slice(&(signature.len() as u32).to_le_bytes());
    let mut sig = [0u8; 256];
    sig[..signature.len()].copy_from_slice(signature);
    out.extend_from_slice(&sig);
    for _ in 0..3 {
        out.extend_from_slice(&(app.len() as u32).to_le_bytes());
    }
    assert_eq!(out.len(), APP_MAX + 336);
    out
}

/// The unified hex programmed into an erased part: bootloader at 0x0, `initial` at 0x10000.
/// The hex carries no bootloader copy at 0x80000 (the bootloader's default path makes it).
fn programmed(initial: &[u8]) -> Same54Board<Vec<u8>> {
    let mut mem = vec![0xFFu8; 0x10_0000];
    let bl = bootloader_bin();
    mem[..bl.len()].copy_from_slice(&bl);
    mem[APP_ADDR..APP_ADDR + initial.len()].copy_from_slice(initial);
    Same54Board::new(mem, Layout::SAME54_XPRO).unwrap()
}

#[test]
fn generator_layout_parses_as_a_valid_factory_descriptor_and_boots() {
    let app = old_app();
    let sig = sign(&app);
    for pad in [0xFF, 0x00] {
        let initial = initial_bin(&app, &sig, pad);
        // The descriptor lands at 0x10000 + 0x6E000 = 0x7E000.
        assert_eq!(APP_ADDR + APP_MAX, LOWER as usize);
        let mut board = programmed(&initial);

        let d = board.peek_descriptor(LOWER).unwrap();
        assert!(d.magic_ok());
        assert_eq!(d.flags, ImageFlags::VALID);
        assert_eq!(d.flags.0, 0xFC);
        assert_eq!(d.sequence, 0);
        assert_eq!(d.sig_type_bytes(), b"sig-sha256-ecdsa");
        assert_eq!(d.signature_bytes(), Some(&sig[..]));
        assert_eq!(d.image_size as usize, app.len());
        // Byte for byte what the crate's own factory descriptor encodes.
        assert_eq!(
            &initial[APP_MAX..],
            &Descriptor::factory(&sig, app.len() as u32)
                .unwrap()
                .encode()[..DESCRIPTOR_LEN]
        );
        assert!(board.holds(LOWER, &initial[APP_MAX..]).unwrap());

        // The simulated aws_bootloader verifies it and launches it as committed, no swap, no
        // write (flags stay 0xFC).
        let r = boot(&mut board).unwrap();
        assert_eq!(r.swaps, 0);
        match &r.outcome {
            BootOutcome::Verified {
                descriptor,
                flags_at_boot,
                bank_a_first,
            } => {
                assert_eq!(*flags_at_boot, ImageFlags::VALID);
                assert_eq!(descriptor.sequence, 0);
                assert!(*bank_a_first);
            }
            o => panic!("factory image not verified: {o:?}"),
        }
        assert!(board.holds(LOWER, &initial[APP_MAX..]).unwrap());
        assert_eq!(running(&board), Running::Old);
        let (_s, mut b) = pal(&board, Config::default());
        assert_eq!(state(&mut b), PlatformImageState::Valid);

        // With 0xFF padding it is exactly what `sim::write_factory_image_without_copy` writes.
        if pad == 0xFF {
            let other = Same54Board::new(vec![0u8; 0x10_0000], Layout::SAME54_XPRO).unwrap();
            write_factory_image_without_copy(&other, &bootloader_bin(), &app, &sig).unwrap();
            let a = board.device().inspect(|m| m.to_vec()).unwrap();
            let b = other.device().inspect(|m| m.to_vec()).unwrap();
            assert!(a == b, "sim::write_factory_image_without_copy differs");
        }
    }
}

#[test]
fn generator_layout_with_a_changed_app_byte_is_not_booted_as_verified() {
    let app = old_app();
    let sig = sign(&app);
    let mut initial = initial_bin(&app, &sig, 0xFF);
    initial[100] ^= 1;
    let mut board = programmed(&initial);
    let r = boot(&mut board).unwrap();
    assert!(
        matches!(r.outcome, BootOutcome::Default { .. }),
        "{:?}",
        r.outcome
    );
}
