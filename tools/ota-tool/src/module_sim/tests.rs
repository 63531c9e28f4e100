//! Unit tests of the emulator core: every verb, both dialects, each fault.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use super::*;

fn sim(d: Dialect, faults: &[&str]) -> (Emulator, LocalCloud) {
    let mut cfg = SimConfig::new(d, "modsim-1");
    cfg.faults = faults.iter().map(|f| f.parse().unwrap()).collect();
    let cloud = LocalCloud::new();
    (Emulator::new(cfg, Box::new(cloud.clone())), cloud)
}

/// Send one command, return the reply without its EOL (several lines joined with `|`).
fn at(e: &mut Emulator, cmd: &str) -> String {
    let out = e.feed(format!("{cmd}\n").as_bytes());
    let s = String::from_utf8(out).unwrap();
    let eol = match e.config().dialect {
        Dialect::Ccm => "\n",
        Dialect::V13 => "\r\n",
    };
    if !s.is_empty() {
        assert!(s.ends_with(eol), "{s:?}");
        if e.config().dialect == Dialect::Ccm {
            assert!(!s.contains('\r'), "{s:?}");
        }
    }
    s.trim_end_matches(eol).replace(eol, "|")
}

fn image(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + 3) as u8).collect()
}

fn host_job(cloud: &LocalCloud, img: &[u8]) {
    cloud.push_job(
        Proposal {
            job_id: "job-h".into(),
            kind: JobKind::Host,
            version: String::new(),
            metadata: "fw 2.0".into(),
            signature: None,
        },
        img.to_vec(),
    );
}

fn module_job(cloud: &LocalCloud) {
    cloud.push_job(
        Proposal {
            job_id: "job-m".into(),
            kind: JobKind::Module,
            version: "2.0.0".into(),
            metadata: String::new(),
            signature: None,
        },
        vec![0xAB; 1000],
    );
}

/// Connect, take the proposal, accept, let the download finish: state 5 (host).
fn to_state5(d: Dialect, faults: &[&str], img: &[u8]) -> (Emulator, LocalCloud) {
    let (mut e, cloud) = sim(d, faults);
    host_job(&cloud, img);
    assert_eq!(at(&mut e, "AT+CONNECT"), "OK 1 CONNECTED");
    assert_eq!(e.ota_state(), 2);
    assert_eq!(at(&mut e, "AT+OTA ACCEPT"), "OK");
    assert_eq!(e.ota_state(), 3);
    e.tick();
    assert_eq!(e.ota_state(), 5);
    (e, cloud)
}

fn decode_read(reply: &str) -> (usize, Vec<u8>, String) {
    let parts: Vec<&str> = reply.split(' ').collect();
    assert_eq!(parts[0], "OK");
    let count = usize::from_str_radix(parts[1], 16).unwrap();
    if count == 0 {
        assert_eq!(parts.len(), 2);
        return (0, vec![], String::new());
    }
    let data: Vec<u8> = (0..count)
        .map(|i| u8::from_str_radix(&parts[2][2 * i..2 * i + 2], 16).unwrap())
        .collect();
    (count, data, parts[3].to_string())
}

#[test]
fn attention_parse_errors_and_framing() {
    for d in [Dialect::Ccm, Dialect::V13] {
        let (mut e, _) = sim(d, &[]);
        assert_eq!(at(&mut e, "AT"), "OK");
        assert_eq!(at(&mut e, "at"), "OK");
        assert!(at(&mut e, "AT+NOPE").starts_with("ERR3 "));
        assert!(at(&mut e, "hello").starts_with("ERR2 "));
        assert!(at(&mut e, "AT+OTA?x").starts_with("ERR2 "));
        assert!(at(&mut e, "AT+CONNECT5").starts_with("ERR4 "));
        // Empty lines are ignored.
        assert!(e.feed(b"\n\n").is_empty());
        // Over-long line: discarded, ERR1 at the EOL.
        let long = format!("AT+CONF Topic1={}", "x".repeat(e.config().max_line() + 10));
        assert!(at(&mut e, &long).starts_with("ERR1 "));
        assert_eq!(at(&mut e, "AT"), "OK");
    }
    // v1.3 accepts CR as EOL and ignores the extra LF; CCM treats a CR as part of the line.
    let (mut e, _) = sim(Dialect::V13, &[]);
    assert_eq!(String::from_utf8(e.feed(b"AT\r\n")).unwrap(), "OK\r\n");
    let (mut e, _) = sim(Dialect::Ccm, &[]);
    assert!(String::from_utf8(e.feed(b"AT\r\n"))
        .unwrap()
        .starts_with("ERR2"));
}

