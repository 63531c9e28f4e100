//! The host flow re-blocks `AT+OTA READ` chunks for flash storage: READ sizes that are not
//! multiples of the write unit (1000-byte caps, 2 KB caps over 512-byte rows, a 7-byte tail)
//! land byte for byte in a storage that refuses unaligned writes.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod fake;

use fake::{file, image, Fake, FakeUart, Kind, TestClock};
use ota_expresslink::*;
use ota_pal_traits::sim::{block_on, SimConfig, SimDevice};
use ota_pal_traits::{
    BootControl, FileInfo, ImageStorage, NorFlashImageStorage, PalError, PalErrorKind,
    PlatformImageState,
};

/// PSoC 6-like flash: 512-byte write rows, 4 KiB erase sectors.
const W: usize = 512;
const FLASH: usize = 64 * 1024;
const RX: usize = read_line_len(4096);

/// Storage that checks alignment itself, before the NOR storage does: every block must start
/// on a write unit and end on one, except the file's last; it also records each write.
struct AlignedOnly<S> {
    inner: S,
    size: u32,
    writes: Vec<(u32, usize)>,
}

impl<S: ImageStorage> ImageStorage for AlignedOnly<S> {
    fn capacity(&self) -> u32 {
        self.inner.capacity()
    }
    async fn prepare(&mut self, file: &FileInfo<'_>) -> Result<(), PalError> {
        self.size = file.size;
        self.inner.prepare(file).await
    }
    async fn resume(&mut self, file: &FileInfo<'_>) -> Result<(), PalError> {
        self.inner.resume(file).await
    }
    async fn write(&mut self, offset: u32, data: &[u8]) -> Result<(), PalError> {
        let end = offset as usize + data.len();
        if offset as usize % W != 0 || (data.len() % W != 0 && end != self.size as usize) {
            return Err(PalError::new(PalErrorKind::FileClose));
        }
        self.writes.push((offset, data.len()));
        self.inner.write(offset, data).await
    }
    async fn read(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), PalError> {
        self.inner.read(offset, buf).await
    }
    async fn abort(&mut self) -> Result<(), PalError> {
        self.inner.abort().await
    }
}

struct Boot(Option<u32>);

impl BootControl for Boot {
    async fn platform_state(&mut self) -> Result<PlatformImageState, PalError> {
        Ok(PlatformImageState::Valid)
    }
    async fn request_trial_boot(&mut self, file: &FileInfo<'_>) -> Result<(), PalError> {
        self.0 = Some(file.size);
        Ok(())
    }
    async fn confirm(&mut self) -> Result<(), PalError> {
        Ok(())
    }
    async fn reject(&mut self) -> Result<(), PalError> {
        Ok(())
    }
}

/// Hashes nothing, accepts everything: these tests are about the bytes stored.
struct NoCheck;

