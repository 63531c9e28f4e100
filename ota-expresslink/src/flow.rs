//! The two update flows (spec §3.1, §3.2) and the post-reset confirmation.

use embedded_io_async::{Read, Write};
use ota_pal_traits::{
    BootControl, FileInfo, ImageStorage, ImageVerifier, PalError, PlatformImageState,
};

use crate::codec::{EventKind, OtaCode};
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
    /// until a zero count into `storage` (every chunk checksum-checked before it is written or
    /// hashed; a failed chunk is re-read after a SEEK back, at most `max_retries` times in a
    /// row) → host signature check when the job has one (on failure: storage aborted, FLUSH,
    /// [`Error::SignatureRejected`], boot state untouched) → CLOSE → poll `OTA?` until 0 →
    /// [`BootControl::request_trial_boot`]. Reset the board afterwards and call
    /// [`confirm_after_reset`] once running the new image. A declined proposal is FLUSHed and
    /// reported as [`Error::Declined`].
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
            .download(&file, job.signature.is_some(), storage, verifier)
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
        hash: bool,
        storage: &mut S,
        verifier: &mut V,
    ) -> Result<HostReport, Error<IO::Error>> {
        let mut report = HostReport::default();
        if hash {
            verifier.begin(file);
        }
        let n = self.config().read_size;
        let max_retries = self.config().max_retries;
        let mut failures: u8 = 0;
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
                    storage.write(off, data).await?;
                    if hash {
                        verifier.update(data);
                    }
                    let len = data.len() as u32;
                    off = off.checked_add(len).ok_or(Error::SizeMismatch {
                        expected: file.size,
                        got: u32::MAX,
                    })?;
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
        report.bytes = off;
        Ok(report)
    }
}
