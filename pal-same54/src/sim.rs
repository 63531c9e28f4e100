//! A simulation of the SAME54 aws_bootloader (spec §3.4) over the
//! [`ota_pal_traits::sim`] NOR flash, for tests and the host device simulator.
//!
//! * [`Same54Board`] is the 1 MB NVM (one [`SimDevice`], write unit 16, erase block 8 KB,
//!   erase value 0xFF, strict: a quad word is never programmed twice without an erase) plus
//!   the bank mapping (STATUS.AFIRST). [`Same54Board::nvm`] hands out views of the whole NVM
//!   for the PAL; [`BankSwap`] swaps the two 512 KB halves of the device, which is what the
//!   CPU sees after BKSWRST. The swap is atomic, as the hardware's mapping switch is.
//! * [`Bootloader::boot`] reads the same bytes as the real bootloader, applies its rules and
//!   performs its flash writes (descriptor 0xFF → 0xFE rewrite, bootloader copy), through the
//!   flash, so power cuts land inside them too. It reports what runs: [`BootOutcome`].
//! * [`write_factory_image`] programs what `factory_image_generator.py` + the bootloader hex
//!   produce (§3.6).
//!
//! What is modelled, exactly (§3.4):
//!
//! 1. candidates: the descriptors at 0x7E000 and 0xFE000;
//! 2. valid = magic `@AFRTOS`, flags 0xFF or 0xFC, and the ECDSA P-256 signature over
//!    SHA-256 of `[bank + 0x10000, + image size)` verifies with the code-signer key (a
//!    [`BootSignature`], real P-256 via [`Sha256EcdsaP256Verifier`]). Guards of ours: an
//!    image size above 0x6E000 or a signature size above 256 is invalid (the real code's
//!    behaviour there was not read). Highest sequence wins; on a tie the lower one (not
//!    confirmed);
//! 3. winner in the upper bank → BKSWRST (swap) and run again. If bank B does not hold a
//!    bootloader copy the real device would not boot after the swap: reported as
//!    [`BootOutcome::Bricked`];
//! 4. winner in the lower bank: flags 0xFF → erase the 8 KB block, program the descriptor
//!    with 0xFE (only the 336 bytes), launch; 0xFC → launch;
//! 5. nothing valid → "default": copy the 64 KB bootloader into bank B (erase, program) and
//!    launch 0x10000 **without any check**: [`BootOutcome::Default`].
//!
//! The bootloader is restartable: every step re-reads the flash, so after a cut inside its
//! own writes the next power-on simply runs it again.

use core::cell::Cell;

use embedded_storage_async::nor_flash::{NorFlash, ReadNorFlash};
use ota_pal_traits::sim::{block_on, SimConfig, SimDevice, SimError, SimFlash};
use ota_pal_traits::Sha256EcdsaP256Verifier;
use sha2::{Digest, Sha256};

use crate::bank_swap::BankSwap;
use crate::descriptor::{Descriptor, ImageFlags, DESCRIPTOR_LEN, MAX_SIGNATURE_LEN};
use crate::layout::{Layout, DESCRIPTOR_BLOCK_SIZE, ERASE_SIZE, ERASE_VALUE, WRITE_SIZE};

/// Write unit of the simulated NVM (a quad word).
pub const SIM_WRITE: usize = WRITE_SIZE as usize;
/// Erase unit of the simulated NVM (a block).
pub const SIM_ERASE: usize = ERASE_SIZE as usize;

/// A view of the simulated NVM as the PAL's flash driver.
pub type SimNvm<'d, M> = SimFlash<'d, M, SIM_WRITE, SIM_ERASE>;

/// The flash geometry of the SAME54 NVM (§3.1).
pub const fn sim_config() -> SimConfig {
    SimConfig::new(SIM_WRITE, SIM_ERASE)
        .erase_value(ERASE_VALUE)
        .strict(true)
}

/// The simulated board: NVM and bank mapping.
#[derive(Debug)]
pub struct Same54Board<M> {
    device: SimDevice<M>,
    layout: Layout,
    bank_a_first: Cell<bool>,
}

