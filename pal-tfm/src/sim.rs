//! A simulated Corstone: TF-M's FWU partition (the PSA FWU 1.0 state machine of
//! `tfm_fwu_req_mngr.c` with the MCUboot shim `tfm_mcuboot_fwu.c`) and BL2 (MCUboot,
//! `SWAP_USING_SCRATCH`, multi-image), over one [`SimDevice`] partitioned as a [`Layout`].
//!
//! # What is modelled
//!
//! * **FWU partition** ([`SimTfm`] implements [`PsaFwu`]): component states in RAM (lost at
//!   reset, re-derived at boot as TF-M does: primary magic GOOD with image_ok UNSET → TRIAL,
//!   else READY). `start` READY→WRITING and erases the secondary slot; `write` programs it
//!   (`PSA_FWU_MAX_WRITE_SIZE` enforced); `finish` WRITING→CANDIDATE and hashes the first
//!   `loaded_size` bytes of the secondary (the candidate digest); `install` stages every
//!   CANDIDATE with `boot_set_pending_multi(img, false)` (writes the secondary trailer magic,
//!   then swap_info = TEST) and returns `PSA_SUCCESS_REBOOT`; `accept` TRIAL→UPDATED with
//!   `boot_set_confirmed_multi` (writes primary image_ok); `reject` STAGED→FAILED (erases
//!   the secondary's trailer sector, undoing the pending request) or TRIAL→REJECTED with
//!   `PSA_SUCCESS_REBOOT` (no flash write: the unconfirmed image reverts at reboot); `cancel`
//!   WRITING|CANDIDATE→FAILED; `clean` FAILED|UPDATED→READY erasing the secondary. Any other
//!   call in the wrong state is `PSA_ERROR_BAD_STATE`. Every flash write/erase goes through
//!   the simulated flash, so a power cut can land in any of them; a PSA call interrupted by a
//!   cut returns `PSA_ERROR_STORAGE_FAILURE`. The secure side is atomic only where TF-M is:
//!   a call runs to completion with respect to the non-secure side, never with respect to
//!   power.
//! * **BL2** ([`SimTfm::boot`]): for each image, in order, the swap type of §1.5 from the
//!   trailers; TEST/PERM first validate the secondary (header, SHA256 TLV, KEYHASH,
//!   ECDSA P-256 signature TLV, checked for real with `p256`) and erase its trailer sector if
//!   it is invalid; then the swap, sector by sector through the scratch area; REVERT swaps
//!   back. After the swap the primary trailer gets magic + copy_done (+ image_ok for PERM and
//!   REVERT), and the secondary trailer sector is erased. Then every primary is validated;
//!   if one is not, nothing boots.
//! * **Restartable swap**: each step (primary→scratch, secondary→primary, scratch→secondary,
//!   per sector, then the trailer rewrites) is recorded in a swap status area once done, and a
//!   boot first resumes an interrupted swap at the first step not recorded, as MCUboot does.
//!   *Difference from MCUboot*: MCUboot keeps its swap status in the slot trailers (and the
//!   scratch trailer); the sim keeps it in the last sector of the scratch area, and does not
//!   swap the last sector of each slot (the trailer sector), so an image may use at most
//!   `slot - sector` bytes. The resume rules (re-do the first unrecorded step from a source
//!   that is still intact) are MCUboot's; the status bytes are not.
//!
//! Flash geometry: write unit 1 byte (`wrapper.py --align 1`, §4.3), erase value 0xFF, erase
//! sector = [`Layout::sector_size`] (64 KB on Corstone; tests use smaller ones).

use core::cell::{Cell, RefCell};

