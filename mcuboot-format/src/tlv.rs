//! The TLV area after `hdr_size + img_size` (`board-formats.md` §1.3): an optional protected
//! block, then the unprotected one, each a 4-byte info header followed by `type, len, value`
//! entries. Reading is sans-IO ([`TlvWalker`]: the caller reads the bytes from wherever the
//! image is); writing fills a caller buffer ([`write_tlv_area`]).

use crate::header::{le16, ImageHeader, IMAGE_HEADER_SIZE};

/// Unprotected TLV info magic.
pub const TLV_INFO_MAGIC: u16 = 0x6907;
/// Protected TLV info magic.
pub const TLV_PROT_INFO_MAGIC: u16 = 0x6908;
/// Size of a TLV info header and of a TLV entry header.
pub const TLV_HEADER_SIZE: usize = 4;
/// TLV type KEYHASH: SHA-256 of the public key (DER SubjectPublicKeyInfo).
pub const TLV_KEYHASH: u16 = 0x01;
/// TLV type SHA256: SHA-256 of header + payload + protected TLVs.
pub const TLV_SHA256: u16 = 0x10;
/// TLV type ECDSA_SIG (formerly ECDSA256): P-256 signature, ASN.1 DER, of the SHA256 value.
pub const TLV_ECDSA_SIG: u16 = 0x22;
/// Largest DER P-256 signature (imgtool before MCUboot 1.5 zero-padded it to 72 bytes).
pub const MAX_ECDSA_SIG: usize = 72;
/// The DER SubjectPublicKeyInfo prefix of an uncompressed P-256 key (id-ecPublicKey,
/// prime256v1, BIT STRING of 66 bytes): imgtool's KEYHASH is SHA-256 of this prefix followed by
/// the 65-byte point (see [`p256_spki`]).
pub const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// The 91-byte DER SubjectPublicKeyInfo of an uncompressed P-256 point (`04 || x || y`): the
/// bytes whose SHA-256 is the KEYHASH TLV.
pub fn p256_spki(point: &[u8; 65]) -> [u8; 91] {
    let mut spki = [0u8; 91];
    let (prefix, rest) = spki.split_at_mut(P256_SPKI_PREFIX.len());
    prefix.copy_from_slice(&P256_SPKI_PREFIX);
    rest.copy_from_slice(point);
    spki
}

/// The `(u16, u16)` pair of a 4-byte TLV info or entry header: `(magic, tlv_tot)` or
/// `(type, len)`.
pub fn decode_header(b: [u8; TLV_HEADER_SIZE]) -> (u16, u16) {
    (le16(&b, 0), le16(&b, 2))
}

/// One TLV entry found by a [`TlvWalker`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlvEntry {
    /// `it_type`.
    pub ty: u16,
    /// `it_len`: value bytes.
    pub len: u16,
    /// Image offset of the value.
    pub data_at: u32,
}

/// Walks the entries of one TLV block without reading anything itself: read 4 bytes at
/// [`next_at`](Self::next_at), pass them to [`entry`](Self::entry), repeat.
///
/// ```
/// use mcuboot_format::tlv::{TlvWalker, TLV_INFO_MAGIC, TLV_SHA256};
/// let area = [0x07, 0x69, 12, 0, 0x10, 0, 4, 0, 1, 2, 3, 4];
/// let hdr = |at: u32| -> [u8; 4] { area[at as usize..at as usize + 4].try_into().unwrap() };
/// let mut w = TlvWalker::new(0, hdr(0), TLV_INFO_MAGIC).unwrap();
/// let e = w.entry(hdr(w.next_at().unwrap())).unwrap();
/// assert_eq!((e.ty, e.len, e.data_at), (TLV_SHA256, 4, 8));
/// assert_eq!(w.next_at(), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlvWalker {
    at: u32,
    end: u32,
}

impl TlvWalker {
    /// The block whose info header `info` was read at image offset `info_at`. `None` unless its
    /// magic is `magic` ([`TLV_INFO_MAGIC`] or [`TLV_PROT_INFO_MAGIC`]) and its `it_tlv_tot`
    /// (which counts the info header) is at least 4.
    pub fn new(info_at: u32, info: [u8; TLV_HEADER_SIZE], magic: u16) -> Option<Self> {
        let (m, tot) = decode_header(info);
        if m != magic || (tot as usize) < TLV_HEADER_SIZE {
            return None;
        }
        Some(Self {
            at: info_at.checked_add(TLV_HEADER_SIZE as u32)?,
            end: info_at.checked_add(u32::from(tot))?,
        })
    }

    /// Image offset just past the block.
    pub fn end(&self) -> u32 {
        self.end
    }

    /// Offset of the next entry header, while one fits in the block.
    pub fn next_at(&self) -> Option<u32> {
        (self.at.checked_add(TLV_HEADER_SIZE as u32)? <= self.end).then_some(self.at)
    }

    /// Decode the entry header read at [`next_at`](Self::next_at) and step past its value.
    /// `None` (and the walk stops) if the value runs past the block.
    pub fn entry(&mut self, hdr: [u8; TLV_HEADER_SIZE]) -> Option<TlvEntry> {
        let (ty, len) = decode_header(hdr);
        let data_at = self.at.checked_add(TLV_HEADER_SIZE as u32)?;
        let next = data_at
            .checked_add(u32::from(len))
            .filter(|&n| n <= self.end);
        let Some(next) = next else {
            self.at = self.end;
            return None;
        };
        self.at = next;
        Some(TlvEntry { ty, len, data_at })
    }
}