impl<M: AsRef<[u8]> + AsMut<[u8]>> Same54Board<M> {
    /// A board over `mem` (1 MB for [`Layout::SAME54_XPRO`]), contents kept as they are.
    pub fn new(mem: M, layout: Layout) -> Result<Self, SimError> {
        let device = SimDevice::new(mem, sim_config())?;
        if device.len()? != layout.flash_size() {
            return Err(SimError::BadGeometry);
        }
        Ok(Self {
            device,
            layout,
            bank_a_first: Cell::new(true),
        })
    }

    /// The flash device (power cuts, counters, raw access).
    pub fn device(&self) -> &SimDevice<M> {
        &self.device
    }

    /// The memory map.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// A view of the whole NVM, as the PAL's flash driver.
    pub fn nvm(&self) -> Result<SimNvm<'_, M>, SimError> {
        self.device.view(0, self.layout.flash_size())
    }

    /// The descriptor at `addr`, read without counters (a debugger's view).
    pub fn peek_descriptor(&self, addr: u32) -> Result<Descriptor, SimError> {
        self.device.inspect(|m| {
            let mut b = [0u8; DESCRIPTOR_LEN];
            if let Some(s) = m.get(addr as usize..addr as usize + DESCRIPTOR_LEN) {
                b.copy_from_slice(s);
            }
            Descriptor::decode(&b)
        })
    }

    /// Whether `bytes` are at `addr` (raw view).
    pub fn holds(&self, addr: u32, bytes: &[u8]) -> Result<bool, SimError> {
        self.device
            .inspect(|m| m.get(addr as usize..addr as usize + bytes.len()) == Some(bytes))
    }
}

impl<M: AsRef<[u8]> + AsMut<[u8]>> BankSwap for Same54Board<M> {
    fn bank_a_first(&self) -> bool {
        self.bank_a_first.get()
    }

    /// Swap the two halves of the NVM (atomic, like the hardware remap).
    fn swap_banks_and_reset(&mut self) {
        let half = self.layout.bank_size as usize;
        let swapped = self.device.modify(|m| {
            if m.len() >= 2 * half {
                let (a, b) = m.split_at_mut(half);
                if let Some(b) = b.get_mut(..half) {
                    a.swap_with_slice(b);
                }
            }
        });
        if swapped.is_ok() {
            self.bank_a_first.set(!self.bank_a_first.get());
        }
    }
}

/// Program the factory image (§3.6) without counters: erase the chip, the bootloader at 0x0
/// **and** its copy at 0x80000, `app` at 0x10000 (the generator pads it to 0x6E000 with
/// erased bytes), and the factory descriptor (sequence 0, flags 0xFC, `signature`, size) at
/// 0x7E000. The bank-B copy is an assumption: the spec only says the bootloader's default
/// path makes it (§3.2), but a swap without it cannot boot, so the factory programming
/// must provide it (see [`write_factory_image_without_copy`] for the other case).
pub fn write_factory_image<M: AsRef<[u8]> + AsMut<[u8]>>(
    board: &Same54Board<M>,
    bootloader: &[u8],
    app: &[u8],
    signature: &[u8],
) -> Result<(), SimError> {
    write_factory_image_without_copy(board, bootloader, app, signature)?;
    let l = *board.layout();
    board.device.modify(|m| {
        put(m, l.bootloader_copy_addr(), bootloader);
    })
}

/// [`write_factory_image`] without the bootloader copy in bank B.
pub fn write_factory_image_without_copy<M: AsRef<[u8]> + AsMut<[u8]>>(
    board: &Same54Board<M>,
    bootloader: &[u8],
    app: &[u8],
    signature: &[u8],
) -> Result<(), SimError> {
    let l = *board.layout();
    if bootloader.len() > l.bootloader_size as usize || app.len() > l.app_max_size as usize {
        return Err(SimError::OutOfBounds);
    }
    let d = Descriptor::factory(signature, app.len() as u32).map_err(|_| SimError::OutOfBounds)?;
    board.device.erase_all()?;
    board.bank_a_first.set(true);
    board.device.modify(|m| {
        put(m, 0, bootloader);
        put(m, l.app_addr(), app);
        put(m, l.lower_descriptor_addr(), &d.encode());
    })
}

