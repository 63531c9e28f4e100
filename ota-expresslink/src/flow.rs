//! The two update flows (spec §3.1, §3.2) and the post-reset confirmation.

use embedded_io_async::{Read, Write};
use ota_pal_traits::{
    BootControl, FileInfo, ImageStorage, ImageVerifier, PalError, PlatformImageState,
};

use crate::codec::{CodecError, EventKind, OtaCode};
use crate::driver::{Error, ExpressLink};
use crate::read::{ChecksumRule, ReadReply};
use crate::time::Clock;

/// The host's say on a proposed update.
pub trait UpdatePolicy {
    /// State 1: a module update is proposed; `version` is the opaque `OTA?` detail (a version
    /// string on v0.5/CCM, `OTA PENDING` on latest). `false` sends `AT+OTA FLUSH`.
    fn accept_module_update(&mut self, version: &[u8]) -> bool;

    /// State 2: a host update is proposed; `metadata` is the opaque `OTA?` detail.
    fn accept_host_update(&mut self, metadata: &[u8]) -> bool {
        let _ = metadata;
        true
    }
}

/// Accept every proposal.
#[derive(Debug, Clone, Copy, Default)]
pub struct AcceptAll;

impl UpdatePolicy for AcceptAll {
    fn accept_module_update(&mut self, _version: &[u8]) -> bool {
        true
    }
}

/// A host-update job as the host knows it.
#[derive(Debug, Clone, Copy)]
pub struct HostJob<'a> {
    /// The file: `size` 0 means unknown (then the `OTA?` size hint, else the storage
    /// capacity, bounds the download; the image is whatever the module holds).
    pub file: FileInfo<'a>,
    /// The job's signature (raw or DER), checked on the host with the given verifier. `None`
    /// skips the host check (the module may have checked it with `HOTAcertificate`).
    pub signature: Option<&'a [u8]>,
}

/// What a finished host update did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HostReport {
    /// Bytes written to storage.
    pub bytes: u32,
    /// READ replies with data.
    pub chunks: u32,
    /// Chunks accepted by the sum-mod-2^16 rule.
    pub sum16_chunks: u32,
    /// Chunks accepted by the sum-mod-2^8 rule (2-digit checksum).
    pub sum8_chunks: u32,
    /// Re-reads after a failed chunk.
    pub retries: u32,
    /// Whether the host checked a signature.
    pub signature_checked: bool,
}

/// Staging buffer [`ExpressLink::host_update`] uses: 512 bytes, a multiple of every
/// power-of-two flash write unit up to
/// [`nor::MAX_WRITE_SIZE`](ota_pal_traits::nor::MAX_WRITE_SIZE) (PSoC 6 and TRAVEO rows are
/// 512 bytes, SAME54 quad words 16). Give [`ExpressLink::host_update_staged`] a buffer of your
/// own for other write units or fewer, larger flash writes.
pub const DEFAULT_STAGE_LEN: usize = 512;

/// Re-blocks the READ chunks for the storage: bytes are staged until `buf` is full and written
/// as one block at an offset that is a multiple of `buf.len()`; the short tail goes last (see
/// [`ExpressLink::host_update_staged`] for the size rule). When nothing is staged, whole
/// multiples of `buf.len()` are written straight from the chunk, without a copy.
struct Stager<'b> {
    buf: &'b mut [u8],
    filled: usize,
    written: u32,
}

impl<'b> Stager<'b> {
    fn new(buf: &'b mut [u8]) -> Self {
        Self {
            buf,
            filled: 0,
            written: 0,
        }
    }

    async fn push<S: ImageStorage>(
        &mut self,
        storage: &mut S,
        mut data: &[u8],
    ) -> Result<(), PalError> {
        let len = self.buf.len();
        while !data.is_empty() {
            if self.filled == 0 && data.len() >= len {
                let (whole, rest) = data.split_at(data.len() - data.len() % len);
                self.write(storage, whole).await?;
                data = rest;
                continue;
            }
            let n = (len - self.filled).min(data.len());
            let (head, rest) = data.split_at(n);
            if let Some(dst) = self.buf.get_mut(self.filled..self.filled + n) {
                dst.copy_from_slice(head);
            }
            self.filled += n;
            data = rest;
            if self.filled == len {
                self.flush(storage).await?;
            }
        }
        Ok(())
    }

