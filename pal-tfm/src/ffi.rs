//! `extern "C"` bindings to TF-M's non-secure PSA FWU interface (`psa/update.h`, §4.1).
//!
//! The symbols resolve when the firmware links against TF-M's NS interface library
//! (`tfm_api_ns`), so building this crate as a library is the only check possible here.
//! The structs are `#[repr(C)]` copies of the C ones; a unit test pins their layout for the
//! 32-bit Arm ABI (`psa_fwu_component_info_t` is 60 bytes).
#![allow(unsafe_code)]

use core::ffi::c_void;

use crate::psa::{
    ComponentId, ComponentInfo, ComponentState, ImageVersion, PsaFwu, Status, MAX_DIGEST_SIZE,
};

/// `psa_fwu_image_version_t`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct psa_fwu_image_version_t {
    /// Major.
    pub major: u8,
    /// Minor.
    pub minor: u8,
    /// Patch.
    pub patch: u16,
    /// Build.
    pub build: u32,
}

/// `psa_fwu_impl_info_t` (TF-M).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct psa_fwu_impl_info_t {
    /// SHA-256 of the staged bytes.
    pub candidate_digest: [u8; MAX_DIGEST_SIZE],
}

/// `psa_fwu_component_info_t`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct psa_fwu_component_info_t {
    /// `PSA_FWU_*` state.
    pub state: u8,
    /// `psa_status_t` of the second image.
    pub error: i32,
    /// Active image version.
    pub version: psa_fwu_image_version_t,
    /// Largest image.
    pub max_size: u32,
    /// `PSA_FWU_FLAG_*`.
    pub flags: u32,
    /// Location.
    pub location: u32,
    /// TF-M specific data.
    pub impl_: psa_fwu_impl_info_t,
}

#[allow(missing_docs)]
extern "C" {
    pub fn psa_fwu_query(component: u8, info: *mut psa_fwu_component_info_t) -> i32;
    pub fn psa_fwu_start(component: u8, manifest: *const c_void, manifest_size: usize) -> i32;
    pub fn psa_fwu_write(
        component: u8,
        image_offset: usize,
        block: *const c_void,
        block_size: usize,
    ) -> i32;
    pub fn psa_fwu_finish(component: u8) -> i32;
    pub fn psa_fwu_cancel(component: u8) -> i32;
    pub fn psa_fwu_clean(component: u8) -> i32;
    pub fn psa_fwu_install() -> i32;
    pub fn psa_fwu_request_reboot() -> i32;
    pub fn psa_fwu_reject(error: i32) -> i32;
    pub fn psa_fwu_accept() -> i32;
}

/// The real PSA FWU service: every call goes to TF-M through its NS interface.
#[derive(Debug, Clone, Copy, Default)]
pub struct TfmFwu;

impl PsaFwu for TfmFwu {
    fn query(&self, component: ComponentId) -> Result<ComponentInfo, Status> {
        let mut info = psa_fwu_component_info_t::default();
        // SAFETY: `info` is a valid, writable `psa_fwu_component_info_t` for the call's length.
        let st = Status(unsafe { psa_fwu_query(component.0, &mut info) });
        st.ok()?;
        let state = ComponentState::from_u8(info.state).ok_or(Status::GENERIC_ERROR)?;
        Ok(ComponentInfo {
            state,
            error: Status(info.error),
            version: ImageVersion {
                major: info.version.major,
                minor: info.version.minor,
                patch: info.version.patch,
                build: info.version.build,
            },
            max_size: info.max_size,
            flags: info.flags,
            location: info.location,
            candidate_digest: info.impl_.candidate_digest,
        })
    }

    fn start(&self, component: ComponentId, manifest: &[u8]) -> Status {
        let ptr = if manifest.is_empty() {
            core::ptr::null()
        } else {
            manifest.as_ptr().cast::<c_void>()
        };
        // SAFETY: `ptr` is null with size 0, or points at `manifest.len()` readable bytes.
        Status(unsafe { psa_fwu_start(component.0, ptr, manifest.len()) })
    }

    fn write(&self, component: ComponentId, offset: u32, block: &[u8]) -> Status {
        // SAFETY: `block` is valid for `block.len()` bytes for the duration of the call.
        Status(unsafe {
            psa_fwu_write(
                component.0,
                offset as usize,
                block.as_ptr().cast::<c_void>(),
                block.len(),
            )
        })
    }

    fn finish(&self, component: ComponentId) -> Status {
        // SAFETY: plain value argument.
        Status(unsafe { psa_fwu_finish(component.0) })
    }

    fn install(&self) -> Status {
        // SAFETY: no arguments.
        Status(unsafe { psa_fwu_install() })
    }

    fn request_reboot(&self) -> Status {
        // SAFETY: no arguments.
        Status(unsafe { psa_fwu_request_reboot() })
    }

    fn accept(&self) -> Status {
        // SAFETY: no arguments.
        Status(unsafe { psa_fwu_accept() })
    }

    fn reject(&self, error: Status) -> Status {
        // SAFETY: plain value argument.
        Status(unsafe { psa_fwu_reject(error.0) })
    }

    fn cancel(&self, component: ComponentId) -> Status {
        // SAFETY: plain value argument.
        Status(unsafe { psa_fwu_cancel(component.0) })
    }

    fn clean(&self, component: ComponentId) -> Status {
        // SAFETY: plain value argument.
        Status(unsafe { psa_fwu_clean(component.0) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{align_of, offset_of, size_of};

    #[test]
    fn c_struct_layout_matches_update_h() {
        assert_eq!(size_of::<psa_fwu_image_version_t>(), 8);
        assert_eq!(offset_of!(psa_fwu_image_version_t, major), 0);
        assert_eq!(offset_of!(psa_fwu_image_version_t, minor), 1);
        assert_eq!(offset_of!(psa_fwu_image_version_t, patch), 2);
        assert_eq!(offset_of!(psa_fwu_image_version_t, build), 4);
        assert_eq!(size_of::<psa_fwu_impl_info_t>(), 32);
        assert_eq!(offset_of!(psa_fwu_component_info_t, state), 0);
        assert_eq!(offset_of!(psa_fwu_component_info_t, error), 4);
        assert_eq!(offset_of!(psa_fwu_component_info_t, version), 8);
        assert_eq!(offset_of!(psa_fwu_component_info_t, max_size), 16);
        assert_eq!(offset_of!(psa_fwu_component_info_t, flags), 20);
        assert_eq!(offset_of!(psa_fwu_component_info_t, location), 24);
        assert_eq!(offset_of!(psa_fwu_component_info_t, impl_), 28);
        assert_eq!(size_of::<psa_fwu_component_info_t>(), 60);
        assert_eq!(align_of::<psa_fwu_component_info_t>(), 4);
    }
}