#[test]
fn conf_keys_techspec_version_hotacertificate() {
    let (mut e, _) = sim(Dialect::Ccm, &[]);
    assert_eq!(at(&mut e, "AT+CONF? TechSpec"), "OK v0.5");
    assert_eq!(at(&mut e, "AT+CONF? Version"), "OK 1.0.0");
    assert!(at(&mut e, "AT+CONF Version=9").starts_with("ERR12 "));
    assert!(at(&mut e, "AT+CONF Nope=1").starts_with("ERR11 "));
    assert!(at(&mut e, "AT+CONF ba-d=1").starts_with("ERR10 "));
    assert!(at(&mut e, "AT+CONF? version").starts_with("ERR11 "));
    assert_eq!(at(&mut e, "AT+CONF Topic1=a\\\\b"), "OK");
    assert_eq!(at(&mut e, "AT+CONF? Topic1"), "OK a\\\\b");
    assert!(at(&mut e, "AT+CONF Topic1=a\\Xb").starts_with("ERR5 "));
    assert!(at(&mut e, "AT+CONF Topic1=a\\Db").starts_with("ERR5 "));
    assert!(at(&mut e, "AT+CONF Topic0=x").starts_with("ERR7 TOPIC OUT OF RANGE"));
    // HOTAcertificate: escaped one-liner, and the pem entry mode.
    assert_eq!(at(&mut e, "AT+CONF HOTAcertificate=L1\\AL2"), "OK");
    assert_eq!(at(&mut e, "AT+CONF? HOTAcertificate pem"), "OK pem|L1|L2");
    assert_eq!(at(&mut e, "AT+CONF HOTAcertificate=pem"), "");
    assert_eq!(at(&mut e, "-----BEGIN PUBLIC KEY-----"), "");
    assert_eq!(at(&mut e, "-----END PUBLIC KEY-----"), "OK");
    assert_eq!(
        at(&mut e, "AT+CONF? HOTAcertificate"),
        "OK -----BEGIN PUBLIC KEY-----\\A-----END PUBLIC KEY-----"
    );
    let (mut e, _) = sim(Dialect::V13, &[]);
    assert_eq!(at(&mut e, "AT+CONF? TechSpec"), "OK v1.3");
    assert_eq!(at(&mut e, "AT+CONF HOTAcertificate=L1\\AL2"), "OK");
    assert_eq!(at(&mut e, "AT+CONF? HOTAcertificate pem"), "OK2 pem|L1|L2");
    assert!(at(&mut e, "AT+CONF? OTAcertificate").starts_with("ERR13 "));
    assert!(at(&mut e, "AT+CONF Topic0=x").starts_with("ERR7 OUT OF RANGE"));
    assert_eq!(at(&mut e, "AT+CONF? MaxOTARead"), "OK 2048");
}

