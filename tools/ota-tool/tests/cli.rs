//! The `ota` binary itself: keys and signatures, and the `ota job` commands against a running
//! server (in-process, with its state directory), seen by a device on the embedded broker.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::Device;
use ota_tool::serve::{ServeConfig, Server};
use rumqttc::QoS;
use serde_json::Value as Json;

fn ota(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ota"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("running ota")
}

fn ok(args: &[&str]) -> String {
    let out = ota(args);
    assert!(
        out.status.success(),
        "ota {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn fails(args: &[&str]) -> String {
    let out = ota(args);
    assert!(!out.status.success(), "ota {args:?} should fail");
    String::from_utf8(out.stderr).unwrap()
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ota-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn every_command_has_help() {
    for args in [
        vec!["--help"],
        vec!["keygen", "--help"],
        vec!["sign", "--help"],
        vec!["serve", "--help"],
        vec!["job", "--help"],
        vec!["job", "create", "--help"],
        vec!["job", "cancel", "--help"],
        vec!["job", "list", "--help"],
        vec!["job", "show", "--help"],
    ] {
        let out = ok(&args);
        assert!(out.contains("Usage: ota"), "{args:?}: {out}");
    }
}

#[test]
fn keygen_sign_and_verify() {
    let d = tmpdir("keys");
    let out = ok(&["keygen", "--out", s(&d)]);
    assert!(out.contains("ota-signing-key.pem"));
    let key = d.join("ota-signing-key.pem");
    let pubkey = d.join("ota-signing-pub.pem");
    fails(&["keygen", "--out", s(&d)]);
    let fw = d.join("fw.bin");
    std::fs::write(&fw, vec![0x5a; 5000]).unwrap();
    let sig = ok(&["sign", "--key", s(&key), s(&fw)]);
    let sig = sig.trim();
    assert!(sig.starts_with("ME"), "base64 of a DER SEQUENCE: {sig}");
    let out = ok(&[
        "sign",
        "--verify",
        "--pubkey",
        s(&pubkey),
        "--signature",
        sig,
        s(&fw),
    ]);
    assert!(out.contains("signature OK"));
    std::fs::write(&fw, vec![0x5b; 5000]).unwrap();
    let err = fails(&[
        "sign",
        "--verify",
        "--pubkey",
        s(&pubkey),
        "--signature",
        sig,
        s(&fw),
    ]);
    assert!(err.contains("does not match"), "{err}");
    fails(&["sign", s(&fw)]);
    std::fs::remove_dir_all(&d).unwrap();
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_commands_drive_a_running_server() {
    let d = tmpdir("jobs");
    let state = d.join("state");
    let mut cfg = ServeConfig::loopback();
    cfg.state_dir = Some(state.clone());
    cfg.groups = vec![("fleet".into(), vec!["thing2".into(), "thing3".into()])];
    let server = Server::start(cfg).await.unwrap();
    let fut = async {
        let mut dev = Device::connect(&server.mqtt_addr, "thing1").await;
        dev.subscribe("$aws/things/thing1/jobs/notify-next", QoS::AtLeastOnce)
            .await;

        let dd = d.clone();
        let st = state.clone();
        let job = blocking(move || {
            ok(&["keygen", "--out", s(&dd)]);
            std::fs::write(dd.join("a.bin"), vec![1u8; 9000]).unwrap();
            std::fs::write(dd.join("b.bin"), vec![2u8; 300]).unwrap();
            let err = fails(&[
                "job",
                "create",
                "--state",
                s(&st),
                "--thing",
                "thing1",
                "--file",
                s(&dd.join("a.bin")),
            ]);
            assert!(
                err.contains("--signature, --sign-key or --unsigned"),
                "{err}"
            );
            let err = fails(&[
                "job",
                "create",
                "--state",
                s(&st),
                "--group",
                "nope",
                "--unsigned",
                "--file",
                s(&dd.join("a.bin")),
            ]);
            assert!(err.contains("no thing group 'nope'"), "{err}");
            ok(&[
                "job",
                "create",
                "--state",
                s(&st),
                "--thing",
                "thing1",
                "--group",
                "fleet",
                "--file",
                s(&dd.join("a.bin")),
                "--file",
                s(&dd.join("b.bin")),
                "--path",
                "/fw/a",
                "--path",
                "/fw/b",
                "--file-type",
                "0",
                "--file-type",
                "202",
                "--cert-file",
                "signer.crt",
                "--sign-key",
                s(&dd.join("ota-signing-key.pem")),
                "--protocols",
                "MQTT,HTTP",
                "--id",
                "cli1",
            ])
        })
        .await;
        assert_eq!(job.trim(), "AFR_OTA-cli1");

        let n = dev.expect_json("$aws/things/thing1/jobs/notify-next").await;
        assert_eq!(n["execution"]["jobId"], "AFR_OTA-cli1");
        let files = &n["execution"]["jobDocument"]["afr_ota"]["files"];
        assert_eq!(files[0]["filepath"], "/fw/a");
        assert_eq!(files[0]["filesize"], 9000);
        assert_eq!(files[0]["fileType"], 0);
        assert_eq!(files[1]["fileid"], 1);
        assert_eq!(files[1]["fileType"], 202);
        assert_eq!(files[1]["certfile"], "signer.crt");
        assert!(files[1]["update_data_url"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:"));
        // The signature the CLI made verifies with the public key.
        let pubkey = ota_tool::keys::read_verifying_key(&d.join("ota-signing-pub.pem")).unwrap();
        ota_tool::keys::verify(
            &pubkey,
            &[2u8; 300],
            files[1]["sig-sha256-ecdsa"].as_str().unwrap(),
        )
        .unwrap();

        dev.publish(
            "$aws/things/thing1/jobs/AFR_OTA-cli1/update",
            QoS::AtLeastOnce,
            r#"{"status":"IN_PROGRESS","statusDetails":{"receive":"1/3"}}"#,
        )
        .await;
        dev.expect("$aws/things/thing1/jobs/AFR_OTA-cli1/update/accepted")
            .await;

        let st = state.clone();
        let (list, show) = blocking(move || {
            (
                ok(&["job", "list", "--state", s(&st)]),
                ok(&["job", "show", "AFR_OTA-cli1", "--state", s(&st)]),
            )
        })
        .await;
        assert!(list.contains("AFR_OTA-cli1"), "{list}");
        assert!(
            list.contains("IN_PROGRESS:1") && list.contains("QUEUED:2"),
            "{list}"
        );
        assert!(show.contains("receive=1/3"), "{show}");
        assert!(show.contains("thing3"), "{show}");

        // Cancel without --force leaves thing1's IN_PROGRESS execution; --force cancels it and
        // thing1 hears notify-next with no execution.
        let st = state.clone();
        let (c1, c2, json) = blocking(move || {
            let c1 = ok(&["job", "cancel", "AFR_OTA-cli1", "--state", s(&st)]);
            let c2 = ok(&[
                "job",
                "cancel",
                "AFR_OTA-cli1",
                "--force",
                "--state",
                s(&st),
            ]);
            let json = ok(&["job", "show", "AFR_OTA-cli1", "--json", "--state", s(&st)]);
            (c1, c2, json)
        })
        .await;
        assert!(c1.contains("CANCELED") && c2.contains("CANCELED"));
        let n = dev.expect_json("$aws/things/thing1/jobs/notify-next").await;
        assert!(n.get("execution").is_none(), "{n}");
        let v: Json = serde_json::from_str(&json).unwrap();
        assert!(v["executions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["status"] == "CANCELED"));
        let st = state.clone();
        let err =
            blocking(move || fails(&["job", "show", "AFR_OTA-none", "--state", s(&st)])).await;
        assert!(err.contains("404"), "{err}");
    };
    tokio::time::timeout(Duration::from_secs(120), fut)
        .await
        .expect("bounded");
    drop(server);
    std::fs::remove_dir_all(&d).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_binary_serves_a_device_and_logs_requests() {
    let d = tmpdir("serve");
    let state = d.join("state");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ota"))
        .args(["serve", "--listen", "127.0.0.1:0", "--state", s(&state)])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let fut = async {
        // Bounded wait for server.json.
        let info_path = state.join("server.json");
        let mut info = None;
        for _ in 0..200 {
            if let Ok(text) = std::fs::read_to_string(&info_path) {
                if let Ok(v) = serde_json::from_str::<Json>(&text) {
                    info = Some(v);
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let info = info.expect("ota serve wrote server.json");
        assert_eq!(info["embedded_broker"], true);
        let mqtt = info["mqtt"].as_str().unwrap().to_string();
        let mut dev = Device::connect(&mqtt, "thing9").await;
        dev.subscribe("$aws/things/thing9/jobs/notify-next", QoS::AtLeastOnce)
            .await;
        let dd = d.clone();
        let st = state.clone();
        let job = blocking(move || {
            std::fs::write(dd.join("fw.bin"), vec![3u8; 5000]).unwrap();
            ok(&[
                "job",
                "create",
                "--state",
                s(&st),
                "--thing",
                "thing9",
                "--unsigned",
                "--file",
                s(&dd.join("fw.bin")),
            ])
        })
        .await;
        let job = job.trim().to_string();
        assert!(job.starts_with("AFR_OTA-"));
        let n = dev.expect_json("$aws/things/thing9/jobs/notify-next").await;
        assert_eq!(n["execution"]["jobId"], job.as_str());
        assert_eq!(
            n["execution"]["jobDocument"]["afr_ota"]["files"][0]["sig-sha256-ecdsa"],
            Json::Null
        );
        dev.publish("$aws/things/thing9/jobs/$next/get", QoS::AtLeastOnce, "{}")
            .await;
        let v = dev
            .expect_json("$aws/things/thing9/jobs/$next/get/accepted")
            .await;
        assert_eq!(v["execution"]["jobId"], job.as_str());
        job
    };
    let job = tokio::time::timeout(Duration::from_secs(120), fut).await;
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    let job = job.expect("bounded");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.contains("MQTT broker") && stdout.contains("AWS reply delivery on"),
        "{stdout}"
    );
    assert!(
        stderr.contains(&format!("thing9/jobs/$next/get -> accepted {job}")),
        "{stderr}"
    );
    std::fs::remove_dir_all(&d).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_binary_on_an_external_mosquitto() {
    let mosq = common::Mosquitto::start().await;
    let d = tmpdir("serve-ext");
    let state = d.join("state");
    let broker = format!("127.0.0.1:{}", mosq.port);
    let mut child = Command::new(env!("CARGO_BIN_EXE_ota"))
        .args([
            "serve",
            "--broker",
            &broker,
            "--quiet",
            "--state",
            s(&state),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let fut = async {
        let info_path = state.join("server.json");
        let mut info = None;
        for _ in 0..300 {
            if let Ok(v) = std::fs::read_to_string(&info_path)
                .map_err(|_| ())
                .and_then(|t| serde_json::from_str::<Json>(&t).map_err(|_| ()))
            {
                info = Some(v);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let info = info.expect("ota serve wrote server.json");
        assert_eq!(info["embedded_broker"], false);
        assert_eq!(info["mqtt"], broker.as_str());
        let mut dev = Device::connect(&broker, "thing5").await;
        dev.subscribe("$aws/things/thing5/jobs/notify-next", QoS::AtLeastOnce)
            .await;
        dev.subscribe(
            "$aws/things/thing5/jobs/$next/get/accepted",
            QoS::AtLeastOnce,
        )
        .await;
        let dd = d.clone();
        let st = state.clone();
        let job = blocking(move || {
            std::fs::write(dd.join("fw.bin"), vec![9u8; 4097]).unwrap();
            ok(&[
                "job",
                "create",
                "--state",
                s(&st),
                "--thing",
                "thing5",
                "--unsigned",
                "--file",
                s(&dd.join("fw.bin")),
            ])
        })
        .await;
        let job = job.trim().to_string();
        let n = dev.expect_json("$aws/things/thing5/jobs/notify-next").await;
        assert_eq!(n["execution"]["jobId"], job.as_str());
        dev.publish("$aws/things/thing5/jobs/$next/get", QoS::AtLeastOnce, "{}")
            .await;
        let v = dev
            .expect_json("$aws/things/thing5/jobs/$next/get/accepted")
            .await;
        assert_eq!(
            v["execution"]["jobDocument"]["afr_ota"]["files"][0]["filesize"],
            4097
        );
    };
    let r = tokio::time::timeout(Duration::from_secs(120), fut).await;
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    r.expect("bounded");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("external; Jobs replies reach subscribers only"),
        "{stdout}"
    );
    drop(mosq);
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn serve_binary_fails_clearly_without_a_broker() {
    let port = common::free_port();
    let d = tmpdir("serve-nobroker");
    let err = fails(&[
        "serve",
        "--broker",
        &format!("127.0.0.1:{port}"),
        "--state",
        s(&d.join("state")),
    ]);
    assert!(err.contains("cannot connect to the MQTT broker"), "{err}");
    std::fs::remove_dir_all(&d).unwrap();
}