use embedded_storage::nor_flash::{NorFlash, ReadNorFlash};
use ota_pal_traits::sim::{SimDevice, SimError, SimFlash};
use p256::ecdsa::{signature::hazmat::PrehashVerifier, Signature, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::config::{ImageSlots, Layout};
use crate::mcuboot::{
    decide, decode_header, swap_info, write_body, write_tlv_area, Flag, ImageHeader, Magic,
    TlvWalker, Trailer, FLAG_SET, IMAGE_HEADER_SIZE, MAX_ALIGN, P256_SPKI_PREFIX, TFM_HEADER_SIZE,
    TLV_ECDSA_SIG, TLV_INFO_MAGIC, TLV_KEYHASH, TLV_SHA256, TRAILER_LEN,
};
use crate::mcuboot::{
    COPY_DONE_FROM_END, IMAGE_OK_FROM_END, MAGIC, MAGIC_FROM_END, SWAP_INFO_FROM_END,
    SWAP_TYPE_PERM, SWAP_TYPE_REVERT, SWAP_TYPE_TEST,
};
use crate::psa::{
    ComponentId, ComponentInfo, ComponentState, ImageVersion, PsaFwu, Status,
    DEFAULT_MAX_WRITE_SIZE, FLAG_VOLATILE_STAGING,
};

/// Most MCUboot images the sim handles.
pub const MAX_IMAGES: usize = 4;
/// Erased value of the Corstone flash model.
pub const ERASED: u8 = 0xFF;
const CHUNK: usize = 256;

/// One 8-byte trailer record on this flash: `value` and 7 erased bytes (§1.4).
const fn flag_record(value: u8) -> [u8; MAX_ALIGN] {
    crate::mcuboot::flag_record(value, ERASED)
}

/// A trailer field's distance from the slot end, as a flash offset.
const fn from_end(d: usize) -> u32 {
    d as u32
}

/// SHA-256 of the DER SubjectPublicKeyInfo of `key`: the KEYHASH TLV (§1.3).
fn key_hash(key: &VerifyingKey) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(P256_SPKI_PREFIX);
    h.update(key.to_encoded_point(false).as_bytes());
    h.finalize().into()
}

/// A running image after [`SimTfm::boot`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunningImage {
    /// Its component.
    pub component: ComponentId,
    /// Its MCUboot header version.
    pub version: ImageVersion,
    /// Whether it runs on trial (must be accepted or it reverts).
    pub trial: bool,
}

/// What BL2 did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootOutcome {
    /// Every image verified and runs.
    Booted([Option<RunningImage>; MAX_IMAGES]),
    /// This image's primary slot holds no valid, verified image: the device is bricked.
    NothingBootable(ComponentId),
}

