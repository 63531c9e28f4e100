//! CBOR messages of the MQTT streams service (spec §3): the GetStream request the device
//! publishes on `.../streams/<stream>/get/cbor`, the DataBlock it receives on `.../data/cbor`
//! and the rejection it receives on `.../rejected/cbor`.
//!
//! Encoding and decoding use `minicbor` without allocation. Decoding is zero copy: text and
//! payload borrow from the input. Nothing here panics; every failure is a value.
//!
//! Supported on decode: a top-level definite **or** indefinite-length map (the service sends
//! indefinite maps, §3.3), keys in any order, unknown keys skipped, trailing bytes after the map
//! ignored (as tinycbor does), unknown values of any shape skipped up to [`MAX_SKIP_DEPTH`]
//! levels of nesting. Not supported: indefinite-length (chunked) text or byte strings for the
//! fields we read (they cannot be borrowed; the service does not send them) and deeper nesting
//! in skipped values; both are reported as errors, never misread.

use core::fmt;

use minicbor::data::Type;
use minicbor::encode::write::Cursor;
use minicbor::{Decoder, Encoder};

/// The client token the reference agent puts in every GetStream request (`c`, §3.1, §7).
/// The service only echoes it back.
pub const CLIENT_TOKEN: &str = "rdy";

/// A GetStream request couldn't be encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// The output buffer is shorter than [`StreamRequest::encoded_len`]. Nothing useful was
    /// written; the buffer content is unspecified.
    BufferTooSmall {
        /// Bytes the request needs.
        needed: usize,
        /// Bytes the buffer has.
        available: usize,
    },
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BufferTooSmall { needed, available } => {
                write!(f, "buffer too small: need {needed} bytes, have {available}")
            }
        }
    }
}

impl core::error::Error for EncodeError {}

/// A GetStream request (`OTA_CBOR_Encode_GetStreamRequestMessage`, §3.1).
///
/// Encoded as a definite map of 6 pairs with keys in the order `c f l o b n` and minimal-length
/// integers, byte-identical to the reference agent: the service answered `InvalidCbor` to other
/// encodings in the past (issue #490). The reference always sends `block_offset` 0 and the whole
/// bitmap; a window of the bitmap ([`BlockBitmap::window`](super::bitmap::BlockBitmap::window))
/// goes in the same fields with a non-zero offset (§3.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamRequest<'a> {
    /// `c`: echoed by the service; the reference uses [`CLIENT_TOKEN`]. The service rejects
    /// tokens over 64 bytes (§3.4); this encoder does not check it.
    pub client_token: &'a str,
    /// `f`: the stream file id (`fileid` of the job document; 0–255 on the service side).
    pub file_id: u32,
    /// `l`: block size in bytes (4096 by default; the service allows 256–131072).
    pub block_size: u32,
    /// `o`: the block number of bit 0 of `bitmap` (a multiple of 8 for a window).
    pub block_offset: u32,
    /// `b`: wanted blocks from `block_offset` on, LSB first (§3.2), sent as a byte string.
    pub bitmap: &'a [u8],
    /// `n`: how many blocks the service may send for this request (a cap when `b` is present).
    pub number_of_blocks: u32,
}

/// Length of a CBOR head (major type + argument) for argument `n`.
const fn head_len(n: u64) -> usize {
    if n < 24 {
        1
    } else if n <= 0xff {
        2
    } else if n <= 0xffff {
        3
    } else if n <= 0xffff_ffff {
        5
    } else {
        9
    }
}

impl StreamRequest<'_> {
    /// Exact number of bytes [`encode`](Self::encode) writes, to size buffers. The reference
    /// reserves 384 bytes (§1.2), enough for a 128-byte bitmap window and a 64-byte token.
    pub const fn encoded_len(&self) -> usize {
        let token = self.client_token.len();
        let bitmap = self.bitmap.len();
        1 + 6 * 2
            + head_len(token as u64)
            + token
            + head_len(self.file_id as u64)
            + head_len(self.block_size as u64)
            + head_len(self.block_offset as u64)
            + head_len(bitmap as u64)
            + bitmap
            + head_len(self.number_of_blocks as u64)
    }

    /// Writes the request into `buf` and returns the number of bytes written. Fails with
    /// [`EncodeError::BufferTooSmall`] (never a panic, never a truncated message) when `buf` is
    /// shorter than [`encoded_len`](Self::encoded_len).
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize, EncodeError> {
        let needed = self.encoded_len();
        let too_small = EncodeError::BufferTooSmall {
            needed,
            available: buf.len(),
        };
        if buf.len() < needed {
            return Err(too_small);
        }
        let mut e = Encoder::new(Cursor::new(buf));
        let written = e
            .map(6)
            .and_then(|e| e.str("c")?.str(self.client_token))
            .and_then(|e| e.str("f")?.u32(self.file_id))
            .and_then(|e| e.str("l")?.u32(self.block_size))
            .and_then(|e| e.str("o")?.u32(self.block_offset))
            .and_then(|e| e.str("b")?.bytes(self.bitmap))
            .and_then(|e| e.str("n")?.u32(self.number_of_blocks))
            .map(|e| e.writer().position());
        match written {
            Ok(n) if n == needed => Ok(n),
            _ => Err(too_small),
        }
    }
}

