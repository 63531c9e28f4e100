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

#[tokio::test]
async fn device_command_updates_over_mosquitto() {
    let mosq = Mosquitto::start().await;
    let mut cfg = ServeConfig::loopback();
    cfg.mqtt = MqttMode::External {
        host: "127.0.0.1".into(),
        port: mosq.port,
    };
    let server = Server::start(cfg).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (sk, pk) = keys::keygen(dir.path()).unwrap();
    let img = image::build(AppVersion::new(2, 0, 1), 20_000, Behavior::Normal);
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
    let status = server
        .cloud
        .lock()
        .unwrap()
        .jobs
        .execution("cli-thing", &job)
        .unwrap()
        .status;
    assert_eq!(status.as_str(), "SUCCEEDED");
    // The state survives: run again, nothing to do, still v2.0.1.
    let out = ota(args).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("running v2.0.1 (was v2.0.1), 1 boot(s)"),
        "{stdout}"
    );
}