#[test]
fn connect_send_subscribe_get_both_dialects() {
    for d in [Dialect::Ccm, Dialect::V13] {
        let v13 = d == Dialect::V13;
        let (mut e, cloud) = sim(d, &[]);
        assert!(at(&mut e, "AT+SEND1 hi").starts_with("ERR6 "));
        assert_eq!(
            at(&mut e, "AT+CONNECT?"),
            if v13 {
                "OK 0 0 DISCONNECTED CUSTOMER"
            } else {
                "OK 0"
            }
        );
        assert_eq!(at(&mut e, "AT+CONNECT"), "OK 1 CONNECTED");
        assert_eq!(
            at(&mut e, "AT+CONNECT"),
            if v13 {
                "OK 1 CONNECTED"
            } else {
                "OK CONNECTED"
            }
        );
        assert!(at(&mut e, "AT+SEND1 hi").starts_with("ERR8 "));
        assert!(at(&mut e, "AT+SEND0 hi").starts_with("ERR7 "));
        assert!(at(&mut e, "AT+SEND17 hi").starts_with(if v13 { "ERR7 " } else { "ERR4 " }));
        assert_eq!(at(&mut e, "AT+CONF Topic1=t/a"), "OK");
        assert_eq!(at(&mut e, "AT+SEND1 a\\Ab"), "OK");
        assert_eq!(
            cloud.lock().published,
            vec![("t/a".to_string(), b"a\nb".to_vec())]
        );
        assert_eq!(at(&mut e, "AT+SUBSCRIBE1"), "OK");
        assert_eq!(at(&mut e, "AT+GET1"), "OK");
        cloud.push_message("t/a", b"x\ny");
        cloud.push_message("t/a", b"z");
        e.tick();
        assert_eq!(at(&mut e, "AT+GET1"), "OK x\\Ay");
        assert_eq!(
            at(&mut e, "AT+GET"),
            if v13 { "OK1 t/a|z" } else { "OK t/a z" }
        );
        assert_eq!(at(&mut e, "AT+GET"), "OK");
        assert!(cloud.lock().subscribed.contains(&"t/a".to_string()));
        assert_eq!(at(&mut e, "AT+DISCONNECT"), "OK");
        assert!(!e.connected());
    }
    let (mut e, cloud) = sim(Dialect::V13, &[]);
    cloud.lock().refuse_connect = Some("no network".into());
    assert_eq!(at(&mut e, "AT+CONNECT"), "ERR14 2 UNABLE TO CONNECT");
    let (mut e, cloud) = sim(Dialect::Ccm, &[]);
    cloud.lock().refuse_connect = Some("no network".into());
    assert_eq!(at(&mut e, "AT+CONNECT"), "ERR14 UNABLE TO CONNECT");
}

#[test]
fn events_lifo_on_ccm_fifo_drop_oldest_on_v13() {
    // CCM: the most recent first; STARTUP was queued at boot.
    let (mut e, cloud) = sim(Dialect::Ccm, &[]);
    assert_eq!(at(&mut e, "AT+CONNECT"), "OK 1 CONNECTED");
    host_job(&cloud, &image(10));
    e.tick();
    assert_eq!(at(&mut e, "AT+EVENT?"), "OK 5 OTA event Update proposed");
    assert_eq!(at(&mut e, "AT+EVENT?"), "OK 2 0 STARTUP");
    assert_eq!(at(&mut e, "AT+EVENT?"), "OK");
    // v1.3: oldest first, param 0; SUBACK events; a full queue drops its oldest.
    let (mut e, cloud) = sim(Dialect::V13, &[]);
    assert_eq!(at(&mut e, "AT+CONNECT"), "OK 1 CONNECTED");
    host_job(&cloud, &image(10));
    e.tick();
    assert_eq!(at(&mut e, "AT+EVENT?"), "OK 2 0 STARTUP");
    assert_eq!(at(&mut e, "AT+EVENT?"), "OK 5 0 OTA");
    assert_eq!(at(&mut e, "AT+EVENT?"), "OK");
    at(&mut e, "AT+CONF Topic1=t");
    for _ in 0..20 {
        assert_eq!(at(&mut e, "AT+SUBSCRIBE1"), "OK");
    }
    assert_eq!(e.events().count(), 16);
    assert_eq!(at(&mut e, "AT+EVENT?"), "OK 8 1 SUBACK");
    // OTA event parameter = state code (Espressif practice).
    let mut cfg = SimConfig::new(Dialect::V13, "m");
    cfg.ota_event_param = OtaEventParam::State;
    let cloud = LocalCloud::new();
    let mut e = Emulator::new(cfg, Box::new(cloud.clone()));
    at(&mut e, "AT+CONNECT");
    host_job(&cloud, &image(10));
    e.tick();
    at(&mut e, "AT+EVENT?");
    assert_eq!(at(&mut e, "AT+EVENT?"), "OK 5 2 OTA");
    // RESET clears the queue and queues STARTUP.
    assert_eq!(at(&mut e, "AT+RESET"), "OK");
    assert_eq!(at(&mut e, "AT+EVENT?"), "OK 2 0 STARTUP");
    assert_eq!(at(&mut e, "AT+EVENT?"), "OK");
}