/// Why a stream message could not be decoded. Key names are the CBOR keys (`"f"`, `"code"`...).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Not well-formed CBOR: truncated, reserved encoding, invalid UTF-8 in a key or text, or
    /// an item minicbor cannot skip without `alloc` (see the module doc).
    Malformed,
    /// The top-level item is not a map (e.g. an array, §8.2).
    NotAMap,
    /// A required key is absent.
    MissingKey(&'static str),
    /// A key we read appears twice; we refuse to guess which one the sender meant.
    DuplicateKey(&'static str),
    /// A key has a value of the wrong CBOR type (e.g. `f` as text, §8.2; or a chunked string).
    UnexpectedType(&'static str),
    /// An integer does not fit in `u32`.
    OutOfRange(&'static str),
    /// `l` differs from the length of `p` (the reference does not check this, §3.3).
    LengthMismatch {
        /// The `l` value.
        declared: u32,
        /// The actual length of `p`.
        actual: usize,
    },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed => f.write_str("malformed CBOR"),
            Self::NotAMap => f.write_str("top-level item is not a map"),
            Self::MissingKey(k) => write!(f, "missing key {k:?}"),
            Self::DuplicateKey(k) => write!(f, "duplicate key {k:?}"),
            Self::UnexpectedType(k) => write!(f, "wrong type for key {k:?}"),
            Self::OutOfRange(k) => write!(f, "value of key {k:?} out of range"),
            Self::LengthMismatch { declared, actual } => {
                write!(f, "l = {declared} but payload has {actual} bytes")
            }
        }
    }
}

impl core::error::Error for DecodeError {}

fn malformed<E>(_: E) -> DecodeError {
    DecodeError::Malformed
}

/// Nesting depth of arrays and maps inside an unknown value that the decoders skip. Deeper
/// values are refused as [`DecodeError::Malformed`] (the skip stack lives on the call stack:
/// 16 × 16 bytes).
pub const MAX_SKIP_DEPTH: usize = 16;

/// Skips one complete CBOR item of any shape, definite or indefinite, without allocation.
/// (minicbor's own `skip` cannot skip an indefinite container nested in a definite one
/// without `alloc`.)
fn skip_item(d: &mut Decoder<'_>) -> Result<(), DecodeError> {
    // Open containers: `Some(n)` = n items left in a definite one, `None` = indefinite.
    let mut stack = [None::<u64>; MAX_SKIP_DEPTH];
    let mut depth = 0usize;
    loop {
        let ty = d.datatype().map_err(malformed)?;
        let mut opened = None;
        match ty {
            Type::Break => {
                // Only valid as the end of the innermost open indefinite container.
                match depth.checked_sub(1).and_then(|top| stack.get(top)) {
                    Some(None) => {
                        d.set_position(d.position() + 1);
                        depth -= 1;
                    }
                    _ => return Err(DecodeError::Malformed),
                }
            }
            Type::Tag => {
                // The tagged item follows; the tag itself is not an item.
                d.tag().map_err(malformed)?;
                continue;
            }
            Type::Array => opened = Some(d.array().map_err(malformed)?),
            Type::Map => opened = Some(d.map().map_err(malformed)?.map(|n| n.saturating_mul(2))),
            Type::ArrayIndef => opened = Some(d.array().map_err(malformed)?),
            Type::MapIndef => opened = Some(d.map().map_err(malformed)?),
            // Scalars and (possibly chunked) strings: minicbor skips them without `alloc`.
            _ => d.skip().map_err(malformed)?,
        }
        if let Some(len) = opened {
            if len != Some(0) {
                let slot = stack.get_mut(depth).ok_or(DecodeError::Malformed)?;
                *slot = len;
                depth += 1;
                continue;
            }
        }
        // One item is complete: count it in the enclosing definite containers.
        loop {
            let Some(top) = depth.checked_sub(1) else {
                return Ok(());
            };
            match stack.get_mut(top) {
                Some(Some(n)) => {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        depth = top;
                        continue;
                    }
                    break;
                }
                _ => break,
            }
        }
    }
}

