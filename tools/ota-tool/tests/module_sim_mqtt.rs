//! `ota module-sim` with its MQTT cloud, end to end: `ota serve` (in-process) proposes host jobs
//! (202) and module jobs (101) to the module's thing over MQTT; the module's cloud side is
//! ota-core's agent and driver; the host driver (`ota-expresslink`) takes the jobs over
//! loopback TCP and installs host images into pal-psoc6 over its simulated MCUboot. Once with
//! the embedded broker, once through a real mosquitto (started on a free port; missing → the
//! test fails naming `scripts/setup.sh`).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::uart::{TokioClock, Uart};
use common::Mosquitto;
use ota_core::wire::version::AppVersion;
use ota_expresslink::embedded_io_async::ErrorKind;
use ota_expresslink::{
    confirm_after_reset, AcceptAll, Config, ConfirmOutcome, Error, EventKind, ExpressLink, HostJob,
    HostReport, ModuleOutcome, OtaCode,
};
use ota_pal_traits::sim::SimDevice;
use ota_pal_traits::{FileInfo, Sha256EcdsaP256Verifier};
use ota_tool::admin::AdminClient;
use ota_tool::cloud::{OtaFile, OtaUpdate, Protocol};
use ota_tool::device::image::Behavior;
use ota_tool::device::psoc6_image;
use ota_tool::keys;
use ota_tool::module_sim::mqtt::MqttCloud;
use ota_tool::module_sim::server::{self, Shared};
use ota_tool::module_sim::{Dialect, Emulator, SimConfig};
use ota_tool::serve::{MqttMode, ServeConfig, Server};
use p256::ecdsa::SigningKey;
use pal_psoc6::sim::{flash_view, program_area, sim_config, BootOutcome, SimBootloader};
use pal_psoc6::trailer::SwapType;
use pal_psoc6::{Psoc6BootControl, Psoc6ImageStorage};
use serde_json::Value as Json;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const THING: &str = "ccm-module-1";

type Driver = ExpressLink<Uart, TokioClock, { ota_expresslink::RX_FOR_2K_READS }>;

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