impl BootOutcome {
    /// The running image of `c`, if the device booted.
    pub fn image(&self, c: ComponentId) -> Option<RunningImage> {
        match self {
            Self::Booted(imgs) => imgs.iter().flatten().find(|i| i.component == c).copied(),
            Self::NothingBootable(_) => None,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Runtime {
    state: ComponentState,
    loaded: u32,
    error: Status,
    digest: [u8; 32],
}

const READY: Runtime = Runtime {
    state: ComponentState::Ready,
    loaded: 0,
    error: Status::SUCCESS,
    digest: [0; 32],
};

/// The simulated TF-M FWU partition + BL2 over one flash device. `SECTOR` is the erase sector
/// (must equal the layout's `sector_size`).
#[derive(Debug)]
pub struct SimTfm<'d, M, const SECTOR: usize> {
    flash: RefCell<SimFlash<'d, M, 1, SECTOR>>,
    layout: Layout,
    key: VerifyingKey,
    key_hash: [u8; 32],
    rt: RefCell<[Runtime; MAX_IMAGES]>,
    max_write: usize,
    reboot_requested: Cell<bool>,
}

type R<T> = Result<T, SimError>;

/// Status-area offsets (inside the last sector of the scratch area).
const ST_HEADER: u32 = 0; // "SWP", image index, swap type
const ST_COMMIT: u32 = 5; // header committed
const ST_PRIMARY_TRAILER: u32 = 6; // primary trailer rewritten
const ST_SECONDARY_TRAILER: u32 = 7; // secondary trailer erased
const ST_COMPLETE: u32 = 8; // swap finished, status may be erased
const ST_STEPS: u32 = 16; // 3 bytes per sector
const ST_MAGIC: [u8; 3] = *b"SWP";

impl<'d, M: AsRef<[u8]> + AsMut<[u8]>, const SECTOR: usize> SimTfm<'d, M, SECTOR> {
    /// A device whose BL2 trusts `bl2_key` (P-256), laid out as `layout` (which must be
    /// consistent, fit the device, use `SECTOR`, have a scratch of at least two sectors and at
    /// most [`MAX_IMAGES`] images), with TF-M's default write size.
    pub fn new(dev: &'d SimDevice<M>, layout: Layout, bl2_key: VerifyingKey) -> R<Self> {
        let ok = layout.is_consistent()
            && layout.sector_size as usize == SECTOR
            && layout.scratch_size >= 2 * layout.sector_size
            && layout.images.len() <= MAX_IMAGES
            && layout.flash_size <= dev.len()?;
        if !ok {
            return Err(SimError::BadGeometry);
        }
        let flash = dev.view::<1, SECTOR>(0, layout.flash_size)?;
        let key_hash = key_hash(&bl2_key);
        let sim = Self {
            flash: RefCell::new(flash),
            layout,
            key: bl2_key,
            key_hash,
            rt: RefCell::new([READY; MAX_IMAGES]),
            max_write: DEFAULT_MAX_WRITE_SIZE,
            reboot_requested: Cell::new(false),
        };
        Ok(sim)
    }

    /// Use another `PSA_FWU_MAX_WRITE_SIZE`.
    pub fn with_max_write_size(mut self, n: usize) -> Self {
        self.max_write = n;
        self
    }

    /// The layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Whether `psa_fwu_request_reboot` was called since the last boot.
    pub fn reboot_requested(&self) -> bool {
        self.reboot_requested.get()
    }

    /// SHA-256 of the DER SubjectPublicKeyInfo of the BL2 key (the KEYHASH TLV).
    pub fn key_hash(&self) -> [u8; 32] {
        self.key_hash
    }

    /// Factory-program `image` into the primary slot of `c`, bypassing counters and power (as
    /// a programmer would). No trailer: CS3XX images carry none (§4.3).
    pub fn factory_program(&self, c: ComponentId, image: &[u8]) -> R<()> {
        let slots = *self.slots(c)?;
        let flash = self.flash.borrow();
        let dev = flash.device();
        let base = flash.offset() + slots.primary;
        dev.modify(|m| {
            let Some(area) = m.get_mut(base as usize..(base + slots.size) as usize) else {
                return Err(SimError::OutOfBounds);
            };
            area.fill(ERASED);
            area.get_mut(..image.len())
                .ok_or(SimError::OutOfBounds)?
                .copy_from_slice(image);
            Ok(())
        })?
    }

    fn slots(&self, c: ComponentId) -> R<&ImageSlots> {
        self.layout.image(c).ok_or(SimError::OutOfBounds)
    }

    fn index(&self, c: ComponentId) -> Option<usize> {
        self.layout.images.iter().position(|i| i.component == c)
    }

    // ---- flash helpers ----------------------------------------------------------------

    fn read(&self, at: u32, buf: &mut [u8]) -> R<()> {
        self.flash.borrow_mut().read(at, buf)
    }

    fn write(&self, at: u32, data: &[u8]) -> R<()> {
        self.flash.borrow_mut().write(at, data)
    }

    fn erase(&self, from: u32, to: u32) -> R<()> {
        self.flash.borrow_mut().erase(from, to)
    }

    fn sector(&self) -> u32 {
        self.layout.sector_size
    }

    /// Bytes of a slot an image may use (all but the trailer sector).
    fn usable(&self, s: &ImageSlots) -> u32 {
        s.size - self.sector()
    }

    fn trailer(&self, slot: u32, size: u32) -> R<Trailer> {
        let mut t = [0u8; TRAILER_LEN];
        self.read(slot + size - TRAILER_LEN as u32, &mut t)?;
        Ok(Trailer::decode(&t, ERASED))
    }

    fn hash_range(&self, at: u32, len: u32) -> R<[u8; 32]> {
        let mut h = Sha256::new();
        let mut buf = [0u8; CHUNK];
        let mut pos = 0;
        while pos < len {
            let n = (len - pos).min(CHUNK as u32) as usize;
            let b = buf.get_mut(..n).ok_or(SimError::OutOfBounds)?;
            self.read(at + pos, b)?;
            h.update(&*b);
            pos += n as u32;
        }
        Ok(h.finalize().into())
    }

    fn copy(&self, from: u32, to: u32, len: u32) -> R<()> {
        let mut buf = [0u8; CHUNK];
        let mut pos = 0;
        while pos < len {
            let n = (len - pos).min(CHUNK as u32) as usize;
            let b = buf.get_mut(..n).ok_or(SimError::OutOfBounds)?;
            self.read(from + pos, b)?;
            if b.iter().any(|&x| x != ERASED) {
                self.write(to + pos, b)?;
            }
            pos += n as u32;
        }
        Ok(())
    }

    // ---- image validation (BL2) -------------------------------------------------------

    /// Validate the image at `slot`: header magic, SHA256 TLV, KEYHASH TLV and the ECDSA P-256
    /// signature. Returns its version.
    pub fn validate(&self, slot: u32, size: u32) -> R<Option<ImageVersion>> {
        let mut hb = [0u8; IMAGE_HEADER_SIZE];
        self.read(slot, &mut hb)?;
        let h = ImageHeader::decode(&hb);
        if !h.has_magic() {
            return Ok(None);
        }
        let body = u32::from(h.hdr_size).checked_add(h.img_size);
        let Some(body) = body.filter(|&b| b <= size && h.hdr_size as usize >= IMAGE_HEADER_SIZE)
        else {
            return Ok(None);
        };
        let covered = body + u32::from(h.protect_tlv_size);
        if covered + 4 > size {
            return Ok(None);
        }
        let digest = self.hash_range(slot, covered)?;
        let mut info = [0u8; 4];
        self.read(slot + covered, &mut info)?;
        let tlvs = TlvWalker::new(covered, info, TLV_INFO_MAGIC);
        let Some(mut tlvs) = tlvs.filter(|w| w.end() <= size) else {
            return Ok(None);
        };
        let (mut sha_ok, mut key_ok, mut sig_ok) = (false, false, false);
        while let Some(pos) = tlvs.next_at() {
            let mut th = [0u8; 4];
            self.read(slot + pos, &mut th)?;
            let mut v = [0u8; 128];
            let Some(val) = v.get_mut(..decode_header(th).1 as usize) else {
                return Ok(None);
            };
            let Some(e) = tlvs.entry(th) else {
                return Ok(None);
            };
            self.read(slot + e.data_at, val)?;
            match e.ty {
                TLV_SHA256 => sha_ok = *val == digest,
                TLV_KEYHASH => key_ok = *val == self.key_hash,
                TLV_ECDSA_SIG => {
                    sig_ok = key_ok
                        && Signature::from_der(val)
                            .is_ok_and(|s| self.key.verify_prehash(&digest, &s).is_ok())
                }
                _ => {}
            }
        }
        Ok((sha_ok && key_ok && sig_ok).then_some(h.version.into()))
    }

    // ---- BL2 --------------------------------------------------------------------------

    fn status_base(&self) -> u32 {
        self.layout.scratch + self.layout.scratch_size - self.sector()
    }

    fn status_byte(&self, off: u32) -> R<u8> {
        let mut b = [0u8];
        self.read(self.status_base() + off, &mut b)?;
        Ok(b[0])
    }

    fn record(&self, off: u32) -> R<()> {
        self.write(self.status_base() + off, &[0x00])
    }

    fn done(&self, off: u32) -> R<bool> {
        Ok(self.status_byte(off)? != ERASED)
    }

    /// Power-on: BL2 runs (resuming any interrupted swap), then TF-M's FWU partition
    /// initialises its component states from flash. Fails only if the power is cut while it
    /// runs (call [`SimDevice::power_on`] and boot again: BL2 resumes).
    pub fn boot(&self) -> R<BootOutcome> {
        self.reboot_requested.set(false);
        *self.rt.borrow_mut() = [READY; MAX_IMAGES];
        let resumed = self.resume_swap()?;
        for idx in 0..self.layout.images.len() {
            let Some(&s) = self.layout.images.get(idx) else {
                continue;
            };
            if resumed == Some(idx) {
                // MCUboot boots the image it just finished swapping; it decides again at the
                // next reset.
                continue;
            }
            let prim = self.trailer(s.primary, s.size)?;
            let sec = self.trailer(s.secondary, s.size)?;
            let ty = decide(&prim, &sec).code();
            match ty {
                SWAP_TYPE_TEST | SWAP_TYPE_PERM => {
                    if self.validate(s.secondary, self.usable(&s))?.is_some() {
                        self.start_swap(idx, ty)?;
                    } else {
                        self.erase(s.secondary + self.usable(&s), s.secondary + s.size)?;
                    }
                }
                SWAP_TYPE_REVERT => self.start_swap(idx, SWAP_TYPE_REVERT)?,
                _ => {}
            }
        }
        let mut out = [None; MAX_IMAGES];
        for (idx, s) in self.layout.images.iter().enumerate() {
            let Some(version) = self.validate(s.primary, self.usable(s))? else {
                return Ok(BootOutcome::NothingBootable(s.component));
            };
            let t = self.trailer(s.primary, s.size)?;
            let trial = t.magic == Magic::Good && t.image_ok == Flag::Unset;
            if let Some(rt) = self.rt.borrow_mut().get_mut(idx) {
                rt.state = if trial {
                    ComponentState::Trial
                } else {
                    ComponentState::Ready
                };
            }
            if let Some(o) = out.get_mut(idx) {
                *o = Some(RunningImage {
                    component: s.component,
                    version,
                    trial,
                });
            }
        }
        Ok(BootOutcome::Booted(out))
    }

    fn start_swap(&self, idx: usize, ty: u8) -> R<()> {
        let base = self.status_base();
        self.erase(base, base + self.sector())?;
        let hdr = [ST_MAGIC[0], ST_MAGIC[1], ST_MAGIC[2], idx as u8, ty];
        self.write(base + ST_HEADER, &hdr)?;
        self.record(ST_COMMIT)?;
        self.run_swap(idx, ty)
    }

    /// Finish a swap a power cut interrupted; returns the image it concerned.
    fn resume_swap(&self) -> R<Option<usize>> {
        let mut hdr = [0u8; 5];
        self.read(self.status_base() + ST_HEADER, &mut hdr)?;
        let [a, b, c, idx, ty] = hdr;
        let known = [SWAP_TYPE_TEST, SWAP_TYPE_PERM, SWAP_TYPE_REVERT].contains(&ty);
        if !self.done(ST_COMMIT)?
            || [a, b, c] != ST_MAGIC
            || self.layout.images.get(idx as usize).is_none()
            || !known
        {
            return Ok(None);
        }
        self.run_swap(idx as usize, ty)?;
        Ok(Some(idx as usize))
    }

    /// Run (or resume) the swap of image `idx`, skipping every recorded step.
    fn run_swap(&self, idx: usize, ty: u8) -> R<()> {
        let s = *self.layout.images.get(idx).ok_or(SimError::OutOfBounds)?;
        let sec = self.sector();
        let scratch = self.layout.scratch;
        if !self.done(ST_COMPLETE)? {
            let n = self.usable(&s) / sec;
            for i in 0..n {
                let (p, q) = (s.primary + i * sec, s.secondary + i * sec);
                let step = ST_STEPS + 3 * i;
                if !self.done(step)? {
                    self.erase(scratch, scratch + sec)?;
                    self.copy(p, scratch, sec)?;
                    self.record(step)?;
                }
                if !self.done(step + 1)? {
                    self.erase(p, p + sec)?;
                    self.copy(q, p, sec)?;
                    self.record(step + 1)?;
                }
                if !self.done(step + 2)? {
                    self.erase(q, q + sec)?;
                    self.copy(scratch, q, sec)?;
                    self.record(step + 2)?;
                }
            }
            if !self.done(ST_PRIMARY_TRAILER)? {
                let end = s.primary + s.size;
                self.erase(end - sec, end)?;
                self.write(end - from_end(MAGIC_FROM_END), &MAGIC)?;
                self.write(end - from_end(COPY_DONE_FROM_END), &flag_record(FLAG_SET))?;
                if ty != SWAP_TYPE_TEST {
                    self.write(end - from_end(IMAGE_OK_FROM_END), &flag_record(FLAG_SET))?;
                }
                self.record(ST_PRIMARY_TRAILER)?;
            }
            if !self.done(ST_SECONDARY_TRAILER)? {
                let end = s.secondary + s.size;
                self.erase(end - sec, end)?;
                self.record(ST_SECONDARY_TRAILER)?;
            }
            self.record(ST_COMPLETE)?;
        }
        // Invalidate the header before erasing, so a torn erase cannot leave a header that
        // looks committed over step records that look undone.
        let base = self.status_base();
        self.write(base + ST_HEADER, &[0, 0, 0])?;
        self.erase(base, base + sec)
    }

    // ---- FWU partition -----------------------------------------------------------------

    fn rt_of(&self, c: ComponentId) -> Option<(usize, ImageSlots)> {
        let i = self.index(c)?;
        Some((i, *self.layout.images.get(i)?))
    }

    fn with_rt<T>(&self, i: usize, f: impl FnOnce(&mut Runtime) -> T) -> Option<T> {
        self.rt.borrow_mut().get_mut(i).map(f)
    }

    fn state(&self, i: usize) -> ComponentState {
        self.rt
            .borrow()
            .get(i)
            .map_or(ComponentState::Ready, |r| r.state)
    }

    fn set_state(&self, i: usize, s: ComponentState) {
        let _ = self.with_rt(i, |r| r.state = s);
    }
}

fn storage(_: SimError) -> Status {
    Status::STORAGE_FAILURE
}

impl<M: AsRef<[u8]> + AsMut<[u8]>, const SECTOR: usize> PsaFwu for SimTfm<'_, M, SECTOR> {
    fn query(&self, c: ComponentId) -> Result<ComponentInfo, Status> {
        let (i, s) = self.rt_of(c).ok_or(Status::DOES_NOT_EXIST)?;
        let rt = self
            .rt
            .borrow()
            .get(i)
            .copied()
            .ok_or(Status::DOES_NOT_EXIST)?;
        let mut hb = [0u8; IMAGE_HEADER_SIZE];
        self.read(s.primary, &mut hb).map_err(storage)?;
        let h = ImageHeader::decode(&hb);
        let version = if h.has_magic() {
            h.version.into()
        } else {
            ImageVersion::default()
        };
        let digest = match rt.state {
            ComponentState::Candidate | ComponentState::Staged => rt.digest,
            _ => [0; 32],
        };
        Ok(ComponentInfo {
            state: rt.state,
            error: rt.error,
            version,
            max_size: s.size,
            flags: FLAG_VOLATILE_STAGING,
            location: 0,
            candidate_digest: digest,
        })
    }

    fn start(&self, c: ComponentId, manifest: &[u8]) -> Status {
        let Some((i, s)) = self.rt_of(c) else {
            return Status::DOES_NOT_EXIST;
        };
        if !manifest.is_empty() {
            return Status::NOT_SUPPORTED;
        }
        if self.state(i) != ComponentState::Ready {
            return Status::BAD_STATE;
        }
        if let Err(e) = self.erase(s.secondary, s.secondary + s.size) {
            return storage(e);
        }
        let _ = self.with_rt(i, |r| {
            *r = READY;
            r.state = ComponentState::Writing;
        });
        Status::SUCCESS
    }

    fn write(&self, c: ComponentId, offset: u32, block: &[u8]) -> Status {
        let Some((i, s)) = self.rt_of(c) else {
            return Status::DOES_NOT_EXIST;
        };
        if self.state(i) != ComponentState::Writing {
            return Status::BAD_STATE;
        }
        let end = offset.checked_add(block.len() as u32);
        if block.len() > self.max_write || end.is_none_or(|e| e > self.usable(&s)) {
            return Status::INVALID_ARGUMENT;
        }
        if let Err(e) = self.write(s.secondary + offset, block) {
            return storage(e);
        }
        let _ = self.with_rt(i, |r| r.loaded = r.loaded.max(end.unwrap_or(0)));
        Status::SUCCESS
    }

    fn finish(&self, c: ComponentId) -> Status {
        let Some((i, s)) = self.rt_of(c) else {
            return Status::DOES_NOT_EXIST;
        };
        if self.state(i) != ComponentState::Writing {
            return Status::BAD_STATE;
        }
        let loaded = self.rt.borrow().get(i).map_or(0, |r| r.loaded);
        match self.hash_range(s.secondary, loaded) {
            Ok(d) => {
                let _ = self.with_rt(i, |r| {
                    r.digest = d;
                    r.state = ComponentState::Candidate;
                });
                Status::SUCCESS
            }
            Err(e) => storage(e),
        }
    }

    fn install(&self) -> Status {
        let mut any = false;
        for (i, s) in self.layout.images.iter().enumerate() {
            if self.state(i) != ComponentState::Candidate {
                continue;
            }
            // boot_set_pending_multi(i, false) on the secondary slot (§1.6).
            let t = match self.trailer(s.secondary, s.size) {
                Ok(t) => t,
                Err(e) => return storage(e),
            };
            let end = s.secondary + s.size;
            let r = match t.magic {
                Magic::Unset => self
                    .write(end - from_end(MAGIC_FROM_END), &MAGIC)
                    .and_then(|()| {
                        self.write(
                            end - from_end(SWAP_INFO_FROM_END),
                            &flag_record(swap_info(i as u8, SWAP_TYPE_TEST)),
                        )
                    }),
                Magic::Good => Ok(()),
                Magic::Bad => return Status::GENERIC_ERROR,
            };
            if let Err(e) = r {
                return storage(e);
            }
            self.set_state(i, ComponentState::Staged);
            any = true;
        }
        if any {
            Status::SUCCESS_REBOOT
        } else {
            Status::BAD_STATE
        }
    }

    fn request_reboot(&self) -> Status {
        self.reboot_requested.set(true);
        Status::SUCCESS
    }

    fn accept(&self) -> Status {
        let mut any = false;
        for (i, s) in self.layout.images.iter().enumerate() {
            if self.state(i) != ComponentState::Trial {
                continue;
            }
            // boot_set_confirmed_multi(i) on the primary slot (§1.6).
            let t = match self.trailer(s.primary, s.size) {
                Ok(t) => t,
                Err(e) => return storage(e),
            };
            if t.magic == Magic::Good && t.image_ok == Flag::Unset {
                let at = s.primary + s.size - from_end(IMAGE_OK_FROM_END);
                if let Err(e) = self.write(at, &flag_record(FLAG_SET)) {
                    return storage(e);
                }
            }
            self.set_state(i, ComponentState::Updated);
            any = true;
        }
        if any {
            Status::SUCCESS
        } else {
            Status::BAD_STATE
        }
    }

    fn reject(&self, error: Status) -> Status {
        let mut reboot = false;
        let mut any = false;
        for (i, s) in self.layout.images.iter().enumerate() {
            match self.state(i) {
                ComponentState::Trial => {
                    let _ = self.with_rt(i, |r| {
                        r.state = ComponentState::Rejected;
                        r.error = error;
                    });
                    reboot = true;
                    any = true;
                }
                ComponentState::Staged => {
                    let end = s.secondary + s.size;
                    if let Err(e) = self.erase(end - self.sector(), end) {
                        return storage(e);
                    }
                    let _ = self.with_rt(i, |r| {
                        r.state = ComponentState::Failed;
                        r.error = error;
                    });
                    any = true;
                }
                _ => {}
            }
        }
        match (any, reboot) {
            (false, _) => Status::BAD_STATE,
            (true, true) => Status::SUCCESS_REBOOT,
            (true, false) => Status::SUCCESS,
        }
    }

    fn cancel(&self, c: ComponentId) -> Status {
        let Some((i, _)) = self.rt_of(c) else {
            return Status::DOES_NOT_EXIST;
        };
        match self.state(i) {
            ComponentState::Writing | ComponentState::Candidate => {
                self.set_state(i, ComponentState::Failed);
                Status::SUCCESS
            }
            _ => Status::BAD_STATE,
        }
    }

    fn clean(&self, c: ComponentId) -> Status {
        let Some((i, s)) = self.rt_of(c) else {
            return Status::DOES_NOT_EXIST;
        };
        match self.state(i) {
            ComponentState::Failed | ComponentState::Updated => {
                if let Err(e) = self.erase(s.secondary, s.secondary + s.size) {
                    return storage(e);
                }
                let _ = self.with_rt(i, |r| *r = READY);
                Status::SUCCESS
            }
            _ => Status::BAD_STATE,
        }
    }
}

/// Build a signed MCUboot image as TF-M's `wrapper.py -H 0x400 --pad-header` would (no
/// trailer, no protected TLVs): header, zero padding to 0x400, `payload`, then the TLV area
/// with KEYHASH, SHA256 and ECDSA_SIG (DER). Returns the length written into `out`, or
/// `None` if `out` is too small.
pub fn build_image(
    out: &mut [u8],
    payload: &[u8],
    version: ImageVersion,
    key: &p256::ecdsa::SigningKey,
) -> Option<usize> {
    use p256::ecdsa::signature::hazmat::PrehashSigner;
    let h = ImageHeader::new(
        TFM_HEADER_SIZE,
        u32::try_from(payload.len()).ok()?,
        version.into(),
    );
    let body = write_body(out, &h, payload)?;
    let digest: [u8; 32] = Sha256::digest(out.get(..body)?).into();
    let sig: Signature = key.sign_prehash(&digest).ok()?;
    let der = sig.to_der();
    let tlvs: [(u16, &[u8]); 3] = [
        (TLV_KEYHASH, &key_hash(key.verifying_key())),
        (TLV_SHA256, &digest),
        (TLV_ECDSA_SIG, der.as_bytes()),
    ];
    write_tlv_area(out, body, &tlvs)
}
