//! `qemu-boot`: the board's bootloader for the QEMU examples, played on the host over the
//! example's persisted flash file with the board crate's `sim` bootloader.
//!
//! ```text
//! qemu-boot factory --board B --flash FILE --image FW.bin --version X.Y.Z --key KEY
//! qemu-boot package --board B --image FW.bin --version X.Y.Z --key KEY --sign-key OTA_KEY --out OTA.bin
//! qemu-boot stage   --board B --flash FILE --image FW.bin --version X.Y.Z --key KEY --sign-key OTA_KEY
//! qemu-boot boot    --board B --flash FILE --key KEY --out IMAGE.bin
//! ```
//!
//! `factory` writes the flash file with the first firmware installed the way the board's
//! factory flow leaves it; `package` makes the OTA file (the board's image format, plus
//! `OTA.bin.sig`, the DER ECDSA P-256 / SHA-256 signature the job document carries); `stage`
//! packages and stores it exactly as the agent will (PAL prepare, write, signature check,
//! request_trial_boot) until the agent runs in the firmware; `boot` resets through the
//! simulated bootloader (which upgrades, reverts and checks signatures as the real one does),
//! writes the flash file back and writes the raw firmware binary QEMU must run.
//! Keys are P-256 PEM files (PKCS#8 or SEC1 private keys; `boot` also takes a public key).

use std::collections::HashMap;
use std::process::ExitCode;

use ota_pal_traits::{
    verify_stored_image, BootControl, FileInfo, ImageStorage, ImageVerifier, PalError,
    PalErrorKind, Sha256EcdsaP256Verifier,
};
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::DecodePrivateKey;

mod mcuboot;
mod psoc6;
mod same54;
mod tfm;
mod traveo;

use mcuboot::Version;

/// The image the bootloader chose.
#[derive(Debug)]
pub struct Booted {
    /// Its version (from the board's image header), or what identifies it where the format
    /// has no version (SAME54: the descriptor's sequence number).
    pub version: String,
    /// Where it runs from.
    pub slot: String,
    /// What the bootloader did on the way (swap type, bank swap, ...).
    pub action: String,
    /// The raw firmware binary: what the CPU executes.
    pub payload: Vec<u8>,
}

/// The boards `qemu-boot` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Board {
    Psoc6,
    Tfm,
    Same54,
    Traveo,
}

impl Board {
    fn parse(s: &str) -> Result<Self, String> {
        match s {
            "psoc6" => Ok(Self::Psoc6),
            "tfm" => Ok(Self::Tfm),
            "same54" => Ok(Self::Same54),
            "traveo" => Ok(Self::Traveo),
            _ => Err(format!("unknown board '{s}' (psoc6, tfm, same54, traveo)")),
        }
    }
}

/// The job document's view of a file of `file.len()` bytes.
pub fn file_info(file: &[u8]) -> Result<FileInfo<'static>, String> {
    Ok(FileInfo {
        index: 0,
        path: "",
        size: u32::try_from(file.len()).map_err(|_| "file larger than 4 GiB")?,
        file_type: 0,
        attributes: 0,
        cert_path: "",
    })
}

/// Bytes per write: the AWS IoT OTA stream block size the agent requests.
pub const BLOCK: usize = 1024;

fn pal_err(what: &str) -> impl Fn(PalError) -> String + '_ {
    move |e| format!("{what} failed: {e:?}")
}

/// What the agent does with a downloaded file, through any board's PAL: prepare, write the
/// blocks, check the job document's signature over the stored bytes (rejecting the image when
/// it fails, as the agent's close does), then request the trial boot.
pub async fn stage_file<S: ImageStorage, B: BootControl, V: ImageVerifier>(
    storage: &mut S,
    boot: &mut B,
    info: &FileInfo<'_>,
    file: &[u8],
    sig: &[u8],
    ota_key: &mut V,
) -> Result<(), String> {
    storage.prepare(info).await.map_err(pal_err("prepare"))?;
    ota_key.begin(info);
    for (i, block) in file.chunks(BLOCK).enumerate() {
        storage
            .write((i * BLOCK) as u32, block)
            .await
            .map_err(pal_err("write"))?;
    }
    let mut scratch = [0u8; 512];
    if let Err(e) = verify_stored_image(storage, ota_key, info, 0, sig, &mut scratch).await {
        if e.kind() == PalErrorKind::SignatureCheckFailed {
            boot.reject().await.map_err(pal_err("reject"))?;
        }
        return Err(format!("signature check of the stored file failed: {e:?}"));
    }
    boot.request_trial_boot(info)
        .await
        .map_err(pal_err("request_trial_boot"))
}

