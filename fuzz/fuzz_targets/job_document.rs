//! Fuzz the job-document parser (spec §2): any bytes must parse or fail without panicking, and
//! everything a caller can do with an accepted document must work.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ota_core::wire::job::{self, JobMessage, MAX_SIGNATURE_LEN};

fuzz_target!(|data: &[u8]| {
    // A validator that accepts must accept again; the scanner is the parser's foundation.
    if ota_core::wire::json::validate(data).is_ok() {
        assert!(ota_core::wire::json::parse(data).is_ok());
    }
    let mut text = [0u8; 1024];
    let mut sig = [0u8; MAX_SIGNATURE_LEN];
    match job::parse::<4>(data) {
        Ok(JobMessage::Ota(doc)) => {
            assert!(!doc.job_id.is_empty() && doc.job_id.len() <= 64);
            assert!(!doc.files.is_empty());
            let _ = (doc.protocols.mqtt(), doc.protocols.http(), doc.protocols.raw());
            let _ = (doc.in_self_test(), doc.updated_by, doc.status, doc.document.len());
            if let Some(s) = doc.stream_name {
                check_str(s, &mut text);
            }
            for file in &doc.files {
                assert!(file.file_size > 0);
                for s in [file.file_path, file.cert_file, file.update_data_url, file.auth_scheme]
                    .into_iter()
                    .flatten()
                {
                    check_str(s, &mut text);
                }
                for signature in file.signatures() {
                    let decoded = signature
                        .decode_into(&mut sig)
                        .expect("signatures are validated at parse time");
                    assert_eq!(decoded.len(), signature.decoded_len());
                    assert_eq!(file.signature(signature.kind), Some(signature));
                }
            }
        }
        Ok(JobMessage::Custom(job)) => {
            let _ = format!("{} {}", job.reason, job.document.len());
            assert!(!job.job_id.is_empty());
        }
        Ok(JobMessage::NoJob) => {}
        Err(e) => {
            let _ = format!("{e}");
        }
    }
});

fn check_str(s: ota_core::wire::json::JsonStr<'_>, buf: &mut [u8]) {
    let len = s.unescaped_len();
    match s.unescape_into(buf) {
        Ok(text) => {
            assert_eq!(text.len(), len);
            assert!(s.eq_str(text));
        }
        Err(_) => assert!(len > buf.len()),
    }
}