#[test]
fn ota_states_and_details_per_dialect() {
    let img = image(300);
    let (mut e, _) = sim(Dialect::Ccm, &[]);
    assert_eq!(at(&mut e, "AT+OTA?"), "OK 0");
    assert!(at(&mut e, "AT+OTA ACCEPT").starts_with("ERR21 "));
    assert_eq!(at(&mut e, "AT+OTA FLUSH"), "OK");
    assert!(at(&mut e, "AT+OTA READ 10").starts_with("ERR19 "));
    assert!(at(&mut e, "AT+OTA SEEK").starts_with("ERR19 "));
    assert!(at(&mut e, "AT+OTA CLOSE").starts_with("ERR19 "));
    assert!(at(&mut e, "AT+OTA APPLY").starts_with("ERR19 "));
    assert!(at(&mut e, "AT+OTA BOGUS").starts_with("ERR4 "));
    let (mut e, cloud) = sim(Dialect::Ccm, &[]);
    host_job(&cloud, &img);
    at(&mut e, "AT+CONNECT");
    assert_eq!(at(&mut e, "AT+OTA?"), "OK 2 fw 2.0");
    at(&mut e, "AT+OTA ACCEPT");
    assert_eq!(at(&mut e, "AT+OTA?"), "OK 5 300");
    let (mut e, cloud) = sim(Dialect::V13, &[]);
    cloud.lock().download_polls = 3;
    assert_eq!(at(&mut e, "AT+OTA?"), "OK 0 IDLE");
    host_job(&cloud, &img);
    at(&mut e, "AT+CONNECT");
    assert_eq!(at(&mut e, "AT+OTA?"), "OK 2 HOTA PENDING");
    assert!(at(&mut e, "AT+OTA? DOC").starts_with("OK 2 HOTA PENDING {"));
    assert_eq!(at(&mut e, "AT+OTA ACCEPT"), "OK");
    assert_eq!(at(&mut e, "AT+OTA?").as_str(), "OK 3 OTA IN PROGRESS");
    assert!(at(&mut e, "AT+OTA READ 10").starts_with("ERR19 "));
    assert_eq!(at(&mut e, "AT+OTA?").as_str(), "OK 3 OTA IN PROGRESS");
    assert_eq!(at(&mut e, "AT+OTA?"), "OK 5 HOTA AVAILABLE");
}

#[test]
fn read_seek_checksums_and_the_cap() {
    let img = image(5000);
    for (d, digits) in [(Dialect::Ccm, 2), (Dialect::V13, 4)] {
        let (mut e, _) = to_state5(d, &[], &img);
        assert!(at(&mut e, "AT+OTA READ").starts_with("ERR4 "));
        assert!(at(&mut e, "AT+OTA READ 0").starts_with("ERR4 "));
        assert!(at(&mut e, "AT+OTA READ x").starts_with("ERR4 "));
        let mut got = Vec::new();
        loop {
            let r = at(&mut e, "AT+OTA READ 4096");
            let (n, data, ck) = decode_read(&r);
            if n == 0 {
                assert_eq!(r, "OK 0");
                break;
            }
            assert!(n <= 2048, "capped at MaxOTARead");
            assert_eq!(ck.len(), digits);
            let sum: u32 = data.iter().map(|b| u32::from(*b)).sum();
            let want = if digits == 2 {
                sum & 0xFF
            } else {
                sum & 0xFFFF
            };
            assert_eq!(u32::from_str_radix(&ck, 16).unwrap(), want);
            got.extend(data);
        }
        assert_eq!(got, img);
        // SEEK: hex echo, bare SEEK → 0, == size allowed, > size ERR20.
        assert_eq!(at(&mut e, "AT+OTA SEEK 1024"), "OK 400");
        let (n, data, _) = decode_read(&at(&mut e, "AT+OTA READ 2"));
        assert_eq!((n, data), (2, img[1024..1026].to_vec()));
        assert_eq!(at(&mut e, "AT+OTA SEEK"), "OK 0");
        assert_eq!(at(&mut e, "AT+OTA SEEK 5000"), "OK 1388");
        assert_eq!(at(&mut e, "AT+OTA READ 10"), "OK 0");
        assert!(at(&mut e, "AT+OTA SEEK 5001").starts_with("ERR20 "));
        assert!(at(&mut e, "AT+OTA SEEK x").starts_with("ERR4 "));
        // 2 bytes pad to 2 hex digits of count.
        at(&mut e, "AT+OTA SEEK 0");
        assert!(at(&mut e, "AT+OTA READ 2").starts_with("OK 02 030A "));
    }
}

