//! End-to-end scenarios over sockets: `ota serve` (in-process) with its embedded broker and
//! with a real mosquitto, a device played with a plain MQTT client following the reference
//! agent's wire trace (§4.7), and the HTTP data path (§10).

mod common;

use std::time::Duration;

use common::{Device, Mosquitto, TestClock};
use ota_core::wire::cbor::{DataBlock, StreamRequest};
use ota_core::wire::job::{parse, JobMessage};
use ota_core::wire::status::{write_get_next_request, StatusUpdate};
use ota_core::wire::version::AppVersion;
use ota_tool::admin::AdminClient;
use ota_tool::cloud::{OtaFile, OtaUpdate, Protocol};
use ota_tool::keys;
use ota_tool::serve::{MqttMode, ServeConfig, Server};
use p256::ecdsa::SigningKey;
use rumqttc::QoS;
use serde_json::{json, Value as Json};

const THING: &str = "thing1";
const BLOCK: u32 = 4096;

fn topic(rest: &str) -> String {
    format!("$aws/things/{THING}/{rest}")
}

fn image(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 ^ (i >> 8) as u8).collect()
}

fn admin(server: &Server) -> AdminClient {
    AdminClient {
        addr: server.admin_addr.to_string(),
        token: server.admin_token.clone(),
    }
}

async fn call(server: &Server, method: &str, path: &str, body: Option<Json>) -> Json {
    let a = admin(server);
    let (m, p) = (method.to_string(), path.to_string());
    tokio::task::spawn_blocking(move || a.call(&m, &p, body.as_ref()))
        .await
        .unwrap()
        .unwrap()
}

