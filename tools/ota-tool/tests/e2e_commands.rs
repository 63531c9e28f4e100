//! The `ota demo` and `ota device` commands as a user runs them (the binary).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::{Command, Output};
use std::time::Duration;

use common::Mosquitto;
use ota_core::wire::version::AppVersion;
use ota_tool::cloud::{OtaFile, OtaUpdate, Protocol};
use ota_tool::device::image::{self, Behavior};
use ota_tool::keys;
use ota_tool::serve::{MqttMode, ServeConfig, Server};

async fn ota(args: Vec<String>) -> Output {
    let run = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_ota"))
            .args(&args)
            .env("RUST_BACKTRACE", "0")
            .output()
            .expect("running ota")
    });
    tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("ota did not finish in time")
        .unwrap()
}

#[tokio::test]
async fn demo_updates_the_device_and_prints_a_summary() {
    let out = ota(["demo", "--image-kib", "64", "--timeout", "60"]
        .map(String::from)
        .to_vec())
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("AFR_OTA-demo-1: SUCCEEDED"), "{stdout}");
    assert!(
        stdout.contains("running version  v1.0.0 -> v1.1.0"),
        "{stdout}"
    );
    assert!(stdout.contains("in 17 blocks of 4096"), "{stdout}");
}

struct Setup {
    _mosq: Mosquitto,
    server: Server,
    dir: tempfile::TempDir,
    job: String,
    args: Vec<String>,
}

async fn setup(payload: u32) -> Setup {
    let mosq = Mosquitto::start().await;
    let mut cfg = ServeConfig::loopback();
    cfg.mqtt = MqttMode::External {
        host: "127.0.0.1".into(),
        port: mosq.port,
    };
    let server = Server::start(cfg).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (sk, pk) = keys::keygen(dir.path()).unwrap();
    let img = image::build(AppVersion::new(2, 0, 1), payload, Behavior::Normal);
    let sig = keys::sign(&keys::read_signing_key(&sk).unwrap(), &img);
    let update = OtaUpdate {
        id: Some("cli".into()),
        things: vec!["cli-thing".into()],
        groups: Vec::new(),
        protocols: vec![Protocol::Mqtt],
        files: vec![OtaFile {
            data: img,
            filepath: Some("/fw".into()),
            file_type: Some(0),
            cert_file: None,
            signature: Some(sig),
        }],
    };
    let (job, out) = server
        .cloud
        .lock()
        .unwrap()
        .create_ota_update(update, 0)
        .unwrap();
    server.publisher.send(out);
    let state = dir.path().join("dev");
    let args: Vec<String> = vec![
        "device".into(),
        "--thing".into(),
        "cli-thing".into(),
        "--state".into(),
        state.display().to_string(),
        "--version".into(),
        "2.0.0".into(),
        "--verify-key".into(),
        pk.display().to_string(),
        "--broker".into(),
        format!("127.0.0.1:{}", mosq.port),
    ];
    Setup {
        _mosq: mosq,
        server,
        dir,
        job,
        args,
    }
}

fn status(s: &Setup) -> String {
    s.server
        .cloud
        .lock()
        .unwrap()
        .jobs
        .execution("cli-thing", &s.job)
        .unwrap()
        .status
        .as_str()
        .to_string()
}

#[tokio::test]
async fn device_command_updates_over_mosquitto() {
    let s = setup(20_000).await;
    let args = s.args.clone();
    let out = ota(args.clone()).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("boot: v2.0.1 on trial (slot 1)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("running v2.0.1 (was v2.0.0), 2 boot(s)"),
        "{stdout}"
    );
    assert_eq!(status(&s), "SUCCEEDED");
    // The state survives: run again, nothing to do, still v2.0.1.
    let out = ota(args).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("running v2.0.1 (was v2.0.1), 1 boot(s)"),
        "{stdout}"
    );
}