/// Write `header` and then `payload` at `hdr_size` into `out`, the header padding zero-filled;
/// returns the body length (`hdr_size + payload.len()`, where the TLV area goes), or `None` if
/// `out` is too small or `hdr_size` cannot hold the header.
pub fn write_body(out: &mut [u8], header: &ImageHeader, payload: &[u8]) -> Option<usize> {
    let h = usize::from(header.hdr_size);
    let body = h.checked_add(payload.len())?;
    out.get_mut(..h)?.fill(0);
    out.get_mut(..IMAGE_HEADER_SIZE)?
        .copy_from_slice(&header.encode());
    out.get_mut(h..body)?.copy_from_slice(payload);
    Some(body)
}

/// Write an unprotected TLV block at `at` in `out`: the info header, then `entries` in the
/// given order. Returns the offset just past it, or `None` if `out` is too small or a size
/// does not fit in a `u16`.
pub fn write_tlv_area(out: &mut [u8], at: usize, entries: &[(u16, &[u8])]) -> Option<usize> {
    let mut pos = at.checked_add(TLV_HEADER_SIZE)?;
    for &(ty, val) in entries {
        let len = u16::try_from(val.len()).ok()?;
        out.get_mut(pos..pos + 2)?
            .copy_from_slice(&ty.to_le_bytes());
        out.get_mut(pos + 2..pos + 4)?
            .copy_from_slice(&len.to_le_bytes());
        out.get_mut(pos + 4..pos + 4 + val.len())?
            .copy_from_slice(val);
        pos += 4 + val.len();
    }
    let tot = u16::try_from(pos - at).ok()?;
    out.get_mut(at..at + 2)?
        .copy_from_slice(&TLV_INFO_MAGIC.to_le_bytes());
    out.get_mut(at + 2..at + 4)?
        .copy_from_slice(&tot.to_le_bytes());
    Some(pos)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::ImageVersion;

    #[test]
    fn spki_prefix_is_the_p256_der_header() {
        // SEQUENCE(0x59) { SEQUENCE(0x13) { OID 1.2.840.10045.2.1, OID 1.2.840.10045.3.1.7 },
        // BIT STRING(0x42, 0 unused bits) } : 26 bytes + 65-byte point = 91 = 0x5B bytes.
        assert_eq!(P256_SPKI_PREFIX.len() + 65, 0x59 + 2);
        let mut point = [0xAB; 65];
        point[0] = 0x04;
        let spki = p256_spki(&point);
        assert_eq!(&spki[..26], &P256_SPKI_PREFIX);
        assert_eq!(&spki[26..], &point);
    }

    #[test]
    fn image_bytes_are_pinned() {
        let mut out = [0xEEu8; 0x40 + 3 + 4 + 4 + 2 + 4 + 1];
        let hdr = ImageHeader::new(0x40, 3, ImageVersion::new(1, 0, 0, 0));
        let body = write_body(&mut out, &hdr, &[9, 8, 7]).unwrap();
        assert_eq!(body, 0x43);
        assert!(
            out[32..0x40].iter().all(|&b| b == 0),
            "header padding is zero"
        );
        assert_eq!(&out[0x40..0x43], &[9, 8, 7]);
        let end = write_tlv_area(&mut out, body, &[(TLV_SHA256, &[1, 2]), (0x22, &[3])]).unwrap();
        assert_eq!(end, out.len());
        assert_eq!(
            &out[body..],
            &[0x07, 0x69, 15, 0, 0x10, 0x00, 2, 0, 1, 2, 0x22, 0x00, 1, 0, 3]
        );
        assert_eq!(write_tlv_area(&mut out, body + 10, &[(1, &[1, 2])]), None);
        assert_eq!(write_body(&mut [0u8; 0x42], &hdr, &[9, 8, 7]), None);
    }

    #[test]
    fn walker_finds_entries_and_stops_at_an_overrun() {
        let area = [
            0x07, 0x69, 18, 0, // info: 18 bytes
            0x01, 0x00, 2, 0, 0xAA, 0xBB, // KEYHASH, 2 bytes
            0x10, 0x00, 9, 0, 1, 2, 3, 4, // SHA256 claims 9 bytes: overruns
        ];
        let hdr = |at: u32| -> [u8; 4] { area[at as usize..at as usize + 4].try_into().unwrap() };
        assert_eq!(TlvWalker::new(0, hdr(0), TLV_PROT_INFO_MAGIC), None);
        let mut w = TlvWalker::new(0, hdr(0), TLV_INFO_MAGIC).unwrap();
        assert_eq!(w.end(), 18);
        let e = w.entry(hdr(w.next_at().unwrap())).unwrap();
        assert_eq!((e.ty, e.len, e.data_at), (TLV_KEYHASH, 2, 8));
        assert_eq!(w.next_at(), Some(10));
        assert_eq!(w.entry(hdr(10)), None);
        assert_eq!(w.next_at(), None);
        // A total below the info header's own size is malformed.
        assert_eq!(TlvWalker::new(0, [0x07, 0x69, 3, 0], TLV_INFO_MAGIC), None);
        assert_eq!(decode_header([0x08, 0x69, 0x34, 0x12]), (0x6908, 0x1234));
    }
}
