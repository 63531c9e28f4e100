//! End-to-end flows against the scripted fake module, into `NorFlashImageStorage` over the sim
//! flash, with a P-256 image signature made in the test.
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
use ota_pal_traits::sim::{block_on, SimConfig, SimDevice, SimFlash};
use ota_pal_traits::{
    BootControl, FileInfo, ImageStorage, NorFlashImageStorage, PalError, PlatformImageState,
    Sha256EcdsaP256Verifier,
};
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};

const RX: usize = read_line_len(4096);
type Driver = ExpressLink<FakeUart, TestClock, RX>;

fn driver(fake: Fake, read_size: u32) -> Driver {
    let cfg = Config {
        read_size,
        max_polls: 20,
        ..Config::default()
    };
    ExpressLink::new(FakeUart(fake), TestClock::default(), cfg)
}

fn key() -> SigningKey {
    SigningKey::from_slice(&[0x42; 32]).unwrap()
}

fn sign(data: &[u8]) -> Vec<u8> {
    let sig: Signature = key().sign(data);
    sig.to_der().as_bytes().to_vec()
}

#[derive(Debug)]
struct Boot {
    state: PlatformImageState,
    trial: Option<u32>,
    confirmed: bool,
    rejected: bool,
}

impl Boot {
    fn new() -> Self {
        Self {
            state: PlatformImageState::Valid,
            trial: None,
            confirmed: false,
            rejected: false,
        }
    }
}

impl BootControl for Boot {
    async fn platform_state(&mut self) -> Result<PlatformImageState, PalError> {
        Ok(self.state)
    }
    async fn request_trial_boot(&mut self, file: &FileInfo<'_>) -> Result<(), PalError> {
        self.trial = Some(file.size);
        self.state = PlatformImageState::PendingCommit;
        Ok(())
    }
    async fn confirm(&mut self) -> Result<(), PalError> {
        self.confirmed = true;
        self.state = PlatformImageState::Valid;
        Ok(())
    }
    async fn reject(&mut self) -> Result<(), PalError> {
        self.rejected = true;
        self.state = PlatformImageState::Invalid;
        Ok(())
    }
}

const FLASH: usize = 64 * 1024;

struct Run {
    result: Result<HostReport, Error<core::convert::Infallible>>,
    fake: Fake,
    flash: Vec<u8>,
    boot: Boot,
}

fn run_host(mut fake: Fake, img: &[u8], size: u32, sig: Option<&[u8]>, read_size: u32) -> Run {
    fake.propose(Kind::Host, "fw 2.0", img);
    let dev = SimDevice::new(vec![0xFFu8; FLASH], SimConfig::new(16, 4096)).unwrap();
    let flash: SimFlash<'_, Vec<u8>, 16, 4096> = dev.view::<16, 4096>(0, FLASH as u32).unwrap();
    let mut storage = NorFlashImageStorage::new(flash, 0, FLASH as u32, 0xFF).unwrap();
    let mut verifier = Sha256EcdsaP256Verifier::from_verifying_key(*key().verifying_key());
    let mut boot = Boot::new();
    let mut el = driver(fake, read_size);
    let job = HostJob {
        file: file(size),
        signature: sig,
    };
    let result =
        block_on(el.host_update(&job, &mut AcceptAll, &mut storage, &mut verifier, &mut boot));
    let (FakeUart(fake), _) = el.into_parts();
    let flash = dev.inspect(|m| m.to_vec()).unwrap();
    Run {
        result,
        fake,
        flash,
        boot,
    }
}

