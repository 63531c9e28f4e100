//! The MQTT-based file delivery of AWS IoT (streams), by the service rules of §3.4.
//!
//! A stream is a named set of files, each with a file id 0–255. A GetStream request asks for
//! blocks of one file; the service answers with one DataBlock message per block and at most
//! 128 KiB of payload per request, or with one error on the `rejected` topic.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine as _;
use serde_json::{json, Map, Value as Json};

use super::cbor::{self, Value};

/// Smallest block size the service accepts.
pub const MIN_BLOCK_SIZE: u64 = 256;
/// Largest block size the service accepts, also the payload cap of one request.
pub const MAX_BLOCK_SIZE: u64 = 131_072;
/// Payload the service sends at most for one request.
pub const MAX_DATA_PER_REQUEST: u64 = 131_072;
/// Largest block offset (24 MB / 256 B).
pub const MAX_OFFSET: u64 = 98_304;
/// Largest `n`.
pub const MAX_BLOCK_COUNT: u64 = 98_304;
/// The bitmap must be shorter than this many bytes.
pub const MAX_BITMAP_BYTES: usize = 12_288;
/// Longest client token.
pub const MAX_CLIENT_TOKEN: usize = 64;
/// The version of every stream here (streams are never updated, so always 1).
pub const STREAM_VERSION: u64 = 1;

/// A file of a stream.
#[derive(Clone, Debug)]
pub struct StreamFile {
    /// The stream file id (`fileid` in the job document).
    pub file_id: u8,
    /// The file's bytes.
    pub data: Arc<Vec<u8>>,
}

/// The encoding of a request and its answers, chosen by the topic suffix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// `get/cbor`, `data/cbor`, `rejected/cbor`.
    Cbor,
    /// `get/json`, `data/json`, `rejected/json` (payload base64, bitmap a hex string).
    Json,
}

impl Encoding {
    /// The topic suffix word.
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Cbor => "cbor",
            Encoding::Json => "json",
        }
    }
}

/// A stream error code (§3.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamErrorCode {
    /// Not decodable as CBOR.
    InvalidCbor,
    /// Not decodable as JSON.
    InvalidJson,
    /// A required field is missing or of the wrong type.
    InvalidRequest,
    /// `l` outside 256..=131072.
    BlockSizeOutOfBounds,
    /// `o` beyond the file or beyond 98304.
    OffsetOutOfBounds,
    /// `n` above 98304.
    BlockCountLimitExceeded,
    /// Bitmap of 12288 bytes or more.
    BlockBitmapLimitExceeded,
    /// No such stream or file.
    ResourceNotFound,
    /// `s` is not the stream's version.
    VersionMismatch,
}

impl StreamErrorCode {
    /// The code as the service spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidCbor => "InvalidCbor",
            Self::InvalidJson => "InvalidJson",
            Self::InvalidRequest => "InvalidRequest",
            Self::BlockSizeOutOfBounds => "BlockSizeOutOfBounds",
            Self::OffsetOutOfBounds => "OffsetOutOfBounds",
            Self::BlockCountLimitExceeded => "BlockCountLimitExceeded",
            Self::BlockBitmapLimitExceeded => "BlockBitmapLimitExceeded",
            Self::ResourceNotFound => "ResourceNotFound",
            Self::VersionMismatch => "VersionMismatch",
        }
    }
}

/// A request after decoding, independent of its encoding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GetStream {
    /// `c`.
    pub client_token: Option<String>,
    /// `s`: the stream version the client expects.
    pub version: Option<u64>,
    /// `f`.
    pub file_id: u64,
    /// `l`.
    pub block_size: u64,
    /// `o` (default 0).
    pub offset: u64,
    /// `n`.
    pub count: Option<u64>,
    /// `b`.
    pub bitmap: Option<Vec<u8>>,
}

/// One block to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    /// Block index `i`.
    pub index: u64,
    /// Payload `p`.
    pub payload: Vec<u8>,
}

