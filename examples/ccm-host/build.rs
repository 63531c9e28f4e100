//! Bakes the OTA code-signing public key into the firmware: reads the file named by
//! `OTA_EXAMPLE_PUBKEY` (a P-256 `PUBLIC KEY` PEM, or its SPKI DER) and copies it to
//! `$OUT_DIR/ota_pubkey.bin`, which `main.rs` includes. A missing or unreadable key stops the
//! build with a message that says what to set.
use std::{env, fs, path::PathBuf, process};

const VAR: &str = "OTA_EXAMPLE_PUBKEY";

fn fail(msg: &str) -> ! {
    eprintln!("error: {msg}");
    eprintln!(
        "  {VAR} must name the OTA code-signing public key (P-256, PEM `PUBLIC KEY` or SPKI DER), e.g.\n  \
         openssl pkey -in ota.pem -pubout -out ota-pub.pem && {VAR}=$PWD/ota-pub.pem cargo build ...\n  \
         (examples/ccm-host/run.sh makes one)"
    );
    process::exit(1)
}

fn main() {
    println!("cargo:rerun-if-env-changed={VAR}");
    println!("cargo:rerun-if-changed=build.rs");
    let Some(path) = env::var_os(VAR).filter(|p| !p.is_empty()) else {
        fail(&format!("{VAR} is not set"))
    };
    let path = PathBuf::from(path);
    println!("cargo:rerun-if-changed={}", path.display());
    let key = match fs::read(&path) {
        Ok(k) => k,
        Err(e) => fail(&format!("{VAR}={}: {e}", path.display())),
    };
    let pem = key.starts_with(b"-----BEGIN PUBLIC KEY-----");
    let der = key.first() == Some(&0x30) && key.len() == 91;
    if !pem && !der {
        fail(&format!(
            "{VAR}={}: not a PEM `PUBLIC KEY` nor a 91-byte P-256 SPKI DER (a private key? \
             extract the public one with `openssl pkey -pubout`)",
            path.display()
        ));
    }
    let Some(out) = env::var_os("OUT_DIR") else {
        fail("OUT_DIR is not set (run through cargo)")
    };
    let out = PathBuf::from(out).join("ota_pubkey.bin");
    if let Err(e) = fs::write(&out, &key) {
        fail(&format!("writing {}: {e}", out.display()));
    }
}
