#![doc = include_str!("../README.md")]
#![no_std]

pub use embedded_io_async;
pub use ota_pal_traits;

pub mod codec;
pub mod driver;
pub mod flow;
pub mod read;
pub mod time;

pub use codec::{
    escape_into, escaped_len, format_command, parse_event, parse_ota_status, parse_response,
    unescape_in_place, unescape_into, CodecError, Dialect, ErrCode, Event, EventKind, OtaCode,
    OtaStatus, Response,
};
pub use driver::{Config, Error, ExpressLink, FrameError, LineBuf};
pub use flow::{
    confirm_after_reset, AcceptAll, ConfirmOutcome, HostJob, HostReport, ModuleOutcome,
    UpdatePolicy, DEFAULT_STAGE_LEN,
};
pub use read::{
    encode_read_reply, parse_read_reply, parse_seek_reply, read_line_len, sum16, ChecksumRule,
    ChecksumWidth, ReadError, ReadReply,
};
pub use time::{select, with_timeout, Clock, Either, TimedOut};

/// RX line buffer size for `AT+OTA READ 2048` (the CCM's cap).
pub const RX_FOR_2K_READS: usize = read_line_len(2048);