/// The service's answer to one request: messages for the `data` topic, or one `rejected`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamReply {
    /// Payloads for `streams/<s>/data/<enc>`, one per block, in block order.
    Data(Vec<Vec<u8>>),
    /// Payload for `streams/<s>/rejected/<enc>`.
    Rejected(Vec<u8>),
}

struct Reject(StreamErrorCode, String);

fn reject(code: StreamErrorCode, msg: impl Into<String>) -> Reject {
    Reject(code, msg.into())
}

fn decode_cbor(payload: &[u8]) -> Result<GetStream, (Option<String>, Reject)> {
    let m = cbor::decode_map(payload).map_err(|_| {
        (
            None,
            reject(
                StreamErrorCode::InvalidCbor,
                "Request is not a valid CBOR map",
            ),
        )
    })?;
    let token = match m.get("c") {
        Some(Value::Text(t)) => Some(t.clone()),
        _ => None,
    };
    let bad = |what: &str| {
        (
            token.clone(),
            reject(StreamErrorCode::InvalidRequest, what.to_string()),
        )
    };
    let uint = |k: &str| -> Result<Option<u64>, (Option<String>, Reject)> {
        match m.get(k) {
            None => Ok(None),
            Some(Value::Uint(n)) => Ok(Some(*n)),
            Some(_) => Err(bad(&format!("Field '{k}' must be an unsigned integer"))),
        }
    };
    if matches!(m.get("c"), Some(v) if !matches!(v, Value::Text(_))) {
        return Err(bad("Field 'c' must be a text string"));
    }
    let version = uint("s")?;
    let file_id = uint("f")?.ok_or_else(|| bad("Missing required field 'f'"))?;
    let block_size = uint("l")?.ok_or_else(|| bad("Missing required field 'l'"))?;
    let offset = uint("o")?.unwrap_or(0);
    let count = uint("n")?;
    let bitmap = match m.get("b") {
        None => None,
        Some(Value::Bytes(b)) => Some(b.clone()),
        Some(_) => return Err(bad("Field 'b' must be a byte string")),
    };
    Ok(GetStream {
        client_token: token,
        version,
        file_id,
        block_size,
        offset,
        count,
        bitmap,
    })
}

fn decode_json(payload: &[u8]) -> Result<GetStream, (Option<String>, Reject)> {
    let v: Json = serde_json::from_slice(payload).map_err(|_| {
        (
            None,
            reject(StreamErrorCode::InvalidJson, "Request is not valid JSON"),
        )
    })?;
    let Some(o) = v.as_object() else {
        return Err((
            None,
            reject(StreamErrorCode::InvalidJson, "Request is not a JSON object"),
        ));
    };
    let token = o.get("c").and_then(Json::as_str).map(str::to_string);
    let bad = |what: String| (token.clone(), reject(StreamErrorCode::InvalidRequest, what));
    let uint = |k: &str| -> Result<Option<u64>, (Option<String>, Reject)> {
        match o.get(k) {
            None => Ok(None),
            Some(x) => x
                .as_u64()
                .map(Some)
                .ok_or_else(|| bad(format!("Field '{k}' must be an unsigned integer"))),
        }
    };
    let version = uint("s")?;
    let file_id = uint("f")?.ok_or_else(|| bad("Missing required field 'f'".into()))?;
    let block_size = uint("l")?.ok_or_else(|| bad("Missing required field 'l'".into()))?;
    let offset = uint("o")?.unwrap_or(0);
    let count = uint("n")?;
    let bitmap = match o.get("b") {
        None => None,
        Some(Json::String(s)) => {
            Some(parse_hex_bitmap(s).ok_or_else(|| bad("Field 'b' must be a hex string".into()))?)
        }
        Some(_) => return Err(bad("Field 'b' must be a hex string".into())),
    };
    Ok(GetStream {
        client_token: token,
        version,
        file_id,
        block_size,
        offset,
        count,
        bitmap,
    })
}

