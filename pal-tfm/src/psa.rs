//! The PSA Firmware Update 1.0 API as TF-M ≥ 1.8 exposes it to the non-secure side
//! (spec `board-formats.md` §4.1, `interface/include/psa/update.h`).
//!
//! [`PsaFwu`] is the API as a trait: `ffi::TfmFwu` (feature `ffi`) calls TF-M, and
//! `sim::SimTfm` (feature `sim`) is a simulated FWU partition with MCUboot behind it.
//! Methods take `&self`: the C API is a set of free functions over state held on the secure
//! side, so one handle can be shared by the storage, the verifier and the boot control.

/// `psa_fwu_component_t` (u8): a firmware component, one MCUboot image (§4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ComponentId(pub u8);

impl ComponentId {
    /// `FWU_COMPONENT_ID_SECURE` = 0x00 (`psa/fwu_config.h.in`).
    pub const SECURE: Self = Self(0x00);
    /// `FWU_COMPONENT_ID_NONSECURE` = 0x01.
    pub const NONSECURE: Self = Self(0x01);
    /// The single component of a single-image build ("combined image"): 0x00.
    pub const FULL: Self = Self(0x00);
}

/// `psa_status_t` (i32). Non-negative values are successes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Status(pub i32);

impl Status {
    /// `PSA_SUCCESS`.
    pub const SUCCESS: Self = Self(0);
    /// `PSA_SUCCESS_REBOOT` (+1): installation completes after a system reboot.
    pub const SUCCESS_REBOOT: Self = Self(1);
    /// `PSA_SUCCESS_RESTART` (+2): installation completes after a component restart.
    pub const SUCCESS_RESTART: Self = Self(2);
    /// `PSA_ERROR_GENERIC_ERROR` (−132).
    pub const GENERIC_ERROR: Self = Self(-132);
    /// `PSA_ERROR_NOT_PERMITTED` (−133): what the PAL passes to `psa_fwu_reject`.
    pub const NOT_PERMITTED: Self = Self(-133);
    /// `PSA_ERROR_NOT_SUPPORTED` (−134).
    pub const NOT_SUPPORTED: Self = Self(-134);
    /// `PSA_ERROR_INVALID_ARGUMENT` (−135).
    pub const INVALID_ARGUMENT: Self = Self(-135);
    /// `PSA_ERROR_BAD_STATE` (−137): the call is not valid in the component's state.
    pub const BAD_STATE: Self = Self(-137);
    /// `PSA_ERROR_DOES_NOT_EXIST` (−140): unknown component.
    pub const DOES_NOT_EXIST: Self = Self(-140);
    /// `PSA_ERROR_INSUFFICIENT_STORAGE` (−142).
    pub const INSUFFICIENT_STORAGE: Self = Self(-142);
    /// `PSA_ERROR_STORAGE_FAILURE` (−146).
    pub const STORAGE_FAILURE: Self = Self(-146);
    /// `PSA_ERROR_INVALID_SIGNATURE` (−149).
    pub const INVALID_SIGNATURE: Self = Self(-149);
    /// `PSA_ERROR_DEPENDENCY_NEEDED` (−156).
    pub const DEPENDENCY_NEEDED: Self = Self(-156);
    /// `PSA_ERROR_FLASH_ABUSE` (−160).
    pub const FLASH_ABUSE: Self = Self(-160);
    /// `PSA_ERROR_INSUFFICIENT_POWER` (−161).
    pub const INSUFFICIENT_POWER: Self = Self(-161);

    /// Whether this is a success code (≥ 0).
    pub const fn is_success(self) -> bool {
        self.0 >= 0
    }

    /// `Ok(self)` for a success, `Err(self)` otherwise.
    pub const fn ok(self) -> Result<Self, Self> {
        if self.is_success() {
            Ok(self)
        } else {
            Err(self)
        }
    }

    /// A PAL sub-code for this status: its low 24 bits (two's complement), e.g. −137 →
    /// `0xFFFF77`.
    pub const fn sub_code(self) -> u32 {
        (self.0 as u32) & 0x00ff_ffff
    }
}

/// Component states (`PSA_FWU_READY` .. `PSA_FWU_UPDATED`, §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ComponentState {
    /// 0: ready to start another update.
    Ready = 0,
    /// 1: an image is being written.
    Writing = 1,
    /// 2: a written image is ready for installation.
    Candidate = 2,
    /// 3: the image is queued for installation at the next reboot.
    Staged = 3,
    /// 4: the update was cancelled or failed; `clean` before the next one.
    Failed = 4,
    /// 5: the new image runs and must be accepted or rejected.
    Trial = 5,
    /// 6: the trial image was rejected; a reboot reverts.
    Rejected = 6,
    /// 7: the update was accepted; `clean` before the next one.
    Updated = 7,
}

impl ComponentState {
    /// Decode the `state` byte of `psa_fwu_component_info_t`.
    pub const fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            0 => Self::Ready,
            1 => Self::Writing,
            2 => Self::Candidate,
            3 => Self::Staged,
            4 => Self::Failed,
            5 => Self::Trial,
            6 => Self::Rejected,
            7 => Self::Updated,
            _ => return None,
        })
    }
}

/// `PSA_FWU_FLAG_VOLATILE_STAGING`: the staging area is discarded at reset.
pub const FLAG_VOLATILE_STAGING: u32 = 0x1;
/// `PSA_FWU_FLAG_ENCRYPTION`: the component expects encrypted images.
pub const FLAG_ENCRYPTION: u32 = 0x2;
/// `TFM_FWU_MAX_DIGEST_SIZE`: size of `impl.candidate_digest` (SHA-256).
pub const MAX_DIGEST_SIZE: usize = 32;
/// TF-M's default `TFM_CONFIG_FWU_MAX_WRITE_SIZE` (= `PSA_FWU_MAX_WRITE_SIZE`), 1024 bytes in
/// `config/config_base.cmake`; some platforms raise it. Not in the spec: set
/// [`crate::Config::max_write_size`] to your build's value (a smaller value is always safe).
pub const DEFAULT_MAX_WRITE_SIZE: usize = 1024;