fn read(path: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"))
}

fn write(path: &str, data: &[u8]) -> Result<(), String> {
    // Write next to the target and rename, so an interrupted run never leaves half a flash.
    let tmp = format!("{path}.qemu-boot-tmp");
    std::fs::write(&tmp, data).map_err(|e| format!("cannot write {tmp}: {e}"))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("cannot rename {tmp} to {path}: {e}"))
}

/// A P-256 private key from a PEM file (PKCS#8 `PRIVATE KEY` or SEC1 `EC PRIVATE KEY`).
fn signing_key(path: &str) -> Result<SigningKey, String> {
    let pem = String::from_utf8(read(path)?).map_err(|_| format!("{path}: not a PEM file"))?;
    if let Ok(k) = SigningKey::from_pkcs8_pem(&pem) {
        return Ok(k);
    }
    p256::SecretKey::from_sec1_pem(&pem)
        .map(SigningKey::from)
        .map_err(|_| format!("{path}: not a P-256 private key in PEM (PKCS#8 or SEC1)"))
}

/// The verifying half of a key file: a private key, or a public key / certificate PEM.
fn verifier(path: &str) -> Result<Sha256EcdsaP256Verifier, String> {
    if let Ok(k) = signing_key(path) {
        return Ok(Sha256EcdsaP256Verifier::from_verifying_key(
            *k.verifying_key(),
        ));
    }
    Sha256EcdsaP256Verifier::from_pem(&read(path)?)
        .map_err(|e| format!("{path}: not a P-256 key: {e:?}"))
}

/// Parsed `--name value` options.
struct Args(HashMap<String, String>);

impl Args {
    fn parse(args: &[String]) -> Result<Self, String> {
        let mut map = HashMap::new();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let name = a
                .strip_prefix("--")
                .ok_or_else(|| format!("unexpected argument '{a}'"))?;
            let value = it.next().ok_or_else(|| format!("--{name} needs a value"))?;
            if map.insert(name.to_string(), value.clone()).is_some() {
                return Err(format!("--{name} given twice"));
            }
        }
        Ok(Self(map))
    }

    fn get(&self, name: &str) -> Result<&str, String> {
        self.0
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| format!("missing --{name}"))
    }

    fn only(&self, allowed: &[&str]) -> Result<(), String> {
        match self.0.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(k) => Err(format!("unknown option --{k}")),
            None => Ok(()),
        }
    }
}

const USAGE: &str = "usage:
  qemu-boot factory --board B --flash FILE --image FW.bin --version X.Y.Z --key KEY
  qemu-boot package --board B --image FW.bin --version X.Y.Z --key KEY --sign-key OTA_KEY --out OTA.bin
  qemu-boot stage   --board B --flash FILE --image FW.bin --version X.Y.Z --key KEY --sign-key OTA_KEY
  qemu-boot boot    --board B --flash FILE --key KEY --out IMAGE.bin
boards: psoc6, tfm, same54, traveo
same54 images carry no version: --version is printed only, and the raw binary is the OTA file
traveo: --key is the DBM's RSA-2048 key; boot also writes FILE.mapping (the bank mapping)";

/// Package `--image` for the board and sign the file with `--sign-key`.
fn package(board: Board, a: &Args) -> Result<(Vec<u8>, Vec<u8>), String> {
    let fw = read(a.get("image")?)?;
    let version = Version::parse(a.get("version")?)?;
    let ota = signing_key(a.get("sign-key")?)?;
    let key = || signing_key(a.get("key")?);
    let file = match board {
        Board::Psoc6 => psoc6::package(&fw, version, &key()?)?,
        Board::Tfm => tfm::package(&fw, version, &key()?)?,
        Board::Same54 => fw,
        Board::Traveo => traveo::package(&fw, version, &traveo::DbmKey::load(a.get("key")?)?)?,
    };
    let sig: Signature = ota.sign(&file);
    Ok((file, sig.to_der().as_bytes().to_vec()))
}

