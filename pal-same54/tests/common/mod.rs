//! Shared fixtures: keys, images, a factory-programmed board and the agent's side of an
//! update, all on the simulated NVM.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use ota_pal_traits::sim::{block_on, test_keys::TestKey};
use ota_pal_traits::{
    BootControl, FileInfo, ImageStorage, ImageVerifier, PalError, PlatformImageState,
    Sha256EcdsaP256Verifier,
};
use pal_same54::sim::{write_factory_image, BootReport, Bootloader, Same54Board};
use pal_same54::{close_file, Config, Layout, Same54Boot, Same54Storage};

pub const OLD_VERSION: u32 = 0x0100_0000; // 1.0.0
pub const NEW_VERSION: u32 = 0x0101_0000; // 1.1.0
pub const BLOCK: usize = 1024;

pub fn signing_key() -> TestKey {
    TestKey::from_seed(0x42).unwrap()
}

pub fn other_key() -> TestKey {
    TestKey::from_seed(0x17).unwrap()
}

pub fn verifier() -> Sha256EcdsaP256Verifier {
    signing_key().verifier()
}

pub fn sign_with(key: &TestKey, data: &[u8]) -> Vec<u8> {
    key.sign(data).as_bytes().to_vec()
}

pub fn sign(data: &[u8]) -> Vec<u8> {
    sign_with(&signing_key(), data)
}

fn pattern(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

pub fn bootloader_bin() -> Vec<u8> {
    pattern(0x1_0000, 7)
}

/// The factory application (20 KB).
pub fn old_app() -> Vec<u8> {
    pattern(20 * 1024, 1)
}

/// The update (not a multiple of the block or of 16 bytes).
pub fn new_app() -> Vec<u8> {
    pattern(3 * BLOCK + 100, 2)
}

pub fn file(size: usize) -> FileInfo<'static> {
    FileInfo::new("", size as u32)
}

/// A board with the factory image.
pub fn factory_board() -> Same54Board<Vec<u8>> {
    let board = Same54Board::new(vec![0xFF; 0x10_0000], Layout::SAME54_XPRO).unwrap();
    let old = old_app();
    write_factory_image(&board, &bootloader_bin(), &old, &sign(&old)).unwrap();
    board
}

pub fn boot(board: &mut Same54Board<Vec<u8>>) -> Result<BootReport, ota_pal_traits::sim::SimError> {
    let key = verifier();
    Bootloader::new(&key).boot(board)
}

/// Which application bytes sit at 0x10000.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Running {
    Old,
    New,
    Other,
}

pub fn running(board: &Same54Board<Vec<u8>>) -> Running {
    if board.holds(0x10000, &new_app()).unwrap() {
        Running::New
    } else if board.holds(0x10000, &old_app()).unwrap() {
        Running::Old
    } else {
        Running::Other
    }
}

pub fn version_of(r: Running) -> u32 {
    match r {
        Running::New => NEW_VERSION,
        _ => OLD_VERSION,
    }
}

pub type Storage<'d> = Same54Storage<pal_same54::sim::SimNvm<'d, Vec<u8>>>;
pub type Boot<'d> = Same54Boot<pal_same54::sim::SimNvm<'d, Vec<u8>>>;

/// The PAL objects the firmware creates at start-up, for the image now at 0x10000.
pub fn pal<'d>(board: &'d Same54Board<Vec<u8>>, config: Config) -> (Storage<'d>, Boot<'d>) {
    let version = version_of(running(board));
    (
        Same54Storage::new(board.nvm().unwrap(), config.layout).unwrap(),
        Same54Boot::new(board.nvm().unwrap(), config, version).unwrap(),
    )
}

/// Download `image` in blocks (in order, hashing on the fly like the agent), verify it with
/// `signature` through `close_file`, and request the trial boot.
pub fn download_and_stage(
    storage: &mut Storage<'_>,
    boot: &mut Boot<'_>,
    image: &[u8],
    signature: &[u8],
) -> Result<(), PalError> {
    block_on(async {
        let f = file(image.len());
        let mut v = verifier();
        storage.prepare(&f).await?;
        v.begin(&f);
        for (i, chunk) in image.chunks(BLOCK).enumerate() {
            storage.write((i * BLOCK) as u32, chunk).await?;
            v.update(chunk);
        }
        let mut scratch = [0u8; 256];
        close_file(storage, &mut v, boot, &f, f.size, signature, &mut scratch).await?;
        boot.request_trial_boot(&f).await
    })
}

pub fn state(boot: &mut Boot<'_>) -> PlatformImageState {
    block_on(boot.platform_state()).unwrap()
}