    /// Writes what is staged (the whole buffer, or the file's tail at the end).
    async fn flush<S: ImageStorage>(&mut self, storage: &mut S) -> Result<(), PalError> {
        let n = self.filled;
        if n == 0 {
            return Ok(());
        }
        let at = self.written;
        storage
            .write(at, self.buf.get(..n).unwrap_or_default())
            .await?;
        self.written = at.saturating_add(n as u32);
        self.filled = 0;
        Ok(())
    }

    async fn write<S: ImageStorage>(
        &mut self,
        storage: &mut S,
        block: &[u8],
    ) -> Result<(), PalError> {
        storage.write(self.written, block).await?;
        self.written = self.written.saturating_add(block.len() as u32);
        Ok(())
    }
}

/// How a module-update flow ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModuleOutcome {
    /// The policy refused; `AT+OTA FLUSH` was sent.
    Declined,
    /// APPLY was sent, STARTUP seen, and `AT+CONNECT` succeeded (the module commits).
    Applied,
}

/// What [`confirm_after_reset`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfirmOutcome {
    /// The image was pending and the self-test passed: confirmed.
    Confirmed,
    /// The image was pending and the self-test failed: rejected (the bootloader rolls back).
    Rejected,
    /// Nothing pending (the state seen is given).
    NothingPending(PlatformImageState),
}

/// After the reset into a trial image: run the self-test only when the image is pending, then
/// confirm or reject through the board's [`BootControl`].
pub async fn confirm_after_reset<B: BootControl>(
    boot: &mut B,
    self_test: impl FnOnce() -> bool,
) -> Result<ConfirmOutcome, PalError> {
    match boot.platform_state().await? {
        PlatformImageState::PendingCommit => {
            if self_test() {
                boot.confirm().await?;
                Ok(ConfirmOutcome::Confirmed)
            } else {
                boot.reject().await?;
                Ok(ConfirmOutcome::Rejected)
            }
        }
        other => Ok(ConfirmOutcome::NothingPending(other)),
    }
}

impl<IO: Read + Write, C: Clock, const N: usize> ExpressLink<IO, C, N> {
    /// Poll `OTA?` until it reports `want`. States in `pass` are waited through; 0 is
    /// [`Error::JobGone`] unless `want` is 0; anything else is [`Error::UnexpectedState`].
    /// Timeouts count as polls.
    pub async fn wait_ota_state(
        &mut self,
        want: OtaCode,
        pass: &[OtaCode],
    ) -> Result<(), Error<IO::Error>> {
        for _ in 0..self.config().max_polls {
            match self.ota_status().await {
                Ok(s) if s.code == want => return Ok(()),
                Ok(s) if pass.contains(&s.code) => {}
                Ok(s) if s.code == OtaCode::Idle => return Err(Error::JobGone),
                Ok(s) => return Err(Error::UnexpectedState(s.code)),
                Err(e) if e.is_transient() => {}
                Err(e) => return Err(e),
            }
            let t = self.config().poll_interval_ms;
            self.clock_mut().delay_ms(t).await;
        }
        Err(Error::NotReady)
    }

    /// Poll `EVENT?` until a STARTUP event (other events are dropped; timeouts and noise while
    /// the module reboots are tolerated).
    pub async fn wait_startup(&mut self) -> Result<(), Error<IO::Error>> {
        for _ in 0..self.config().max_polls {
            match self.event().await {
                Ok(Some(ev)) if ev.kind == EventKind::Startup => return Ok(()),
                Ok(Some(_)) => continue,
                Ok(None) => {}
                Err(e) if e.is_transient() => {}
                Err(e) => return Err(e),
            }
            let t = self.config().poll_interval_ms;
            self.clock_mut().delay_ms(t).await;
        }
        Err(Error::NotReady)
    }

