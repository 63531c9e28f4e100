//! A download interrupted by a power cut at any flash operation resumes from the journal,
//! fetches only the blocks the journal does not report, and ends with an image whose
//! signature verifies.
#![cfg(feature = "sim")]
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

use ota_pal_traits::sim::{block_on, SimConfig, SimDevice};
use ota_pal_traits::{
    verify_stored_image, DownloadJournal, FileInfo, FlashJournal, ImageStorage, ImageVerifier,
    JournalHeader, NorFlashImageStorage, PalError, Sha256EcdsaP256Verifier,
};
use p256::ecdsa::{signature::Signer, Signature, SigningKey};

const BLOCK: u32 = 1024;
const SIZE: u32 = 10 * BLOCK - 300;
const SLOT: u32 = 16 * 1024;
const AREA: u32 = 4 * 1024;

fn file() -> FileInfo<'static> {
    FileInfo {
        index: 0,
        path: "",
        size: SIZE,
        file_type: 0,
        attributes: 0,
        cert_path: "",
    }
}

fn header() -> JournalHeader {
    JournalHeader {
        job_id: "AFR_OTA-resume".try_into().unwrap(),
        file_index: 0,
        file_size: SIZE,
        block_size: BLOCK,
        signature_digest: [0xA5; 32],
    }
}

fn image() -> Vec<u8> {
    (0..SIZE).map(|i| (i ^ (i >> 8)) as u8).collect()
}

/// Blocks arrive out of order, as they may from the stream service.
const ORDER: [u32; 10] = [2, 0, 1, 5, 3, 4, 9, 6, 8, 7];

fn block(img: &[u8], i: u32) -> &[u8] {
    let start = (i * BLOCK) as usize;
    &img[start..(start + BLOCK as usize).min(img.len())]
}

/// One boot of the device: load the journal, then store and record every block it does not
/// report. Returns the blocks it had to fetch, or the error that stopped it.
fn boot(chip: &SimDevice<Vec<u8>>, img: &[u8]) -> Result<Vec<u32>, PalError> {
    let slot = chip.view::<16, 1024>(0, SLOT).unwrap();
    let area = chip.view::<16, 1024>(SLOT, AREA).unwrap();
    let mut storage = NorFlashImageStorage::new(slot, 0, SLOT, 0xFF)?;
    let mut journal = FlashJournal::new(area, 0, AREA, 0xFF)?;
    block_on(async {
        let mut have = Vec::new();
        match journal.load(&mut |i| have.push(i)).await? {
            Some(h) => {
                assert_eq!(h, header(), "the journal never reports another download");
                storage.resume(&file()).await?;
            }
            None => {
                have.clear();
                storage.prepare(&file()).await?;
                journal.begin(&header()).await?;
            }
        }
        let mut fetched = Vec::new();
        for i in ORDER.iter().copied().filter(|i| !have.contains(i)) {
            storage.write(i * BLOCK, block(img, i)).await?;
            journal.record_block(i).await?;
            fetched.push(i);
        }
        Ok(fetched)
    })
}

fn verifies(chip: &SimDevice<Vec<u8>>, key: &SigningKey, sig: &Signature) -> bool {
    let slot = chip.view::<16, 1024>(0, SLOT).unwrap();
    let mut storage = NorFlashImageStorage::new(slot, 0, SLOT, 0xFF).unwrap();
    let point = key.verifying_key().to_encoded_point(false);
    let mut v = Sha256EcdsaP256Verifier::from_sec1(point.as_bytes()).unwrap();
    v.begin(&file());
    let mut scratch = [0u8; 333];
    let der = sig.to_der();
    block_on(verify_stored_image(
        &mut storage,
        &mut v,
        &file(),
        0,
        der.as_bytes(),
        &mut scratch,
    ))
    .is_ok()
}

#[test]
fn a_cut_at_any_operation_resumes_and_verifies() {
    let img = image();
    let key = SigningKey::from_slice(&[0x24; 32]).unwrap();
    let sig: Signature = key.sign(&img);

    let total = {
        let chip =
            SimDevice::new(vec![0xFF; (SLOT + AREA) as usize], SimConfig::new(16, 1024)).unwrap();
        assert_eq!(boot(&chip, &img).unwrap().len(), 10);
        assert!(verifies(&chip, &key, &sig));
        chip.stats().unwrap().mutating()
    };
    let mut resumed_with_savings = 0;
    for cut in 1..=total {
        let chip =
            SimDevice::new(vec![0xFF; (SLOT + AREA) as usize], SimConfig::new(16, 1024)).unwrap();
        chip.cut_power_at(cut, cut * 7919).unwrap();
        let first = boot(&chip, &img);
        assert!(first.is_err(), "cut {cut} of {total} hit nothing");
        chip.power_on().unwrap();
        let fetched = boot(&chip, &img).unwrap();
        if fetched.len() < 10 {
            resumed_with_savings += 1;
        }
        assert!(
            verifies(&chip, &key, &sig),
            "cut {cut}: the image does not verify"
        );
    }
    println!("{total} cut points, {resumed_with_savings} resumed with fewer blocks");
    // Most cuts come after some blocks were recorded: those reboots fetch fewer blocks.
    assert!(
        resumed_with_savings * 2 > total,
        "{resumed_with_savings} of {total}"
    );
}
