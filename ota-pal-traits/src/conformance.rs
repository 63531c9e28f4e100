//! A PAL conformance suite: the reference PAL qualification tests (spec §8.5, group
//! `Full_OTA_PAL`) and the §5 state rules, replayed against a board's [`ImageStorage`],
//! [`ImageVerifier`] and [`BootControl`].
//!
//! A board crate calls [`run_all`] (or single checks) from its own tests, with the caller's
//! test data and its signature, and runs the futures with [`crate::sim::block_on`] when its
//! PAL sits on the simulated flash:
//!
//! ```
//! # use ota_pal_traits::conformance::*;
//! # fn check<S: ota_pal_traits::ImageStorage, V: ota_pal_traits::ImageVerifier,
//! #          B: ota_pal_traits::BootControl>(mut pal: PalUnderTest<'_, S, V, B>) {
//! let report = ota_pal_traits::sim::block_on(run_all(&mut pal));
//! assert!(report.is_ok(), "{report:?}");
//! # }
//! ```
//!
//! # How the reference calls map onto the traits
//!
//! * `CreateFileForRx` → [`ImageStorage::prepare`]; `WriteBlock` → [`ImageStorage::write`];
//!   `Abort` → [`ImageStorage::abort`].
//! * `CloseFile` → what the agent does at the end of a download ([`close_file`]):
//!   [`ImageVerifier::begin`], [`verify_stored_image`] over the whole file, and on failure
//!   [`BootControl::reject`] so that the platform state reads `Invalid`, as the reference
//!   requires after a failed close.
//! * `SetPlatformImageState(Accepted)` → [`BootControl::confirm`];
//!   `GetPlatformImageState` → [`BootControl::platform_state`].
//!
//! Not replayed, because the Rust types rule them out: `SetPlatformImageState` with an
//! out-of-range or `Unknown` state (an enum cannot hold them), and
//! `CloseFile_NonexistingCodeSignerCertificate` (the key is given when the verifier is built;
//! a bad key fails there with `BadSignerCert`). `WriteManyBlocks` writes whole blocks of
//! [`PalUnderTest::block_size`] bytes (the reference writes 84 bytes at each page offset,
//! leaving holes that would need a write unit to be programmed twice).

use crate::{
    verify_stored_image, BootControl, FileInfo, ImageStorage, ImageVerifier, PalError,
    PalErrorKind, PlatformImageState,
};

/// The reference PAL tests' 84-byte `ucDummyData` (spec §8.5): 20 bytes, then `00`..`0a`,
/// `0c`, `0c`..`3f`. Its reference signature is for a key nobody has; boards sign it with a
/// test key (e.g. [`crate::sim::test_keys`]).
pub const DUMMY_DATA: [u8; 84] = [
    0x83, 0x0b, 0xf0, 0x6a, 0x81, 0xd6, 0xca, 0xd7, 0x08, 0x22, 0x0d, 0x6a, 0x33, 0xfa, 0x31, 0x9f,
    0xa9, 0x5f, 0xb5, 0x26, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0c,
    0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b,
    0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2a, 0x2b,
    0x2c, 0x2d, 0x2e, 0x2f, 0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x3b,
    0x3c, 0x3d, 0x3e, 0x3f,
];

/// The PAL parts under test and the caller's test vectors.
#[derive(Debug)]
pub struct PalUnderTest<'a, S, V, B> {
    /// The image storage.
    pub storage: &'a mut S,
    /// The verifier, holding the key that signed `data`.
    pub verifier: &'a mut V,
    /// The boot control. It must not be running an image on trial.
    pub boot: &'a mut B,
    /// The test file (the reference uses its 84-byte `ucDummyData`).
    pub data: &'a [u8],
    /// A valid signature of `data` in the encoding the verifier expects.
    pub signature: &'a [u8],
    /// A signature that must not verify for `data`.
    pub invalid_signature: &'a [u8],
    /// Block ("page") size for the many-blocks write: a multiple of the storage's write unit,
    /// with `9 * block_size + data.len()` within the storage capacity.
    pub block_size: u32,
    /// Scratch buffer for building blocks and reading the file back: at least `block_size`
    /// bytes (the many-blocks check writes each block from it in one call).
    pub scratch: &'a mut [u8],
}