    /// The module-update flow: state 1 → policy → ACCEPT (or FLUSH) → wait for state 4 →
    /// APPLY → wait for STARTUP → `AT+CONNECT`, which lets the new module firmware self-test
    /// and commit (else it rolls back). Re-configure non-persistent keys (topics, QoS) after
    /// it returns. Also resumes from state 3 or 4.
    pub async fn module_update<P: UpdatePolicy>(
        &mut self,
        policy: &mut P,
    ) -> Result<ModuleOutcome, Error<IO::Error>> {
        let status = self.ota_status().await?;
        match status.code {
            OtaCode::ModuleProposed => {
                if !policy.accept_module_update(status.detail) {
                    self.ota_flush().await?;
                    return Ok(ModuleOutcome::Declined);
                }
                self.ota_accept().await?;
                self.wait_ota_state(
                    OtaCode::ModuleReady,
                    &[OtaCode::InProgress, OtaCode::ModuleProposed],
                )
                .await?;
            }
            OtaCode::InProgress => {
                self.wait_ota_state(OtaCode::ModuleReady, &[OtaCode::InProgress])
                    .await?;
            }
            OtaCode::ModuleReady => {}
            other => return Err(Error::UnexpectedState(other)),
        }
        self.ota_apply().await?;
        self.wait_startup().await?;
        self.connect().await?;
        Ok(ModuleOutcome::Applied)
    }

    /// The host-update flow: state 2 → policy → ACCEPT → wait for state 5 → SEEK 0 → READ
    /// until a zero count into `storage` (every chunk checksum-checked before it is staged or
    /// hashed; a failed chunk is re-read after a SEEK back, at most `max_retries` times in a
    /// row) → host signature check when the job has one (on failure: storage aborted, FLUSH,
    /// [`Error::SignatureRejected`], boot state untouched) → CLOSE → poll `OTA?` until 0 →
    /// [`BootControl::request_trial_boot`]. Reset the board afterwards and call
    /// [`confirm_after_reset`] once running the new image. A declined proposal is FLUSHed and
    /// reported as [`Error::Declined`].
    ///
    /// The chunks are re-blocked through a [`DEFAULT_STAGE_LEN`]-byte buffer held in this
    /// future, so READ sizes need not match the flash write unit (see
    /// [`host_update_staged`](Self::host_update_staged)).
    pub async fn host_update<P, S, V, B>(
        &mut self,
        job: &HostJob<'_>,
        policy: &mut P,
        storage: &mut S,
        verifier: &mut V,
        boot: &mut B,
    ) -> Result<HostReport, Error<IO::Error>>
    where
        P: UpdatePolicy,
        S: ImageStorage,
        V: ImageVerifier,
        B: BootControl,
    {
        let mut stage = [0u8; DEFAULT_STAGE_LEN];
        self.host_update_staged(job, policy, storage, verifier, boot, &mut stage)
            .await
    }