/// Walks the entries of the top-level map of `input`. For each text key, `on_entry` gets the
/// key and the decoder positioned at the value; it returns `Ok(true)` if it consumed the value,
/// `Ok(false)` to have it skipped. Non-text keys and their values are skipped.
fn walk_map<'b, F>(input: &'b [u8], mut on_entry: F) -> Result<(), DecodeError>
where
    F: FnMut(&'b str, &mut Decoder<'b>) -> Result<bool, DecodeError>,
{
    let mut d = Decoder::new(input);
    let len = match d.datatype().map_err(malformed)? {
        Type::Map | Type::MapIndef => d.map().map_err(malformed)?,
        _ => return Err(DecodeError::NotAMap),
    };
    let mut seen: u64 = 0;
    loop {
        match len {
            Some(n) if seen == n => break,
            Some(_) => {}
            None => {
                if d.datatype().map_err(malformed)? == Type::Break {
                    break;
                }
            }
        }
        seen = seen.saturating_add(1);
        let key = match d.datatype().map_err(malformed)? {
            Type::String => Some(d.str().map_err(malformed)?),
            Type::Break => return Err(DecodeError::Malformed),
            _ => {
                skip_item(&mut d)?;
                None
            }
        };
        let consumed = match key {
            Some(k) => on_entry(k, &mut d)?,
            None => false,
        };
        if !consumed {
            skip_item(&mut d)?;
        }
    }
    Ok(())
}

/// Reads an unsigned integer value that must fit in `u32`.
fn read_u32(d: &mut Decoder<'_>, key: &'static str) -> Result<u32, DecodeError> {
    match d.datatype().map_err(malformed)? {
        Type::U8 | Type::U16 | Type::U32 | Type::U64 => {
            let v = d.u64().map_err(malformed)?;
            u32::try_from(v).map_err(|_| DecodeError::OutOfRange(key))
        }
        _ => Err(DecodeError::UnexpectedType(key)),
    }
}

/// Reads a definite-length text value, borrowed from the input.
fn read_str<'b>(d: &mut Decoder<'b>, key: &'static str) -> Result<&'b str, DecodeError> {
    match d.datatype().map_err(malformed)? {
        Type::String => d.str().map_err(malformed),
        _ => Err(DecodeError::UnexpectedType(key)),
    }
}

/// Reads a definite-length byte string value, borrowed from the input.
fn read_bytes<'b>(d: &mut Decoder<'b>, key: &'static str) -> Result<&'b [u8], DecodeError> {
    match d.datatype().map_err(malformed)? {
        Type::Bytes => d.bytes().map_err(malformed),
        _ => Err(DecodeError::UnexpectedType(key)),
    }
}

/// Stores `v` in `slot`, refusing a second occurrence of the key.
fn once<T>(slot: &mut Option<T>, key: &'static str, v: T) -> Result<bool, DecodeError> {
    if slot.is_some() {
        return Err(DecodeError::DuplicateKey(key));
    }
    *slot = Some(v);
    Ok(true)
}

/// One block of the file, from `.../streams/<stream>/data/cbor` (§3.3).
///
/// [`decode`](Self::decode) checks the message shape and that `l` equals the payload length;
/// [`validate`](Self::validate) checks the block against the file being downloaded (§3.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataBlock<'a> {
    /// `f`: the stream file id. The reference never compares it; [`validate`](Self::validate)
    /// does.
    pub file_id: u32,
    /// `i`: 0-based block index.
    pub block_index: u32,
    /// `l`: the length of this block's payload (the block size, or the remainder for the last
    /// block).
    pub block_size: u32,
    /// `p`: the block data, borrowed from the message.
    pub payload: &'a [u8],
}

