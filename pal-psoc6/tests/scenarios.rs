//! One test per flow, against the simulated Cypress MCUboot of both presets.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;
use common::*;

use ota_pal_traits::sim::block_on;
use ota_pal_traits::{BootControl, ImageStorage, PalErrorKind, PlatformImageState};
use pal_psoc6::boot::{SUB_BAD_MAGIC, SUB_NO_ROLLBACK};
use pal_psoc6::sim::BootOutcome;
use pal_psoc6::trailer::{SwapType, MAGIC};
use pal_psoc6::{Config, PendingMode};

const SWAP: Config = Config::V1_8_SWAP;
const OVER: Config = Config::V1_5_0_OVERWRITE;

fn tail(dev: &Dev, area: &pal_psoc6::Area) -> Vec<u8> {
    bytes(dev, area.end_offset() - 48, 48)
}

#[test]
fn factory_image_boots_and_reads_valid() {
    for cfg in [SWAP, OVER] {
        let dev = device(&cfg);
        assert_eq!(running(reboot(&dev, cfg)), OLD);
        let (_s, mut b) = pal(&dev, cfg);
        assert_eq!(state(&mut b), PlatformImageState::Valid);
    }
}

#[test]
fn update_confirms_after_self_test() {
    for cfg in [SWAP, OVER] {
        let dev = device(&cfg);
        let new = image(NEW, 5000);
        {
            let (mut s, mut b) = pal(&dev, cfg);
            stage(&mut s, &mut b, &new).unwrap();
            assert_eq!(
                state(&mut b),
                PlatformImageState::Valid,
                "staged, not yet booted"
            );
        }
        let o = reboot(&dev, cfg);
        assert!(
            matches!(o, BootOutcome::Booted { version: NEW, .. }),
            "{o:?}"
        );
        let (_s, mut b) = pal(&dev, cfg);
        assert_eq!(state(&mut b), PlatformImageState::PendingCommit);
        block_on(b.confirm()).unwrap();
        assert_eq!(state(&mut b), PlatformImageState::Valid);
        // The confirmation is the anycloud 5.x bytes: MAGIC at S-16, 0x01 at S-24.
        let t = tail(&dev, &cfg.primary);
        assert_eq!(&t[32..], &MAGIC);
        assert_eq!(&t[24..32], &[1, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(running(reboot(&dev, cfg)), NEW);
        assert_eq!(running(reboot(&dev, cfg)), NEW);
        let (_s, mut b) = pal(&dev, cfg);
        assert_eq!(state(&mut b), PlatformImageState::Valid);
        assert_eq!(
            block_on(b.confirm()).unwrap_err().kind(),
            PalErrorKind::CommitFailed
        );
    }
}

#[test]
fn reset_without_confirm_reverts() {
    let dev = device(&SWAP);
    let (mut s, mut b) = pal(&dev, SWAP);
    stage(&mut s, &mut b, &image(NEW, 5000)).unwrap();
    assert!(matches!(
        reboot(&dev, SWAP),
        BootOutcome::Booted {
            version: NEW,
            swap: SwapType::Test,
            ..
        }
    ));
    // No confirm: the next reset swaps back.
    let o = reboot(&dev, SWAP);
    assert!(
        matches!(
            o,
            BootOutcome::Booted {
                version: OLD,
                swap: SwapType::Revert,
                ..
            }
        ),
        "{o:?}"
    );
    assert_eq!(state(&mut b), PlatformImageState::Valid);
    assert_eq!(running(reboot(&dev, SWAP)), OLD);
}

#[test]
fn rejected_update_rolls_back_to_old_image() {
    let dev = device(&SWAP);
    let (mut s, mut b) = pal(&dev, SWAP);
    stage(&mut s, &mut b, &image(NEW, 5000)).unwrap();
    assert_eq!(running(reboot(&dev, SWAP)), NEW);
    assert_eq!(state(&mut b), PlatformImageState::PendingCommit);
    block_on(b.reject()).unwrap();
    assert_eq!(state(&mut b), PlatformImageState::Invalid);
    assert_eq!(
        block_on(b.confirm()).unwrap_err().kind(),
        PalErrorKind::CommitFailed
    );
    assert_eq!(running(reboot(&dev, SWAP)), OLD);
    assert_eq!(
        running(reboot(&dev, SWAP)),
        OLD,
        "the secondary is not re-pended"
    );
    let (_s, mut b) = pal(&dev, SWAP);
    assert_eq!(state(&mut b), PlatformImageState::Valid);
}

#[test]
fn staged_update_withdrawn_by_reject_keeps_old_image() {
    for cfg in [SWAP, OVER] {
        let dev = device(&cfg);
        let (mut s, mut b) = pal(&dev, cfg);
        stage(&mut s, &mut b, &image(NEW, 5000)).unwrap();
        block_on(b.reject()).unwrap();
        assert_eq!(tail(&dev, &cfg.secondary), vec![0; 48]);
        assert_eq!(running(reboot(&dev, cfg)), OLD);
    }
}

#[test]
fn overwrite_only_reject_after_copy_cannot_roll_back() {
    let dev = device(&OVER);
    let (mut s, mut b) = pal(&dev, OVER);
    stage(&mut s, &mut b, &image(NEW, 5000)).unwrap();
    assert!(matches!(
        reboot(&dev, OVER),
        BootOutcome::Booted {
            version: NEW,
            swap: SwapType::Perm,
            ..
        }
    ));
    assert_eq!(state(&mut b), PlatformImageState::PendingCommit);
    let e = block_on(b.reject()).unwrap_err();
    assert_eq!(
        (e.kind(), e.sub()),
        (PalErrorKind::RejectFailed, SUB_NO_ROLLBACK)
    );
    // No reset loop: the image no longer reads as pending after a reset.
    assert_eq!(running(reboot(&dev, OVER)), NEW);
    let (_s, mut b) = pal(&dev, OVER);
    assert_eq!(state(&mut b), PlatformImageState::Valid);
}

#[test]
fn overwrite_copy_erases_the_secondary_trailer() {
    let dev = device(&OVER);
    let (mut s, mut b) = pal(&dev, OVER);
    stage(&mut s, &mut b, &image(NEW, 5000)).unwrap();
    let t = tail(&dev, &OVER.secondary);
    // anycloud 1.x boot_set_pending(1): swap_info 0x03 at S-40, image_ok 0x01 at S-24, MAGIC.
    assert_eq!(&t[..8], &[0; 8]);
    assert_eq!(&t[8..16], &[3, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(&t[16..24], &[0; 8]);
    assert_eq!(&t[24..32], &[1, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(&t[32..], &MAGIC);
    assert_eq!(running(reboot(&dev, OVER)), NEW);
    assert_eq!(tail(&dev, &OVER.secondary), vec![0; 48]);
}

#[test]
fn pending_modes_write_their_bytes() {
    for (mode, swap_info, image_ok) in [
        (PendingMode::MagicOnly, 0u8, 0u8),
        (PendingMode::Test, 2, 0),
        (PendingMode::Permanent, 3, 1),
    ] {
        let cfg = SWAP.with_pending(mode);
        let dev = device(&cfg);
        let (mut s, mut b) = pal(&dev, cfg);
        stage(&mut s, &mut b, &image(NEW, 2000)).unwrap();
        let t = tail(&dev, &cfg.secondary);
        assert_eq!(&t[32..], &MAGIC);
        assert_eq!(t[8], swap_info);
        assert_eq!(t[24], image_ok);
        assert_eq!(&t[..8], &[0; 8]);
        assert_eq!(t[16], 0);
        // Only the 48-byte tail of the trailer row changed.
        let row = bytes(&dev, cfg.secondary.trailer_row_offset(), 512);
        assert!(row[..512 - 48].iter().all(|&x| x == 0));
    }
}

#[test]
fn permanent_swap_needs_no_confirm() {
    let cfg = SWAP.with_pending(PendingMode::Permanent);
    let dev = device(&cfg);
    let (mut s, mut b) = pal(&dev, cfg);
    stage(&mut s, &mut b, &image(NEW, 2000)).unwrap();
    assert!(matches!(
        reboot(&dev, cfg),
        BootOutcome::Booted {
            version: NEW,
            swap: SwapType::Perm,
            ..
        }
    ));
    assert_eq!(state(&mut b), PlatformImageState::Valid);
    assert_eq!(running(reboot(&dev, cfg)), NEW);
}

#[test]
fn pending_request_is_idempotent_and_refuses_a_bad_magic() {
    let dev = device(&SWAP);
    let (mut s, mut b) = pal(&dev, SWAP);
    stage(&mut s, &mut b, &image(NEW, 2000)).unwrap();
    let before = dev.stats().unwrap().mutating();
    block_on(b.request_trial_boot(&file_of(2000))).unwrap();
    assert_eq!(
        dev.stats().unwrap().mutating(),
        before,
        "GOOD magic: nothing written"
    );
    let at = SWAP.secondary.end_offset() as usize - 16;
    dev.modify(|m| m[at] = 0x55).unwrap();
    let e = block_on(b.request_trial_boot(&file_of(2000))).unwrap_err();
    assert_eq!(
        (e.kind(), e.sub()),
        (PalErrorKind::ActivateFailed, SUB_BAD_MAGIC)
    );
}

#[test]
fn corrupted_secondary_is_not_booted() {
    for cfg in [SWAP, OVER] {
        let dev = device(&cfg);
        let (mut s, mut b) = pal(&dev, cfg);
        stage(&mut s, &mut b, &image(NEW, 5000)).unwrap();
        let at = cfg.secondary.offset() as usize + 0x500;
        dev.modify(|m| m[at] ^= 0x40).unwrap();
        let o = reboot(&dev, cfg);
        assert!(
            matches!(
                o,
                BootOutcome::Booted {
                    version: OLD,
                    swap: SwapType::None,
                    ..
                }
            ),
            "{o:?}"
        );
        assert_eq!(tail(&dev, &cfg.secondary), vec![0; 48]);
    }
}

#[test]
fn bad_signature_reads_invalid_and_cannot_be_confirmed() {
    for cfg in [SWAP, OVER] {
        let dev = device(&cfg);
        let (mut s, mut b) = pal(&dev, cfg);
        let new = image(NEW, 3000);
        download(&mut s, &new).unwrap();
        let mut sig = aws_sig(&new);
        let last = sig.len() - 1;
        sig[last] ^= 1;
        let e = close(&mut s, &mut b, new.len(), &sig).unwrap_err();
        assert_eq!(e.kind(), PalErrorKind::SignatureCheckFailed);
        assert_eq!(state(&mut b), PlatformImageState::Invalid);
        assert_eq!(
            block_on(b.confirm()).unwrap_err().kind(),
            PalErrorKind::CommitFailed
        );
        block_on(s.abort()).unwrap();
        assert_eq!(running(reboot(&dev, cfg)), OLD);
    }
}

#[test]
fn image_signed_by_another_mcuboot_key_fails_close() {
    let dev = device(&SWAP);
    let (mut s, mut b) = pal(&dev, SWAP);
    let mut new = image(NEW, 3000);
    // Re-sign with another MCUboot key: the job signature is fine, the MCUboot TLVs are not.
    let other = p256::ecdsa::SigningKey::from_slice(&[0x33; 32]).unwrap();
    let payload = new[0x400..0x400 + 3000].to_vec();
    let mut out = vec![0u8; 8192];
    let n = pal_psoc6::image::build_signed_image(&payload, NEW, 0x400, &other, &mut out).unwrap();
    new = out[..n].to_vec();
    download(&mut s, &new).unwrap();
    let e = close(&mut s, &mut b, new.len(), &aws_sig(&new)).unwrap_err();
    assert_eq!(e.kind(), PalErrorKind::SignatureCheckFailed);
    assert_eq!(state(&mut b), PlatformImageState::Invalid);
}

#[test]
fn prepare_refuses_while_a_swap_is_on_trial() {
    let dev = device(&SWAP);
    let (mut s, mut b) = pal(&dev, SWAP);
    stage(&mut s, &mut b, &image(NEW, 3000)).unwrap();
    assert_eq!(running(reboot(&dev, SWAP)), NEW);
    let e = block_on(s.prepare(&file_of(100))).unwrap_err();
    assert_eq!(e.kind(), PalErrorKind::RxFileCreateFailed);
    let e = block_on(b.request_trial_boot(&file_of(100))).unwrap_err();
    assert_eq!(e.kind(), PalErrorKind::ActivateFailed);
    // The revert copy is intact.
    assert_eq!(running(reboot(&dev, SWAP)), OLD);
}

#[test]
fn back_to_back_updates() {
    for cfg in [SWAP, OVER] {
        let dev = device(&cfg);
        for minor in 1..=3u8 {
            let v = pal_psoc6::ImageVersion::new(1, minor, 0, 0);
            let (mut s, mut b) = pal(&dev, cfg);
            stage(&mut s, &mut b, &image(v, 4000 + minor as usize * 100)).unwrap();
            assert_eq!(running(reboot(&dev, cfg)), v);
            block_on(b.confirm()).unwrap();
            assert_eq!(running(reboot(&dev, cfg)), v);
        }
    }
}

/// Run `f` (PAL calls only) and assert it left the status partition and scratch as they were.
fn pal_only<R>(dev: &Dev, cfg: &Config, f: impl FnOnce() -> R) -> R {
    let status = cfg.status.unwrap();
    let snap = || {
        (
            bytes(dev, status.offset(), status.size as usize),
            bytes(dev, cfg.scratch.offset(), cfg.scratch.size as usize),
        )
    };
    let before = snap();
    let r = f();
    assert!(
        snap() == before,
        "a PAL operation wrote the status partition or scratch"
    );
    r
}

#[test]
fn pal_never_touches_status_partition_or_scratch() {
    let cfg = SWAP;
    let dev = device(&cfg);
    let status = cfg.status.unwrap();
    let (so, ss) = (status.offset() as usize, status.size as usize);
    let (co, cs) = (cfg.scratch.offset() as usize, cfg.scratch.size as usize);
    // A pattern the PAL could not write by accident (rows 0-1 are the sim bootloader's own
    // swap record and must stay erased between swaps).
    dev.modify(|m| {
        for (i, b) in m[so + 1024..so + ss].iter_mut().enumerate() {
            *b = (i % 251) as u8 ^ 0xA5;
        }
        for (i, b) in m[co..co + cs].iter_mut().enumerate() {
            *b = (i % 13) as u8 ^ 0x5A;
        }
    })
    .unwrap();
    let (mut s, mut b) = pal(&dev, cfg);
    // Every PAL operation, on every path; the resets (the bootloader) may use both areas.
    pal_only(&dev, &cfg, || {
        block_on(s.abort()).unwrap();
        download(&mut s, &image(NEW, 4000)).unwrap();
        block_on(s.abort()).unwrap();
        block_on(s.abort()).unwrap();
        let _ = close(&mut s, &mut b, 10, &[0x30, 0]);
        let _ = block_on(b.confirm());
        stage(&mut s, &mut b, &image(NEW, 4000)).unwrap();
    });
    assert_eq!(running(reboot(&dev, cfg)), NEW);
    pal_only(&dev, &cfg, || {
        block_on(b.platform_state()).unwrap();
        let _ = block_on(s.prepare(&file_of(100)));
        block_on(b.reject()).unwrap();
    });
    assert_eq!(running(reboot(&dev, cfg)), OLD);
    pal_only(&dev, &cfg, || {
        stage(&mut s, &mut b, &image(NEW, 4000)).unwrap()
    });
    assert_eq!(running(reboot(&dev, cfg)), NEW);
    pal_only(&dev, &cfg, || {
        block_on(b.confirm()).unwrap();
        let mut buf = [0u8; 64];
        block_on(s.read(0, &mut buf)).unwrap();
    });
    // The bootloader left the pattern beyond its record rows intact too.
    assert!(bytes(&dev, status.offset() + 1024, 16)
        .iter()
        .zip(0..)
        .all(|(&x, i)| x == (i % 251) as u8 ^ 0xA5));
}

#[test]
fn interrupted_swap_resumes_at_every_operation() {
    // Cut the power at every mutating operation of the bootloader's swap and of the revert.
    for revert in [false, true] {
        let mut n = 1;
        loop {
            let dev = device(&SWAP);
            let (mut s, mut b) = pal(&dev, SWAP);
            stage(&mut s, &mut b, &image(NEW, 9000)).unwrap();
            if revert {
                assert_eq!(running(reboot(&dev, SWAP)), NEW);
            }
            dev.cut_power_at(n, n).unwrap();
            let o = bootloader(&dev, SWAP).boot();
            if o != BootOutcome::PowerLost {
                dev.disarm().unwrap();
                break;
            }
            let o = reboot(&dev, SWAP);
            if revert {
                assert!(
                    matches!(o, BootOutcome::Booted { version: OLD, .. }),
                    "cut {n}: {o:?}"
                );
            } else {
                // The swap is finished (NEW on trial), unless the cut fell after the swap was
                // complete: then that was the trial's reset and MCUboot reverts, as it should.
                assert!(
                    matches!(
                        o,
                        BootOutcome::Booted {
                            version: NEW,
                            swap: SwapType::Test,
                            ..
                        }
                    ) || matches!(
                        o,
                        BootOutcome::Booted {
                            version: OLD,
                            swap: SwapType::Revert,
                            ..
                        }
                    ),
                    "cut {n}: {o:?}"
                );
            }
            n += 1;
        }
        assert!(n > 20, "the swap has many steps ({n})");
    }
}

#[test]
fn download_resumes_after_power_cut_mid_block() {
    // The agent's journal says blocks 0..3 landed; the cut tore block 3. After the reboot the
    // agent resumes and writes blocks 3.. again: the torn rows must be rewritten cleanly.
    for cfg in [SWAP, OVER] {
        let dev = device(&cfg);
        let new = image(NEW, 6000);
        let blocks: Vec<&[u8]> = new.chunks(BLOCK).collect();
        {
            let (mut s, _b) = pal(&dev, cfg);
            block_on(s.prepare(&file_of(new.len()))).unwrap();
            for (i, blk) in blocks.iter().enumerate().take(3) {
                block_on(s.write((i * BLOCK) as u32, blk)).unwrap();
            }
            dev.cut_power_at(1, 3).unwrap();
            assert!(block_on(s.write((3 * BLOCK) as u32, blocks[3])).is_err());
        }
        // Cy_Flash_WriteRow erases and programs in one operation: a cut during its erase phase
        // leaves bits set that the block does not have (the sim's torn program only sets bits
        // the data has, so add that garbage by hand).
        let at = cfg.secondary.offset() as usize + 3 * BLOCK;
        dev.modify(|m| m[at..at + 512].iter_mut().for_each(|b| *b |= 0x81))
            .unwrap();
        dev.power_on().unwrap();
        assert_eq!(running(reboot(&dev, cfg)), OLD);
        let (mut s, mut b) = pal(&dev, cfg);
        block_on(s.resume(&file_of(new.len()))).unwrap();
        for (i, blk) in blocks.iter().enumerate().skip(3) {
            block_on(s.write((i * BLOCK) as u32, blk)).unwrap();
        }
        close(&mut s, &mut b, new.len(), &aws_sig(&new)).unwrap();
        block_on(b.request_trial_boot(&file_of(new.len()))).unwrap();
        assert_eq!(running(reboot(&dev, cfg)), NEW);
    }
}