#[test]
fn host_job_close_succeeds_flush_fails() {
    let (mut e, cloud) = to_state5(Dialect::V13, &[], &image(10));
    assert_eq!(at(&mut e, "AT+OTA CLOSE"), "OK");
    assert_eq!(e.ota_state(), 0);
    assert_eq!(
        cloud.reports(),
        vec![("job-h".to_string(), JobOutcome::Succeeded)]
    );
    let (mut e, cloud) = to_state5(Dialect::V13, &[], &image(10));
    assert_eq!(at(&mut e, "AT+OTA FLUSH"), "OK");
    assert_eq!(e.ota_state(), 0);
    assert!(matches!(cloud.reports()[0].1, JobOutcome::Failed(_)));
    // FLUSH refuses a proposal too.
    let (mut e, cloud) = sim(Dialect::Ccm, &[]);
    host_job(&cloud, &image(10));
    at(&mut e, "AT+CONNECT");
    assert_eq!(at(&mut e, "AT+OTA FLUSH"), "OK");
    assert_eq!(e.ota_state(), 0);
    assert_eq!(cloud.lock().accepted.len(), 0);
    assert_eq!(cloud.reports().len(), 1);
}

#[test]
fn module_job_apply_reboot_connect_commits() {
    for d in [Dialect::Ccm, Dialect::V13] {
        let (mut e, cloud) = sim(d, &[]);
        module_job(&cloud);
        at(&mut e, "AT+CONNECT");
        let q = at(&mut e, "AT+OTA?");
        assert!(q == "OK 1 2.0.0" || q == "OK 1 OTA PENDING", "{q}");
        assert_eq!(at(&mut e, "AT+OTA ACCEPT"), "OK");
        e.tick();
        assert_eq!(e.ota_state(), 4);
        assert!(at(&mut e, "AT+OTA READ 10").starts_with("ERR19 "));
        let boots = e.boots();
        assert_eq!(at(&mut e, "AT+OTA APPLY"), "OK");
        assert_eq!(e.boots(), boots + 1);
        assert_eq!(e.version(), "2.0.0");
        assert_eq!(e.ota_state(), 0);
        assert!(!e.connected());
        assert_eq!(at(&mut e, "AT+EVENT?"), "OK 2 0 STARTUP");
        assert_eq!(at(&mut e, "AT+EVENT?"), "OK");
        assert!(cloud.reports().is_empty(), "not committed before CONNECT");
        assert_eq!(at(&mut e, "AT+CONNECT"), "OK 1 CONNECTED");
        assert_eq!(
            cloud.reports(),
            vec![("job-m".to_string(), JobOutcome::Succeeded)]
        );
        assert_eq!(at(&mut e, "AT+CONF? Version"), "OK 2.0.0");
    }
}

#[test]
fn module_checks_host_signature_with_hotacertificate() {
    use p256::ecdsa::signature::Signer;
    use p256::pkcs8::{EncodePublicKey, LineEnding};
    let sk = p256::ecdsa::SigningKey::from_slice(&[7; 32]).unwrap();
    let pem = sk
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    let img = image(100);
    let sig: p256::ecdsa::Signature = sk.sign(&img);
    for (good, state) in [(true, 5), (false, 0)] {
        let (mut e, cloud) = sim(Dialect::V13, &[]);
        let escaped = pem.replace('\n', "\\A");
        assert_eq!(
            at(&mut e, &format!("AT+CONF HOTAcertificate={escaped}")),
            "OK"
        );
        let mut s = sig.to_der().as_bytes().to_vec();
        if !good {
            let last = s.len() - 1;
            s[last] ^= 1;
        }
        cloud.push_job(
            Proposal {
                job_id: "j".into(),
                kind: JobKind::Host,
                version: String::new(),
                metadata: String::new(),
                signature: Some(s),
            },
            img.clone(),
        );
        at(&mut e, "AT+CONNECT");
        at(&mut e, "AT+OTA ACCEPT");
        e.tick();
        assert_eq!(e.ota_state(), state);
        assert_eq!(cloud.reports().len(), usize::from(!good));
    }
}