/// Why a well-formed [`DataBlock`] does not belong to the file being downloaded (§3.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockError {
    /// `f` is not the job's file id (a stale or foreign stream).
    WrongFile {
        /// The job's file id.
        expected: u32,
        /// The block's `f`.
        actual: u32,
    },
    /// The index is past the last block of the file (also: file size or block size 0).
    IndexOutOfRange {
        /// The block's `i`.
        index: u32,
        /// Blocks in the file, `ceil(file_size / block_size)`.
        block_count: u32,
    },
    /// The size is not the full block size (non-last block) or the remainder (last block).
    WrongSize {
        /// The block's `i`.
        index: u32,
        /// The size that block must have.
        expected: u32,
        /// The payload length.
        actual: u32,
    },
}

impl fmt::Display for BlockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::WrongFile { expected, actual } => {
                write!(f, "block of file {actual}, expected file {expected}")
            }
            Self::IndexOutOfRange { index, block_count } => {
                write!(f, "block {index} out of range (file has {block_count})")
            }
            Self::WrongSize {
                index,
                expected,
                actual,
            } => write!(f, "block {index} has {actual} bytes, expected {expected}"),
        }
    }
}

impl core::error::Error for BlockError {}

impl<'a> DataBlock<'a> {
    /// Decodes a DataBlock message (§3.3): a definite or indefinite map with `f`, `i`, `l`
    /// (unsigned ints ≤ `u32::MAX`) and `p` (byte string) in any order; `c` and unknown keys
    /// are ignored. Rejects a payload whose length differs from `l`.
    pub fn decode(input: &'a [u8]) -> Result<Self, DecodeError> {
        let (mut f, mut i, mut l, mut p) = (None, None, None, None);
        walk_map(input, |key, d| match key {
            "f" => once(&mut f, "f", read_u32(d, "f")?),
            "i" => once(&mut i, "i", read_u32(d, "i")?),
            "l" => once(&mut l, "l", read_u32(d, "l")?),
            "p" => once(&mut p, "p", read_bytes(d, "p")?),
            _ => Ok(false),
        })?;
        let block = Self {
            file_id: f.ok_or(DecodeError::MissingKey("f"))?,
            block_index: i.ok_or(DecodeError::MissingKey("i"))?,
            block_size: l.ok_or(DecodeError::MissingKey("l"))?,
            payload: p.ok_or(DecodeError::MissingKey("p"))?,
        };
        if block.payload.len() != block.block_size as usize {
            return Err(DecodeError::LengthMismatch {
                declared: block.block_size,
                actual: block.payload.len(),
            });
        }
        Ok(block)
    }

    /// Checks the block against the file being downloaded (§3.5): `f` must be the job's file
    /// id, the index must be below `ceil(file_size / block_size)`, and the payload must be
    /// exactly `block_size` bytes, or `file_size - last * block_size` for the last block.
    pub fn validate(
        &self,
        expected_file_id: u32,
        file_size: u32,
        block_size: u32,
    ) -> Result<(), BlockError> {
        if self.file_id != expected_file_id {
            return Err(BlockError::WrongFile {
                expected: expected_file_id,
                actual: self.file_id,
            });
        }
        let block_count = if block_size == 0 {
            0
        } else {
            file_size.div_ceil(block_size)
        };
        if self.block_index >= block_count {
            return Err(BlockError::IndexOutOfRange {
                index: self.block_index,
                block_count,
            });
        }
        let expected = if self.block_index + 1 == block_count {
            // Last block: the remainder (a full block when the size divides evenly).
            let start = u64::from(self.block_index) * u64::from(block_size);
            (u64::from(file_size) - start) as u32
        } else {
            block_size
        };
        let actual = u32::try_from(self.payload.len()).unwrap_or(u32::MAX);
        if actual != expected {
            return Err(BlockError::WrongSize {
                index: self.block_index,
                expected,
                actual,
            });
        }
        Ok(())
    }

    /// Byte offset of this block in the file (`index * block_size`), where the PAL writes it;
    /// `None` on overflow.
    pub fn file_offset(&self, block_size: u32) -> Option<u32> {
        self.block_index.checked_mul(block_size)
    }
}