#[test]
fn host_update_modern_byte_exact_with_signature() {
    let img = image(5000);
    let sig = sign(&img);
    let r = run_host(
        Fake::new(Dialect::Modern),
        &img,
        img.len() as u32,
        Some(&sig),
        2048,
    );
    let rep = r.result.unwrap();
    assert_eq!(&r.flash[..img.len()], &img[..]);
    assert_eq!(r.boot.trial, Some(5000));
    assert_eq!(rep.bytes, 5000);
    assert_eq!(
        (rep.chunks, rep.sum16_chunks, rep.sum8_chunks, rep.retries),
        (3, 3, 0, 0)
    );
    assert!(rep.signature_checked);
    let log = r.fake.commands();
    assert!(log.contains(&"AT+OTA ACCEPT"));
    assert!(log.contains(&"AT+OTA SEEK 0"));
    assert_eq!(
        log.iter().filter(|c| **c == "AT+OTA READ 2048").count(),
        4,
        "{log:?}"
    );
    let close = r.fake.position("AT+OTA CLOSE").unwrap();
    assert!(log[close + 1..].contains(&"AT+OTA?"));
    assert!(r.fake.closed && !r.fake.flushed);
    assert_eq!(r.fake.ota, 0);
}

#[test]
fn reads_until_zero_count_not_short_count() {
    // Ask 4096 per READ; the module caps at 2048: a short count is not the end.
    let img = image(9000);
    let r = run_host(Fake::new(Dialect::Modern), &img, 9000, None, 4096);
    let rep = r.result.unwrap();
    assert_eq!(&r.flash[..9000], &img[..]);
    assert_eq!(rep.chunks, 5);
    assert_eq!(
        r.fake
            .commands()
            .iter()
            .filter(|c| **c == "AT+OTA READ 4096")
            .count(),
        6
    );
    assert!(!rep.signature_checked);
}

#[test]
fn host_update_legacy_two_digit_checksum_lf() {
    let img = image(4500);
    let sig = sign(&img);
    // Size unknown to the job: taken from the v0.5 `OTA? 5 {size}` detail.
    let r = run_host(Fake::new(Dialect::Legacy), &img, 0, Some(&sig), 2048);
    let rep = r.result.unwrap();
    assert_eq!(&r.flash[..img.len()], &img[..]);
    assert_eq!((rep.bytes, rep.sum8_chunks), (4500, 3));
    assert_eq!(r.boot.trial, Some(4500));
}

#[test]
fn corrupted_chunks_are_reread_never_written() {
    let img = image(7000);
    let sig = sign(&img);
    let mut fake = Fake::new(Dialect::Modern);
    fake.corrupt_reads = [0, 2].into();
    fake.corrupt_data = [4].into();
    fake.blank_before = true;
    let r = run_host(fake, &img, 7000, Some(&sig), 2048);
    let rep = r.result.unwrap();
    assert_eq!(&r.flash[..7000], &img[..]);
    assert_eq!(rep.retries, 3);
    let log = r.fake.commands();
    assert!(log.contains(&"AT+OTA SEEK 2048"), "{log:?}");
}

#[test]
fn dropped_and_late_replies_recover() {
    let img = image(6000);
    let sig = sign(&img);
    let mut fake = Fake::new(Dialect::Modern);
    // Command indices: 0 OTA?, 1 ACCEPT, 2-4 OTA? polls, 5 SEEK 0, 6.. READs.
    fake.drop_replies = [7].into();
    fake.late_replies = [2, 9].into();
    let r = run_host(fake, &img, 6000, Some(&sig), 2048);
    let rep = r.result.unwrap();
    assert_eq!(&r.flash[..6000], &img[..]);
    assert!(rep.retries >= 2, "{rep:?}");
    assert_eq!(r.boot.trial, Some(6000));
}

#[test]
fn persistent_corruption_gives_up() {
    let img = image(3000);
    let mut fake = Fake::new(Dialect::Modern);
    fake.corrupt_reads = (1..40).collect();
    let r = run_host(fake, &img, 3000, None, 2048);
    assert_eq!(r.result.unwrap_err(), Error::TooManyRetries);
    assert_eq!(r.boot.trial, None);
    assert!(!r.fake.closed);
}