impl ota_pal_traits::ImageVerifier for NoCheck {
    fn kind(&self) -> ota_pal_traits::SignatureKind {
        ota_pal_traits::SignatureKind::from_key("sig-sha256-ecdsa").unwrap()
    }
    fn begin(&mut self, _file: &FileInfo<'_>) {}
    fn update(&mut self, _data: &[u8]) {}
    async fn finish(&mut self, _signature: &[u8]) -> Result<(), PalError> {
        Ok(())
    }
}

struct Run {
    result: Result<HostReport, Error<core::convert::Infallible>>,
    flash: Vec<u8>,
    writes: Vec<(u32, usize)>,
    trial: Option<u32>,
    commands: usize,
}

/// One host update of `img` from a module whose READs return at most `max_read` bytes, the
/// host asking `read_size` per READ, into 512-byte-row flash, staged through `stage` bytes
/// (`None`: the default `host_update`).
fn run(mut fake: Fake, img: &[u8], size: u32, read_size: u32, stage: Option<usize>) -> Run {
    fake.propose(Kind::Host, "fw 2.0", img);
    let dev = SimDevice::new(vec![0xFFu8; FLASH], SimConfig::new(W, 4096)).unwrap();
    let flash = dev.view::<W, 4096>(0, FLASH as u32).unwrap();
    let mut storage = AlignedOnly {
        inner: NorFlashImageStorage::new(flash, 0, FLASH as u32, 0xFF).unwrap(),
        size: 0,
        writes: Vec::new(),
    };
    let mut boot = Boot(None);
    let cfg = Config {
        read_size,
        max_polls: 20,
        ..Config::default()
    };
    let mut el: ExpressLink<FakeUart, TestClock, RX> =
        ExpressLink::new(FakeUart(fake), TestClock::default(), cfg);
    let job = HostJob {
        file: file(size),
        signature: Some(b"sig"),
    };
    let result = block_on(async {
        match stage {
            None => {
                el.host_update(&job, &mut AcceptAll, &mut storage, &mut NoCheck, &mut boot)
                    .await
            }
            Some(n) => {
                let mut buf = vec![0u8; n];
                el.host_update_staged(
                    &job,
                    &mut AcceptAll,
                    &mut storage,
                    &mut NoCheck,
                    &mut boot,
                    &mut buf,
                )
                .await
            }
        }
    });
    let (FakeUart(fake), _) = el.into_parts();
    Run {
        result,
        flash: dev.inspect(|m| m.to_vec()).unwrap(),
        writes: storage.writes,
        trial: boot.0,
        commands: fake.commands().len(),
    }
}

fn assert_stored(r: &Run, img: &[u8]) {
    let rep = r.result.as_ref().unwrap();
    assert_eq!(rep.bytes as usize, img.len());
    assert!(r.flash[..img.len()] == img[..], "stored image differs");
    assert_eq!(r.trial, Some(img.len() as u32));
    // Every byte written exactly once, in order.
    let mut at = 0u32;
    for &(off, len) in &r.writes {
        assert_eq!(off, at, "{:?}", r.writes);
        at += len as u32;
    }
    assert_eq!(at as usize, img.len());
}

#[test]
fn thousand_byte_reads_into_512_byte_rows() {
    // 20 full rows and a 7-byte tail, read 1000 bytes at a time.
    let img = image(20 * W + 7);
    let mut fake = Fake::new(Dialect::Modern);
    fake.max_read = 1000;
    let r = run(fake, &img, img.len() as u32, 2048, None);
    assert_stored(&r, &img);
    let rep = r.result.as_ref().unwrap();
    assert_eq!(rep.chunks, 11);
    // Blocks of the default stage size, the 7-byte tail last.
    assert!(r.writes[..r.writes.len() - 1]
        .iter()
        .all(|&(_, len)| len == DEFAULT_STAGE_LEN));
    assert_eq!(*r.writes.last().unwrap(), (20 * W as u32, 7));
}

#[test]
fn two_kib_caps_are_written_without_copy_and_tail_last() {
    // The CCM's 2 KB cap is 4 rows: whole chunks go straight to the storage.
    let img = image(9 * 1024 + 7);
    let r = run(
        Fake::new(Dialect::Modern),
        &img,
        img.len() as u32,
        2048,
        None,
    );
    assert_stored(&r, &img);
    assert_eq!(
        r.writes,
        vec![
            (0, 2048),
            (2048, 2048),
            (4096, 2048),
            (6144, 2048),
            (8192, 1024),
            (9216, 7)
        ]
    );
}

#[test]
fn odd_read_sizes_with_a_caller_stage() {
    for (max_read, stage) in [(1, 512), (7, 1024), (333, 512), (1000, 2048), (2047, 4096)] {
        let img = image(12 * W + 7);
        let mut fake = Fake::new(Dialect::Modern);
        fake.max_read = max_read;
        let r = run(fake, &img, img.len() as u32, 2048, Some(stage));
        assert_stored(&r, &img);
        assert!(
            r.writes.iter().all(|&(off, _)| off as usize % stage == 0),
            "{max_read}/{stage}: {:?}",
            r.writes
        );
    }
}

#[test]
fn legacy_size_hint_and_two_digit_checksums_restaged() {
    // Job size unknown: the `OTA? 5 {size}` hint sizes the file, so the tail is its end.
    let img = image(7 * W + 7);
    let mut fake = Fake::new(Dialect::Legacy);
    fake.max_read = 1000;
    let r = run(fake, &img, 0, 2048, Some(W));
    assert_stored(&r, &img);
    assert_eq!(r.result.as_ref().unwrap().sum8_chunks, 4);
}

#[test]
fn a_corrupted_chunk_mid_stage_is_reread_from_the_bytes_received() {
    let img = image(10 * W + 7);
    let mut fake = Fake::new(Dialect::Modern);
    fake.max_read = 1000;
    fake.corrupt_reads = [1, 3].into();
    fake.corrupt_data = [5].into();
    let r = run(fake, &img, img.len() as u32, 2048, None);
    assert_stored(&r, &img);
    assert_eq!(r.result.as_ref().unwrap().retries, 3);
}

#[test]
fn a_stage_that_is_not_a_multiple_of_the_write_unit_is_refused_by_the_storage() {
    let img = image(4 * W + 7);
    let mut fake = Fake::new(Dialect::Modern);
    fake.max_read = 1000;
    let r = run(fake, &img, img.len() as u32, 2048, Some(W + 1));
    assert!(matches!(r.result, Err(Error::Pal(_))), "{:?}", r.result);
    assert_eq!(r.trial, None);
}

#[test]
fn an_empty_stage_fails_before_any_command() {
    let img = image(100);
    let r = run(
        Fake::new(Dialect::Modern),
        &img,
        img.len() as u32,
        2048,
        Some(0),
    );
    assert_eq!(r.result.unwrap_err(), Error::Codec(CodecError::BufferFull));
    assert_eq!(r.commands, 0);
    assert!(r.writes.is_empty());
}

#[test]
fn more_bytes_than_announced_is_a_size_mismatch_not_a_storage_error() {
    let img = image(3 * W + 7);
    let r = run(Fake::new(Dialect::Modern), &img, 3 * W as u32, 2048, None);
    assert!(
        matches!(r.result, Err(Error::SizeMismatch { expected, .. }) if expected == 3 * W as u32),
        "{:?}",
        r.result
    );
    let img = image(3 * W + 7);
    let r = run(Fake::new(Dialect::Modern), &img, 4 * W as u32, 2048, None);
    assert!(
        matches!(r.result, Err(Error::SizeMismatch { got, .. }) if got == 3 * W as u32 + 7),
        "{:?}",
        r.result
    );
    assert_eq!(r.trial, None);
}