#[test]
fn fault_corrupt_checksum_and_data() {
    let img = image(100);
    for f in ["corrupt-checksum=2", "corrupt-data=2"] {
        for d in [Dialect::Ccm, Dialect::V13] {
            let (mut e, _) = to_state5(d, &[f], &img);
            let ok = |r: &str| {
                let (_, data, ck) = decode_read(r);
                let sum: u32 = data.iter().map(|b| u32::from(*b)).sum();
                let m = if ck.len() == 2 { 0xFF } else { 0xFFFF };
                u32::from_str_radix(&ck, 16).unwrap() == sum & m
            };
            assert!(ok(&at(&mut e, "AT+OTA READ 10")));
            assert!(!ok(&at(&mut e, "AT+OTA READ 10")), "{f}");
            assert!(ok(&at(&mut e, "AT+OTA READ 10")));
            at(&mut e, "AT+OTA SEEK 10");
            assert!(ok(&at(&mut e, "AT+OTA READ 10")), "only once");
        }
    }
}

#[test]
fn fault_short_reads_capped() {
    let (mut e, _) = to_state5(Dialect::V13, &["short-read=100"], &image(1000));
    let (n, _, _) = decode_read(&at(&mut e, "AT+OTA READ 2048"));
    assert_eq!(n, 100);
    let (mut e, _) = to_state5(Dialect::V13, &["short-read=9999"], &image(5000));
    let (n, _, _) = decode_read(&at(&mut e, "AT+OTA READ 4096"));
    assert_eq!(n, 2048, "never above 2 KB");
}

#[test]
fn fault_dropped_response() {
    let (mut e, _) = to_state5(Dialect::V13, &["drop-response=1"], &image(100));
    assert_eq!(at(&mut e, "AT+OTA READ 10"), "");
    assert_eq!(at(&mut e, "AT+OTA SEEK 0"), "OK 0");
    assert!(at(&mut e, "AT+OTA READ 10").starts_with("OK 0A "));
}

#[test]
fn fault_reset_mid_download_persisting_or_not() {
    for persist in [true, false] {
        let mut cfg = SimConfig::new(Dialect::V13, "m");
        cfg.persist_ota = persist;
        cfg.faults = vec!["reset-at=20".parse().unwrap()];
        let cloud = LocalCloud::new();
        let mut e = Emulator::new(cfg, Box::new(cloud.clone()));
        host_job(&cloud, &image(100));
        at(&mut e, "AT+CONNECT");
        at(&mut e, "AT+OTA ACCEPT");
        e.tick();
        at(&mut e, "AT+EVENT?");
        at(&mut e, "AT+EVENT?");
        assert!(at(&mut e, "AT+OTA READ 20").starts_with("OK 14 "));
        assert_eq!(at(&mut e, "AT+OTA READ 20"), "", "reset: no reply");
        assert_eq!(at(&mut e, "AT+EVENT?"), "OK 2 0 STARTUP");
        assert!(!e.connected());
        if persist {
            assert!(cloud.reports().is_empty());
            assert_eq!(at(&mut e, "AT+OTA?"), "OK 5 HOTA AVAILABLE");
            assert_eq!(at(&mut e, "AT+OTA SEEK 20"), "OK 14");
            assert!(at(&mut e, "AT+OTA READ 20").starts_with("OK 14 "));
        } else {
            // The job went with the OTA state: reported, not left open.
            let reports = cloud.reports();
            assert_eq!(reports.len(), 1);
            assert!(matches!(reports[0].1, JobOutcome::Failed(_)), "{reports:?}");
            assert_eq!(at(&mut e, "AT+OTA?"), "OK 0 IDLE");
            assert!(at(&mut e, "AT+OTA SEEK 20").starts_with("ERR19 "));
        }
    }
}

#[test]
fn fault_errors_on_demand() {
    let (mut e, _) = to_state5(Dialect::V13, &["err=read:19@2", "err=seek:20"], &image(100));
    assert!(at(&mut e, "AT+OTA READ 10").starts_with("OK 0A "));
    assert_eq!(
        at(&mut e, "AT+OTA READ 10"),
        "ERR19 HOST IMAGE NOT AVAILABLE"
    );
    assert!(at(&mut e, "AT+OTA READ 10").starts_with("OK 0A "));
    assert_eq!(at(&mut e, "AT+OTA SEEK 0"), "ERR20 INVALID ADDRESS");
    for (fault, code) in [("err=apply:23", "ERR23 "), ("err=apply:21", "ERR21 ")] {
        let (mut e, cloud) = sim(Dialect::V13, &[fault]);
        module_job(&cloud);
        at(&mut e, "AT+CONNECT");
        at(&mut e, "AT+OTA ACCEPT");
        e.tick();
        assert!(at(&mut e, "AT+OTA APPLY").starts_with(code));
        assert_eq!(e.ota_state(), 4);
        assert_eq!(e.version(), "1.0.0");
    }
    let (mut e, cloud) = sim(Dialect::V13, &["err=accept:21@1"]);
    host_job(&cloud, &image(10));
    at(&mut e, "AT+CONNECT");
    assert!(at(&mut e, "AT+OTA ACCEPT").starts_with("ERR21 "));
    assert_eq!(at(&mut e, "AT+OTA ACCEPT"), "OK");
}