#[test]
fn bad_signature_refused_old_state_kept() {
    let img = image(5000);
    let mut other = img.clone();
    other[100] ^= 1;
    let sig = sign(&other);
    let r = run_host(Fake::new(Dialect::Modern), &img, 5000, Some(&sig), 2048);
    assert!(
        matches!(r.result, Err(Error::SignatureRejected(_))),
        "{:?}",
        r.result
    );
    assert_eq!(r.boot.trial, None);
    assert_eq!(r.boot.state, PlatformImageState::Valid);
    assert!(r.fake.flushed && !r.fake.closed);
    // The default abort policy erased what was written.
    assert!(r.flash[..5000].iter().all(|&b| b == 0xFF));
}

#[test]
fn wrong_size_is_refused() {
    // Shorter than announced (3008 = 2048 + 60 flash words, so every write is aligned).
    let img = image(3008);
    let r = run_host(Fake::new(Dialect::Modern), &img, 4000, None, 2048);
    assert_eq!(
        r.result.unwrap_err(),
        Error::SizeMismatch {
            expected: 4000,
            got: 3008
        }
    );
    assert_eq!(r.boot.trial, None);
    assert!(!r.fake.closed);
    // Longer than announced: refused as a size mismatch at the chunk that passes the end,
    // before the storage sees a byte past it.
    let r = run_host(Fake::new(Dialect::Modern), &image(5000), 3000, None, 2048);
    assert_eq!(
        r.result.unwrap_err(),
        Error::SizeMismatch {
            expected: 3000,
            got: 4096
        }
    );
    assert_eq!(r.boot.trial, None);
}

#[test]
fn confirm_after_reset_paths() {
    let mut boot = Boot::new();
    boot.state = PlatformImageState::PendingCommit;
    assert_eq!(
        block_on(confirm_after_reset(&mut boot, || true)).unwrap(),
        ConfirmOutcome::Confirmed
    );
    assert!(boot.confirmed);
    let mut boot = Boot::new();
    boot.state = PlatformImageState::PendingCommit;
    assert_eq!(
        block_on(confirm_after_reset(&mut boot, || false)).unwrap(),
        ConfirmOutcome::Rejected
    );
    let mut boot = Boot::new();
    assert_eq!(
        block_on(confirm_after_reset(&mut boot, || panic!(
            "no self-test when nothing is pending"
        )))
        .unwrap(),
        ConfirmOutcome::NothingPending(PlatformImageState::Valid)
    );
}

struct Policy {
    accept: bool,
    seen: Vec<u8>,
}

impl UpdatePolicy for Policy {
    fn accept_module_update(&mut self, version: &[u8]) -> bool {
        self.seen = version.to_vec();
        self.accept
    }
}

#[test]
fn module_update_both_dialects() {
    for dialect in [Dialect::Legacy, Dialect::Modern] {
        let mut fake = Fake::new(dialect);
        fake.propose(Kind::Module, "v2.5.7", &image(100));
        fake.events.push_back("3 0 CONLOST".into());
        let mut el = driver(fake, 2048);
        block_on(el.detect_dialect()).unwrap();
        assert_eq!(el.dialect(), dialect);
        let mut policy = Policy {
            accept: true,
            seen: vec![],
        };
        let out = block_on(el.module_update(&mut policy)).unwrap();
        assert_eq!(out, ModuleOutcome::Applied);
        let (FakeUart(fake), _) = el.into_parts();
        let want: &[u8] = if dialect == Dialect::Legacy {
            b"v2.5.7"
        } else {
            b"OTA PENDING"
        };
        assert_eq!(policy.seen, want);
        let apply = fake.position("AT+OTA APPLY").unwrap();
        let connect = fake.position("AT+CONNECT").unwrap();
        let startup = fake.log.iter().rposition(|c| c == "AT+EVENT?").unwrap();
        assert!(apply < startup && startup < connect, "{:?}", fake.log);
        assert!(fake.applied && fake.connected);
    }
}