/// A check that did not pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    /// The check, named after the reference test it plays.
    pub test: &'static str,
    /// What was expected.
    pub expected: &'static str,
    /// What the PAL returned, if it returned an error.
    pub got: Option<PalError>,
}

type Outcome = Result<(), Failure>;

fn fail(test: &'static str, expected: &'static str, got: Option<PalError>) -> Failure {
    Failure {
        test,
        expected,
        got,
    }
}

/// `Ok` is expected.
fn ok(test: &'static str, r: Result<(), PalError>) -> Outcome {
    r.map_err(|e| fail(test, "Ok", Some(e)))
}

/// An error of `kind` is expected.
fn expect_kind(
    test: &'static str,
    expected: &'static str,
    kind: PalErrorKind,
    r: Result<(), PalError>,
) -> Outcome {
    match r {
        Err(e) if e.kind() == kind => Ok(()),
        Err(e) => Err(fail(test, expected, Some(e))),
        Ok(()) => Err(fail(test, expected, None)),
    }
}

fn file_of(size: u32) -> FileInfo<'static> {
    FileInfo::new("", size)
}

fn len_u32(data: &[u8]) -> u32 {
    u32::try_from(data.len()).unwrap_or(u32::MAX)
}

/// The agent's `CloseFile`: hash the stored file from its start, check `signature`, and on a
/// signature failure reject the image so the platform state reads `Invalid`.
pub async fn close_file<S, V, B>(
    pal: &mut PalUnderTest<'_, S, V, B>,
    file: &FileInfo<'_>,
    signature: &[u8],
) -> Result<(), PalError>
where
    S: ImageStorage,
    V: ImageVerifier,
    B: BootControl,
{
    pal.verifier.begin(file);
    let r = verify_stored_image(pal.storage, pal.verifier, file, 0, signature, pal.scratch).await;
    if let Err(e) = r {
        if e.kind() == PalErrorKind::SignatureCheckFailed {
            pal.boot.reject().await?;
        }
    }
    r
}

/// Open the test file, write the data if `write`, close it with `sig` and expect
/// `SignatureCheckFailed`, then abort: the shape of every failing `CloseFile` check.
async fn close_expecting_signature_failure<S, V, B>(
    pal: &mut PalUnderTest<'_, S, V, B>,
    t: &'static str,
    write: bool,
    sig: &[u8],
) -> Outcome
where
    S: ImageStorage,
    V: ImageVerifier,
    B: BootControl,
{
    let file = file_of(len_u32(pal.data));
    ok(t, pal.storage.prepare(&file).await)?;
    if write {
        ok(t, pal.storage.write(0, pal.data).await)?;
    }
    let r = close_file(pal, &file, sig).await;
    expect_kind(
        t,
        "SignatureCheckFailed",
        PalErrorKind::SignatureCheckFailed,
        r,
    )?;
    ok(t, pal.storage.abort().await)
}