fn put(m: &mut [u8], at: u32, bytes: &[u8]) {
    if let Some(d) = m.get_mut(at as usize..at as usize + bytes.len()) {
        d.copy_from_slice(bytes);
    }
}

/// The bootloader's signature check (§3.4 step 2: uECC secp256r1 over a SHA-256 digest,
/// DER signature). Pluggable so that a port with another scheme can be simulated.
pub trait BootSignature {
    /// Whether `signature` signs `digest`.
    fn verify(&self, digest: &[u8; 32], signature: &[u8]) -> bool;
}

impl BootSignature for Sha256EcdsaP256Verifier {
    fn verify(&self, digest: &[u8; 32], signature: &[u8]) -> bool {
        self.verify_digest(digest, signature).is_ok()
    }
}

/// Why the simulated device cannot boot at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrickReason {
    /// The bootloader wanted to swap banks but bank B holds no bootloader copy.
    NoBootloaderInBankB,
    /// The bootloader kept swapping (never expected).
    SwapLoop,
}

/// What the bootloader launched.
// No heap to box the descriptor into; the outcome lives on the stack of a test or simulator.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootOutcome {
    /// A verified image at 0x10000, from the lower descriptor.
    Verified {
        /// Its descriptor as the application sees it after the launch (flags 0xFE for a
        /// first boot, 0xFC for a committed image).
        descriptor: Descriptor,
        /// The flags before the launch (0xFF: first boot on trial; 0xFC: committed).
        flags_at_boot: ImageFlags,
        /// STATUS.AFIRST at launch.
        bank_a_first: bool,
    },
    /// No valid image: the "default" path launched 0x10000 unverified (§3.4 step 6).
    Default {
        /// STATUS.AFIRST at launch.
        bank_a_first: bool,
    },
    /// Nothing can run.
    Bricked(BrickReason),
}

/// A boot: what ran, and how many bank swaps it took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootReport {
    /// What runs.
    pub outcome: BootOutcome,
    /// BKSWRST issued during this boot.
    pub swaps: u32,
}

impl BootOutcome {
    /// The running image's sequence number, when it was verified.
    pub fn sequence(&self) -> Option<u32> {
        match self {
            Self::Verified { descriptor, .. } => Some(descriptor.sequence),
            _ => None,
        }
    }

    /// Whether a verified image runs.
    pub fn is_verified(&self) -> bool {
        matches!(self, Self::Verified { .. })
    }
}

/// The aws_bootloader's decision logic (see the [module docs](self)).
#[derive(Debug)]
pub struct Bootloader<'k, K> {
    key: &'k K,
}

impl<'k, K: BootSignature> Bootloader<'k, K> {
    /// A bootloader with the code-signer key `key`
    /// (`aws_boot_codesigner_public_key.h`).
    pub fn new(key: &'k K) -> Self {
        Self { key }
    }

