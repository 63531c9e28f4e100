//! The PAL driven the way `ota-core`'s driver drives it (`driver/mod.rs`): `prepare` +
//! `ImageVerifier::begin`, blocks written and hashed while they arrive in order,
//! `verify_stored_image` (which ends in `finish(signature)`) at close, then
//! `request_trial_boot` with only the `FileInfo`. The job signature reaches the staged
//! descriptor through `SignatureCapture` and a `SignatureSlot` shared with `Same54Boot`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use common::*;
use ota_pal_traits::sim::block_on;
use ota_pal_traits::{
    verify_stored_image, BootControl, FileInfo, ImageStorage, ImageVerifier, PalError,
    PalErrorKind, PlatformImageState, SignatureKind,
};
use pal_same54::sim::{Same54Board, SimNvm};
use pal_same54::{
    Config, ImageFlags, Same54Boot, SignatureCapture, SignatureSlot, SUB_NO_SIGNATURE,
    SUB_SIGNATURE_TOO_LONG,
};

const LOWER: u32 = 0x7E000;
const UPPER: u32 = 0xFE000;

type SlotBoot<'d, 's> = Same54Boot<SimNvm<'d, Vec<u8>>, &'s SignatureSlot>;

/// The driver's state for one file: what `store_block` and `VerifyFile` use.
struct Driver<'d, 's, V> {
    storage: Storage<'d>,
    verifier: SignatureCapture<'s, V>,
    boot: SlotBoot<'d, 's>,
    hashed_upto: u32,
}

impl<V: ImageVerifier> Driver<'_, '_, V> {
    /// `Command::PrepareFile` (no resume).
    fn prepare(&mut self, file: &FileInfo<'_>) -> Result<(), PalError> {
        let r = block_on(self.storage.prepare(file));
        self.verifier.begin(file);
        self.hashed_upto = 0;
        r
    }

    /// `store_block`: write, and hash when the block continues the in-order prefix.
    fn block(&mut self, offset: u32, data: &[u8]) -> Result<(), PalError> {
        block_on(self.storage.write(offset, data))?;
        if offset == self.hashed_upto && self.verifier.needs_image_bytes() {
            self.verifier.update(data);
            self.hashed_upto += data.len() as u32;
        }
        Ok(())
    }

    /// `Command::VerifyFile`.
    fn verify(&mut self, file: &FileInfo<'_>, signature: &[u8]) -> Result<(), PalError> {
        let hashed = self.hashed_upto.min(file.size);
        let mut rx_buf = [0u8; 512];
        block_on(verify_stored_image(
            &mut self.storage,
            &mut self.verifier,
            file,
            hashed,
            signature,
            &mut rx_buf,
        ))
    }

    /// `Command::RequestTrialBoot`.
    fn trial_boot(&mut self, file: &FileInfo<'_>) -> Result<(), PalError> {
        block_on(self.boot.request_trial_boot(file))
    }
}

fn driver<'d, 's, V: ImageVerifier>(
    board: &'d Same54Board<Vec<u8>>,
    slot: &'s SignatureSlot,
    inner: V,
) -> Driver<'d, 's, V> {
    let (storage, boot) = pal(board, Config::default());
    Driver {
        storage,
        verifier: SignatureCapture::new(inner, slot),
        boot: boot.with_signature_slot(slot),
        hashed_upto: 0,
    }
}

/// Prepare, write `image` in blocks in `order`, verify with `signature`.
fn download<V: ImageVerifier>(
    d: &mut Driver<'_, '_, V>,
    image: &[u8],
    order: &[usize],
    signature: &[u8],
) -> Result<(), PalError> {
    let f = file(image.len());
    d.prepare(&f)?;
    for &i in order {
        let end = ((i + 1) * BLOCK).min(image.len());
        d.block((i * BLOCK) as u32, &image[i * BLOCK..end])?;
    }
    d.verify(&f, signature)
}

fn in_order(image: &[u8]) -> Vec<usize> {
    (0..image.len().div_ceil(BLOCK)).collect()
}

fn scrambled(image: &[u8]) -> Vec<usize> {
    let n = image.len().div_ceil(BLOCK);
    let mut order: Vec<usize> = (0..n).rev().collect();
    order.rotate_left(n / 2);
    // Block 0 first, so a prefix is hashed on the fly and the rest read back at close.
    order.retain(|&i| i != 0);
    order.insert(0, 0);
    order
}