#[test]
fn module_update_declined_flushes() {
    let mut fake = Fake::new(Dialect::Modern);
    fake.propose(Kind::Module, "v0.1", &image(10));
    let mut el = driver(fake, 2048);
    let out = block_on(el.module_update(&mut Policy {
        accept: false,
        seen: vec![],
    }))
    .unwrap();
    assert_eq!(out, ModuleOutcome::Declined);
    let (FakeUart(fake), _) = el.into_parts();
    assert!(fake.flushed && !fake.applied);
    assert!(fake.position("AT+OTA ACCEPT").is_none());
}

#[test]
fn typed_ota_errors() {
    // ERR23 on APPLY.
    let mut fake = Fake::new(Dialect::Modern);
    fake.propose(Kind::Module, "v2", &image(10));
    fake.apply_bad_signature = true;
    let mut el = driver(fake, 2048);
    let e = block_on(el.module_update(&mut AcceptAll)).unwrap_err();
    assert_eq!(e, Error::Module(ErrCode::InvalidSignature));
    // ERR21: ACCEPT with nothing pending.
    let mut el = driver(Fake::new(Dialect::Modern), 2048);
    assert_eq!(
        block_on(el.ota_accept()).unwrap_err(),
        Error::Module(ErrCode::InvalidOtaUpdate)
    );
    // ERR19: READ / SEEK with no host image.
    assert_eq!(
        block_on(el.ota_read(2048)).unwrap_err(),
        Error::Module(ErrCode::HostImageNotAvailable)
    );
    assert_eq!(
        block_on(el.ota_seek(0)).unwrap_err(),
        Error::Module(ErrCode::HostImageNotAvailable)
    );
    // ERR20: SEEK past the end; SEEK to exactly the end is fine and READ then gives the end.
    let mut fake = Fake::new(Dialect::Legacy);
    fake.image = image(100);
    fake.ota = 5;
    let mut el = driver(fake, 2048);
    assert_eq!(
        block_on(el.ota_seek(101)).unwrap_err(),
        Error::Module(ErrCode::InvalidAddress)
    );
    block_on(el.ota_seek(100)).unwrap();
    assert_eq!(block_on(el.ota_read(16)).unwrap(), ReadReply::End);
    block_on(el.ota_seek(1024 - 924)).unwrap();
    // Host flow on an idle module.
    let mut el = driver(Fake::new(Dialect::Modern), 2048);
    let dev = SimDevice::new(vec![0xFFu8; 8192], SimConfig::new(16, 4096)).unwrap();
    let mut storage =
        NorFlashImageStorage::new(dev.view::<16, 4096>(0, 8192).unwrap(), 0, 8192, 0xFF).unwrap();
    let mut v = Sha256EcdsaP256Verifier::from_verifying_key(*key().verifying_key());
    let job = HostJob {
        file: file(10),
        signature: None,
    };
    let e = block_on(el.host_update(&job, &mut AcceptAll, &mut storage, &mut v, &mut Boot::new()))
        .unwrap_err();
    assert_eq!(e, Error::UnexpectedState(OtaCode::Idle));
    let _ = block_on(storage.abort());
}

#[test]
fn job_vanishing_while_waiting() {
    let mut fake = Fake::new(Dialect::Modern);
    fake.propose(Kind::Host, "x", &image(10));
    fake.progress_polls = 100;
    let mut el = driver(fake, 2048);
    block_on(el.ota_accept()).unwrap();
    el.io_mut().0.ota = 0;
    assert_eq!(
        block_on(el.wait_ota_state(OtaCode::HostReady, &[OtaCode::InProgress])).unwrap_err(),
        Error::JobGone
    );
    el.io_mut().0.ota = 3;
    assert_eq!(
        block_on(el.wait_ota_state(OtaCode::HostReady, &[OtaCode::InProgress])).unwrap_err(),
        Error::NotReady
    );
}