/// Error codes of a stream rejection (§3.4), with unknown codes kept as text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RejectCode<'a> {
    /// The topic was wrong.
    InvalidTopic,
    /// The JSON request was malformed.
    InvalidJson,
    /// The CBOR request was malformed (issue #490).
    InvalidCbor,
    /// A field was invalid (e.g. a client token over 64 bytes).
    InvalidRequest,
    /// Not allowed to read the stream.
    Unauthorized,
    /// `l` outside 256–131072.
    BlockSizeOutOfBounds,
    /// `o` out of range.
    OffsetOutOfBounds,
    /// `n` too large.
    BlockCountLimitExceeded,
    /// `b` too large.
    BlockBitmapLimitExceeded,
    /// Unknown stream or file (e.g. the job was deleted).
    ResourceNotFound,
    /// `s` does not match the stream version.
    VersionMismatch,
    /// The stream changed.
    ETagMismatch,
    /// Service-side error; retry later.
    InternalError,
    /// A code this version does not know, verbatim.
    Other(&'a str),
}

impl<'a> RejectCode<'a> {
    /// Maps the service's code text to a variant (exact, case-sensitive match).
    pub fn parse(s: &'a str) -> Self {
        match s {
            "InvalidTopic" => Self::InvalidTopic,
            "InvalidJson" => Self::InvalidJson,
            "InvalidCbor" => Self::InvalidCbor,
            "InvalidRequest" => Self::InvalidRequest,
            "Unauthorized" => Self::Unauthorized,
            "BlockSizeOutOfBounds" => Self::BlockSizeOutOfBounds,
            "OffsetOutOfBounds" => Self::OffsetOutOfBounds,
            "BlockCountLimitExceeded" => Self::BlockCountLimitExceeded,
            "BlockBitmapLimitExceeded" => Self::BlockBitmapLimitExceeded,
            "ResourceNotFound" => Self::ResourceNotFound,
            "VersionMismatch" => Self::VersionMismatch,
            "ETagMismatch" => Self::ETagMismatch,
            "InternalError" => Self::InternalError,
            other => Self::Other(other),
        }
    }

    /// The code as the service spells it.
    pub fn as_str(&self) -> &'a str {
        match self {
            Self::InvalidTopic => "InvalidTopic",
            Self::InvalidJson => "InvalidJson",
            Self::InvalidCbor => "InvalidCbor",
            Self::InvalidRequest => "InvalidRequest",
            Self::Unauthorized => "Unauthorized",
            Self::BlockSizeOutOfBounds => "BlockSizeOutOfBounds",
            Self::OffsetOutOfBounds => "OffsetOutOfBounds",
            Self::BlockCountLimitExceeded => "BlockCountLimitExceeded",
            Self::BlockBitmapLimitExceeded => "BlockBitmapLimitExceeded",
            Self::ResourceNotFound => "ResourceNotFound",
            Self::VersionMismatch => "VersionMismatch",
            Self::ETagMismatch => "ETagMismatch",
            Self::InternalError => "InternalError",
            Self::Other(s) => s,
        }
    }
}

/// A rejection of a GetStream request, from `.../streams/<stream>/rejected/cbor` (§3.4).
///
/// The reference agent does not subscribe to it, so stream errors only show as timeouts; we
/// decode it to fail fast. The service sends short keys (`o`, `m`, `c`) and, for backward
/// compatibility, long ones (`code`, `message`, `clientToken`), often both (#490); the short
/// form wins when both are present.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamRejected<'a> {
    /// `o` / `code` (required).
    pub code: RejectCode<'a>,
    /// `m` / `message`; empty when absent.
    pub message: &'a str,
    /// `c` / `clientToken`, the echoed request token, when present.
    pub client_token: Option<&'a str>,
}

impl<'a> StreamRejected<'a> {
    /// Decodes a rejection (definite or indefinite map). `code` is required and every field
    /// present must be text; other keys are skipped.
    pub fn decode(input: &'a [u8]) -> Result<Self, DecodeError> {
        let (mut o, mut m, mut c) = (None, None, None);
        let (mut code, mut message, mut token) = (None, None, None);
        walk_map(input, |key, d| match key {
            "o" => once(&mut o, "o", read_str(d, "o")?),
            "m" => once(&mut m, "m", read_str(d, "m")?),
            "c" => once(&mut c, "c", read_str(d, "c")?),
            "code" => once(&mut code, "code", read_str(d, "code")?),
            "message" => once(&mut message, "message", read_str(d, "message")?),
            "clientToken" => once(&mut token, "clientToken", read_str(d, "clientToken")?),
            _ => Ok(false),
        })?;
        Ok(Self {
            code: RejectCode::parse(o.or(code).ok_or(DecodeError::MissingKey("o"))?),
            message: m.or(message).unwrap_or(""),
            client_token: c.or(token),
        })
    }
}

#[cfg(test)]
mod tests;