/// Wait for the job's execution to reach `want`; returns the execution.
async fn wait_status(server: &Server, job: &str, want: &str) -> Json {
    for _ in 0..300 {
        let v = call(server, "GET", &format!("/jobs/{job}"), None).await;
        if v["executions"][0]["status"] == want {
            return v["executions"][0].clone();
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

/// The module (its MQTT cloud on `server`, `cfg`) and a host driver on its UART.
async fn module(server: &Server, cfg: SimConfig) -> (Shared, Driver) {
    let cloud = MqttCloud::start(&server.mqtt_addr, THING, &cfg.version).unwrap();
    let emu: Shared = Arc::new(Mutex::new(Emulator::new(cfg, Box::new(cloud))));
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
    el.connect().await.unwrap();
    (emu, el)
}

/// A PSoC 6 host (MCUboot v1.8 swap layout over the simulated flash) running `version`.
struct Psoc6Host {
    dev: SimDevice<Vec<u8>>,
}

const PSOC6: pal_psoc6::Config = pal_psoc6::Config::V1_8_SWAP;

impl Psoc6Host {
    fn new(version: AppVersion) -> Self {
        let dev = SimDevice::new(vec![0u8; pal_psoc6::sim::SIM_FLASH_BYTES], sim_config()).unwrap();
        let factory = psoc6_image(version, 16 * 1024, Behavior::Normal).unwrap();
        program_area(&dev, &PSOC6.primary, &factory).unwrap();
        let mut host = Self { dev };
        assert_eq!(host.boot(), (version, SwapType::None));
        host
    }

    /// Reset the host: what MCUboot runs, and the upgrade it did on the way.
    fn boot(&mut self) -> (AppVersion, SwapType) {
        match SimBootloader::new(&self.dev, PSOC6, None).boot() {
            BootOutcome::Booted { version, swap, .. } => (
                AppVersion::new(version.major, version.minor, version.revision),
                swap,
            ),
            other => panic!("host does not boot: {other:?}"),
        }
    }

    /// The host-update flow into the secondary slot, the host checking `sig` with `key()`.
    async fn update(
        &mut self,
        el: &mut Driver,
        size: usize,
        sig: &[u8],
    ) -> Result<HostReport, Error<ErrorKind>> {
        let mut storage = Psoc6ImageStorage::new(flash_view(&self.dev).unwrap(), PSOC6).unwrap();
        let mut boot = Psoc6BootControl::new(flash_view(&self.dev).unwrap(), PSOC6).unwrap();
        let mut verifier = Sha256EcdsaP256Verifier::from_verifying_key(*key().verifying_key());
        let job = HostJob {
            file: FileInfo {
                index: 0,
                path: "host.bin",
                size: size as u32,
                file_type: 202,
                attributes: 0,
                cert_path: "",
            },
            signature: Some(sig),
        };
        el.host_update(&job, &mut AcceptAll, &mut storage, &mut verifier, &mut boot)
            .await
    }

    /// After the reset into the trial image: self test passes, confirm.
    async fn confirm(&mut self) -> ConfirmOutcome {
        let mut boot = Psoc6BootControl::new(flash_view(&self.dev).unwrap(), PSOC6).unwrap();
        confirm_after_reset(&mut boot, || true).await.unwrap()
    }
}

fn der(sig_b64: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(sig_b64)
        .unwrap()
}

/// Every status the module publishes for its jobs, seen by another MQTT client.
struct Trail {
    seen: Arc<Mutex<Vec<(String, Json)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Trail {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Trail {
    async fn start(addr: &str) -> Self {
        let mut dev = common::Device::connect(addr, "trail-observer").await;
        dev.subscribe(
            &format!("$aws/things/{THING}/jobs/+/update"),
            rumqttc::QoS::AtLeastOnce,
        )
        .await;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let task = tokio::spawn(async move {
            while let Some((topic, payload)) = dev.next().await {
                let job = topic.rsplit('/').nth(1).unwrap_or_default().to_string();
                s.lock()
                    .unwrap()
                    .push((job, serde_json::from_slice(&payload).unwrap_or(Json::Null)));
            }
        });
        Self { seen, task }
    }

    /// The statuses of `job`, in order, once one with `last` status has arrived (the observer
    /// may hear the module's publishes after `ota serve` did).
    async fn of(&self, job: &str, last: &str) -> Vec<Json> {
        for _ in 0..100 {
            let st: Vec<Json> = {
                let seen = self.seen.lock().unwrap();
                seen.iter()
                    .filter(|(j, _)| j == job)
                    .map(|(_, v)| v.clone())
                    .collect()
            };
            if st.last().is_some_and(|v| v["status"] == last) {
                return st;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "no {last} status of {job} seen: {:?}",
            self.seen.lock().unwrap()
        );
    }
}

async fn scenario(server: &Server, dialect: Dialect, trail: Option<&Trail>) {
    let (emu, mut el) = module(server, SimConfig::new(dialect, THING)).await;

    // Host job (202): an MCUboot image for the PSoC 6 host, 3 stream requests of 16 blocks.
    let mut host = Psoc6Host::new(AppVersion::new(1, 0, 0));
    let new_host = psoc6_image(AppVersion::new(2, 0, 0), 150_000, Behavior::Normal).unwrap();
    let job = create_job(server, "host", 202, "host.bin", &new_host).await;
    wait_proposal(&mut el, OtaCode::HostProposed).await;
    let sig = der(&keys::sign(&key(), &new_host));
    let report = host.update(&mut el, new_host.len(), &sig).await.unwrap();
    assert!(report.signature_checked);
    assert_eq!(report.bytes, new_host.len() as u32);
    let exec = wait_status(server, &job, "SUCCEEDED").await;
    // The agent's own final status: `accepted  v<running module version>`.
    assert_eq!(
        exec["statusDetails"]["reason"], "accepted  v1.0.0",
        "{exec}"
    );
    assert_eq!(host.boot(), (AppVersion::new(2, 0, 0), SwapType::Test));
    assert_eq!(host.confirm().await, ConfirmOutcome::Confirmed);
    assert_eq!(host.boot(), (AppVersion::new(2, 0, 0), SwapType::None));
    if let Some(trail) = trail {
        let st = trail.of(&job, "SUCCEEDED").await;
        let details: Vec<String> = st
            .iter()
            .map(|v| format!("{} {}", v["status"], v["statusDetails"]))
            .collect();
        // Progress from the agent (block 1 of 37), then the trial boot, the self test that
        // waits for the host's CLOSE, and the final status.
        assert_eq!(st[0]["status"], "IN_PROGRESS", "{details:#?}");
        assert_eq!(st[0]["statusDetails"]["receive"], "1/37", "{details:#?}");
        let ready = st
            .iter()
            .position(|v| v["statusDetails"]["self_test"] == "ready")
            .expect("self_test ready");
        let active = st
            .iter()
            .position(|v| v["statusDetails"]["self_test"] == "active")
            .expect("self_test active");
        assert!(ready < active, "{details:#?}");
        let last = st.last().unwrap();
        assert_eq!(last["status"], "SUCCEEDED", "{details:#?}");
        assert_eq!(last["statusDetails"]["updatedBy"], "  v1.0.0");
    }

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
    let exec = wait_status(server, &job, "SUCCEEDED").await;
    // The agent that committed runs the new version; the one that downloaded ran 1.0.0.
    assert_eq!(
        exec["statusDetails"]["reason"], "accepted  v2.0.0",
        "{exec}"
    );
    assert_eq!(exec["statusDetails"]["updatedBy"], "  v1.0.0", "{exec}");
    assert_eq!(server::lock(&emu).boots(), 2);
}

async fn within<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(120), f)
        .await
        .expect("scenario bounded at 120 s")
}

async fn on_mosquitto() -> (Mosquitto, Server) {
    let mosq = Mosquitto::start().await;
    let mut cfg = ServeConfig::loopback();
    cfg.mqtt = MqttMode::External {
        host: "127.0.0.1".into(),
        port: mosq.port,
    };
    let server = Server::start(cfg).await.unwrap();
    (mosq, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn module_sim_through_ota_serve_with_the_embedded_broker() {
    let server = Server::start(ServeConfig::loopback()).await.unwrap();
    within(scenario(&server, Dialect::V13, None)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn module_sim_through_ota_serve_on_mosquitto() {
    let (mosq, server) = on_mosquitto().await;
    let trail = Trail::start(&server.mqtt_addr).await;
    within(scenario(&server, Dialect::Ccm, Some(&trail))).await;
    drop(server);
    drop(mosq);
}

/// Over mosquitto: a corrupted chunk re-read, a host image the host refuses (bad signature:
/// FLUSH, the agent's self test fails, the old host image still runs), one the module refuses
/// (`HOTAcertificate` of another key: the agent's signature check), and a module image that
/// is not newer (the agent's version check after its trial reset; the module keeps 1.0.0).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_and_refusals_over_mosquitto() {
    let (mosq, server) = on_mosquitto().await;
    let mut cfg = SimConfig::new(Dialect::V13, THING);
    cfg.faults = ["corrupt-checksum=2", "corrupt-data=4"]
        .iter()
        .map(|f| f.parse().unwrap())
        .collect();
    within(async {
        let (emu, mut el) = module(&server, cfg).await;
        let mut host = Psoc6Host::new(AppVersion::new(1, 0, 0));
        let v2 = psoc6_image(AppVersion::new(2, 0, 0), 20_000, Behavior::Normal).unwrap();
        // The module checks host images with HOTAcertificate (here the signer's key; the
        // driver escapes the PEM's line feeds).
        use p256::pkcs8::{EncodePublicKey, LineEnding};
        let pem_of = |k: &SigningKey| k.verifying_key().to_public_key_pem(LineEnding::LF).unwrap();
        el.conf("HOTAcertificate", pem_of(&key()).as_bytes())
            .await
            .unwrap();

        // A corrupted checksum and corrupted data: each chunk read again, the image intact.
        let job = create_job(&server, "chunks", 202, "host.bin", &v2).await;
        wait_proposal(&mut el, OtaCode::HostProposed).await;
        let sig = der(&keys::sign(&key(), &v2));
        let report = host.update(&mut el, v2.len(), &sig).await.unwrap();
        assert_eq!(report.retries, 2, "{report:?}");
        wait_status(&server, &job, "SUCCEEDED").await;
        assert_eq!(host.boot(), (AppVersion::new(2, 0, 0), SwapType::Test));
        assert_eq!(host.confirm().await, ConfirmOutcome::Confirmed);

        // The host's own check fails: FLUSH, FAILED, the running image untouched.
        let v3 = psoc6_image(AppVersion::new(3, 0, 0), 20_000, Behavior::Normal).unwrap();
        let job = create_job(&server, "badsig", 202, "host.bin", &v3).await;
        wait_proposal(&mut el, OtaCode::HostProposed).await;
        let mut other = v3.clone();
        other[100] ^= 1;
        let bad = der(&keys::sign(&key(), &other));
        let r = host.update(&mut el, v3.len(), &bad).await;
        assert!(matches!(r, Err(Error::SignatureRejected(_))), "{r:?}");
        let exec = wait_status(&server, &job, "FAILED").await;
        // FLUSH in state 5 fails the agent's self test: the image is rejected.
        assert_eq!(
            exec["statusDetails"]["reason"], "rejected: 0x00000000",
            "{exec}"
        );
        assert_eq!(host.boot(), (AppVersion::new(2, 0, 0), SwapType::None));

        // HOTAcertificate of another key: the agent's signature check fails before the host
        // sees state 5.
        let other_key = SigningKey::from_slice(&[0x77; 32]).unwrap();
        el.conf("HOTAcertificate", pem_of(&other_key).as_bytes())
            .await
            .unwrap();
        let job = create_job(&server, "hotacert", 202, "host.bin", &v3).await;
        wait_proposal(&mut el, OtaCode::HostProposed).await;
        let sig = der(&keys::sign(&key(), &v3));
        let r = host.update(&mut el, v3.len(), &sig).await;
        assert!(matches!(r, Err(Error::JobGone)), "{r:?}");
        let exec = wait_status(&server, &job, "FAILED").await;
        assert_eq!(
            exec["statusDetails"]["reason"], "0x000000e3: 0x00000000",
            "SignatureCheckFailed from the agent: {exec}"
        );
        assert_eq!(host.boot(), (AppVersion::new(2, 0, 0), SwapType::None));
        el.conf("HOTAcertificate", b"").await.unwrap();

        // The host declines a proposal (FLUSH in state 2): the agent's prepare fails.
        let job = create_job(&server, "declined", 202, "host.bin", &v3).await;
        wait_proposal(&mut el, OtaCode::HostProposed).await;
        el.ota_flush().await.unwrap();
        let exec = wait_status(&server, &job, "FAILED").await;
        assert_eq!(
            exec["statusDetails"]["reason"], "aborted: 0xe4000001",
            "{exec}"
        );

        // A file type the module does not take (5): refused without asking the host.
        let job = create_job(&server, "type5", 5, "data.bin", &image(1_000)).await;
        let exec = wait_status(&server, &job, "FAILED").await;
        assert_eq!(
            exec["statusDetails"]["reason"], "aborted: 0xe4010005",
            "{exec}"
        );
        assert_eq!(el.ota_status().await.unwrap().code, OtaCode::Idle);

        // A module image whose file path names no version: nothing to run it as.
        let job = create_job(&server, "noversion", 101, "ccm-fw.bin", &image(1_000)).await;
        let exec = wait_status(&server, &job, "FAILED").await;
        assert_eq!(
            exec["statusDetails"]["reason"], "aborted: 0xe4000002",
            "{exec}"
        );

        // A module image that is not newer than 1.0.0: the agent's version check.
        let job = create_job(&server, "same", 101, "1.0.0", &image(10_000)).await;
        wait_proposal(&mut el, OtaCode::ModuleProposed).await;
        let r = el.module_update(&mut AcceptAll).await;
        assert!(matches!(r, Err(Error::JobGone)), "{r:?}");
        let exec = wait_status(&server, &job, "FAILED").await;
        assert_eq!(
            exec["statusDetails"]["reason"], "rejected: 0x00000010",
            "{exec}"
        );
        assert_eq!(server::lock(&emu).version(), "1.0.0");
        assert_eq!(server::lock(&emu).boots(), 1);
        assert_eq!(
            el.command_ok("CONF?", None, Some(b"Version"))
                .await
                .unwrap(),
            b"1.0.0"
        );
    })
    .await;
    drop(server);
    drop(mosq);
}

/// The host's own messaging shares the module's MQTT session with the agent: `SEND` reaches
/// another client, a publish on a subscribed topic reaches `GET`, and the agent still takes a
/// job afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_messages_share_the_modules_session() {
    let server = Server::start(ServeConfig::loopback()).await.unwrap();
    within(async {
        let (_emu, mut el) = module(&server, SimConfig::new(Dialect::V13, THING)).await;
        let mut peer = common::Device::connect(&server.mqtt_addr, "peer").await;
        peer.subscribe("ccm/out", rumqttc::QoS::AtLeastOnce).await;
        el.conf_topic(1, "ccm/out").await.unwrap();
        el.conf_topic(2, "ccm/in").await.unwrap();
        el.subscribe(2).await.unwrap();
        el.send(1, b"hello from the host").await.unwrap();
        // The module's SUBSCRIBE went out before its PUBLISH: once the peer has the message,
        // the subscription is in place.
        assert_eq!(peer.expect("ccm/out").await, b"hello from the host");
        peer.publish("ccm/in", rumqttc::QoS::AtLeastOnce, "to the host")
            .await;
        let mut out = [0u8; 64];
        let mut got = None;
        for _ in 0..200 {
            if let Some(n) = el.get(2, &mut out).await.unwrap() {
                got = Some(out[..n].to_vec());
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(got.as_deref(), Some(&b"to the host"[..]));
        // The agent is still there.
        let host = image(5_000);
        let job = create_job(&server, "after-messages", 202, "host.bin", &host).await;
        wait_proposal(&mut el, OtaCode::HostProposed).await;
        el.ota_accept().await.unwrap();
        el.wait_ota_state(OtaCode::HostReady, &[OtaCode::InProgress])
            .await
            .unwrap();
        el.ota_close().await.unwrap();
        wait_status(&server, &job, "SUCCEEDED").await;
    })
    .await;
}

/// A module reset mid-read: with the OTA state persisting the host resumes and the job
/// succeeds; without it the job is gone, and the agent reports it FAILED (not left open).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn module_reset_mid_read_with_and_without_persistence() {
    within(async {
        for persist in [true, false] {
            // A server each: the first module (same thing name) lives on.
            let server = Server::start(ServeConfig::loopback()).await.unwrap();
            let mut cfg = SimConfig::new(Dialect::Ccm, THING);
            cfg.persist_ota = persist;
            cfg.faults = vec!["reset-at=4096".parse().unwrap()];
            let (emu, mut el) = module(&server, cfg).await;
            let mut host = Psoc6Host::new(AppVersion::new(1, 0, 0));
            let v2 = psoc6_image(AppVersion::new(2, 0, 0), 12_000, Behavior::Normal).unwrap();
            let job = create_job(&server, &format!("reset-{persist}"), 202, "host.bin", &v2).await;
            wait_proposal(&mut el, OtaCode::HostProposed).await;
            let sig = der(&keys::sign(&key(), &v2));
            let r = host.update(&mut el, v2.len(), &sig).await;
            assert_eq!(server::lock(&emu).boots(), 2, "the module reset");
            if persist {
                assert!(r.unwrap().retries >= 1);
                wait_status(&server, &job, "SUCCEEDED").await;
                assert_eq!(host.boot(), (AppVersion::new(2, 0, 0), SwapType::Test));
            } else {
                assert!(r.is_err(), "{r:?}");
                let exec = wait_status(&server, &job, "FAILED").await;
                assert_eq!(
                    exec["statusDetails"]["reason"], "rejected: 0x00000000",
                    "{exec}"
                );
                assert_eq!(host.boot(), (AppVersion::new(1, 0, 0), SwapType::None));
            }
        }
    })
    .await;
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
