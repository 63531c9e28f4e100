//! `ota module-sim` with its MQTT cloud, end to end: `ota serve` (in-process) proposes a host
//! job (202) and a module job (101) to the module's thing over MQTT (Jobs + Streams); the
//! host driver (`ota-expresslink`) takes both over loopback TCP. Once with the embedded broker,
//! once through a real mosquitto (started on a free port; missing → the test fails naming
//! `scripts/setup.sh`).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::Mosquitto;
use ota_expresslink::embedded_io_async::{ErrorKind, ErrorType, Read, Write};
use ota_expresslink::{
    AcceptAll, Clock, Config, EventKind, ExpressLink, HostJob, ModuleOutcome, OtaCode,
};
use ota_pal_traits::sim::{SimConfig as FlashConfig, SimDevice, SimFlash};
use ota_pal_traits::{
    BootControl, FileInfo, NorFlashImageStorage, PalError, PlatformImageState,
    Sha256EcdsaP256Verifier,
};
use ota_tool::admin::AdminClient;
use ota_tool::cloud::{OtaFile, OtaUpdate, Protocol};
use ota_tool::keys;
use ota_tool::module_sim::mqtt::MqttCloud;
use ota_tool::module_sim::server::{self, Shared};
use ota_tool::module_sim::{Dialect, Emulator, SimConfig};
use ota_tool::serve::{MqttMode, ServeConfig, Server};
use p256::ecdsa::SigningKey;
use serde_json::Value as Json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const THING: &str = "ccm-module-1";

struct Uart(TcpStream);

impl ErrorType for Uart {
    type Error = ErrorKind;
}

impl Read for Uart {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, ErrorKind> {
        self.0.read(buf).await.map_err(|_| ErrorKind::Other)
    }
}

impl Write for Uart {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, ErrorKind> {
        self.0.write(buf).await.map_err(|_| ErrorKind::Other)
    }
    async fn flush(&mut self) -> Result<(), ErrorKind> {
        self.0.flush().await.map_err(|_| ErrorKind::Other)
    }
}

struct TokioClock;

impl Clock for TokioClock {
    async fn delay_ms(&mut self, ms: u32) {
        tokio::time::sleep(Duration::from_millis(u64::from(ms))).await;
    }
}

type Driver = ExpressLink<Uart, TokioClock, { ota_expresslink::RX_FOR_2K_READS }>;

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

fn image(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 ^ (i >> 8) as u8).collect()
}

fn key() -> SigningKey {
    SigningKey::from_slice(&[0x24; 32]).unwrap()
}

async fn call(server: &Server, method: &str, path: &str, body: Option<Json>) -> Json {
    let a = AdminClient {
        addr: server.admin_addr.to_string(),
        token: server.admin_token.clone(),
    };
    let (m, p) = (method.to_string(), path.to_string());
    tokio::task::spawn_blocking(move || a.call(&m, &p, body.as_ref()))
        .await
        .unwrap()
        .unwrap()
}

async fn create_job(server: &Server, id: &str, file_type: u32, path: &str, data: &[u8]) -> String {
    let update = OtaUpdate {
        id: Some(id.into()),
        things: vec![THING.into()],
        groups: Vec::new(),
        protocols: vec![Protocol::Mqtt],
        files: vec![OtaFile {
            data: data.to_vec(),
            filepath: Some(path.into()),
            file_type: Some(file_type),
            cert_file: Some("code-sign.crt".into()),
            signature: Some(keys::sign(&key(), data)),
        }],
    };
    let v = call(
        server,
        "POST",
        "/jobs",
        Some(serde_json::to_value(update).unwrap()),
    )
    .await;
    v["jobId"].as_str().unwrap().to_string()
}