async fn create_job(
    server: &Server,
    id: &str,
    protocols: Vec<Protocol>,
    data: &[u8],
    key: &SigningKey,
) -> String {
    let update = OtaUpdate {
        id: Some(id.into()),
        things: vec![THING.into()],
        groups: Vec::new(),
        protocols,
        files: vec![OtaFile {
            data: data.to_vec(),
            filepath: Some("/test/demo".into()),
            file_type: Some(0),
            cert_file: Some("test.crt".into()),
            signature: Some(keys::sign(key, data)),
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

fn get_next_payload(counter: u32) -> Vec<u8> {
    let mut buf = [0u8; 100];
    let n = write_get_next_request(counter, THING, &mut buf).unwrap();
    buf[..n].to_vec()
}

fn status(u: StatusUpdate) -> Vec<u8> {
    let mut buf = [0u8; 200];
    let n = u.write(&mut buf).unwrap();
    buf[..n].to_vec()
}

struct Job {
    id: String,
    stream: Option<String>,
    size: u32,
    file_id: u32,
    signature: String,
    url: Option<String>,
}

fn job_of(payload: &[u8]) -> Job {
    match parse::<1>(payload).unwrap() {
        JobMessage::Ota(doc) => {
            let f = &doc.files[0];
            let sig = f.signatures().next().unwrap();
            Job {
                id: doc.job_id.to_string(),
                stream: doc.stream_name.map(|s| s.as_plain().unwrap().to_string()),
                size: f.file_size,
                file_id: f.file_id,
                signature: sig.text.as_plain().unwrap().to_string(),
                url: f
                    .update_data_url
                    .and_then(|u| u.as_plain())
                    .map(str::to_string),
            }
        }
        other => panic!("not an OTA job: {other:?}"),
    }
}

/// Downloads the file block by block with the reference agent's requests (whole bitmap,
/// offset 0, n = 1), reporting progress as it does; gives the reassembled image.
async fn download_over_mqtt(dev: &mut Device, job: &Job) -> Vec<u8> {
    let stream = job.stream.as_deref().unwrap();
    let data_topic = topic(&format!("streams/{stream}/data/cbor"));
    dev.subscribe(&data_topic, QoS::AtMostOnce).await;
    let blocks = job.size.div_ceil(BLOCK);
    let mut bitmap = vec![0u8; blocks.div_ceil(8) as usize];
    for k in 0..blocks {
        bitmap[(k / 8) as usize] |= 1 << (k % 8);
    }
    let mut image = vec![0u8; job.size as usize];
    let mut received = 0;
    let mut first_request = true;
    // Bounded: one request per block plus a few spare rounds.
    for _round in 0..blocks + 4 {
        if received == blocks {
            break;
        }
        let req = StreamRequest {
            client_token: "rdy",
            file_id: job.file_id,
            block_size: BLOCK,
            block_offset: 0,
            bitmap: &bitmap,
            number_of_blocks: 1,
        };
        let mut buf = [0u8; 384];
        let n = req.encode(&mut buf).unwrap();
        if first_request && blocks == 3 {
            assert_eq!(
                &buf[..n],
                [
                    0xa6, 0x61, 0x63, 0x63, 0x72, 0x64, 0x79, 0x61, 0x66, 0x00, 0x61, 0x6c, 0x19,
                    0x10, 0x00, 0x61, 0x6f, 0x00, 0x61, 0x62, 0x41, 0x07, 0x61, 0x6e, 0x01
                ],
                "the §3.1 first request"
            );
        }
        first_request = false;
        dev.publish(
            &topic(&format!("streams/{stream}/get/cbor")),
            QoS::AtMostOnce,
            &buf[..n],
        )
        .await;
        let msg = dev.expect(&data_topic).await;
        let b = DataBlock::decode(&msg).unwrap();
        assert_eq!(b.file_id, job.file_id);
        let i = b.block_index;
        assert!(i < blocks);
        let start = (i * BLOCK) as usize;
        let want_len = (job.size - i * BLOCK).min(BLOCK) as usize;
        assert_eq!(b.payload.len(), want_len, "block {i}");
        assert_ne!(
            bitmap[(i / 8) as usize] & (1 << (i % 8)),
            0,
            "block {i} twice"
        );
        image[start..start + want_len].copy_from_slice(b.payload);
        bitmap[(i / 8) as usize] &= !(1 << (i % 8));
        received += 1;
        if received == 1 {
            dev.publish(
                &topic(&format!("jobs/{}/update", job.id)),
                QoS::AtMostOnce,
                status(StatusUpdate::Progress {
                    received,
                    total: blocks,
                }),
            )
            .await;
            let acc = dev
                .expect_json(&topic(&format!("jobs/{}/update/accepted", job.id)))
                .await;
            assert_eq!(
                acc["executionState"]["statusDetails"]["receive"],
                format!("1/{blocks}")
            );
        }
    }
    assert_eq!(received, blocks, "every block received");
    image
}

/// The §4.7 happy path and what follows it, on any broker. `subscribe_replies`: the device
/// subscribes to the Jobs reply topics (needed on a plain broker, not with AWS-style delivery).
async fn ota_happy_path(server: &Server, subscribe_replies: bool) {
    let key = SigningKey::random(&mut rand_core::OsRng);
    let file = image(10240); // 3 blocks, as JOB_DOC_A

    // The device subscribes before the job exists, so every notify-next it gets is caused by
    // something the test did (a notify-next published before the subscription could otherwise
    // still be in flight and arrive late).
    let mut dev = Device::connect(&server.mqtt_addr, THING).await;
    dev.subscribe(&topic("jobs/notify-next"), QoS::AtLeastOnce)
        .await;
    if subscribe_replies {
        dev.subscribe(&topic("jobs/$next/get/+"), QoS::AtLeastOnce)
            .await;
        dev.subscribe(&topic("jobs/+/update/+"), QoS::AtLeastOnce)
            .await;
    }
    let job_id = create_job(server, "testjob20", vec![Protocol::Mqtt], &file, &key).await;
    assert_eq!(job_id, "AFR_OTA-testjob20");
    let n = dev.expect_json(&topic("jobs/notify-next")).await;
    assert_eq!(n["execution"]["jobId"], job_id);

    dev.publish(
        &topic("jobs/$next/get"),
        QoS::AtLeastOnce,
        get_next_payload(0),
    )
    .await;
    let accepted = dev.expect(&topic("jobs/$next/get/accepted")).await;
    let v: Json = serde_json::from_slice(&accepted).unwrap();
    assert_eq!(v["clientToken"], "0:thing1");
    assert_eq!(v["execution"]["status"], "QUEUED");
    let job = job_of(&accepted);
    assert_eq!(job.id, job_id);
    assert_eq!(job.size, 10240);

    let got = download_over_mqtt(&mut dev, &job).await;
    assert_eq!(got, file, "byte-exact reassembly");
    keys::verify(&p256::ecdsa::VerifyingKey::from(&key), &got, &job.signature).unwrap();

    let update_topic = topic(&format!("jobs/{job_id}/update"));
    let accepted_topic = format!("{update_topic}/accepted");
    let running = AppVersion {
        major: 1,
        minor: 2,
        build: 3,
    };
    dev.publish(
        &update_topic,
        QoS::AtLeastOnce,
        status(StatusUpdate::SelfTestReady {
            running: AppVersion {
                major: 1,
                minor: 2,
                build: 2,
            },
        }),
    )
    .await;
    let acc = dev.expect_json(&accepted_topic).await;
    assert_eq!(acc["executionState"]["status"], "IN_PROGRESS");
    assert_eq!(acc["executionState"]["statusDetails"]["self_test"], "ready");

    // After the reboot: the job comes back with self_test in statusDetails.
    dev.publish(
        &topic("jobs/$next/get"),
        QoS::AtLeastOnce,
        get_next_payload(1),
    )
    .await;
    let again = dev.expect_json(&topic("jobs/$next/get/accepted")).await;
    assert_eq!(again["execution"]["status"], "IN_PROGRESS");
    assert_eq!(
        again["execution"]["statusDetails"],
        json!({"self_test": "ready", "updatedBy": "0x01020002"})
    );

    dev.publish(
        &update_topic,
        QoS::AtLeastOnce,
        status(StatusUpdate::Succeeded {
            running,
            updater: AppVersion {
                major: 1,
                minor: 2,
                build: 2,
            },
        }),
    )
    .await;
    let acc = dev.expect_json(&accepted_topic).await;
    assert_eq!(acc["executionState"]["status"], "SUCCEEDED");
    assert_eq!(
        acc["executionState"]["statusDetails"],
        json!({"reason": "accepted  v1.2.3", "updatedBy": "  v1.2.2"})
    );
    let next = dev.expect_json(&topic("jobs/notify-next")).await;
    assert!(next.get("execution").is_none(), "queue empty: {next}");

    // A second update of the terminal execution is rejected.
    dev.publish(
        &update_topic,
        QoS::AtLeastOnce,
        status(StatusUpdate::Succeeded {
            running,
            updater: running,
        }),
    )
    .await;
    let rej = dev.expect_json(&format!("{update_topic}/rejected")).await;
    assert_eq!(rej["code"], "TerminalStateReached");
    assert_eq!(rej["executionState"]["status"], "SUCCEEDED");

    // A new job is announced on notify-next; cancelling it announces the empty queue.
    let job2 = create_job(server, "testjob21", vec![Protocol::Mqtt], &file, &key).await;
    let n = dev.expect_json(&topic("jobs/notify-next")).await;
    assert_eq!(n["execution"]["jobId"], job2);
    assert_eq!(n["execution"]["status"], "QUEUED");
    assert!(n["execution"]["jobDocument"]["afr_ota"].is_object());
    let c = call(
        server,
        "POST",
        &format!("/jobs/{job2}/cancel"),
        Some(json!({})),
    )
    .await;
    assert_eq!(c["status"], "CANCELED");
    let n = dev.expect_json(&topic("jobs/notify-next")).await;
    assert!(n.get("execution").is_none(), "{n}");
    assert!(n["timestamp"].is_u64());

    let shown = call(server, "GET", &format!("/jobs/{job_id}"), None).await;
    assert_eq!(shown["executions"][0]["status"], "SUCCEEDED");
    assert_eq!(
        shown["executions"][0]["statusDetails"]["reason"],
        "accepted  v1.2.3"
    );
}

async fn within<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(120), f)
        .await
        .expect("scenario bounded at 120 s")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_broker_ota_over_mqtt_with_aws_reply_delivery() {
    let server = Server::start(ServeConfig::loopback()).await.unwrap();
    within(ota_happy_path(&server, false)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_ota_over_mqtt_with_subscribed_replies() {
    let mosq = Mosquitto::start().await;
    let mut cfg = ServeConfig::loopback();
    cfg.mqtt = MqttMode::External {
        host: "127.0.0.1".into(),
        port: mosq.port,
    };
    let server = Server::start(cfg).await.unwrap();
    within(ota_happy_path(&server, true)).await;
    drop(server);
    drop(mosq);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_does_not_deliver_unsubscribed_replies() {
    let mosq = Mosquitto::start().await;
    let mut cfg = ServeConfig::loopback();
    cfg.mqtt = MqttMode::External {
        host: "127.0.0.1".into(),
        port: mosq.port,
    };
    let server = Server::start(cfg).await.unwrap();
    within(async {
        let key = SigningKey::random(&mut rand_core::OsRng);
        create_job(&server, "j1", vec![Protocol::Mqtt], &image(300), &key).await;
        let mut dev = Device::connect(&server.mqtt_addr, THING).await;
        dev.publish(
            &topic("jobs/$next/get"),
            QoS::AtLeastOnce,
            get_next_payload(0),
        )
        .await;
        dev.expect_nothing(
            &topic("jobs/$next/get/accepted"),
            Duration::from_millis(800),
        )
        .await;
        dev.subscribe(&topic("jobs/$next/get/accepted"), QoS::AtLeastOnce)
            .await;
        dev.publish(
            &topic("jobs/$next/get"),
            QoS::AtLeastOnce,
            get_next_payload(1),
        )
        .await;
        let v = dev.expect_json(&topic("jobs/$next/get/accepted")).await;
        assert_eq!(v["execution"]["jobId"], "AFR_OTA-j1");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_broker_without_aws_reply_delivery_behaves_like_a_plain_broker() {
    let mut cfg = ServeConfig::loopback();
    cfg.mqtt = MqttMode::Embedded {
        bind: "127.0.0.1:0".parse().unwrap(),
        aws_reply_delivery: false,
    };
    let server = Server::start(cfg).await.unwrap();
    within(async {
        let key = SigningKey::random(&mut rand_core::OsRng);
        create_job(&server, "j1", vec![Protocol::Mqtt], &image(300), &key).await;
        let mut dev = Device::connect(&server.mqtt_addr, THING).await;
        dev.publish(
            &topic("jobs/$next/get"),
            QoS::AtLeastOnce,
            get_next_payload(0),
        )
        .await;
        dev.expect_nothing(
            &topic("jobs/$next/get/accepted"),
            Duration::from_millis(800),
        )
        .await;
        dev.subscribe(&topic("jobs/$next/get/accepted"), QoS::AtLeastOnce)
            .await;
        dev.publish(
            &topic("jobs/$next/get"),
            QoS::AtLeastOnce,
            get_next_payload(1),
        )
        .await;
        let v = dev.expect_json(&topic("jobs/$next/get/accepted")).await;
        assert_eq!(v["execution"]["jobId"], "AFR_OTA-j1");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_broker_replies_reach_only_the_requester() {
    let server = Server::start(ServeConfig::loopback()).await.unwrap();
    within(async {
        let key = SigningKey::random(&mut rand_core::OsRng);
        create_job(&server, "j1", vec![Protocol::Mqtt], &image(300), &key).await;
        let mut dev = Device::connect(&server.mqtt_addr, THING).await;
        let mut other = Device::connect(&server.mqtt_addr, "observer").await;
        dev.publish(
            &topic("jobs/$next/get"),
            QoS::AtLeastOnce,
            get_next_payload(0),
        )
        .await;
        dev.expect(&topic("jobs/$next/get/accepted")).await;
        other
            .expect_nothing(
                &topic("jobs/$next/get/accepted"),
                Duration::from_millis(500),
            )
            .await;
        // A stream error arrives on rejected/cbor for subscribers.
        dev.subscribe(&topic("streams/+/rejected/cbor"), QoS::AtMostOnce)
            .await;
        dev.publish(
            &topic("streams/AFR_OTA-nope/get/cbor"),
            QoS::AtMostOnce,
            vec![0xa1, 0x61, b'f', 0x00],
        )
        .await;
        let r = dev
            .expect(&topic("streams/AFR_OTA-nope/rejected/cbor"))
            .await;
        let rej = ota_core::wire::cbor::StreamRejected::decode(&r).unwrap();
        assert_eq!(rej.code.as_str(), "InvalidRequest", "no block size");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_data_path_with_ranges_and_url_expiry() {
    let clock = TestClock::new(1_700_000_000);
    let mut cfg = ServeConfig::loopback();
    cfg.clock = clock.clock();
    cfg.url_ttl_secs = 300;
    let server = Server::start(cfg).await.unwrap();
    within(async {
        let key = SigningKey::random(&mut rand_core::OsRng);
        let file = image(10240);
        let job_id = create_job(&server, "testjob22", vec![Protocol::Http], &file, &key).await;
        let mut dev = Device::connect(&server.mqtt_addr, THING).await;
        dev.publish(
            &topic("jobs/$next/get"),
            QoS::AtLeastOnce,
            get_next_payload(0),
        )
        .await;
        let job = job_of(&dev.expect(&topic("jobs/$next/get/accepted")).await);
        assert_eq!(job.id, job_id);
        assert!(job.stream.is_none());
        let url = job.url.clone().unwrap();

        let get = |url: String, range: Option<String>| async move {
            tokio::task::spawn_blocking(move || {
                let rest = url.strip_prefix("http://").unwrap();
                let (addr, target) = rest.split_at(rest.find('/').unwrap());
                let headers: Vec<(&str, &str)> = match &range {
                    Some(r) => vec![("Range", r.as_str())],
                    None => vec![],
                };
                ota_tool::http::request_blocking(addr, "GET", target, &headers, &[]).unwrap()
            })
            .await
            .unwrap()
        };
        // The reference's ranges: 0-4095, 4096-8191, 8192-10239.
        let mut got = Vec::new();
        for (a, b) in [(0, 4095), (4096, 8191), (8192, 10239)] {
            let (st, hdrs, body) = get(url.clone(), Some(format!("bytes={a}-{b}"))).await;
            assert_eq!(st, 206);
            let cr = hdrs.iter().find(|(n, _)| n == "content-range").unwrap();
            assert_eq!(cr.1, format!("bytes {a}-{b}/10240"));
            got.extend_from_slice(&body);
        }
        assert_eq!(got, file);
        let (st, _, body) = get(url.clone(), None).await;
        assert_eq!((st, body.len()), (200, 10240));
        let (st, _, _) = get(url.clone(), Some("bytes=10240-10300".into())).await;
        assert_eq!(st, 416);
        let (st, _, _) = get(
            url.replace("expires=", "expires=9"),
            Some("bytes=0-1".into()),
        )
        .await;
        assert_eq!(st, 403, "tampered expiry");

        // The URL expires; a new job document request gives a fresh one (OTAE2EPresignedUrlExpired).
        clock.advance(301);
        let (st, _, body) = get(url.clone(), Some("bytes=0-4095".into())).await;
        assert_eq!(st, 403);
        assert!(String::from_utf8_lossy(&body).contains("expired"));
        dev.publish(
            &topic("jobs/$next/get"),
            QoS::AtLeastOnce,
            get_next_payload(1),
        )
        .await;
        let fresh = job_of(&dev.expect(&topic("jobs/$next/get/accepted")).await);
        let fresh_url = fresh.url.unwrap();
        assert_ne!(fresh_url, url);
        let (st, _, body) = get(fresh_url, Some("bytes=4096-8191".into())).await;
        assert_eq!(st, 206);
        assert_eq!(body, file[4096..8192]);
    })
    .await;
}

/// OTAE2E2UpdatesCancel1st: two updates queued, the first force-cancelled during its download;
/// the device hears notify-next with the second, its late update of the first is rejected, and
/// the second downloads. Then OTAE2EDisconnectCancelUpdate: a job cancelled while the device is
/// away is gone from `$next/get` when it comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_the_first_of_two_updates_during_download() {
    let server = Server::start(ServeConfig::loopback()).await.unwrap();
    within(async {
        let key = SigningKey::random(&mut rand_core::OsRng);
        let first = image(5 * 4096);
        let second = image(2 * 4096 + 7);
        let mut dev = Device::connect(&server.mqtt_addr, THING).await;
        dev.subscribe(&topic("jobs/notify-next"), QoS::AtLeastOnce)
            .await;
        let a = create_job(&server, "first", vec![Protocol::Mqtt], &first, &key).await;
        let n = dev.expect_json(&topic("jobs/notify-next")).await;
        assert_eq!(n["execution"]["jobId"], a);
        // Queued behind the first: no notify-next for it.
        let b = create_job(&server, "second", vec![Protocol::Mqtt], &second, &key).await;
        dev.publish(
            &topic("jobs/$next/get"),
            QoS::AtLeastOnce,
            get_next_payload(0),
        )
        .await;
        let job = job_of(&dev.expect(&topic("jobs/$next/get/accepted")).await);
        assert_eq!(job.id, a);
        // One block of the first, then the operator cancels it.
        let stream = job.stream.clone().unwrap();
        let data_topic = topic(&format!("streams/{stream}/data/cbor"));
        dev.subscribe(&data_topic, QoS::AtMostOnce).await;
        let req = StreamRequest {
            client_token: "rdy",
            file_id: 0,
            block_size: BLOCK,
            block_offset: 0,
            bitmap: &[0x1f],
            number_of_blocks: 1,
        };
        let mut buf = [0u8; 64];
        let n = req.encode(&mut buf).unwrap();
        dev.publish(
            &topic(&format!("streams/{stream}/get/cbor")),
            QoS::AtMostOnce,
            &buf[..n],
        )
        .await;
        dev.expect(&data_topic).await;
        dev.publish(
            &topic(&format!("jobs/{a}/update")),
            QoS::AtMostOnce,
            status(StatusUpdate::Progress {
                received: 1,
                total: 5,
            }),
        )
        .await;
        dev.expect(&topic(&format!("jobs/{a}/update/accepted")))
            .await;
        let c = call(
            &server,
            "POST",
            &format!("/jobs/{a}/cancel"),
            Some(json!({"force": true})),
        )
        .await;
        assert_eq!(c["status"], "CANCELED");
        let n = dev.expect_json(&topic("jobs/notify-next")).await;
        assert_eq!(n["execution"]["jobId"], b);
        dev.publish(
            &topic(&format!("jobs/{a}/update")),
            QoS::AtLeastOnce,
            r#"{"status":"FAILED","statusDetails":{"reason":"aborted: 0x00000000"}}"#,
        )
        .await;
        let rej = dev
            .expect_json(&topic(&format!("jobs/{a}/update/rejected")))
            .await;
        assert_eq!(rej["code"], "TerminalStateReached");
        assert_eq!(rej["executionState"]["status"], "CANCELED");
        // The second downloads byte-exact.
        let job2 = job_of(&serde_json::to_vec(&n).unwrap());
        let got = download_over_mqtt(&mut dev, &job2).await;
        assert_eq!(got, second);
        dev.publish(
            &topic(&format!("jobs/{b}/update")),
            QoS::AtLeastOnce,
            r#"{"status":"SUCCEEDED"}"#,
        )
        .await;
        dev.expect(&topic(&format!("jobs/{b}/update/accepted")))
            .await;
        dev.expect_json(&topic("jobs/notify-next")).await;

        // Disconnect, a third job is created and cancelled meanwhile, reconnect: nothing pending.
        drop(dev);
        let c3 = create_job(&server, "third", vec![Protocol::Mqtt], &second, &key).await;
        call(
            &server,
            "POST",
            &format!("/jobs/{c3}/cancel"),
            Some(json!({})),
        )
        .await;
        let mut dev = Device::connect(&server.mqtt_addr, THING).await;
        dev.publish(
            &topic("jobs/$next/get"),
            QoS::AtLeastOnce,
            get_next_payload(1),
        )
        .await;
        let v = dev.expect_json(&topic("jobs/$next/get/accepted")).await;
        assert!(v.get("execution").is_none(), "{v}");
    })
    .await;
}

/// Requests beyond the reference's: a bitmap window at a non-zero offset and a large `n` get
/// every wanted block (capped at 128 KiB per request), over the broker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windowed_requests_with_many_blocks_per_request() {
    let server = Server::start(ServeConfig::loopback()).await.unwrap();
    within(async {
        let key = SigningKey::random(&mut rand_core::OsRng);
        let file = image(75 * 1024 + 300); // 76 blocks of 1 KiB
        create_job(&server, "big", vec![Protocol::Mqtt], &file, &key).await;
        let mut dev = Device::connect(&server.mqtt_addr, THING).await;
        dev.publish(
            &topic("jobs/$next/get"),
            QoS::AtLeastOnce,
            get_next_payload(0),
        )
        .await;
        let job = job_of(&dev.expect(&topic("jobs/$next/get/accepted")).await);
        let stream = job.stream.clone().unwrap();
        let data_topic = topic(&format!("streams/{stream}/data/cbor"));
        dev.subscribe(&data_topic, QoS::AtMostOnce).await;
        let mut image_out = vec![0u8; file.len()];
        // Window at block 64: blocks 64..76 (12 wanted bits), then blocks 0..64 in one request.
        for (offset, bitmap) in [(64u32, vec![0xff, 0x0f]), (0, vec![0xff; 8])] {
            let req = StreamRequest {
                client_token: "win",
                file_id: 0,
                block_size: 1024,
                block_offset: offset,
                bitmap: &bitmap,
                number_of_blocks: 200,
            };
            let mut buf = [0u8; 64];
            let n = req.encode(&mut buf).unwrap();
            dev.publish(
                &topic(&format!("streams/{stream}/get/cbor")),
                QoS::AtMostOnce,
                &buf[..n],
            )
            .await;
            let count: u32 = bitmap.iter().map(|b| b.count_ones()).sum();
            for _ in 0..count {
                let m = dev.expect(&data_topic).await;
                let b = DataBlock::decode(&m).unwrap();
                let start = b.block_index as usize * 1024;
                image_out[start..start + b.payload.len()].copy_from_slice(b.payload);
            }
        }
        assert_eq!(image_out, file);
    })
    .await;
}