    /// [`host_update`](Self::host_update) with a staging buffer of the caller's size.
    ///
    /// The module returns READ chunks of any length (a cap such as 2048, MaxOTARead, a short
    /// count mid-file), while a flash [`ImageStorage`] such as
    /// [`NorFlashImageStorage`](ota_pal_traits::NorFlashImageStorage) takes only blocks that
    /// start on a write unit and end on one, except the file's last. So the chunks are staged
    /// in `stage` and written as whole `stage.len()`-byte blocks at offsets that are multiples
    /// of `stage.len()`, the short tail last (the storage pads it). When nothing is staged,
    /// whole multiples of `stage.len()` are written straight from the chunk (no copy).
    ///
    /// **Size rule:** `stage.len()` must be a non-zero multiple of the storage's write unit
    /// (512 for PSoC 6 rows; 16 for SAME54); bigger means fewer, larger flash writes. An empty
    /// buffer is [`Error::Codec`]`(`[`CodecError::BufferFull`]`)`, before any command. With
    /// an unknown size (job size 0 and no `OTA?` size hint) the storage is prepared for its
    /// whole capacity, so the tail is not the file's end for it: a storage that requires
    /// aligned blocks then refuses a tail shorter than its write unit. Pass the size.
    pub async fn host_update_staged<P, S, V, B>(
        &mut self,
        job: &HostJob<'_>,
        policy: &mut P,
        storage: &mut S,
        verifier: &mut V,
        boot: &mut B,
        stage: &mut [u8],
    ) -> Result<HostReport, Error<IO::Error>>
    where
        P: UpdatePolicy,
        S: ImageStorage,
        V: ImageVerifier,
        B: BootControl,
    {
        if stage.is_empty() {
            return Err(Error::Codec(CodecError::BufferFull));
        }
        let status = self.ota_status().await?;
        match status.code {
            OtaCode::HostProposed => {
                if !policy.accept_host_update(status.detail) {
                    self.ota_flush().await?;
                    return Err(Error::Declined);
                }
                self.ota_accept().await?;
                self.wait_ota_state(
                    OtaCode::HostReady,
                    &[OtaCode::InProgress, OtaCode::HostProposed],
                )
                .await?;
            }
            OtaCode::InProgress => {
                self.wait_ota_state(OtaCode::HostReady, &[OtaCode::InProgress])
                    .await?;
            }
            OtaCode::HostReady => {}
            other => return Err(Error::UnexpectedState(other)),
        }
        // Size: the job's, else the v0.5 `OTA?` hint, else the whole storage.
        let mut size = job.file.size;
        if size == 0 {
            let s = self.ota_status().await?;
            size = s.size_hint().unwrap_or(0);
        }
        let known = size != 0;
        if !known {
            size = storage.capacity();
        }
        let file = FileInfo { size, ..job.file };
        storage.prepare(&file).await?;
        let result = self
            .download(
                &file,
                known,
                job.signature.is_some(),
                storage,
                verifier,
                stage,
            )
            .await;
        let mut report = match result {
            Ok(r) => r,
            Err(e) => {
                let _ = storage.abort().await;
                return Err(e);
            }
        };
        if known && report.bytes != size {
            let _ = storage.abort().await;
            return Err(Error::SizeMismatch {
                expected: size,
                got: report.bytes,
            });
        }
        let file = FileInfo {
            size: report.bytes,
            ..file
        };
        if let Some(sig) = job.signature {
            if let Err(e) = verifier.finish(sig).await {
                let _ = storage.abort().await;
                let _ = self.ota_flush().await;
                return Err(Error::SignatureRejected(e));
            }
            report.signature_checked = true;
        }
        self.ota_close().await?;
        self.wait_ota_state(OtaCode::Idle, &[OtaCode::HostReady, OtaCode::InProgress])
            .await?;
        boot.request_trial_boot(&file).await?;
        Ok(report)
    }

    async fn download<S: ImageStorage, V: ImageVerifier>(
        &mut self,
        file: &FileInfo<'_>,
        known: bool,
        hash: bool,
        storage: &mut S,
        verifier: &mut V,
        stage: &mut [u8],
    ) -> Result<HostReport, Error<IO::Error>> {
        let mut report = HostReport::default();
        if hash {
            verifier.begin(file);
        }
        let n = self.config().read_size;
        let max_retries = self.config().max_retries;
        let mut stager = Stager::new(stage);
        let mut failures: u8 = 0;
        // Bytes received (checksum-checked); the stager has written a prefix of them.
        let mut off: u32 = 0;
        let mut seek_to = Some(0u32);
        loop {
            if let Some(at) = seek_to {
                match self.ota_seek(at).await {
                    Ok(()) => seek_to = None,
                    Err(e) if e.is_transient() => {
                        failures = failures.saturating_add(1);
                        if failures > max_retries {
                            return Err(Error::TooManyRetries);
                        }
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            }
            match self.ota_read(n).await {
                Ok(ReadReply::End) => break,
                Ok(ReadReply::Data { data, rule }) => {
                    let len = data.len() as u32;
                    let end = off.checked_add(len).ok_or(Error::SizeMismatch {
                        expected: file.size,
                        got: u32::MAX,
                    })?;
                    if known && end > file.size {
                        return Err(Error::SizeMismatch {
                            expected: file.size,
                            got: end,
                        });
                    }
                    stager.push(storage, data).await?;
                    if hash {
                        verifier.update(data);
                    }
                    off = end;
                    report.chunks += 1;
                    match rule {
                        ChecksumRule::Sum16 => report.sum16_chunks += 1,
                        ChecksumRule::Sum8 => report.sum8_chunks += 1,
                    }
                    failures = 0;
                }
                Err(e) if e.is_transient() => {
                    failures = failures.saturating_add(1);
                    report.retries += 1;
                    if failures > max_retries {
                        return Err(Error::TooManyRetries);
                    }
                    seek_to = Some(off);
                }
                Err(e) => return Err(e),
            }
        }
        if known && off != file.size {
            return Err(Error::SizeMismatch {
                expected: file.size,
                got: off,
            });
        }
        stager.flush(storage).await?;
        report.bytes = off;
        Ok(report)
    }
}