fn run(args: &[String]) -> Result<(), String> {
    let (cmd, rest) = args.split_first().ok_or(USAGE)?;
    if matches!(cmd.as_str(), "-h" | "--help" | "help") {
        println!("{USAGE}");
        return Ok(());
    }
    let a = Args::parse(rest)?;
    let board = Board::parse(a.get("board")?)?;
    match cmd.as_str() {
        "factory" => {
            a.only(&["board", "flash", "image", "version", "key"])?;
            let fw = read(a.get("image")?)?;
            let version = Version::parse(a.get("version")?)?;
            let key = || signing_key(a.get("key")?);
            let flash = match board {
                Board::Psoc6 => psoc6::factory(&fw, version, &key()?)?,
                Board::Tfm => tfm::factory(&fw, version, &key()?)?,
                Board::Same54 => same54::factory(&fw, &key()?)?,
                Board::Traveo => {
                    traveo::factory(&fw, version, &traveo::DbmKey::load(a.get("key")?)?)?
                }
            };
            write(a.get("flash")?, &flash)?;
            println!(
                "qemu-boot: factory: {version} installed in {}",
                a.get("flash")?
            );
        }
        "package" => {
            a.only(&["board", "image", "version", "key", "sign-key", "out"])?;
            let (file, sig) = package(board, &a)?;
            let out = a.get("out")?;
            write(out, &file)?;
            write(&format!("{out}.sig"), &sig)?;
            println!(
                "qemu-boot: package: {out} ({} bytes) and {out}.sig",
                file.len()
            );
        }
        "stage" => {
            a.only(&["board", "flash", "image", "version", "key", "sign-key"])?;
            let (file, sig) = package(board, &a)?;
            let mut ota = verifier(a.get("sign-key")?)?;
            let path = a.get("flash")?;
            let flash = read(path)?;
            let flash = match board {
                Board::Psoc6 => psoc6::stage(flash, &file, &sig, &mut ota)?,
                Board::Same54 => same54::stage(flash, &file, &sig, &mut ota)?,
                Board::Traveo => {
                    let key = traveo::DbmKey::load(a.get("key")?)?;
                    traveo::stage(flash, &file, &sig, &mut ota, &key)?
                }
                Board::Tfm => {
                    let bl2 = verifier(a.get("key")?)?;
                    tfm::stage(
                        flash,
                        &file,
                        &sig,
                        *ota.verifying_key(),
                        *bl2.verifying_key(),
                    )?
                }
            };
            write(path, &flash)?;
            println!(
                "qemu-boot: stage: {} ({} bytes) stored and set to boot on trial",
                a.get("version")?,
                file.len()
            );
        }
        "boot" => {
            a.only(&["board", "flash", "key", "out"])?;
            let key = || verifier(a.get("key")?);
            let path = a.get("flash")?;
            let flash = read(path)?;
            let (flash, booted) = match board {
                Board::Tfm => tfm::boot(flash, *key()?.verifying_key())?,
                Board::Psoc6 => psoc6::boot(flash, key()?)?,
                Board::Same54 => same54::boot(flash, key()?)?,
                Board::Traveo => {
                    let (flash, booted, mapping) =
                        traveo::boot(flash, &traveo::DbmKey::load(a.get("key")?)?)?;
                    // FLASH_CTL's MAIN_MAP, for the firmware: not part of the flash.
                    write(&format!("{path}.mapping"), &[traveo::mapping_byte(mapping)])?;
                    (flash, booted)
                }
            };
            write(path, &flash)?;
            write(a.get("out")?, &booted.payload)?;
            println!(
                "qemu-boot: boot: running {} from the {} (bootloader action: {}), {} bytes in {}",
                booted.version,
                booted.slot,
                booted.action,
                booted.payload.len(),
                a.get("out")?
            );
        }
        _ => return Err(format!("unknown command '{cmd}'\n{USAGE}")),
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("qemu-boot: error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn options_are_checked() {
        let a = Args::parse(&args("--board psoc6 --flash f")).unwrap();
        assert_eq!(a.get("flash").unwrap(), "f");
        assert!(a.get("out").unwrap_err().contains("missing --out"));
        assert!(a
            .only(&["board"])
            .unwrap_err()
            .contains("unknown option --flash"));
        assert!(Args::parse(&args("--board")).is_err());
        assert!(Args::parse(&args("board psoc6")).is_err());
        assert!(Args::parse(&args("--board a --board b")).is_err());
        assert!(Board::parse("esp32").is_err());
        assert_eq!(Board::parse("traveo").unwrap(), Board::Traveo);
    }

    #[test]
    fn errors_exit_non_zero_with_a_message() {
        assert!(run(&[]).is_err());
        let e = run(&args(
            "boot --board psoc6 --flash /nonexistent/f --key /nonexistent/k --out o",
        ))
        .unwrap_err();
        assert!(e.contains("cannot read /nonexistent/"), "{e}");
        assert!(run(&args("frobnicate --board psoc6"))
            .unwrap_err()
            .contains("unknown command"));
    }
}
