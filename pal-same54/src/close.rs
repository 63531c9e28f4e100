//! The vendor `CloseFile` (§3.5) as one call over the split traits.

use embedded_storage_async::nor_flash::NorFlash;
use ota_pal_traits::{
    verify_stored_image, FileInfo, ImageStorage, ImageVerifier, PalError, PalErrorKind,
};

use crate::signature::SignatureSource;
use crate::{Same54Boot, Same54Storage};

/// Verify the stored file and, on success, hand its signature to `boot` and release the
/// file (so the agent's closing abort keeps it); on a signature failure erase the update bank
/// (vendor CloseFile) and make [`platform_state`](ota_pal_traits::BootControl::platform_state)
/// read Invalid.
///
/// `hashed_upto`: bytes `[0, hashed_upto)` were already fed to `verifier` (after
/// [`ImageVerifier::begin`]); the rest is read back through `scratch`. Pass 0 to hash
/// everything here, after `begin`.
///
/// The request for a trial boot is left to the caller
/// ([`BootControl::request_trial_boot`](ota_pal_traits::BootControl::request_trial_boot)),
/// after it has reported the job status, as the agent does.
#[allow(clippy::too_many_arguments)]
pub async fn close_file<F: NorFlash, G: NorFlash, S: SignatureSource, V: ImageVerifier>(
    storage: &mut Same54Storage<F>,
    verifier: &mut V,
    boot: &mut Same54Boot<G, S>,
    file: &FileInfo<'_>,
    hashed_upto: u32,
    signature: &[u8],
    scratch: &mut [u8],
) -> Result<(), PalError> {
    let r = verify_stored_image(storage, verifier, file, hashed_upto, signature, scratch).await;
    match r {
        Ok(()) => {
            boot.set_signature(signature)?;
            storage.release();
            Ok(())
        }
        Err(e) => {
            if matches!(
                e.kind(),
                PalErrorKind::SignatureCheckFailed | PalErrorKind::BadSignerCert
            ) {
                boot.mark_verification_failed();
                storage.abort().await?;
            }
            Err(e)
        }
    }
}
