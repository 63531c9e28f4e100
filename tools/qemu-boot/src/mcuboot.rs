//! The MCUboot image format, as `imgtool sign --pad-header -H 0x400` writes it with an EC P-256
//! key: a 32-byte header padded to `hdr_size`, the payload, then the unprotected TLV area
//! (SHA256 of header + payload, KEYHASH of the signer's SubjectPublicKeyInfo, ECDSA_SIG over
//! the SHA256). Written here from the format description, independently of the board crates'
//! own format code, so the sim bootloader's validation is a real cross-check.

use p256::ecdsa::signature::hazmat::PrehashSigner;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::EncodePublicKey;
use sha2::{Digest, Sha256};

const IMAGE_MAGIC: u32 = 0x96F3_B83D;
const TLV_INFO_MAGIC: u16 = 0x6907;
const TLV_KEYHASH: u16 = 0x01;
const TLV_SHA256: u16 = 0x10;
const TLV_ECDSA_SIG: u16 = 0x22;
/// The Cypress ports' header size (`-H 0x400`): the vector table follows it.
pub const CYPRESS_HEADER_SIZE: u16 = 0x400;

/// An MCUboot image version: major.minor.revision+build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version {
    /// Major.
    pub major: u8,
    /// Minor.
    pub minor: u8,
    /// Revision.
    pub revision: u16,
    /// Build number.
    pub build: u32,
}

impl Version {
    /// Parse `X.Y.Z` (each part in range of its header field).
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = || format!("bad version '{s}' (want X.Y.Z, e.g. 1.2.3)");
        let mut it = s.split('.');
        let (Some(a), Some(b), Some(c), None) = (it.next(), it.next(), it.next(), it.next()) else {
            return Err(bad());
        };
        Ok(Self {
            major: a.parse().map_err(|_| bad())?,
            minor: b.parse().map_err(|_| bad())?,
            revision: c.parse().map_err(|_| bad())?,
            build: 0,
        })
    }
}

impl core::fmt::Display for Version {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.revision)?;
        if self.build != 0 {
            write!(f, "+{}", self.build)?;
        }
        Ok(())
    }
}

/// Sign `payload` as an MCUboot image of `version` with `key`.
pub fn build(
    payload: &[u8],
    version: Version,
    hdr_size: u16,
    key: &SigningKey,
) -> Result<Vec<u8>, String> {
    let img_size = u32::try_from(payload.len()).map_err(|_| "payload too large".to_string())?;
    let mut out = vec![0u8; hdr_size as usize];
    let mut hdr = Vec::with_capacity(32);
    hdr.extend_from_slice(&IMAGE_MAGIC.to_le_bytes());
    hdr.extend_from_slice(&0u32.to_le_bytes()); // load_addr: execute in place
    hdr.extend_from_slice(&hdr_size.to_le_bytes());
    hdr.extend_from_slice(&0u16.to_le_bytes()); // protect_tlv_size
    hdr.extend_from_slice(&img_size.to_le_bytes());
    hdr.extend_from_slice(&0u32.to_le_bytes()); // flags
    hdr.push(version.major);
    hdr.push(version.minor);
    hdr.extend_from_slice(&version.revision.to_le_bytes());
    hdr.extend_from_slice(&version.build.to_le_bytes());
    hdr.extend_from_slice(&0u32.to_le_bytes()); // _pad1
    out.get_mut(..32)
        .ok_or("header size below 32")?
        .copy_from_slice(&hdr);
    out.extend_from_slice(payload);
    let digest: [u8; 32] = Sha256::digest(&out).into();
    let sig: Signature = key
        .sign_prehash(&digest)
        .map_err(|e| format!("signing failed: {e}"))?;
    let der = sig.to_der();
    let spki = key
        .verifying_key()
        .to_public_key_der()
        .map_err(|e| format!("public key encoding failed: {e}"))?;
    let key_hash: [u8; 32] = Sha256::digest(spki.as_bytes()).into();
    let tlvs: [(u16, &[u8]); 3] = [
        (TLV_SHA256, &digest),
        (TLV_KEYHASH, &key_hash),
        (TLV_ECDSA_SIG, der.as_bytes()),
    ];
    let total: usize = 4 + tlvs.iter().map(|(_, v)| 4 + v.len()).sum::<usize>();
    out.extend_from_slice(&TLV_INFO_MAGIC.to_le_bytes());
    out.extend_from_slice(&(total as u16).to_le_bytes());
    for (ty, value) in tlvs {
        out.extend_from_slice(&ty.to_le_bytes());
        out.extend_from_slice(&(value.len() as u16).to_le_bytes());
        out.extend_from_slice(value);
    }
    Ok(out)
}

fn le16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The version and payload (what the CPU executes: the image less its header and TLVs) of the
/// image at the start of `slot`. `None` when the header is not an MCUboot one.
pub fn payload(slot: &[u8]) -> Option<(Version, &[u8])> {
    if le32(slot, 0)? != IMAGE_MAGIC {
        return None;
    }
    let hdr_size = le16(slot, 8)? as usize;
    let img_size = le32(slot, 12)? as usize;
    let version = Version {
        major: *slot.get(20)?,
        minor: *slot.get(21)?,
        revision: le16(slot, 22)?,
        build: le32(slot, 24)?,
    };
    Some((
        version,
        slot.get(hdr_size..hdr_size.checked_add(img_size)?)?,
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn image_round_trips_payload_and_version() {
        let key = SigningKey::from_slice(&[7; 32]).unwrap();
        let v = Version::parse("2.1.300").unwrap();
        let img = build(b"firmware", v, CYPRESS_HEADER_SIZE, &key).unwrap();
        let (got, p) = payload(&img).unwrap();
        assert_eq!((got, p), (v, &b"firmware"[..]));
        assert_eq!(got.to_string(), "2.1.300");
        assert!(Version::parse("1.2").is_err());
        assert!(Version::parse("1.2.3.4").is_err());
        assert!(Version::parse("256.0.0").is_err());
    }
}