/// `psa_fwu_image_version_t`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageVersion {
    /// Major version.
    pub major: u8,
    /// Minor version.
    pub minor: u8,
    /// Patch (MCUboot `iv_revision`).
    pub patch: u16,
    /// Build number.
    pub build: u32,
}

/// `psa_fwu_component_info_t`, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ComponentInfo {
    /// The component's state.
    pub state: ComponentState,
    /// Error of the second image in REJECTED or FAILED.
    pub error: Status,
    /// Version of the active image.
    pub version: ImageVersion,
    /// Largest image, in bytes (TF-M/MCUboot: the primary slot size).
    pub max_size: u32,
    /// `PSA_FWU_FLAG_*` bits.
    pub flags: u32,
    /// Implementation-defined location.
    pub location: u32,
    /// `impl.candidate_digest`: SHA-256 over the bytes written to the staging area (TF-M's
    /// MCUboot shim; meaningful from CANDIDATE on).
    pub candidate_digest: [u8; MAX_DIGEST_SIZE],
}

/// The PSA Firmware Update 1.0 API (§4.1). Each method is one `psa_fwu_*` call.
pub trait PsaFwu {
    /// `psa_fwu_query(component, &info)`.
    fn query(&self, component: ComponentId) -> Result<ComponentInfo, Status>;
    /// `psa_fwu_start(component, manifest, size)`; TF-M's MCUboot shim wants an empty manifest.
    fn start(&self, component: ComponentId, manifest: &[u8]) -> Status;
    /// `psa_fwu_write(component, offset, block, size)`, `block.len() <= PSA_FWU_MAX_WRITE_SIZE`.
    fn write(&self, component: ComponentId, offset: u32, block: &[u8]) -> Status;
    /// `psa_fwu_finish(component)`: WRITING → CANDIDATE.
    fn finish(&self, component: ComponentId) -> Status;
    /// `psa_fwu_install()`: every CANDIDATE → STAGED (REBOOT/RESTART) or TRIAL/UPDATED.
    fn install(&self) -> Status;
    /// `psa_fwu_request_reboot()`.
    fn request_reboot(&self) -> Status;
    /// `psa_fwu_accept()`: TRIAL → UPDATED.
    fn accept(&self) -> Status;
    /// `psa_fwu_reject(error)`: STAGED → FAILED, TRIAL → REJECTED.
    fn reject(&self, error: Status) -> Status;
    /// `psa_fwu_cancel(component)`: WRITING/CANDIDATE → FAILED.
    fn cancel(&self, component: ComponentId) -> Status;
    /// `psa_fwu_clean(component)`: FAILED/UPDATED → READY.
    fn clean(&self, component: ComponentId) -> Status;
}

impl<T: PsaFwu + ?Sized> PsaFwu for &T {
    fn query(&self, c: ComponentId) -> Result<ComponentInfo, Status> {
        (**self).query(c)
    }
    fn start(&self, c: ComponentId, manifest: &[u8]) -> Status {
        (**self).start(c, manifest)
    }
    fn write(&self, c: ComponentId, offset: u32, block: &[u8]) -> Status {
        (**self).write(c, offset, block)
    }
    fn finish(&self, c: ComponentId) -> Status {
        (**self).finish(c)
    }
    fn install(&self) -> Status {
        (**self).install()
    }
    fn request_reboot(&self) -> Status {
        (**self).request_reboot()
    }
    fn accept(&self) -> Status {
        (**self).accept()
    }
    fn reject(&self, error: Status) -> Status {
        (**self).reject(error)
    }
    fn cancel(&self, c: ComponentId) -> Status {
        (**self).cancel(c)
    }
    fn clean(&self, c: ComponentId) -> Status {
        (**self).clean(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_values_match_update_h() {
        let all = [
            (ComponentState::Ready, 0),
            (ComponentState::Writing, 1),
            (ComponentState::Candidate, 2),
            (ComponentState::Staged, 3),
            (ComponentState::Failed, 4),
            (ComponentState::Trial, 5),
            (ComponentState::Rejected, 6),
            (ComponentState::Updated, 7),
        ];
        for (s, v) in all {
            assert_eq!(s as u8, v);
            assert_eq!(ComponentState::from_u8(v), Some(s));
        }
        assert_eq!(ComponentState::from_u8(8), None);
    }

    #[test]
    fn status_and_ids_match_update_h() {
        assert_eq!(Status::SUCCESS_REBOOT.0, 1);
        assert_eq!(Status::SUCCESS_RESTART.0, 2);
        assert_eq!(Status::DEPENDENCY_NEEDED.0, -156);
        assert_eq!(Status::FLASH_ABUSE.0, -160);
        assert_eq!(Status::INSUFFICIENT_POWER.0, -161);
        assert_eq!(Status::BAD_STATE.0, -137);
        assert_eq!(Status::NOT_PERMITTED.0, -133);
        assert_eq!(Status::BAD_STATE.sub_code(), 0x00ff_ff77);
        assert_eq!(FLAG_VOLATILE_STAGING, 1);
        assert_eq!(FLAG_ENCRYPTION, 2);
        assert_eq!(ComponentId::SECURE.0, 0);
        assert_eq!(ComponentId::NONSECURE.0, 1);
        assert_eq!(ComponentId::FULL.0, 0);
    }
}