    /// Is the image of the bank starting at `bank` valid (§3.4 step 2)? Returns its
    /// descriptor if so.
    fn candidate<M: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        nvm: &mut SimNvm<'_, M>,
        layout: &Layout,
        bank: u32,
    ) -> Result<Option<Descriptor>, SimError> {
        let mut b = [0u8; DESCRIPTOR_LEN];
        block_on(nvm.read(bank + layout.descriptor_offset, &mut b))?;
        let d = Descriptor::decode(&b);
        if !d.magic_ok()
            || !d.flags.is_bootable()
            || d.image_size > layout.app_max_size
            || d.sig_size as usize > MAX_SIGNATURE_LEN
        {
            return Ok(None);
        }
        let mut hash = Sha256::new();
        let mut chunk = [0u8; 1024];
        let mut pos = 0u32;
        while pos < d.image_size {
            let n = (d.image_size - pos).min(chunk.len() as u32) as usize;
            let buf = chunk.get_mut(..n).ok_or(SimError::OutOfBounds)?;
            block_on(nvm.read(bank + layout.app_offset + pos, buf))?;
            hash.update(&*buf);
            pos += n as u32;
        }
        let digest: [u8; 32] = hash.finalize().into();
        let sig = d.signature_bytes().unwrap_or(&[]);
        Ok(if self.key.verify(&digest, sig) {
            Some(d)
        } else {
            None
        })
    }

    /// Power on and run the bootloader once, up to the launch. Flash errors (a power cut
    /// inside the bootloader's own writes) are returned; power on and boot again.
    pub fn boot<M: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        board: &mut Same54Board<M>,
    ) -> Result<BootReport, SimError> {
        let layout = *board.layout();
        let mut swaps = 0;
        loop {
            let mut nvm = board.nvm()?;
            let lower = self.candidate(&mut nvm, &layout, 0)?;
            let upper = self.candidate(&mut nvm, &layout, layout.bank_size)?;
            let upper_wins = match (&lower, &upper) {
                (Some(l), Some(u)) => u.sequence > l.sequence,
                (None, Some(_)) => true,
                _ => false,
            };
            if upper_wins {
                if swaps >= 2 {
                    return Ok(BootReport {
                        outcome: BootOutcome::Bricked(BrickReason::SwapLoop),
                        swaps,
                    });
                }
                if !bootloader_copy_present(board, &layout)? {
                    return Ok(BootReport {
                        outcome: BootOutcome::Bricked(BrickReason::NoBootloaderInBankB),
                        swaps,
                    });
                }
                board.swap_banks_and_reset();
                swaps += 1;
                continue;
            }
            let addr = layout.lower_descriptor_addr();
            return match lower {
                Some(mut d) => {
                    let flags_at_boot = d.flags;
                    if d.flags == ImageFlags::NEW {
                        d.flags = ImageFlags::COMMIT_PENDING;
                        let block = addr - addr % DESCRIPTOR_BLOCK_SIZE;
                        block_on(nvm.erase(block, block + DESCRIPTOR_BLOCK_SIZE))?;
                        block_on(nvm.write(addr, &d.encode()))?;
                    }
                    Ok(BootReport {
                        outcome: BootOutcome::Verified {
                            descriptor: d,
                            flags_at_boot,
                            bank_a_first: board.bank_a_first(),
                        },
                        swaps,
                    })
                }
                None => {
                    copy_bootloader(board, &layout)?;
                    Ok(BootReport {
                        outcome: BootOutcome::Default {
                            bank_a_first: board.bank_a_first(),
                        },
                        swaps,
                    })
                }
            };
        }
    }
}

fn bootloader_copy_present<M: AsRef<[u8]> + AsMut<[u8]>>(
    board: &Same54Board<M>,
    layout: &Layout,
) -> Result<bool, SimError> {
    let n = layout.bootloader_size as usize;
    let copy = layout.bootloader_copy_addr() as usize;
    board
        .device()
        .inspect(|m| match (m.get(..n), m.get(copy..copy + n)) {
            (Some(a), Some(b)) => a == b,
            _ => false,
        })
}

/// `prvBOOT_ExecuteDefault`'s copy of the bootloader into bank B: erase, then program the
/// 64 KB in 1 KB pieces (each a flash operation a cut can hit).
fn copy_bootloader<M: AsRef<[u8]> + AsMut<[u8]>>(
    board: &Same54Board<M>,
    layout: &Layout,
) -> Result<(), SimError> {
    let mut nvm = board.nvm()?;
    let dst = layout.bootloader_copy_addr();
    block_on(nvm.erase(dst, dst + layout.bootloader_size))?;
    let mut buf = [0u8; 1024];
    let mut pos = 0u32;
    while pos < layout.bootloader_size {
        block_on(nvm.read(pos, &mut buf))?;
        block_on(nvm.write(dst + pos, &buf))?;
        pos += buf.len() as u32;
    }
    Ok(())
}

/// A [`Reset`](ota_pal_traits::Reset) for the simulation: it only counts the requests; the
/// test or host simulator then runs [`Bootloader::boot`], which is what a reset does on the
/// board (`NVIC_SystemReset`, spec §3.5 ActivateNewImage / ResetDevice).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SimReset {
    /// Resets requested so far.
    pub requests: u32,
}

impl ota_pal_traits::Reset for SimReset {
    fn reset(&mut self) {
        self.requests = self.requests.saturating_add(1);
    }
}
