//! `ota module-sim` against the real host driver (`ota-expresslink`) over loopback TCP: the
//! driver's `embedded-io-async` UART is a tokio `TcpStream`, its clock tokio's timer. Host
//! updates go into `NorFlashImageStorage` over the sim flash with a P-256 check on the host.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::uart::{TokioClock, Uart};
use ota_expresslink::embedded_io_async::ErrorKind;
use ota_expresslink::{
    AcceptAll, Config, Dialect as HostDialect, Error, EventKind, ExpressLink, HostJob, HostReport,
    ModuleOutcome,
};
use ota_pal_traits::sim::{SimConfig as FlashConfig, SimDevice, SimFlash};
use ota_pal_traits::{
    BootControl, FileInfo, NorFlashImageStorage, PalError, PlatformImageState,
    Sha256EcdsaP256Verifier,
};
use ota_tool::module_sim::server::{self, Shared};
use ota_tool::module_sim::{
    Dialect, Emulator, JobKind, JobOutcome, LocalCloud, Proposal, SimConfig,
};
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const RX: usize = ota_expresslink::RX_FOR_2K_READS;
type Driver = ExpressLink<Uart, TokioClock, RX>;

fn config() -> Config {
    Config {
        command_timeout_ms: 1_000,
        connect_timeout_ms: 5_000,
        quiet_ms: 300,
        poll_interval_ms: 10,
        max_polls: 500,
        read_size: 2048,
        max_retries: 5,
    }
}