/// `kill -9` of the device mid-download: its flash file keeps the blocks and the journal, the
/// next run asks only for the rest.
#[tokio::test]
async fn a_killed_device_resumes_from_its_state_directory() {
    use std::io::{BufRead, BufReader};
    let s = setup(49 * 4096 - 100).await;
    let args = s.args.clone();
    let killed = tokio::task::spawn_blocking(move || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ota"))
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut seen = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            let cut = line.starts_with("download: 16/");
            seen.push(line);
            if cut {
                child.kill().unwrap();
                break;
            }
        }
        let _ = child.wait();
        seen
    });
    let seen = tokio::time::timeout(Duration::from_secs(120), killed)
        .await
        .expect("bounded")
        .unwrap();
    assert!(
        seen.iter().any(|l| l.starts_with("download: 16/49")),
        "{seen:?}"
    );
    let out = ota(s.args.clone()).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let last = stdout.lines().last().unwrap_or_default();
    let received: u32 = last
        .split(", ")
        .find_map(|p| p.strip_suffix(" blocks received"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(received < 49, "only the missing blocks: {stdout}");
    assert!(last.starts_with("running v2.0.1 (was v2.0.0)"), "{stdout}");
    assert_eq!(status(&s), "SUCCEEDED");
    drop(s.dir);
}

#[tokio::test]
async fn demo_out_of_time_says_so_and_fails() {
    let out = ota(["demo", "--timeout", "0"].map(String::from).to_vec()).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("timed out after 0 s"), "{stderr}");
}

/// `ota image --board B` then `ota device --board B` for each board wired to its board crate:
/// the update ends SUCCEEDED with the new version running after the board's bootloader.
#[tokio::test]
async fn device_command_updates_each_board_over_mosquitto() {
    for (board, file_type) in [("same54", 0), ("traveo", 141), ("tfm", 0)] {
        let mosq = Mosquitto::start().await;
        let mut cfg = ServeConfig::loopback();
        cfg.mqtt = MqttMode::External {
            host: "127.0.0.1".into(),
            port: mosq.port,
        };
        let server = Server::start(cfg).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (sk, pk) = keys::keygen(dir.path()).unwrap();
        let file = dir.path().join("v201.bin");
        let out = ota([
            "image",
            "--version",
            "2.0.1",
            "--payload-kib",
            "20",
            "--board",
            board,
            "--out",
            &file.display().to_string(),
        ]
        .map(String::from)
        .to_vec())
        .await;
        assert!(out.status.success(), "{board}: {out:?}");
        let img = std::fs::read(&file).unwrap();
        let sig = keys::sign(&keys::read_signing_key(&sk).unwrap(), &img);
        let update = OtaUpdate {
            id: Some(board.into()),
            things: vec!["cli-thing".into()],
            groups: Vec::new(),
            protocols: vec![Protocol::Mqtt],
            files: vec![OtaFile {
                data: img,
                filepath: Some("/fw".into()),
                file_type: Some(file_type),
                cert_file: None,
                signature: Some(sig),
            }],
        };
        let (job, published) = server
            .cloud
            .lock()
            .unwrap()
            .create_ota_update(update, 0)
            .unwrap();
        server.publisher.send(published);
        let out = ota([
            "device",
            "--thing",
            "cli-thing",
            "--board",
            board,
            "--state",
            &dir.path().join("dev").display().to_string(),
            "--version",
            "2.0.0",
            "--verify-key",
            &pk.display().to_string(),
            "--factory-key",
            &sk.display().to_string(),
            "--broker",
            &format!("127.0.0.1:{}", mosq.port),
        ]
        .map(String::from)
        .to_vec())
        .await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{board}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains("boot: v2.0.1 on trial"),
            "{board}: {stdout}"
        );
        assert!(
            stdout.contains("running v2.0.1 (was v2.0.0), 2 boot(s)"),
            "{board}: {stdout}"
        );
        let st = server
            .cloud
            .lock()
            .unwrap()
            .jobs
            .execution("cli-thing", &job)
            .unwrap()
            .status
            .as_str()
            .to_string();
        assert_eq!(st, "SUCCEEDED", "{board}");
    }
}