#[test]
fn messaging_basics() {
    for dialect in [Dialect::Legacy, Dialect::Modern] {
        let mut fake = Fake::new(dialect);
        fake.inbox.push_back("hello\\Aworld".into());
        fake.events.push_back("1 1 MSG".into());
        let mut el = driver(fake, 2048);
        block_on(el.attention()).unwrap();
        block_on(el.connect()).unwrap();
        block_on(el.conf_topic(1, "/MyPubTopic")).unwrap();
        block_on(el.send(1, b"Hello World!")).unwrap();
        assert_eq!(
            block_on(el.send(0, b"x")).unwrap_err(),
            Error::Module(ErrCode::OutOfRange)
        );
        assert_eq!(
            block_on(el.send(2, b"x")).unwrap_err(),
            Error::Module(ErrCode::Undefined)
        );
        block_on(el.subscribe(1)).unwrap();
        let mut buf = [0u8; 32];
        let n = block_on(el.get(1, &mut buf)).unwrap().unwrap();
        assert_eq!(&buf[..n], b"hello\nworld");
        assert_eq!(block_on(el.get(1, &mut buf)).unwrap(), None);
        let ev = block_on(el.event()).unwrap().unwrap();
        assert_eq!((ev.kind, ev.param), (EventKind::Msg, Some(1)));
        assert_eq!(block_on(el.event()).unwrap(), None);
        let (FakeUart(fake), _) = el.into_parts();
        assert_eq!(fake.topics, vec![(1, "/MyPubTopic".to_string())]);
        assert_eq!(fake.sent, vec![(1, "Hello World!".to_string())]);
        assert_eq!(fake.log[0], "AT");
    }
    // A long value with newlines and backslashes goes out as one escaped line.
    let pem = format!(
        "-----BEGIN CERTIFICATE-----\n{}\\\r\n-----END CERTIFICATE-----\n",
        "A".repeat(300)
    );
    let mut el = driver(Fake::new(Dialect::Modern), 2048);
    block_on(el.conf("HOTAcertificate", pem.as_bytes())).unwrap();
    let (FakeUart(fake), _) = el.into_parts();
    let want = format!("AT+CONF HOTAcertificate=-----BEGIN CERTIFICATE-----\\A{}\\\\\\D\\A-----END CERTIFICATE-----\\A", "A".repeat(300));
    assert_eq!(fake.log, vec![want]);
}

#[test]
fn dialect_detection() {
    for d in [Dialect::Legacy, Dialect::Modern] {
        let mut el = driver(Fake::new(d), 2048);
        assert_eq!(block_on(el.detect_dialect()).unwrap(), d);
        // No TechSpec key: judged by what the lines look like (LF only or CR LF).
        let mut fake = Fake::new(d);
        fake.no_techspec = true;
        let mut el = driver(fake, 2048);
        assert_eq!(block_on(el.detect_dialect()).unwrap(), d);
    }
}

#[test]
fn timeout_then_resync() {
    let mut fake = Fake::new(Dialect::Modern);
    fake.late_replies = [0].into();
    let mut el = driver(fake, 2048);
    // The first reply is late: timeout. The late line is drained, not taken as the next reply.
    assert_eq!(block_on(el.ota_status()).unwrap_err(), Error::Timeout);
    el.io_mut().0.ota = 2;
    let s = block_on(el.ota_status()).unwrap();
    assert_eq!(s.code, OtaCode::HostProposed);
}