async fn driver(addr: std::net::SocketAddr) -> Driver {
    let s = TcpStream::connect(addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    ExpressLink::new(Uart(s), TokioClock, config())
}

/// Start the emulator's TCP server in this runtime.
async fn start(cfg: SimConfig, cloud: &LocalCloud) -> (std::net::SocketAddr, Shared) {
    let emu: Shared = Arc::new(Mutex::new(Emulator::new(cfg, Box::new(cloud.clone()))));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(server::serve(listener, emu.clone(), false));
    (addr, emu)
}

fn image(len: usize) -> Vec<u8> {
    let mut x = 0x9E37_79B9u32;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn key() -> SigningKey {
    SigningKey::from_slice(&[0x42; 32]).unwrap()
}

fn sign(data: &[u8]) -> Vec<u8> {
    let sig: Signature = key().sign(data);
    sig.to_der().as_bytes().to_vec()
}

fn host_job(cloud: &LocalCloud, img: &[u8]) {
    cloud.push_job(
        Proposal {
            job_id: "job-host".into(),
            kind: JobKind::Host,
            version: String::new(),
            metadata: "host fw 2.0".into(),
            signature: None,
        },
        img.to_vec(),
    );
}

struct Boot {
    state: PlatformImageState,
    trial: Option<u32>,
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
        self.state = PlatformImageState::Valid;
        Ok(())
    }
    async fn reject(&mut self) -> Result<(), PalError> {
        self.state = PlatformImageState::Invalid;
        Ok(())
    }
}

const FLASH: usize = 64 * 1024;

/// Poll `EVENT?` until an OTA event.
async fn wait_ota_event(el: &mut Driver) {
    for _ in 0..500 {
        if let Some(ev) = el.event().await.unwrap() {
            if ev.kind == EventKind::Ota {
                return;
            }
            continue;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no OTA event");
}

struct HostRun {
    result: Result<HostReport, Error<ErrorKind>>,
    flash: Vec<u8>,
    trial: Option<u32>,
}

/// The host flow: detect the dialect, connect, wait for the OTA event, `host_update` into the
/// sim flash with the host's P-256 check of `sig`.
async fn host_update(addr: std::net::SocketAddr, size: u32, sig: &[u8]) -> (HostRun, HostDialect) {
    let mut el = driver(addr).await;
    let dialect = el.detect_dialect().await.unwrap();
    el.connect().await.unwrap();
    wait_ota_event(&mut el).await;
    let dev = SimDevice::new(vec![0xFFu8; FLASH], FlashConfig::new(16, 4096)).unwrap();
    let flash: SimFlash<'_, Vec<u8>, 16, 4096> = dev.view::<16, 4096>(0, FLASH as u32).unwrap();
    let mut storage = NorFlashImageStorage::new(flash, 0, FLASH as u32, 0xFF).unwrap();
    let mut verifier = Sha256EcdsaP256Verifier::from_verifying_key(*key().verifying_key());
    let mut boot = Boot {
        state: PlatformImageState::Valid,
        trial: None,
    };
    let job = HostJob {
        file: FileInfo {
            index: 0,
            path: "host.bin",
            size,
            file_type: 202,
            attributes: 0,
            cert_path: "",
        },
        signature: Some(sig),
    };
    let result = el
        .host_update(&job, &mut AcceptAll, &mut storage, &mut verifier, &mut boot)
        .await;
    let flash = dev.inspect(|m| m.to_vec()).unwrap();
    (
        HostRun {
            result,
            flash,
            trial: boot.trial,
        },
        dialect,
    )
}

#[tokio::test]
async fn host_update_202_byte_exact_in_both_dialects() {
    let img = image(20_000);
    for (d, want_dialect) in [
        (Dialect::Ccm, HostDialect::Legacy),
        (Dialect::V13, HostDialect::Modern),
    ] {
        let cloud = LocalCloud::new();
        cloud.lock().download_polls = 5;
        host_job(&cloud, &img);
        let (addr, emu) = start(SimConfig::new(d, "modsim-1"), &cloud).await;
        let (run, dialect) = host_update(addr, img.len() as u32, &sign(&img)).await;
        assert_eq!(dialect, want_dialect);
        let report = run.result.unwrap();
        assert_eq!(run.flash.get(..img.len()).unwrap(), &img[..], "byte-exact");
        assert!(report.signature_checked);
        assert_eq!(report.bytes, img.len() as u32);
        assert_eq!(report.chunks, 10);
        match d {
            // A 2-digit checksum field is reported as the 8-bit rule, also when the 16-bit sum
            // happens to be below 256 (then both rules agree).
            Dialect::Ccm => assert_eq!(report.sum8_chunks, 10, "{report:?}"),
            Dialect::V13 => assert_eq!(report.sum16_chunks, 10),
        }
        assert_eq!(run.trial, Some(img.len() as u32));
        assert_eq!(
            cloud.reports(),
            vec![("job-host".into(), JobOutcome::Succeeded)]
        );
        assert_eq!(server::lock(&emu).ota_state(), 0);
    }
}

/// A host update through `faults` (v1.3); the image must arrive byte-exact.
async fn host_update_through(faults: &[&str]) -> Result<HostReport, Error<ErrorKind>> {
    let img = image(9_000);
    let mut cfg = SimConfig::new(Dialect::V13, "modsim-1");
    cfg.faults = faults.iter().map(|f| f.parse().unwrap()).collect();
    let cloud = LocalCloud::new();
    host_job(&cloud, &img);
    let (addr, _emu) = start(cfg, &cloud).await;
    let (run, _) = host_update(addr, img.len() as u32, &sign(&img)).await;
    if run.result.is_ok() {
        assert_eq!(run.flash.get(..img.len()).unwrap(), &img[..]);
    }
    run.result
}

#[tokio::test]
async fn host_update_recovers_from_each_line_fault() {
    // A cut line and a reply without EOL (it runs into the next one) cost one re-read each; an
    // unsolicited blank line with NUL/0xFF noise costs nothing; a reply 1.1 s late (after the
    // 1 s command timeout, inside the 300 ms quiet window) is drained and the chunk re-read.
    for (f, retries) in [
        ("truncate=3", 1),
        ("no-eol=3", 1),
        ("blank-line=3", 0),
        ("late=3:1100", 1),
    ] {
        let r = host_update_through(&[f]).await.unwrap();
        assert_eq!(r.retries, retries, "{f}: {r:?}");
    }
}

#[tokio::test]
async fn host_update_recovers_from_a_reply_later_than_the_drain_window() {
    // The READ reply arrives 1.5 s late: after the 1 s command timeout AND after the drain's
    // quiet window, so it lands as the "reply" to the next command (the SEEK back). The driver
    // must see that line is not a SEEK echo, resynchronise, and finish the download byte-exact
    // (it used to read every later reply one line behind and end in TooManyRetries).
    let r = host_update_through(&["late=3:1500"]).await.unwrap();
    assert!(r.retries >= 1, "{r:?}");
}

/// The `late` fault itself, on the raw TCP stream: the reply comes after the delay.
#[tokio::test]
async fn late_fault_holds_the_reply_back() {
    let mut cfg = SimConfig::new(Dialect::Ccm, "modsim-1");
    cfg.faults = vec!["late=1:700".parse().unwrap()];
    let cloud = LocalCloud::new();
    host_job(&cloud, &image(100));
    let (addr, _emu) = start(cfg, &cloud).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut buf = vec![0u8; 1024];
    for cmd in ["AT+CONNECT\n", "AT+OTA ACCEPT\n"] {
        s.write_all(cmd.as_bytes()).await.unwrap();
        let _ = s.read(&mut buf).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let t = std::time::Instant::now();
    s.write_all(b"AT+OTA READ 10\n").await.unwrap();
    let n = s.read(&mut buf).await.unwrap();
    assert!(
        buf[..n].starts_with(b"OK 0A "),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    assert!(t.elapsed() >= Duration::from_millis(700));
}

#[tokio::test]
async fn host_update_recovers_corrupted_dropped_and_short_chunks() {
    let img = image(9_000);
    let mut cfg = SimConfig::new(Dialect::V13, "modsim-1");
    cfg.faults = [
        "corrupt-checksum=2",
        "corrupt-data=4",
        "drop-response=6",
        "short-read=1024",
        "truncate=8",
        "blank-line=10",
        "no-eol=12",
    ]
    .iter()
    .map(|f| f.parse().unwrap())
    .collect();
    let cloud = LocalCloud::new();
    host_job(&cloud, &img);
    let (addr, _emu) = start(cfg, &cloud).await;
    let (run, _) = host_update(addr, img.len() as u32, &sign(&img)).await;
    let report = run.result.unwrap();
    assert_eq!(run.flash.get(..img.len()).unwrap(), &img[..]);
    // Checksum, data, dropped reply, cut line and the reply without EOL (the next reply runs
    // into it): one re-read each; the blank line and its noise cost nothing.
    assert_eq!(report.retries, 5, "{report:?}");
    assert_eq!(
        report.chunks, 9,
        "1024-byte chunks: a short count is not the end"
    );
    assert_eq!(
        cloud.reports(),
        vec![("job-host".into(), JobOutcome::Succeeded)]
    );
}

#[tokio::test]
async fn host_update_resumes_after_a_module_reset_mid_download() {
    let img = image(9_000);
    let mut cfg = SimConfig::new(Dialect::Ccm, "modsim-1");
    cfg.faults = vec!["reset-at=4096".parse().unwrap()];
    let cloud = LocalCloud::new();
    host_job(&cloud, &img);
    let (addr, emu) = start(cfg, &cloud).await;
    let (run, _) = host_update(addr, img.len() as u32, &sign(&img)).await;
    let report = run.result.unwrap();
    assert_eq!(run.flash.get(..img.len()).unwrap(), &img[..]);
    assert!(report.retries >= 1);
    assert_eq!(server::lock(&emu).boots(), 2);
}

#[tokio::test]
async fn bad_host_image_signature_is_refused() {
    let img = image(5_000);
    let cloud = LocalCloud::new();
    host_job(&cloud, &img);
    let (addr, emu) = start(SimConfig::new(Dialect::V13, "modsim-1"), &cloud).await;
    let mut other = img.clone();
    other[0] ^= 1;
    let (run, _) = host_update(addr, img.len() as u32, &sign(&other)).await;
    assert!(
        matches!(run.result, Err(Error::SignatureRejected(_))),
        "{:?}",
        run.result
    );
    assert_eq!(run.trial, None, "boot state untouched");
    let reports = cloud.reports();
    assert_eq!(reports.len(), 1);
    assert!(
        matches!(reports[0].1, JobOutcome::Failed(_)),
        "FLUSH → FAILED"
    );
    assert_eq!(server::lock(&emu).ota_state(), 0);
}

#[tokio::test]
async fn module_update_101_runs_the_new_version_after_apply_and_connect() {
    for d in [Dialect::Ccm, Dialect::V13] {
        let cloud = LocalCloud::new();
        cloud.lock().download_polls = 5;
        cloud.push_job(
            Proposal {
                job_id: "job-module".into(),
                kind: JobKind::Module,
                version: "2.1.0".into(),
                metadata: String::new(),
                signature: None,
            },
            image(50_000),
        );
        let (addr, emu) = start(SimConfig::new(d, "modsim-1"), &cloud).await;
        let mut el = driver(addr).await;
        el.detect_dialect().await.unwrap();
        assert_eq!(
            el.command_ok("CONF?", None, Some(b"Version"))
                .await
                .unwrap(),
            b"1.0.0"
        );
        el.connect().await.unwrap();
        wait_ota_event(&mut el).await;
        assert_eq!(
            el.module_update(&mut AcceptAll).await.unwrap(),
            ModuleOutcome::Applied
        );
        assert_eq!(
            el.command_ok("CONF?", None, Some(b"Version"))
                .await
                .unwrap(),
            b"2.1.0"
        );
        {
            let e = server::lock(&emu);
            assert_eq!(e.version(), "2.1.0");
            assert_eq!(e.boots(), 2);
            assert!(e.connected());
        }
        assert_eq!(
            cloud.reports(),
            vec![("job-module".into(), JobOutcome::Succeeded)]
        );
    }
}

#[tokio::test]
async fn module_apply_errors_surface_as_module_errors() {
    let mut cfg = SimConfig::new(Dialect::V13, "modsim-1");
    cfg.faults = vec!["err=apply:23".parse().unwrap()];
    let cloud = LocalCloud::new();
    cloud.push_job(
        Proposal {
            job_id: "job-module".into(),
            kind: JobKind::Module,
            version: "2.1.0".into(),
            metadata: String::new(),
            signature: None,
        },
        image(1000),
    );
    let (addr, emu) = start(cfg, &cloud).await;
    let mut el = driver(addr).await;
    el.connect().await.unwrap();
    wait_ota_event(&mut el).await;
    let r = el.module_update(&mut AcceptAll).await;
    assert!(
        matches!(
            r,
            Err(Error::Module(ota_expresslink::ErrCode::InvalidSignature))
        ),
        "{r:?}"
    );
    assert_eq!(server::lock(&emu).version(), "1.0.0");
}

/// The `ota module-sim` binary itself, with a local host job from files.
#[tokio::test]
async fn binary_serves_a_host_update_from_files() {
    use std::io::BufRead;
    let dir = std::env::temp_dir().join(format!("modsim-bin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let img = image(7_000);
    let path = dir.join("host.bin");
    std::fs::write(&path, &img).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ota"))
        .args([
            "module-sim",
            "--listen",
            "127.0.0.1:0",
            "--dialect",
            "v1.3",
            "--thing",
            "m1",
        ])
        .arg("--host-image")
        .arg(&path)
        .args(["--host-metadata", "from the CLI"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let first = rx.recv_timeout(Duration::from_secs(20)).unwrap();
    let addr: std::net::SocketAddr = first
        .strip_prefix("module-sim listening on ")
        .and_then(|r| r.split(' ').next())
        .unwrap()
        .parse()
        .unwrap();
    let (run, dialect) = host_update(addr, img.len() as u32, &sign(&img)).await;
    assert_eq!(dialect, HostDialect::Modern);
    run.result.unwrap();
    assert_eq!(run.flash.get(..img.len()).unwrap(), &img[..]);
    child.kill().unwrap();
    let _ = child.wait();
    let log: Vec<String> = rx.try_iter().collect();
    assert!(log.iter().any(|l| l.contains("SUCCEEDED")), "{log:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