async fn wait_status(server: &Server, job: &str, want: &str) {
    for _ in 0..200 {
        let v = call(server, "GET", &format!("/jobs/{job}"), None).await;
        if v["executions"][0]["status"] == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let v = call(server, "GET", &format!("/jobs/{job}"), None).await;
    panic!("{job} never {want}: {v}");
}

/// Wait for an OTA event that comes with the proposal `want` (stale events from an earlier
/// job are read and dropped: on the CCM dialect `EVENT?` gives the most recent first).
async fn wait_proposal(el: &mut Driver, want: OtaCode) {
    for _ in 0..2000 {
        let ota = matches!(el.event().await.unwrap(), Some(ev) if ev.kind == EventKind::Ota);
        if ota && el.ota_status().await.unwrap().code == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no OTA event with {want:?}");
}

async fn scenario(server: &Server, dialect: Dialect) {
    // The module and its UART.
    let cloud = MqttCloud::start(&server.mqtt_addr, THING).unwrap();
    let emu: Shared = Arc::new(Mutex::new(Emulator::new(
        SimConfig::new(dialect, THING),
        Box::new(cloud),
    )));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(server::serve(listener, emu.clone(), false));
    let s = TcpStream::connect(addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    let cfg = Config {
        command_timeout_ms: 2_000,
        poll_interval_ms: 20,
        max_polls: 1_000,
        quiet_ms: 100,
        ..Config::default()
    };
    let mut el: Driver = ExpressLink::new(Uart(s), TokioClock, cfg);
    el.detect_dialect().await.unwrap();

    // Host job (202), 3 stream batches.
    let host = image(150_000);
    let job = create_job(server, "host", 202, "host.bin", &host).await;
    el.connect().await.unwrap();
    wait_proposal(&mut el, OtaCode::HostProposed).await;
    let dev = SimDevice::new(vec![0xFFu8; 256 * 1024], FlashConfig::new(16, 4096)).unwrap();
    let flash: SimFlash<'_, Vec<u8>, 16, 4096> = dev.view::<16, 4096>(0, 256 * 1024).unwrap();
    let mut storage = NorFlashImageStorage::new(flash, 0, 256 * 1024, 0xFF).unwrap();
    let mut verifier = Sha256EcdsaP256Verifier::from_verifying_key(*key().verifying_key());
    let mut boot = Boot(None);
    let sig = keys::sign(&key(), &host);
    let sig = base64_decode(&sig);
    let hj = HostJob {
        file: FileInfo {
            index: 0,
            path: "host.bin",
            size: host.len() as u32,
            file_type: 202,
            attributes: 0,
            cert_path: "",
        },
        signature: Some(&sig),
    };
    let report = el
        .host_update(&hj, &mut AcceptAll, &mut storage, &mut verifier, &mut boot)
        .await
        .unwrap();
    assert!(report.signature_checked);
    assert_eq!(boot.0, Some(host.len() as u32));
    assert!(
        dev.inspect(|m| m[..host.len()] == host[..]).unwrap(),
        "byte-exact"
    );
    wait_status(server, &job, "SUCCEEDED").await;

    // Module job (101): the file path names the new version.
    let job = create_job(server, "module", 101, "2.0.0", &image(40_000)).await;
    wait_proposal(&mut el, OtaCode::ModuleProposed).await;
    assert_eq!(
        el.module_update(&mut AcceptAll).await.unwrap(),
        ModuleOutcome::Applied
    );
    assert_eq!(
        el.command_ok("CONF?", None, Some(b"Version"))
            .await
            .unwrap(),
        b"2.0.0"
    );
    wait_status(server, &job, "SUCCEEDED").await;
    assert_eq!(server::lock(&emu).boots(), 2);
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

async fn within<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(120), f)
        .await
        .expect("scenario bounded at 120 s")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn module_sim_through_ota_serve_with_the_embedded_broker() {
    let server = Server::start(ServeConfig::loopback()).await.unwrap();
    within(scenario(&server, Dialect::V13)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn module_sim_through_ota_serve_on_mosquitto() {
    let mosq = Mosquitto::start().await;
    let mut cfg = ServeConfig::loopback();
    cfg.mqtt = MqttMode::External {
        host: "127.0.0.1".into(),
        port: mosq.port,
    };
    let server = Server::start(cfg).await.unwrap();
    within(scenario(&server, Dialect::Ccm)).await;
    drop(server);
    drop(mosq);
}

/// The `ota module-sim --broker` binary against `ota serve`'s embedded broker: a host job read
/// out over raw AT commands, the job SUCCEEDED on CLOSE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_with_broker_takes_a_host_job_from_ota_serve() {
    use std::io::BufRead;
    let server = Server::start(ServeConfig::loopback()).await.unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ota"))
        .args(["module-sim", "--listen", "127.0.0.1:0", "--thing", THING])
        .args(["--broker", &server.mqtt_addr, "--dialect", "ccm"])
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
    let host = image(9_000);
    let job = create_job(&server, "bin", 202, "host.bin", &host).await;
    within(async {
        let s = TcpStream::connect(addr).await.unwrap();
        let (r, mut w) = s.into_split();
        let mut lines = tokio::io::BufReader::new(r);
        let mut at = async |cmd: &str| -> String {
            use tokio::io::AsyncBufReadExt;
            w.write_all(format!("{cmd}\n").as_bytes()).await.unwrap();
            let mut l = String::new();
            lines.read_line(&mut l).await.unwrap();
            l.trim_end().to_string()
        };
        assert_eq!(at("AT+CONNECT").await, "OK 1 CONNECTED");
        let mut state = String::new();
        for _ in 0..500 {
            state = at("AT+OTA?").await;
            if state.starts_with("OK 2 ") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            state.starts_with("OK 2 {"),
            "CCM detail = the job's file metadata: {state}"
        );
        assert_eq!(at("AT+OTA ACCEPT").await, "OK");
        for _ in 0..500 {
            state = at("AT+OTA?").await;
            if state.starts_with("OK 5") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(state, "OK 5 9000");
        let mut got = Vec::new();
        loop {
            let r = at("AT+OTA READ 2048").await;
            let parts: Vec<&str> = r.split(' ').collect();
            let n = usize::from_str_radix(parts[1], 16).unwrap();
            if n == 0 {
                break;
            }
            for i in 0..n {
                got.push(u8::from_str_radix(&parts[2][2 * i..2 * i + 2], 16).unwrap());
            }
        }
        assert_eq!(got, host);
        assert_eq!(at("AT+OTA CLOSE").await, "OK");
    })
    .await;
    wait_status(&server, &job, "SUCCEEDED").await;
    child.kill().unwrap();
    let _ = child.wait();
}