/// Parses the JSON form of a bitmap, `"0x130080"`: bytes in order, two hex digits each
/// (an odd digit count gets a leading zero).
pub fn parse_hex_bitmap(s: &str) -> Option<Vec<u8>> {
    let h = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    if h.is_empty() || !h.is_ascii() {
        return None;
    }
    let padded = if h.len() % 2 == 1 {
        format!("0{h}")
    } else {
        h.to_string()
    };
    (0..padded.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(padded.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Which blocks a valid request asks for, by the rules of §3.4: with a bitmap, bit `k`
/// (LSB-first within each byte) set means block `o + k` is wanted, `n` caps the count; without
/// one, `n` blocks from `o` on (default: as many as fit in 128 KiB). Blocks past the end of the
/// file are dropped and the total payload is capped at 128 KiB.
pub fn select_blocks(req: &GetStream, file_len: u64) -> Result<Vec<u64>, StreamErrorCode> {
    let l = req.block_size;
    if !(MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(&l) {
        return Err(StreamErrorCode::BlockSizeOutOfBounds);
    }
    if req.count.is_some_and(|n| n > MAX_BLOCK_COUNT) {
        return Err(StreamErrorCode::BlockCountLimitExceeded);
    }
    if req
        .bitmap
        .as_ref()
        .is_some_and(|b| b.len() >= MAX_BITMAP_BYTES)
    {
        return Err(StreamErrorCode::BlockBitmapLimitExceeded);
    }
    let num_blocks = file_len.div_ceil(l);
    if req.offset > MAX_OFFSET || req.offset >= num_blocks.max(1) {
        return Err(StreamErrorCode::OffsetOutOfBounds);
    }
    let per_request = MAX_DATA_PER_REQUEST / l;
    // `n` = 0 is read as "no cap given" (the service default).
    let cap = match req.count {
        Some(n) if n > 0 => n.min(per_request),
        _ => per_request,
    };
    let mut out = Vec::new();
    match &req.bitmap {
        Some(bitmap) => {
            'outer: for (byte_i, byte) in bitmap.iter().enumerate() {
                for bit in 0..8u64 {
                    if byte & (1 << bit) == 0 {
                        continue;
                    }
                    let block = req.offset + byte_i as u64 * 8 + bit;
                    if block >= num_blocks || out.len() as u64 >= cap {
                        break 'outer;
                    }
                    out.push(block);
                }
            }
        }
        None => {
            let end = req.offset.saturating_add(cap).min(num_blocks);
            out.extend(req.offset..end);
        }
    }
    Ok(out)
}

/// The streams the service knows, by name.
#[derive(Clone, Debug, Default)]
pub struct Streams {
    streams: BTreeMap<String, Vec<StreamFile>>,
}

impl Streams {
    /// Creates or replaces a stream.
    pub fn insert(&mut self, name: String, files: Vec<StreamFile>) {
        self.streams.insert(name, files);
    }

    /// Removes a stream.
    pub fn remove(&mut self, name: &str) {
        self.streams.remove(name);
    }

    /// A file of a stream.
    pub fn file(&self, stream: &str, file_id: u8) -> Option<&StreamFile> {
        self.streams
            .get(stream)?
            .iter()
            .find(|f| f.file_id == file_id)
    }

    /// Names of all streams.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.streams.keys().map(String::as_str)
    }

    /// Answers one GetStream request published on `streams/<stream>/get/<enc>`.
    pub fn handle_get(&self, stream: &str, enc: Encoding, payload: &[u8]) -> StreamReply {
        let decoded = match enc {
            Encoding::Cbor => decode_cbor(payload),
            Encoding::Json => decode_json(payload),
        };
        let req = match decoded {
            Ok(r) => r,
            Err((token, Reject(code, msg))) => {
                return StreamReply::Rejected(encode_rejected(enc, code, &msg, token.as_deref()))
            }
        };
        let token = req.client_token.as_deref();
        let fail = |code: StreamErrorCode, msg: String| {
            StreamReply::Rejected(encode_rejected(enc, code, &msg, token))
        };
        if token.is_some_and(|t| t.len() > MAX_CLIENT_TOKEN) {
            return fail(
                StreamErrorCode::InvalidRequest,
                "Client token is longer than 64 bytes".into(),
            );
        }
        let Some(files) = self.streams.get(stream) else {
            return fail(
                StreamErrorCode::ResourceNotFound,
                format!("Stream {stream} does not exist"),
            );
        };
        if let Some(v) = req.version.filter(|v| *v != STREAM_VERSION) {
            return fail(
                StreamErrorCode::VersionMismatch,
                format!("Stream version {v} does not match version {STREAM_VERSION}"),
            );
        }
        let file = u8::try_from(req.file_id)
            .ok()
            .and_then(|id| files.iter().find(|f| f.file_id == id));
        let Some(file) = file else {
            return fail(
                StreamErrorCode::ResourceNotFound,
                format!("File {} does not exist in stream {stream}", req.file_id),
            );
        };
        let blocks = match select_blocks(&req, file.data.len() as u64) {
            Ok(b) => b,
            Err(code) => {
                let msg = match code {
                    StreamErrorCode::BlockSizeOutOfBounds => format!(
                        "Block size {} is outside {MIN_BLOCK_SIZE}..={MAX_BLOCK_SIZE}",
                        req.block_size
                    ),
                    StreamErrorCode::OffsetOutOfBounds => {
                        format!("Block offset {} is out of bounds", req.offset)
                    }
                    StreamErrorCode::BlockCountLimitExceeded => {
                        format!("Block count exceeds {MAX_BLOCK_COUNT}")
                    }
                    _ => format!("Bitmap must be shorter than {MAX_BITMAP_BYTES} bytes"),
                };
                return fail(code, msg);
            }
        };
        let l = req.block_size as usize;
        let data = blocks
            .iter()
            .map(|&i| {
                let start = i as usize * l;
                let end = (start + l).min(file.data.len());
                let payload = file.data.get(start..end).unwrap_or_default();
                encode_data(enc, token, file.file_id, i, payload)
            })
            .collect();
        StreamReply::Data(data)
    }
}

impl Streams {
    /// Answers `streams/<stream>/describe/<enc>` (DescribeStream): `Ok` is the payload for
    /// `description/<enc>` (`c`, `s` version, `d` description, `r` = `[{f, z}]` file ids and
    /// sizes), `Err` the payload for `rejected/<enc>`.
    pub fn handle_describe(
        &self,
        stream: &str,
        enc: Encoding,
        payload: &[u8],
    ) -> Result<Vec<u8>, Vec<u8>> {
        let token = if payload.is_empty() {
            None
        } else {
            let t = match enc {
                Encoding::Cbor => cbor::decode_map(payload)
                    .map(|m| match m.get("c") {
                        Some(Value::Text(t)) => Some(t.clone()),
                        _ => None,
                    })
                    .map_err(|_| {
                        (
                            StreamErrorCode::InvalidCbor,
                            "Request is not a valid CBOR map",
                        )
                    }),
                Encoding::Json => serde_json::from_slice::<Json>(payload)
                    .ok()
                    .filter(Json::is_object)
                    .map(|v| v["c"].as_str().map(str::to_string))
                    .ok_or((StreamErrorCode::InvalidJson, "Request is not a JSON object")),
            };
            match t {
                Ok(t) => t,
                Err((code, msg)) => return Err(encode_rejected(enc, code, msg, None)),
            }
        };
        let token = token.as_deref();
        let Some(files) = self.streams.get(stream) else {
            return Err(encode_rejected(
                enc,
                StreamErrorCode::ResourceNotFound,
                &format!("Stream {stream} does not exist"),
                token,
            ));
        };
        let description = "OTA update stream (ota-tool)";
        Ok(match enc {
            Encoding::Cbor => {
                let mut w = cbor::Writer::default();
                w.begin_map();
                if let Some(t) = token {
                    w.text("c").text(t);
                }
                w.text("s")
                    .uint(STREAM_VERSION)
                    .text("d")
                    .text(description)
                    .text("r")
                    .begin_array();
                for f in files {
                    w.begin_map()
                        .text("f")
                        .uint(u64::from(f.file_id))
                        .text("z")
                        .uint(f.data.len() as u64)
                        .end();
                }
                w.end().end();
                w.buf
            }
            Encoding::Json => {
                let mut m = Map::new();
                if let Some(t) = token {
                    m.insert("c".into(), json!(t));
                }
                m.insert("s".into(), json!(STREAM_VERSION));
                m.insert("d".into(), json!(description));
                m.insert(
                    "r".into(),
                    Json::Array(
                        files
                            .iter()
                            .map(|f| json!({"f": f.file_id, "z": f.data.len()}))
                            .collect(),
                    ),
                );
                serde_json::to_vec(&Json::Object(m)).unwrap_or_default()
            }
        })
    }
}

/// Encodes one DataBlock message as the service sends it: CBOR indefinite map with keys
/// `c` (when the request had a token), `f`, `l` (payload length), `i`, `p`; JSON with `p` base64.
pub fn encode_data(
    enc: Encoding,
    token: Option<&str>,
    file_id: u8,
    index: u64,
    payload: &[u8],
) -> Vec<u8> {
    match enc {
        Encoding::Cbor => {
            let mut w = cbor::Writer::default();
            w.begin_map();
            if let Some(t) = token {
                w.text("c").text(t);
            }
            w.text("f")
                .uint(u64::from(file_id))
                .text("l")
                .uint(payload.len() as u64)
                .text("i")
                .uint(index)
                .text("p")
                .bytes(payload)
                .end();
            w.buf
        }
        Encoding::Json => {
            let mut m = Map::new();
            if let Some(t) = token {
                m.insert("c".into(), json!(t));
            }
            m.insert("f".into(), json!(file_id));
            m.insert("l".into(), json!(payload.len()));
            m.insert("i".into(), json!(index));
            m.insert(
                "p".into(),
                json!(base64::engine::general_purpose::STANDARD.encode(payload)),
            );
            serde_json::to_vec(&Json::Object(m)).unwrap_or_default()
        }
    }
}

/// Encodes a stream error with both the short (`o`, `m`, `c`) and the long (`code`, `message`,
/// `clientToken`) keys, as the service does for backward compatibility (issue #490).
pub fn encode_rejected(
    enc: Encoding,
    code: StreamErrorCode,
    msg: &str,
    token: Option<&str>,
) -> Vec<u8> {
    match enc {
        Encoding::Cbor => {
            let mut w = cbor::Writer::default();
            w.begin_map()
                .text("o")
                .text(code.as_str())
                .text("m")
                .text(msg);
            if let Some(t) = token {
                w.text("c").text(t);
            }
            w.text("code").text(code.as_str()).text("message").text(msg);
            if let Some(t) = token {
                w.text("clientToken").text(t);
            }
            w.end();
            w.buf
        }
        Encoding::Json => {
            let mut m = Map::new();
            m.insert("o".into(), json!(code.as_str()));
            m.insert("m".into(), json!(msg));
            if let Some(t) = token {
                m.insert("c".into(), json!(t));
            }
            m.insert("code".into(), json!(code.as_str()));
            m.insert("message".into(), json!(msg));
            if let Some(t) = token {
                m.insert("clientToken".into(), json!(t));
            }
            serde_json::to_vec(&Json::Object(m)).unwrap_or_default()
        }
    }
}