#[test]
fn driver_sequence_stages_a_bootable_descriptor_from_the_captured_signature() {
    for order in [in_order as fn(&[u8]) -> Vec<usize>, scrambled] {
        let mut board = factory_board();
        boot(&mut board).unwrap();
        let img = new_app();
        let sig = sign(&img);
        let slot = SignatureSlot::new();
        {
            let mut d = driver(&board, &slot, verifier());
            download(&mut d, &img, &order(&img), &sig).unwrap();
            assert_eq!(slot.len(), sig.len());
            // Only the FileInfo, as the agent's RequestTrialBoot.
            d.trial_boot(&file(img.len())).unwrap();
        }
        let up = board.peek_descriptor(UPPER).unwrap();
        assert!(up.magic_ok());
        assert_eq!(up.flags, ImageFlags::NEW);
        assert_eq!(up.signature_bytes(), Some(&sig[..]));
        assert_eq!(up.image_size as usize, img.len());

        // Reset: the bootloader verifies the descriptor's signature and swaps.
        let r = boot(&mut board).unwrap();
        assert_eq!(r.swaps, 1);
        assert!(r.outcome.is_verified());
        assert_eq!(r.outcome.sequence(), Some(OLD_VERSION + 1));
        assert_eq!(running(&board), Running::New);
        let (_s, mut b) = pal(&board, Config::default());
        assert_eq!(state(&mut b), PlatformImageState::PendingCommit);
        block_on(b.confirm()).unwrap();
        assert_eq!(
            board.peek_descriptor(LOWER).unwrap().flags,
            ImageFlags::VALID
        );
        let r = boot(&mut board).unwrap();
        assert_eq!((r.swaps, running(&board)), (0, Running::New));
    }
}

#[test]
fn failed_verification_leaves_no_signature_for_the_trial_boot() {
    let mut board = factory_board();
    boot(&mut board).unwrap();
    let img = new_app();
    let slot = SignatureSlot::new();
    {
        let mut d = driver(&board, &slot, verifier());
        let e = download(
            &mut d,
            &img,
            &in_order(&img),
            &sign_with(&other_key(), &img),
        );
        assert_eq!(e.unwrap_err().kind(), PalErrorKind::SignatureCheckFailed);
        assert!(slot.is_empty());
        // Even if asked, nothing is staged without a verified signature.
        let e = d.trial_boot(&file(img.len())).unwrap_err();
        assert_eq!(
            (e.kind(), e.sub()),
            (PalErrorKind::BootInfoCreateFailed, SUB_NO_SIGNATURE)
        );
        // The agent's RejectImage + AbortFile.
        block_on(d.boot.reject()).unwrap();
        block_on(d.storage.abort()).unwrap();
        assert_eq!(
            block_on(d.boot.platform_state()).unwrap(),
            PlatformImageState::Invalid
        );
    }
    assert!(!board.peek_descriptor(UPPER).unwrap().magic_ok());
    let r = boot(&mut board).unwrap();
    assert_eq!((r.swaps, running(&board)), (0, Running::Old));
}

#[test]
fn a_new_download_forgets_the_previous_signature() {
    let board = factory_board();
    let img = new_app();
    let slot = SignatureSlot::new();
    let mut d = driver(&board, &slot, verifier());
    download(&mut d, &img, &in_order(&img), &sign(&img)).unwrap();
    assert!(!slot.is_empty());
    // The next file starts: the signature of the last one is gone.
    d.prepare(&file(img.len())).unwrap();
    assert!(slot.is_empty());
    let e = d.trial_boot(&file(img.len())).unwrap_err();
    assert_eq!(e.sub(), SUB_NO_SIGNATURE);
}

#[test]
fn reject_and_abort_empty_the_slot() {
    let board = factory_board();
    let img = new_app();
    let slot = SignatureSlot::new();
    let mut d = driver(&board, &slot, verifier());
    download(&mut d, &img, &in_order(&img), &sign(&img)).unwrap();
    block_on(d.boot.reject()).unwrap();
    assert!(slot.is_empty());
    download(&mut d, &img, &in_order(&img), &sign(&img)).unwrap();
    block_on(d.boot.set_image_state(pal_same54::ImageState::Aborted)).unwrap();
    assert!(slot.is_empty());
}

#[test]
fn an_explicit_set_signature_takes_precedence_over_the_slot() {
    let board = factory_board();
    let img = new_app();
    let slot = SignatureSlot::new();
    let mut d = driver(&board, &slot, verifier());
    let sig = sign(&img);
    download(&mut d, &img, &in_order(&img), &sig).unwrap();
    let other = sign_with(&other_key(), &img);
    d.boot.set_signature(&other).unwrap();
    d.trial_boot(&file(img.len())).unwrap();
    assert_eq!(
        board.peek_descriptor(UPPER).unwrap().signature_bytes(),
        Some(&other[..])
    );
}

/// Accepts any signature (to reach the length check).
struct AcceptAll;

impl ImageVerifier for AcceptAll {
    fn kind(&self) -> SignatureKind {
        SignatureKind::SHA256_ECDSA
    }
    fn begin(&mut self, _file: &FileInfo<'_>) {}
    fn update(&mut self, _data: &[u8]) {}
    async fn finish(&mut self, _signature: &[u8]) -> Result<(), PalError> {
        Ok(())
    }
}

#[test]
fn a_signature_the_descriptor_cannot_carry_fails_the_verification() {
    let slot = SignatureSlot::new();
    let mut v = SignatureCapture::new(AcceptAll, &slot);
    v.begin(&file(10));
    let e = block_on(v.finish(&[0x30; 257])).unwrap_err();
    assert_eq!(
        (e.kind(), e.sub()),
        (PalErrorKind::SignatureCheckFailed, SUB_SIGNATURE_TOO_LONG)
    );
    assert!(slot.is_empty());
    block_on(v.finish(&[0x30; 256])).unwrap();
    assert_eq!(slot.len(), 256);
}