/// `otaPal_CloseFile_ValidSignature`: write the data, close with the valid signature → Ok.
pub async fn close_file_valid_signature<S, V, B>(pal: &mut PalUnderTest<'_, S, V, B>) -> Outcome
where
    S: ImageStorage,
    V: ImageVerifier,
    B: BootControl,
{
    const T: &str = "CloseFile_ValidSignature";
    let file = file_of(len_u32(pal.data));
    ok(T, pal.storage.prepare(&file).await)?;
    ok(T, pal.storage.write(0, pal.data).await)?;
    let sig = pal.signature;
    ok(T, close_file(pal, &file, sig).await)?;
    ok(T, pal.storage.abort().await)
}

/// `otaPal_CloseFile_InvalidSignatureBlockWritten` → SignatureCheckFailed.
pub async fn close_file_invalid_signature_block_written<S, V, B>(
    pal: &mut PalUnderTest<'_, S, V, B>,
) -> Outcome
where
    S: ImageStorage,
    V: ImageVerifier,
    B: BootControl,
{
    let sig = pal.invalid_signature;
    close_expecting_signature_failure(pal, "CloseFile_InvalidSignatureBlockWritten", true, sig)
        .await
}

/// `otaPal_CloseFile_InvalidSignatureNoBlockWritten` → SignatureCheckFailed.
pub async fn close_file_invalid_signature_no_block_written<S, V, B>(
    pal: &mut PalUnderTest<'_, S, V, B>,
) -> Outcome
where
    S: ImageStorage,
    V: ImageVerifier,
    B: BootControl,
{
    let sig = pal.invalid_signature;
    close_expecting_signature_failure(pal, "CloseFile_InvalidSignatureNoBlockWritten", false, sig)
        .await
}

/// Extra (§8.5 asks for a valid signature over the *written* data): the valid signature does
/// not verify when nothing was written, so erased flash never passes as the image.
pub async fn close_file_valid_signature_no_block_written<S, V, B>(
    pal: &mut PalUnderTest<'_, S, V, B>,
) -> Outcome
where
    S: ImageStorage,
    V: ImageVerifier,
    B: BootControl,
{
    let sig = pal.signature;
    close_expecting_signature_failure(pal, "CloseFile_ValidSignatureNoBlockWritten", false, sig)
        .await
}

/// `otaPal_CreateFileForRx_CreateAnyFile` → Ok; and a file past the capacity →
/// RxFileTooLarge.
pub async fn create_file_for_rx<S, V, B>(pal: &mut PalUnderTest<'_, S, V, B>) -> Outcome
where
    S: ImageStorage,
    V: ImageVerifier,
    B: BootControl,
{
    const T: &str = "CreateFileForRx_CreateAnyFile";
    ok(T, pal.storage.prepare(&file_of(len_u32(pal.data))).await)?;
    ok(T, pal.storage.abort().await)?;
    let too_big = pal.storage.capacity().saturating_add(1);
    let r = pal.storage.prepare(&file_of(too_big)).await;
    expect_kind(T, "RxFileTooLarge", PalErrorKind::RxFileTooLarge, r)?;
    ok(T, pal.storage.abort().await)
}

/// After an abort nothing is open: a write fails with NullFileContext (the reference checks
/// that `pFile` is NULL).
async fn nothing_open<S: ImageStorage>(t: &'static str, storage: &mut S) -> Outcome {
    let r = storage.write(0, &[0]).await;
    expect_kind(t, "NullFileContext", PalErrorKind::NullFileContext, r)
}

/// `otaPal_Abort_OpenFile` → Ok, and nothing stays open.
pub async fn abort_open_file<S, V, B>(pal: &mut PalUnderTest<'_, S, V, B>) -> Outcome
where
    S: ImageStorage,
    V: ImageVerifier,
    B: BootControl,
{
    const T: &str = "Abort_OpenFile";
    ok(T, pal.storage.prepare(&file_of(len_u32(pal.data))).await)?;
    ok(T, pal.storage.abort().await)?;
    nothing_open(T, pal.storage).await
}

/// `otaPal_Abort_FileWithBlockWritten` → Ok, nothing stays open, and the written data does
/// not verify any more.
pub async fn abort_file_with_block_written<S, V, B>(pal: &mut PalUnderTest<'_, S, V, B>) -> Outcome
where
    S: ImageStorage,
    V: ImageVerifier,
    B: BootControl,
{
    const T: &str = "Abort_FileWithBlockWritten";
    let file = file_of(len_u32(pal.data));
    ok(T, pal.storage.prepare(&file).await)?;
    ok(T, pal.storage.write(0, pal.data).await)?;
    ok(T, pal.storage.abort().await)?;
    nothing_open(T, pal.storage).await?;
    pal.verifier.begin(&file);
    let r = verify_stored_image(
        pal.storage,
        pal.verifier,
        &file,
        0,
        pal.signature,
        pal.scratch,
    )
    .await;
    if r.is_ok() {
        return Err(fail(T, "the aborted file no longer verifies", None));
    }
    Ok(())
}

/// `otaPal_Abort_NullFileHandle` and `otaPal_Abort_NonExistentFile`: abort with nothing
/// open, twice → Ok.
pub async fn abort_with_nothing_open<S, V, B>(pal: &mut PalUnderTest<'_, S, V, B>) -> Outcome
where
    S: ImageStorage,
    V: ImageVerifier,
    B: BootControl,
{
    const T: &str = "Abort_NullFileHandle";
    ok(T, pal.storage.abort().await)?;
    ok(T, pal.storage.abort().await)?;
    nothing_open(T, pal.storage).await
}

/// `otaPal_WriteBlock_WriteSingleByte`: a one-byte file → Ok, and it reads back.
pub async fn write_single_byte<S, V, B>(pal: &mut PalUnderTest<'_, S, V, B>) -> Outcome
where
    S: ImageStorage,
    V: ImageVerifier,
    B: BootControl,
{
    const T: &str = "WriteBlock_WriteSingleByte";
    let byte = pal.data.first().copied().unwrap_or(0x5A);
    ok(T, pal.storage.prepare(&file_of(1)).await)?;
    ok(T, pal.storage.write(0, &[byte]).await)?;
    let mut back = [!byte];
    ok(T, pal.storage.read(0, &mut back).await)?;
    if back != [byte] {
        return Err(fail(T, "the byte reads back", None));
    }
    ok(T, pal.storage.abort().await)
}

/// `otaPal_WriteBlock_WriteManyBlocks`: ten blocks (the last one `data.len()` bytes, the
/// others whole blocks of the data repeated), written last to first → each Ok, and the file
/// reads back.
pub async fn write_many_blocks<S, V, B>(pal: &mut PalUnderTest<'_, S, V, B>) -> Outcome
where
    S: ImageStorage,
    V: ImageVerifier,
    B: BootControl,
{
    const T: &str = "WriteBlock_WriteManyBlocks";
    let bs = pal.block_size;
    if pal.data.is_empty() || bs == 0 || pal.scratch.is_empty() {
        return Err(fail(T, "non-empty data, block size and scratch", None));
    }
    let size = bs.saturating_mul(9).saturating_add(len_u32(pal.data));
    let byte_at = |pos: u32| {
        let i = pos as usize % pal.data.len();
        pal.data.get(i).copied().unwrap_or(0)
    };
    ok(T, pal.storage.prepare(&file_of(size)).await)?;
    for block in (0..10u32).rev() {
        let start = block * bs;
        let end = (start + bs).min(size);
        // Write each block in pieces of the scratch buffer's size is not allowed (a block is
        // one write), so fill the scratch with as much as fits and require it to hold a block.
        let len = (end - start) as usize;
        let buf =
            pal.scratch
                .get_mut(..len)
                .ok_or(fail(T, "scratch at least one block long", None))?;
        for (k, b) in buf.iter_mut().enumerate() {
            *b = byte_at(start + k as u32);
        }
        ok(T, pal.storage.write(start, buf).await)?;
    }
    let mut pos = 0;
    while pos < size {
        let n = (size - pos).min(len_u32(pal.scratch)) as usize;
        let buf = pal.scratch.get_mut(..n).unwrap_or(&mut []);
        ok(T, pal.storage.read(pos, buf).await)?;
        if buf
            .iter()
            .enumerate()
            .any(|(k, &b)| b != byte_at(pos + k as u32))
        {
            return Err(fail(T, "every block reads back", None));
        }
        pos += n as u32;
    }
    ok(T, pal.storage.abort().await)
}

/// `otaPal_SetPlatformImageState_AcceptedStateWithoutClose`: confirm with nothing on trial →
/// CommitFailed.
pub async fn accepted_state_without_close<S, V, B>(pal: &mut PalUnderTest<'_, S, V, B>) -> Outcome
where
    S: ImageStorage,
    V: ImageVerifier,
    B: BootControl,
{
    const T: &str = "SetPlatformImageState_AcceptedStateWithoutClose";
    ok(T, pal.storage.prepare(&file_of(len_u32(pal.data))).await)?;
    ok(T, pal.storage.write(0, pal.data).await)?;
    let r = pal.boot.confirm().await;
    expect_kind(T, "CommitFailed", PalErrorKind::CommitFailed, r)?;
    ok(T, pal.storage.abort().await)
}

/// `otaPal_GetPlatformImageState_InvalidImageStateFromFileCloseFailure`: after a close with
/// a bad signature the state is Invalid (Unknown is tolerated, as in the reference).
pub async fn invalid_state_after_close_failure<S, V, B>(
    pal: &mut PalUnderTest<'_, S, V, B>,
) -> Outcome
where
    S: ImageStorage,
    V: ImageVerifier,
    B: BootControl,
{
    const T: &str = "GetPlatformImageState_InvalidImageStateFromFileCloseFailure";
    let file = file_of(len_u32(pal.data));
    ok(T, pal.storage.prepare(&file).await)?;
    ok(T, pal.storage.write(0, pal.data).await)?;
    let sig = pal.invalid_signature;
    let r = close_file(pal, &file, sig).await;
    expect_kind(
        T,
        "SignatureCheckFailed",
        PalErrorKind::SignatureCheckFailed,
        r,
    )?;
    match pal.boot.platform_state().await {
        Ok(PlatformImageState::Invalid | PlatformImageState::Unknown) => {}
        Ok(_) => return Err(fail(T, "platform state Invalid", None)),
        Err(e) => return Err(fail(T, "platform state Invalid", Some(e))),
    }
    ok(T, pal.storage.abort().await)
}

/// Every check, in the reference order, stopping at the first failure.
pub async fn run_all<S, V, B>(pal: &mut PalUnderTest<'_, S, V, B>) -> Outcome
where
    S: ImageStorage,
    V: ImageVerifier,
    B: BootControl,
{
    close_file_valid_signature(pal).await?;
    close_file_invalid_signature_block_written(pal).await?;
    close_file_invalid_signature_no_block_written(pal).await?;
    close_file_valid_signature_no_block_written(pal).await?;
    create_file_for_rx(pal).await?;
    abort_open_file(pal).await?;
    abort_file_with_block_written(pal).await?;
    abort_with_nothing_open(pal).await?;
    write_single_byte(pal).await?;
    write_many_blocks(pal).await?;
    accepted_state_without_close(pal).await?;
    invalid_state_after_close_failure(pal).await
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::sim::{block_on, SimConfig, SimDevice};
    use crate::{NorFlashImageStorage, Sha256EcdsaP256Verifier};
    use p256::ecdsa::signature::Signer;
    use p256::ecdsa::{Signature, SigningKey};
    use std::{vec, vec::Vec};

    /// A boot control that keeps its state in RAM, as a reference for the suite.
    #[derive(Debug)]
    struct RamBoot {
        state: PlatformImageState,
        staged: bool,
        /// Broken on purpose: confirm always succeeds.
        lax_confirm: bool,
    }

    impl BootControl for RamBoot {
        async fn platform_state(&mut self) -> Result<PlatformImageState, PalError> {
            Ok(self.state)
        }
        async fn request_trial_boot(&mut self, _file: &FileInfo<'_>) -> Result<(), PalError> {
            self.staged = true;
            Ok(())
        }
        async fn confirm(&mut self) -> Result<(), PalError> {
            if self.state == PlatformImageState::PendingCommit || self.lax_confirm {
                self.state = PlatformImageState::Valid;
                Ok(())
            } else {
                Err(PalError::new(PalErrorKind::CommitFailed))
            }
        }
        async fn reject(&mut self) -> Result<(), PalError> {
            self.staged = false;
            self.state = PlatformImageState::Invalid;
            Ok(())
        }
    }

    fn dummy_data() -> Vec<u8> {
        DUMMY_DATA.to_vec()
    }

    #[test]
    fn dummy_data_is_the_reference_vector() {
        let mut d = vec![
            0x83, 0x0b, 0xf0, 0x6a, 0x81, 0xd6, 0xca, 0xd7, 0x08, 0x22, 0x0d, 0x6a, 0x33, 0xfa,
            0x31, 0x9f, 0xa9, 0x5f, 0xb5, 0x26,
        ];
        d.extend(0u8..=0x0a);
        d.push(0x0c);
        d.extend(0x0cu8..=0x3f);
        assert_eq!(d, DUMMY_DATA);
    }

    struct Fixture {
        data: Vec<u8>,
        sig: Vec<u8>,
        bad_sig: Vec<u8>,
        key: Vec<u8>,
    }

    fn fixture() -> Fixture {
        let key = SigningKey::from_slice(&[0x42; 32]).unwrap();
        let data = dummy_data();
        assert_eq!(data.len(), 84);
        let sig: Signature = key.sign(&data);
        let mut bad: Vec<u8> = sig.to_der().as_bytes().to_vec();
        let n = bad.len();
        bad[n - 2] ^= 0x04;
        Fixture {
            sig: sig.to_der().as_bytes().to_vec(),
            bad_sig: bad,
            key: key
                .verifying_key()
                .to_encoded_point(true)
                .as_bytes()
                .to_vec(),
            data,
        }
    }

    fn run_suite<const W: usize, const E: usize>(ev: u8, lax: bool) -> Outcome {
        let fx = fixture();
        let dev = SimDevice::new(
            vec![ev; 8 * E.max(1024)],
            SimConfig::new(W, E).erase_value(ev).strict(true),
        )
        .unwrap();
        let len = dev.len().unwrap();
        let mut storage =
            NorFlashImageStorage::new(dev.view::<W, E>(0, len).unwrap(), 0, len, ev).unwrap();
        let mut verifier = Sha256EcdsaP256Verifier::from_sec1(&fx.key).unwrap();
        let mut boot = RamBoot {
            state: PlatformImageState::Valid,
            staged: false,
            lax_confirm: lax,
        };
        let mut scratch = [0u8; 1024];
        let mut pal = PalUnderTest {
            storage: &mut storage,
            verifier: &mut verifier,
            boot: &mut boot,
            data: &fx.data,
            signature: &fx.sig,
            invalid_signature: &fx.bad_sig,
            block_size: 512.max(W as u32),
            scratch: &mut scratch,
        };
        block_on(run_all(&mut pal))
    }

    #[test]
    fn the_reference_pal_passes_on_every_geometry() {
        assert_eq!(run_suite::<1, 256>(0xFF, false), Ok(()));
        assert_eq!(run_suite::<16, 512>(0x00, false), Ok(()));
        assert_eq!(run_suite::<512, 512>(0x00, false), Ok(()));
    }

    #[test]
    fn a_boot_control_that_commits_anything_fails() {
        let r = run_suite::<16, 512>(0xFF, true);
        assert_eq!(
            r.map_err(|f| f.test),
            Err("SetPlatformImageState_AcceptedStateWithoutClose")
        );
    }

    /// A storage that drops every write.
    struct Forgetful<S>(S);

    impl<S: ImageStorage> ImageStorage for Forgetful<S> {
        fn capacity(&self) -> u32 {
            self.0.capacity()
        }
        async fn prepare(&mut self, file: &FileInfo<'_>) -> Result<(), PalError> {
            self.0.prepare(file).await
        }
        async fn write(&mut self, _offset: u32, _data: &[u8]) -> Result<(), PalError> {
            Ok(())
        }
        async fn read(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), PalError> {
            self.0.read(offset, buf).await
        }
        async fn abort(&mut self) -> Result<(), PalError> {
            self.0.abort().await
        }
    }

    #[test]
    fn a_storage_that_loses_writes_fails() {
        let fx = fixture();
        let dev = SimDevice::new(vec![0xFF; 8192], SimConfig::new(16, 512)).unwrap();
        let inner = NorFlashImageStorage::new(dev.view::<16, 512>(0, 8192).unwrap(), 0, 8192, 0xFF)
            .unwrap();
        let mut storage = Forgetful(inner);
        let mut verifier = Sha256EcdsaP256Verifier::from_sec1(&fx.key).unwrap();
        let mut boot = RamBoot {
            state: PlatformImageState::Valid,
            staged: false,
            lax_confirm: false,
        };
        let mut scratch = [0u8; 512];
        let mut pal = PalUnderTest {
            storage: &mut storage,
            verifier: &mut verifier,
            boot: &mut boot,
            data: &fx.data,
            signature: &fx.sig,
            invalid_signature: &fx.bad_sig,
            block_size: 512,
            scratch: &mut scratch,
        };
        let r = block_on(run_all(&mut pal));
        assert_eq!(r.map_err(|f| f.test), Err("CloseFile_ValidSignature"));
        let _ = block_on(pal.boot.request_trial_boot(&file_of(1)));
        assert!(pal.boot.staged);
        // Single checks can be run on their own; this storage also accepts writes with
        // nothing open.
        assert_eq!(
            block_on(abort_with_nothing_open(&mut pal)),
            Err(fail("Abort_NullFileHandle", "NullFileContext", None))
        );
        assert_eq!(
            block_on(write_single_byte(&mut pal)).map_err(|f| f.expected),
            Err("the byte reads back")
        );
    }
}
