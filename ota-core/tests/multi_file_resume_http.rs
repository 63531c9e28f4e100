//! Items e, f, h: multi-file jobs, resume after a reboot from the journal, and the HTTP data
//! path with URL expiry.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

mod common;
use common::*;
use ota_core::agent::State;
use ota_pal_traits::{PalError, PalErrorKind};

fn file_entry(id: u32, size: u32, file_type: u32, path: &str) -> String {
    format!(
        r#"{{"filepath":"{path}","filesize":{size},"fileid":{id},"fileType":{file_type},"certfile":"c","sig-sha256-ecdsa":"{SIG}"}}"#
    )
}

fn multi_doc(files: &[String]) -> String {
    job_doc(
        "AFR_OTA-multi",
        "QUEUED",
        "",
        &format!(
            r#"{{"protocols":["MQTT"],"streamname":"AFR_OTA-XYZ","files":[{}]}}"#,
            files.join(",")
        ),
    )
}

#[test]
fn each_file_of_a_multi_file_job_is_stored_then_firmware_files_get_trial_boots_in_order() {
    let mut h = Harness::new(config());
    h.file_images = vec![(0, image(5000)), (1, image(300)), (2, image(9000))];
    h.job = Some(multi_doc(&[
        file_entry(0, 5000, 0, "/fw/app"),
        file_entry(1, 300, 7, "/cfg/x"),
        file_entry(2, 9000, 0, "/fw/net"),
    ]));
    h.auto_ack = false;
    h.boot();
    let prepares: Vec<&Ev> = h
        .log
        .iter()
        .filter(|e| matches!(e, Ev::Prepare { .. }))
        .collect();
    assert_eq!(
        prepares,
        [
            &Ev::Prepare {
                resume: false,
                size: 5000,
                index: 0,
                file_type: 0
            },
            &Ev::Prepare {
                resume: false,
                size: 300,
                index: 1,
                file_type: 7
            },
            &Ev::Prepare {
                resume: false,
                size: 9000,
                index: 2,
                file_type: 0
            },
        ]
    );
    assert_eq!(h.verified.len(), 3);
    assert_eq!(h.verified[0], h.file_images[0].1);
    assert_eq!(h.verified[1], h.file_images[1].1);
    assert_eq!(h.verified[2], h.file_images[2].1);
    // Trial boots only after all three verified, firmware files only, in file order.
    let tail: Vec<&Ev> = h
        .log
        .iter()
        .filter(|e| matches!(e, Ev::Verify | Ev::TrialBoot(_)))
        .collect();
    assert_eq!(
        tail,
        [
            &Ev::Verify,
            &Ev::Verify,
            &Ev::Verify,
            &Ev::TrialBoot(0),
            &Ev::TrialBoot(2)
        ]
    );
    assert!(h
        .statuses()
        .last()
        .unwrap()
        .contains(r#""self_test":"ready""#));
    assert_eq!(h.count(&Ev::Abort), 0);
}

#[test]
fn a_job_of_non_firmware_files_succeeds_after_all_verify() {
    let mut h = Harness::new(config());
    h.file_images = vec![(0, image(100)), (1, image(200))];
    h.job = Some(multi_doc(&[
        file_entry(0, 100, 5, "/a"),
        file_entry(1, 200, 6, "/b"),
    ]));
    h.boot();
    assert_eq!(h.count(&Ev::Verify), 2);
    assert_eq!(h.count(&Ev::TrialBoot(0)) + h.count(&Ev::TrialBoot(1)), 0);
    assert_eq!(
        h.statuses().last().unwrap(),
        r#"{"status":"SUCCEEDED","statusDetails":{"reason":"accepted  v0.0.6","updatedBy":"  v0.0.0"}}"#
    );
    assert_eq!(h.state(), State::WaitingForJob);
}

#[test]
fn a_reboot_mid_download_resumes_and_requests_only_the_missing_blocks() {
    let mut h = Harness::new(config());
    h.image = image(10 * 4096);
    h.job = Some(mqtt_job("AFR_OTA-resume", 10 * 4096));
    h.serve_blocks = false;
    h.boot();
    // Blocks 0, 1, 2 and 5 land, then the power goes.
    for k in [0u32, 1, 2, 5] {
        let blk = data_block(0, k, &h.image[k as usize * 4096..(k as usize + 1) * 4096]);
        h.deliver(
            &topic(
                "streams/AFR_OTA-resume/data/cbor"
                    .replace("AFR_OTA-resume", "AFR_OTA-XYZ")
                    .as_str(),
            ),
            &blk,
        );
    }
    assert_eq!(h.journal_blocks, [0, 1, 2, 5]);
    assert!(h.journal.is_some());
    // Reboot: the job is still IN_PROGRESS (no self test).
    h.serve_blocks = true;
    h.job = Some(h.job.clone().unwrap().replace("QUEUED", "IN_PROGRESS"));
    h.requests.clear();
    h.reboot(config());
    assert!(h.log.contains(&Ev::Prepare {
        resume: true,
        size: 40960,
        index: 0,
        file_type: 0
    }));
    let first = &h.requests[0];
    assert_eq!(
        (first.offset, first.bitmap.clone()),
        (0, vec![0xd8]),
        "blocks 3, 4, 6, 7 of the first byte"
    );
    let mut fetched = h.written.clone();
    fetched.sort();
    assert_eq!(fetched, [3, 4, 6, 7, 8, 9], "only the missing blocks");
    assert_eq!(h.storage, h.image);
    assert!(h.statuses().last().unwrap().contains("ready"));
}

#[test]
fn a_resume_the_storage_refuses_downloads_the_file_afresh() {
    // TF-M drops a half-written candidate at reset, so its storage refuses `resume`: the agent
    // must start the file again (fresh prepare, journal rewritten), not fail the job.
    let mut h = Harness::new(config());
    h.image = image(10 * 4096);
    h.job = Some(mqtt_job("AFR_OTA-resume", 10 * 4096));
    h.serve_blocks = false;
    h.boot();
    for k in [0u32, 1, 2] {
        let blk = data_block(0, k, &h.image[k as usize * 4096..(k as usize + 1) * 4096]);
        h.deliver(&topic("streams/AFR_OTA-XYZ/data/cbor"), &blk);
    }
    assert_eq!(h.journal_blocks, [0, 1, 2]);
    h.serve_blocks = true;
    h.job = Some(h.job.clone().unwrap().replace("QUEUED", "IN_PROGRESS"));
    h.resume_result = Err(PalError::new(PalErrorKind::RxFileCreateFailed));
    h.written.clear();
    h.reboot(config());
    let prepares: Vec<bool> = h
        .log
        .iter()
        .filter_map(|e| match e {
            Ev::Prepare { resume, .. } => Some(*resume),
            _ => None,
        })
        .collect();
    assert_eq!(
        prepares,
        [true, false],
        "a refused resume, then a fresh prepare"
    );
    let mut fetched = h.written.clone();
    fetched.sort();
    assert_eq!(
        fetched,
        (0..10).collect::<Vec<u32>>(),
        "the whole file again"
    );
    assert_eq!(h.storage, h.image);
    assert!(h.statuses().iter().all(|s| !s.contains("FAILED")));
    assert!(h.statuses().last().unwrap().contains("ready"));
}

#[test]
fn a_journal_for_another_job_is_not_resumed() {
    let mut h = Harness::new(config());
    h.image = image(3 * 4096);
    h.job = Some(mqtt_job("AFR_OTA-one", 3 * 4096));
    h.serve_blocks = false;
    h.boot();
    let blk = data_block(0, 0, &h.image[..4096]);
    h.deliver(&topic("streams/AFR_OTA-XYZ/data/cbor"), &blk);
    h.serve_blocks = true;
    h.job = Some(mqtt_job("AFR_OTA-two", 3 * 4096));
    h.reboot(config());
    assert!(h.log.contains(&Ev::Prepare {
        resume: false,
        size: 12288,
        index: 0,
        file_type: 0
    }));
    assert_eq!(h.written, [0, 1, 2]);
}

#[test]
fn a_journal_with_a_different_signature_is_not_resumed() {
    let mut h = Harness::new(config());
    h.image = image(3 * 4096);
    h.job = Some(mqtt_job("AFR_OTA-one", 3 * 4096));
    h.serve_blocks = false;
    h.boot();
    let blk = data_block(0, 0, &h.image[..4096]);
    h.deliver(&topic("streams/AFR_OTA-XYZ/data/cbor"), &blk);
    h.serve_blocks = true;
    // Same id, another signature (a re-created job with another image).
    let other_sig = "MEUCIQCuwPQBzaKu9Rp4v4BwGa7T4h3JK71KwDJ3LZoSvYdCsQIgclDeaFE+5NeJL3cydMiuKM909bprNXfCZcneIuiSZrk=";
    h.job = Some(mqtt_job("AFR_OTA-one", 3 * 4096).replace(SIG, other_sig));
    h.reboot(config());
    assert!(h.log.contains(&Ev::Prepare {
        resume: false,
        size: 12288,
        index: 0,
        file_type: 0
    }));
}

fn http_doc(size: u32) -> String {
    job_doc(
        "AFR_OTA-testjob22",
        "QUEUED",
        "",
        &format!(
            r#"{{"protocols":["HTTP"],"files":[{}]}}"#,
            file_json(
                size,
                r#","update_data_url":"https://dummy-url.com/ota.bin","auth_scheme":"aws.s3.presigned""#
            )
        ),
    )
}

fn http_config() -> ota_core::agent::Config<'static> {
    let mut cfg = config();
    cfg.http_enabled = true;
    cfg
}

#[test]
fn http_downloads_with_whole_block_range_requests() {
    let mut h = Harness::new(http_config());
    h.job = Some(http_doc(10240));
    h.boot();
    assert_eq!(h.http_ranges, [(0, 4095), (4096, 8191), (8192, 10239)]);
    assert_eq!(h.storage, h.image);
    assert!(!h.texts().iter().any(|t| t.contains("streams/")));
    assert!(h.statuses().last().unwrap().contains("ready"));
}

#[test]
fn an_expired_url_is_refreshed_from_the_job_document_and_the_download_continues() {
    let mut h = Harness::new(http_config());
    h.job = Some(http_doc(10240));
    h.http_expire_after = Some(1);
    h.boot();
    // After block 0, the URL expired; the job is re-read with a new URL.
    assert_eq!(
        h.http_ranges,
        [(0, 4095), (4096, 8191), (4096, 8191), (8192, 10239)]
    );
    assert_eq!(
        h.count(&Ev::Prepare {
            resume: false,
            size: 10240,
            index: 0,
            file_type: 0
        }),
        1
    );
    assert_eq!(h.storage, h.image);
}

#[test]
fn mqtt_is_preferred_when_both_protocols_are_listed() {
    let doc = http_doc(10240).replace(
        r#"["HTTP"]"#,
        r#"["MQTT","HTTP"],"streamname":"AFR_OTA-XYZ""#,
    );
    let mut h = Harness::new(http_config());
    h.job = Some(doc);
    h.boot();
    assert!(h.http_ranges.is_empty());
    assert_eq!(h.storage, h.image);
}

fn two_file_job(second_size: u32) -> String {
    multi_doc(&[
        file_entry(0, 5000, 0, "/fw/app"),
        file_entry(1, second_size, 7, "/cfg/x"),
    ])
}

/// File 0 complete, block 0 of file 1 stored, then the power goes.
fn cut_in_second_file() -> Harness {
    let mut h = Harness::new(config());
    h.file_images = vec![(0, image(5000)), (1, image(3 * 4096))];
    h.job = Some(two_file_job(3 * 4096));
    h.serve_blocks = false;
    h.boot();
    let f0 = h.file_images[0].1.clone();
    let f1 = h.file_images[1].1.clone();
    let data = topic("streams/AFR_OTA-XYZ/data/cbor");
    h.deliver(&data, &data_block(0, 0, &f0[..4096]));
    h.deliver(&data, &data_block(0, 1, &f0[4096..]));
    assert_eq!(h.count(&Ev::Verify), 1);
    assert!(h.log.contains(&Ev::Prepare {
        resume: false,
        size: 12288,
        index: 1,
        file_type: 7
    }));
    h.deliver(&data, &data_block(1, 0, &f1[..4096]));
    assert_eq!(h.journal.as_ref().unwrap().file_index, 1);
    h
}

#[test]
fn a_reboot_in_the_second_file_resumes_that_file_then_trial_boots_the_first() {
    let mut h = cut_in_second_file();
    h.serve_blocks = true;
    h.job = Some(h.job.clone().unwrap().replace("QUEUED", "IN_PROGRESS"));
    h.reboot(config());
    assert!(h.log.contains(&Ev::Prepare {
        resume: true,
        size: 12288,
        index: 1,
        file_type: 7
    }));
    assert!(!h
        .log
        .iter()
        .any(|e| matches!(e, Ev::Prepare { index: 0, .. })));
    assert_eq!(h.written, [1, 2], "only the missing blocks of file 1");
    assert_eq!(
        h.count(&Ev::TrialBoot(0)),
        1,
        "the firmware file of the job"
    );
    assert!(h.statuses().last().unwrap().contains("ready"));
}

#[test]
fn a_journal_for_a_changed_second_file_restarts_the_job_from_the_first_file() {
    let mut h = cut_in_second_file();
    h.serve_blocks = true;
    h.file_images[1].1 = image(2 * 4096);
    h.job = Some(two_file_job(2 * 4096).replace("QUEUED", "IN_PROGRESS"));
    h.reboot(config());
    let prepares: Vec<&Ev> = h
        .log
        .iter()
        .filter(|e| matches!(e, Ev::Prepare { .. }))
        .collect();
    assert_eq!(
        prepares,
        [
            &Ev::Prepare {
                resume: false,
                size: 5000,
                index: 0,
                file_type: 0
            },
            &Ev::Prepare {
                resume: false,
                size: 8192,
                index: 1,
                file_type: 7
            },
        ]
    );
}
