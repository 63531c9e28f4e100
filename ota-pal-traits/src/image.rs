//! Image storage: where the bytes of a downloaded file go.

use crate::PalError;

/// What the agent knows about the file it is about to store, taken from the job document
/// (spec §2.1) and handed to every PAL call that needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileInfo<'a> {
    /// Position of the file in the job's `afr_ota.files` array.
    pub index: u8,
    /// `filepath` (empty when the job has none). Boards that route by path (TF-M components)
    /// read it; others ignore it.
    pub path: &'a str,
    /// `filesize` in bytes; never 0.
    pub size: u32,
    /// `fileType` (0 = firmware unless the board says otherwise).
    pub file_type: u32,
    /// `attr`, passed through.
    pub attributes: u32,
    /// `certfile`: the signer certificate path or label (empty when absent).
    pub cert_path: &'a str,
}

impl<'a> FileInfo<'a> {
    /// File 0 of a job, `size` bytes at `path`, file type 0, no attributes, no certificate
    /// path; set the other fields with struct update syntax where they matter.
    pub const fn new(path: &'a str, size: u32) -> Self {
        Self {
            index: 0,
            path,
            size,
            file_type: 0,
            attributes: 0,
            cert_path: "",
        }
    }
}

/// Stores one received file.
///
/// Call order for one download: [`prepare`](Self::prepare) (or [`resume`](Self::resume) after
/// a reboot), any number of [`write`](Self::write) calls in any block order, reads for
/// verification, then either the boot-control hand-over or [`abort`](Self::abort).
#[allow(async_fn_in_trait)]
pub trait ImageStorage {
    /// Largest file this storage accepts, in bytes.
    fn capacity(&self) -> u32;

    /// Erase the receive area so a file of `file.size` bytes can be written.
    ///
    /// Fails with [`PalErrorKind::RxFileTooLarge`](crate::PalErrorKind::RxFileTooLarge) when
    /// `file.size > capacity()`.
    async fn prepare(&mut self, file: &FileInfo<'_>) -> Result<(), PalError>;

    /// Continue a download interrupted by a reboot: keep what is already stored, and accept
    /// writes of the blocks still missing. The default keeps the storage as it is.
    async fn resume(&mut self, file: &FileInfo<'_>) -> Result<(), PalError> {
        let _ = file;
        Ok(())
    }

    /// Write `data` at byte `offset` of the file. Blocks arrive in any order, each at most once
    /// per download; only the last block may be shorter than the block size.
    async fn write(&mut self, offset: u32, data: &[u8]) -> Result<(), PalError>;

    /// Read back `buf.len()` bytes from byte `offset` of the file.
    async fn read(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), PalError>;

    /// Give up the download: discard the partial file so nothing can boot it. Must succeed when
    /// nothing was prepared, and may be called more than once.
    async fn abort(&mut self) -> Result<(), PalError>;
}