#[test]
fn ram_cost_for_2k_reads() {
    type El2k = ExpressLink<FakeUart, TestClock, RX_FOR_2K_READS>;
    let drv = core::mem::size_of::<El2k>()
        - core::mem::size_of::<FakeUart>()
        - core::mem::size_of::<TestClock>();
    let dev = SimDevice::new(vec![0xFFu8; FLASH], SimConfig::new(16, 4096)).unwrap();
    let mut storage = NorFlashImageStorage::new(
        dev.view::<16, 4096>(0, FLASH as u32).unwrap(),
        0,
        FLASH as u32,
        0xFF,
    )
    .unwrap();
    let mut verifier = Sha256EcdsaP256Verifier::from_verifying_key(*key().verifying_key());
    let mut boot = Boot::new();
    let mut el: El2k = ExpressLink::new(
        FakeUart(Fake::new(Dialect::Modern)),
        TestClock::default(),
        Config::default(),
    );
    let job = HostJob {
        file: file(0),
        signature: None,
    };
    let mut policy = AcceptAll;
    let host_fut = core::mem::size_of_val(&el.host_update(
        &job,
        &mut policy,
        &mut storage,
        &mut verifier,
        &mut boot,
    ));
    let module_fut = core::mem::size_of_val(&el.module_update(&mut policy));
    let read_fut = core::mem::size_of_val(&el.ota_read(2048));
    println!("driver state without UART/clock: {drv} B; host_update future: {host_fut} B; module_update future: {module_fut} B; ota_read future: {read_fut} B");
    assert!(drv <= RX_FOR_2K_READS + 64, "{drv}");
}

#[test]
fn extra_lines_read_or_drained() {
    let mut el = driver(Fake::new(Dialect::Modern), 2048);
    let r = block_on(el.command("CONF?", None, Some(b"HOTAcertificate pem"), 1000)).unwrap();
    assert_eq!(
        r,
        Response::Ok {
            extra_lines: Some(2),
            detail: b"pem"
        }
    );
    assert_eq!(
        block_on(el.read_extra_line()).unwrap(),
        b"-----BEGIN CERTIFICATE-----"
    );
    assert_eq!(
        block_on(el.read_extra_line()).unwrap(),
        b"-----END CERTIFICATE-----"
    );
    block_on(el.attention()).unwrap();
    // Not read: drained before the next command, which still gets its own reply.
    block_on(el.command("CONF?", None, Some(b"HOTAcertificate pem"), 1000)).unwrap();
    assert_eq!(block_on(el.ota_status()).unwrap().code, OtaCode::Idle);
    // Legacy announces nothing: the caller who asked for a PEM reads its lines.
    let mut el = driver(Fake::new(Dialect::Legacy), 2048);
    let r = block_on(el.command("CONF?", None, Some(b"HOTAcertificate pem"), 1000)).unwrap();
    assert_eq!(
        r,
        Response::Ok {
            extra_lines: None,
            detail: b"pem"
        }
    );
    assert_eq!(
        block_on(el.read_extra_line()).unwrap(),
        b"-----BEGIN CERTIFICATE-----"
    );
    assert_eq!(
        block_on(el.read_extra_line()).unwrap(),
        b"-----END CERTIFICATE-----"
    );
    assert_eq!(block_on(el.ota_status()).unwrap().code, OtaCode::Idle);
}

struct RefuseHost;
impl UpdatePolicy for RefuseHost {
    fn accept_module_update(&mut self, _: &[u8]) -> bool {
        true
    }
    fn accept_host_update(&mut self, metadata: &[u8]) -> bool {
        assert_eq!(metadata, b"HOTA PENDING");
        false
    }
}

#[test]
fn host_update_declined_flushes() {
    let mut fake = Fake::new(Dialect::Modern);
    fake.propose(Kind::Host, "meta", &image(10));
    let mut el = driver(fake, 2048);
    let dev = SimDevice::new(vec![0xFFu8; 8192], SimConfig::new(16, 4096)).unwrap();
    let mut storage =
        NorFlashImageStorage::new(dev.view::<16, 4096>(0, 8192).unwrap(), 0, 8192, 0xFF).unwrap();
    let mut v = Sha256EcdsaP256Verifier::from_verifying_key(*key().verifying_key());
    let mut boot = Boot::new();
    let job = HostJob {
        file: file(10),
        signature: None,
    };
    let e = block_on(el.host_update(&job, &mut RefuseHost, &mut storage, &mut v, &mut boot))
        .unwrap_err();
    assert_eq!(e, Error::Declined);
    let (FakeUart(fake), _) = el.into_parts();
    assert!(fake.flushed && fake.position("AT+OTA ACCEPT").is_none());
    assert_eq!(boot.trial, None);
}