#[test]
fn fault_specs_parse_and_reject() {
    assert_eq!(
        "corrupt-checksum=3".parse::<Fault>().unwrap(),
        Fault::CorruptChecksum(3)
    );
    assert_eq!(
        "err=apply:23".parse::<Fault>().unwrap(),
        Fault::Err {
            verb: "apply".into(),
            code: 23,
            nth: 0
        }
    );
    assert!("err=bogus:23".parse::<Fault>().is_err());
    assert!("nope=1".parse::<Fault>().is_err());
    assert!("corrupt-checksum".parse::<Fault>().is_err());
    assert_eq!("ccm".parse::<Dialect>().unwrap(), Dialect::Ccm);
    assert_eq!("v1.3".parse::<Dialect>().unwrap(), Dialect::V13);
}

#[test]
fn module_checks_module_signature_with_otacertificate() {
    use p256::ecdsa::signature::Signer;
    use p256::pkcs8::{EncodePublicKey, LineEnding};
    let sk = p256::ecdsa::SigningKey::from_slice(&[9; 32]).unwrap();
    let pem = sk
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    let img = image(64);
    let other: p256::ecdsa::Signature = sk.sign(b"another image");
    let (mut e, cloud) = sim(Dialect::Ccm, &[]);
    let escaped = pem.replace('\n', "\\A");
    assert_eq!(
        at(&mut e, &format!("AT+CONF OTAcertificate={escaped}")),
        "OK"
    );
    cloud.push_job(
        Proposal {
            job_id: "m".into(),
            kind: JobKind::Module,
            version: "9.9.9".into(),
            metadata: String::new(),
            signature: Some(other.to_der().as_bytes().to_vec()),
        },
        img,
    );
    at(&mut e, "AT+CONNECT");
    at(&mut e, "AT+OTA ACCEPT");
    e.tick();
    assert_eq!(e.ota_state(), 0);
    assert!(matches!(cloud.reports()[0].1, JobOutcome::Failed(_)));
    assert!(at(&mut e, "AT+OTA APPLY").starts_with("ERR19 "));
    assert_eq!(e.version(), "1.0.0");
}

#[test]
fn fault_truncated_line_missing_eol_and_blank_line() {
    let img = image(100);
    let (mut e, _) = to_state5(
        Dialect::V13,
        &["truncate=1", "no-eol=2", "blank-line=3"],
        &img,
    );
    let r = String::from_utf8(e.feed(b"AT+OTA READ 10\n")).unwrap();
    assert_eq!(r, "OK 0A 030A1118\r\n", "cut in the data");
    let r = String::from_utf8(e.feed(b"AT+OTA READ 10\n")).unwrap();
    assert!(r.starts_with("OK 0A ") && !r.ends_with('\n'), "{r:?}");
    let r = e.feed(b"AT+OTA READ 10\n");
    assert!(r.starts_with(b"\0\xff\r\nOK 0A "), "{r:?}");
    assert!(r.ends_with(b"\r\n"));
}

#[test]
fn fault_late_reply_asks_the_transport_to_wait() {
    let (mut e, _) = to_state5(Dialect::Ccm, &["late=2:1500"], &image(100));
    assert!(at(&mut e, "AT+OTA READ 10").starts_with("OK 0A "));
    assert_eq!(e.take_delay_ms(), 0);
    assert!(at(&mut e, "AT+OTA READ 10").starts_with("OK 0A "));
    assert_eq!(e.take_delay_ms(), 1500);
    assert_eq!(e.take_delay_ms(), 0);
    assert!("late=2".parse::<Fault>().is_err());
}
