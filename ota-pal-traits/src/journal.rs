//! The download journal: what survives a power cut in the middle of a download.
//!
//! The reference agent keeps its block bitmap in RAM and starts again from block 0 after any
//! reset (spec §4.6, issue #206). A journal on its own small flash area records which job and
//! file is being received and every block once it is durably written, so that when the same
//! job comes back `IN_PROGRESS` after a reboot the agent asks only for the missing blocks.

use crate::PalError;

pub mod flash;

/// Longest job id AWS IoT Jobs accepts (spec §1.2).
pub const MAX_JOB_ID_LEN: usize = 64;

/// Identifies the download a journal belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalHeader {
    /// The job's `jobId`.
    pub job_id: heapless::String<MAX_JOB_ID_LEN>,
    /// Index of the file in `afr_ota.files`.
    pub file_index: u8,
    /// `filesize`.
    pub file_size: u32,
    /// Block size the download uses.
    pub block_size: u32,
    /// SHA-256 of the file's signature as it stands in the job document: a re-created job with
    /// the same id but a different image never resumes onto the old bytes.
    pub signature_digest: [u8; 32],
}

/// A power-safe record of download progress.
///
/// Contract: after [`record_block`](Self::record_block) returns `Ok`, a power cut at any later
/// point leaves that block reported by [`load`](Self::load); a cut during the call leaves the
/// block either reported or not, never a corrupt journal. A journal that cannot be read back
/// whole loads as empty (the download restarts) rather than as wrong data.
#[allow(async_fn_in_trait)]
pub trait DownloadJournal {
    /// Read the journal. Returns the header of the interrupted download, if any, and calls
    /// `received` once for each block recorded as written.
    async fn load(
        &mut self,
        received: &mut dyn FnMut(u32),
    ) -> Result<Option<JournalHeader>, PalError>;

    /// Start a new download, forgetting any previous one.
    async fn begin(&mut self, header: &JournalHeader) -> Result<(), PalError>;

    /// Record that block `index` is durably written to image storage.
    async fn record_block(&mut self, index: u32) -> Result<(), PalError>;

    /// Forget the download (finished, failed or cancelled).
    async fn clear(&mut self) -> Result<(), PalError>;
}

/// A journal that remembers nothing: every reboot restarts the download, as the reference
/// agent does. For boards without a spare flash area.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoJournal;

impl DownloadJournal for NoJournal {
    async fn load(
        &mut self,
        _received: &mut dyn FnMut(u32),
    ) -> Result<Option<JournalHeader>, PalError> {
        Ok(None)
    }

    async fn begin(&mut self, _header: &JournalHeader) -> Result<(), PalError> {
        Ok(())
    }

    async fn record_block(&mut self, _index: u32) -> Result<(), PalError> {
        Ok(())
    }

    async fn clear(&mut self) -> Result<(), PalError> {
        Ok(())
    }
}
