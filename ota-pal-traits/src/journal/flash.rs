//! [`DownloadJournal`] on a small NOR flash area, power-safe by construction.
//!
//! # Layout
//!
//! The area (at least two erase sectors, an even number of them) is split into two halves
//! used in turn. A live half holds, each part starting on a write-unit boundary:
//!
//! ```text
//! | header (128 B, padded to the write unit) | snapshot bitmap (optional) | entry | entry | ... |
//! ```
//!
//! * The **header** carries a magic, a format version, a sequence number, the
//!   [`JournalHeader`] (job id, file index, file size, block size, signature digest), the
//!   length and CRC of the snapshot, and a CRC-32 over itself. It is always written *last*,
//!   after the half was erased and the snapshot written: a half is live only once its header
//!   reads back whole, and the live half is the valid one with the higher sequence number.
//! * The **snapshot** is a bitmap of the blocks received (bit `i % 8` of byte `i / 8`), written
//!   only by compaction.
//! * Each **entry** records one block: `index` and a CRC-32 of (`sequence`, `index`), 8 bytes
//!   padded to whole write units with the erase value. Entries are appended and never
//!   reprogrammed; a torn one fails its check and is skipped (its slot is not reused).
//!
//! When the live half is full, **compaction** erases the other half, writes the union of the
//! snapshot and the entries as the new snapshot, then the header with the next sequence
//! number. The old half is *not* erased then: its lower sequence number retires it, and it is
//! erased when it is next needed (saving one erase per compaction). [`begin`] works the same
//! way with an empty snapshot. [`clear`] erases the header sector of both halves, the older
//! first, so that no retired header can come back to life.
//!
//! Every unit is written at most once between erases, so the journal also works on ECC flash
//! that forbids reprogramming. A torn header, snapshot or entry is detected by its CRC; the
//! odds of torn bits forming a valid CRC-32 by chance (2⁻³²) are accepted.
//!
//! # Cost
//!
//! RAM: the flash driver plus about 170 bytes on a 64-bit host, less on 32-bit targets (the
//! cached [`JournalHeader`] and the log position). The futures hold the working buffers
//! (one [`CHUNK`]-byte bitmap/write buffer, a 128-byte header buffer); measured on a 64-bit
//! host over the simulator: [`load`] 1048 B, [`record_block`] 832 B (compaction included),
//! [`begin`] 648 B, [`clear`] 512 B.
//!
//! Flash, for a file of `n` blocks with write unit `w` and a half of `h` bytes: a snapshot of
//! `ceil(n / 8)` bytes, entries of `max(8, w)` bytes, so a half holds
//! `(h - hdr - snapshot) / entry` records between compactions. Example, 4096 blocks (4 MiB in
//! 1 KiB blocks), `w` = 16, two 4 KiB sectors: snapshot 512 B, header 128 B, 216 records per
//! half (248 before the first compaction), 18 compactions (one sector erase and 640 B written
//! each) per full download.
//! With 512-byte write units (PSoC 6 / TRAVEO rows) every record costs a whole row; give the
//! journal a larger area there.
//!
//! Loading reads the live half once per [`CHUNK`] × 8 blocks (once for up to 4096 blocks) and
//! reports each received block exactly once, in increasing order.
//!
//! [`begin`]: DownloadJournal::begin
//! [`clear`]: DownloadJournal::clear
//! [`load`]: DownloadJournal::load
//! [`record_block`]: DownloadJournal::record_block

use embedded_storage_async::nor_flash::NorFlash;

use crate::{flash_sub_code, DownloadJournal, JournalHeader, PalError, PalErrorKind};

/// Bytes of the bitmap built in RAM at a time when loading or compacting (4096 blocks).
pub const CHUNK: usize = 512;

/// Encoded header size before padding to the write unit.
const HEADER_LEN: usize = 128;
/// Encoded entry size before padding to the write unit.
const ENTRY_LEN: usize = 8;
/// `"OTAJ"` in little-endian.
const MAGIC: u32 = 0x4A41_544F;
/// On-flash format version.
const VERSION: u8 = 1;

/// Sub-code: the area is not two or more whole erase sectors, an even number of them, inside
/// the flash; or a half cannot hold a header and one entry; or the write unit does not divide
/// [`CHUNK`]; or the read unit is not 1.
pub const SUB_BAD_AREA: u32 = 0x300;
/// Sub-code: the download's snapshot plus one entry does not fit in half the area, or its
/// block size is 0.
pub const SUB_TOO_MANY_BLOCKS: u32 = 0x301;
/// Sub-code: `record_block` with an index past the last block of the file.
pub const SUB_BAD_INDEX: u32 = 0x302;

/// Where the log of the current download stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Log {
    half: u32,
    seq: u32,
    /// Snapshot bitmap length in bytes, 0 for none.
    snap_len: u32,
    blocks: u32,
    next_slot: u32,
}

/// A header that read back whole.
struct Found {
    seq: u32,
    header: JournalHeader,
    snap_len: u32,
}

/// A power-safe [`DownloadJournal`] on its own NOR flash area (see the
/// [module docs](self) for the format and the costs).
#[derive(Debug)]
pub struct FlashJournal<F> {
    flash: F,
    offset: u32,
    half_len: u32,
    erase_value: u8,
    header: Option<JournalHeader>,
    log: Option<Log>,
}

fn flash_err<E: embedded_storage_async::nor_flash::NorFlashError>(e: E) -> PalError {
    PalError::with_sub(PalErrorKind::FileClose, flash_sub_code(&e))
}

fn round_up(x: u32, unit: u32) -> u32 {
    x.div_ceil(unit) * unit
}

/// CRC-32 (IEEE, reflected), continued from `crc` (start with `!0`, finish with `!`).
fn crc32_update(mut crc: u32, data: &[u8]) -> u32 {
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    crc
}

fn crc32(data: &[u8]) -> u32 {
    !crc32_update(!0, data)
}

fn entry_check(seq: u32, index: u32) -> u32 {
    let mut b = [0u8; 8];
    b[..4].copy_from_slice(&seq.to_le_bytes());
    b[4..].copy_from_slice(&index.to_le_bytes());
    crc32(&b)
}

fn blocks_of(h: &JournalHeader) -> Option<u32> {
    if h.block_size == 0 {
        None
    } else {
        Some(h.file_size.div_ceil(h.block_size))
    }
}

fn put(buf: &mut [u8], at: usize, bytes: &[u8]) {
    if let Some(dst) = buf.get_mut(at..at + bytes.len()) {
        dst.copy_from_slice(bytes);
    }
}

fn get_u32(buf: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    if let Some(src) = buf.get(at..at + 4) {
        b.copy_from_slice(src);
    }
    u32::from_le_bytes(b)
}

/// Put the encoded header at the start of `buf`, padded with `erase_value`.
fn stage_header(
    buf: &mut [u8; CHUNK],
    erase_value: u8,
    h: &JournalHeader,
    seq: u32,
    snap_len: u32,
    snap_crc: u32,
) {
    buf.fill(erase_value);
    put(buf, 0, &encode_header(h, seq, snap_len, snap_crc));
}

fn encode_header(h: &JournalHeader, seq: u32, snap_len: u32, snap_crc: u32) -> [u8; HEADER_LEN] {
    let mut b = [0u8; HEADER_LEN];
    put(&mut b, 0, &MAGIC.to_le_bytes());
    let id = h.job_id.as_bytes();
    put(&mut b, 4, &[VERSION, h.file_index, id.len() as u8, 0]);
    put(&mut b, 8, &seq.to_le_bytes());
    put(&mut b, 12, &h.file_size.to_le_bytes());
    put(&mut b, 16, &h.block_size.to_le_bytes());
    put(&mut b, 20, &snap_len.to_le_bytes());
    put(&mut b, 24, &snap_crc.to_le_bytes());
    put(&mut b, 28, &h.signature_digest);
    put(&mut b, 60, id);
    let crc = crc32(b.get(..124).unwrap_or(&[]));
    put(&mut b, 124, &crc.to_le_bytes());
    b
}

/// Decode a header; returns it with its sequence number, snapshot length and snapshot CRC.
fn decode_header(b: &[u8; HEADER_LEN]) -> Option<(JournalHeader, u32, u32, u32)> {
    if get_u32(b, 0) != MAGIC || crc32(b.get(..124)?) != get_u32(b, 124) {
        return None;
    }
    let (version, file_index, id_len) = (*b.get(4)?, *b.get(5)?, *b.get(6)? as usize);
    if version != VERSION {
        return None;
    }
    let id = core::str::from_utf8(b.get(60..60 + id_len)?).ok()?;
    let mut signature_digest = [0u8; 32];
    signature_digest.copy_from_slice(b.get(28..60)?);
    let header = JournalHeader {
        job_id: heapless::String::try_from(id).ok()?,
        file_index,
        file_size: get_u32(b, 12),
        block_size: get_u32(b, 16),
        signature_digest,
    };
    Some((header, get_u32(b, 8), get_u32(b, 20), get_u32(b, 24)))
}

impl<F: NorFlash> FlashJournal<F> {
    /// A journal on `len` bytes of `flash` from `offset`, erasing to `erase_value`.
    ///
    /// `offset` and `len` must be multiples of `F::ERASE_SIZE`, `len` at least two sectors and
    /// an even number of them, each half must hold a header and one entry, `F::WRITE_SIZE`
    /// must divide [`CHUNK`] and `F::READ_SIZE` must be 1; otherwise
    /// [`PalErrorKind::Uninitialized`] with [`SUB_BAD_AREA`]. Nothing is read until
    /// [`load`](DownloadJournal::load) or [`begin`](DownloadJournal::begin).
    pub fn new(flash: F, offset: u32, len: u32, erase_value: u8) -> Result<Self, PalError> {
        let bad = PalError::with_sub(PalErrorKind::Uninitialized, SUB_BAD_AREA);
        let (w, e) = (F::WRITE_SIZE, F::ERASE_SIZE);
        if w == 0 || CHUNK % w != 0 || e == 0 || e % w != 0 || F::READ_SIZE != 1 {
            return Err(bad);
        }
        let sectors = len as usize / e;
        let end = offset.checked_add(len).ok_or(bad)?;
        if offset as usize % e != 0
            || len as usize % e != 0
            || sectors < 2
            || sectors % 2 != 0
            || end as usize > flash.capacity()
        {
            return Err(bad);
        }
        let j = Self {
            flash,
            offset,
            half_len: len / 2,
            erase_value,
            header: None,
            log: None,
        };
        if j.hdr_area() + j.entry_size() > j.half_len {
            return Err(bad);
        }
        Ok(j)
    }

    /// Give the flash driver back.
    pub fn into_inner(self) -> F {
        self.flash
    }

    /// How many more blocks can be recorded before the next compaction, if a download is
    /// open.
    pub fn free_slots(&self) -> Option<u32> {
        self.log
            .map(|l| self.slots(l.snap_len).saturating_sub(l.next_slot))
    }

    /// The most blocks a download may have for this area (its snapshot and one entry must
    /// fit in half the area).
    pub fn max_blocks(&self) -> u32 {
        let room = self.half_len - self.hdr_area() - self.entry_size();
        // Snapshot area is round_up(ceil(n / 8), w) <= room.
        (room - room % self.w()) * 8
    }

    fn w(&self) -> u32 {
        F::WRITE_SIZE as u32
    }

    fn hdr_area(&self) -> u32 {
        round_up(HEADER_LEN as u32, self.w())
    }

    fn entry_size(&self) -> u32 {
        round_up(ENTRY_LEN as u32, self.w())
    }

    fn entries_start(&self, snap_len: u32) -> u32 {
        self.hdr_area() + round_up(snap_len, self.w())
    }

    fn slots(&self, snap_len: u32) -> u32 {
        self.half_len.saturating_sub(self.entries_start(snap_len)) / self.entry_size()
    }

    fn base(&self, half: u32) -> u32 {
        self.offset + half * self.half_len
    }

    fn slot_addr(&self, log: &Log, slot: u32) -> u32 {
        self.base(log.half) + self.entries_start(log.snap_len) + slot * self.entry_size()
    }

    /// Read and check the header (and snapshot) of `half`.
    async fn read_half(&mut self, half: u32) -> Result<Option<Found>, PalError> {
        let mut b = [0u8; HEADER_LEN];
        let base = self.base(half);
        self.flash.read(base, &mut b).await.map_err(flash_err)?;
        let Some((header, seq, snap_len, snap_crc)) = decode_header(&b) else {
            return Ok(None);
        };
        let Some(blocks) = blocks_of(&header) else {
            return Ok(None);
        };
        if blocks > self.max_blocks() || (snap_len != 0 && snap_len != blocks.div_ceil(8)) {
            return Ok(None);
        }
        if self.entries_start(snap_len) + self.entry_size() > self.half_len {
            return Ok(None);
        }
        // The snapshot must read back whole.
        let mut crc = !0u32;
        let mut pos = 0u32;
        let mut buf = [0u8; 64];
        while pos < snap_len {
            let n = (snap_len - pos).min(buf.len() as u32) as usize;
            let chunk = buf.get_mut(..n).unwrap_or(&mut []);
            let at = base + self.hdr_area() + pos;
            self.flash.read(at, chunk).await.map_err(flash_err)?;
            crc = crc32_update(crc, chunk);
            pos += n as u32;
        }
        if snap_len != 0 && !crc != snap_crc {
            return Ok(None);
        }
        Ok(Some(Found {
            seq,
            header,
            snap_len,
        }))
    }

    /// Both halves' headers.
    async fn scan(&mut self) -> Result<[Option<Found>; 2], PalError> {
        let a = self.read_half(0).await?;
        let b = self.read_half(1).await?;
        Ok([a, b])
    }

    /// Both halves' sequence numbers, for those whose header reads back whole.
    async fn scan_seqs(&mut self) -> Result<[Option<u32>; 2], PalError> {
        let a = self.read_half(0).await?.map(|f| f.seq);
        let b = self.read_half(1).await?.map(|f| f.seq);
        Ok([a, b])
    }

    /// Whether `len` bytes from `at` are all erased.
    async fn is_blank(&mut self, at: u32, len: u32) -> Result<bool, PalError> {
        let mut buf = [0u8; 64];
        let mut pos = 0;
        while pos < len {
            let n = (len - pos).min(buf.len() as u32) as usize;
            let chunk = buf.get_mut(..n).unwrap_or(&mut []);
            self.flash.read(at + pos, chunk).await.map_err(flash_err)?;
            if chunk.iter().any(|&b| b != self.erase_value) {
                return Ok(false);
            }
            pos += n as u32;
        }
        Ok(true)
    }

    /// The block recorded in `slot`, if the entry there is whole.
    async fn read_entry(&mut self, log: &Log, slot: u32) -> Result<Option<u32>, PalError> {
        let mut b = [0u8; ENTRY_LEN];
        let at = self.slot_addr(log, slot);
        self.flash.read(at, &mut b).await.map_err(flash_err)?;
        let index = get_u32(&b, 0);
        if get_u32(&b, 4) == entry_check(log.seq, index) && index < log.blocks {
            Ok(Some(index))
        } else {
            Ok(None)
        }
    }

    /// Fill `buf` with bitmap bytes `[chunk * CHUNK, ..)` of the received set (snapshot plus
    /// entries); returns how many bytes are meaningful.
    async fn merged_chunk(
        &mut self,
        log: &Log,
        chunk: u32,
        buf: &mut [u8; CHUNK],
    ) -> Result<usize, PalError> {
        let total = log.blocks.div_ceil(8);
        let start = chunk * CHUNK as u32;
        let n = total.saturating_sub(start).min(CHUNK as u32) as usize;
        buf.fill(0);
        let bytes = buf.get_mut(..n).unwrap_or(&mut []);
        if log.snap_len != 0 {
            let at = self.base(log.half) + self.hdr_area() + start;
            self.flash.read(at, bytes).await.map_err(flash_err)?;
        }
        let first = start * 8;
        for slot in 0..log.next_slot {
            if let Some(i) = self.read_entry(log, slot).await? {
                if let Some(bit) = i.checked_sub(first) {
                    if let Some(byte) = bytes.get_mut((bit / 8) as usize) {
                        *byte |= 1 << (bit % 8);
                    }
                }
            }
        }
        Ok(n)
    }

    /// Erase `half` whole.
    async fn erase_half(&mut self, half: u32) -> Result<(), PalError> {
        let base = self.base(half);
        self.flash
            .erase(base, base + self.half_len)
            .await
            .map_err(flash_err)
    }

    /// Write the header in `buf` (see [`stage_header`]) to `half`.
    async fn write_header(&mut self, half: u32, buf: &[u8; CHUNK]) -> Result<(), PalError> {
        let base = self.base(half);
        // The header area is at most CHUNK bytes (the write unit divides CHUNK).
        let area = buf
            .get(..self.hdr_area() as usize)
            .ok_or(PalError::with_sub(
                PalErrorKind::Uninitialized,
                SUB_BAD_AREA,
            ))?;
        self.flash.write(base, area).await.map_err(flash_err)
    }

    /// Position of the next free slot of a live half: after the last slot that is not blank.
    async fn find_next_slot(&mut self, log: &Log) -> Result<u32, PalError> {
        let mut next = 0;
        for slot in 0..self.slots(log.snap_len) {
            let at = self.slot_addr(log, slot);
            if !self.is_blank(at, self.entry_size()).await? {
                next = slot + 1;
            }
        }
        Ok(next)
    }

    /// Move the log of the current download to the other half with a snapshot.
    async fn compact(&mut self, old: Log, buf: &mut [u8; CHUNK]) -> Result<Log, PalError> {
        if self.header.is_none() {
            return Err(PalError::new(PalErrorKind::Uninitialized));
        }
        let half = 1 - old.half;
        self.erase_half(half).await?;
        let snap_len = old.blocks.div_ceil(8);
        let mut crc = !0u32;
        for chunk in 0..snap_len.div_ceil(CHUNK as u32) {
            let n = self.merged_chunk(&old, chunk, buf).await?;
            crc = crc32_update(crc, buf.get(..n).unwrap_or(&[]));
            let padded = round_up(n as u32, self.w()) as usize;
            if let Some(pad) = buf.get_mut(n..padded) {
                pad.fill(self.erase_value);
            }
            let at = self.base(half) + self.hdr_area() + chunk * CHUNK as u32;
            let data = buf.get(..padded).unwrap_or(&[]);
            self.flash.write(at, data).await.map_err(flash_err)?;
        }
        let seq = old.seq.wrapping_add(1);
        let header = self.header.as_ref().ok_or(PalErrorKind::Uninitialized)?;
        stage_header(buf, self.erase_value, header, seq, snap_len, !crc);
        self.write_header(half, buf).await?;
        Ok(Log {
            half,
            seq,
            snap_len,
            blocks: old.blocks,
            next_slot: 0,
        })
    }
}

impl<F: NorFlash> DownloadJournal for FlashJournal<F> {
    async fn load(
        &mut self,
        received: &mut dyn FnMut(u32),
    ) -> Result<Option<JournalHeader>, PalError> {
        self.header = None;
        self.log = None;
        let found = self.scan().await?;
        let live = found
            .into_iter()
            .enumerate()
            .filter_map(|(h, f)| f.map(|f| (h as u32, f)))
            .max_by_key(|(_, f)| f.seq);
        let Some((half, f)) = live else {
            return Ok(None);
        };
        let blocks = blocks_of(&f.header).unwrap_or(0);
        let mut log = Log {
            half,
            seq: f.seq,
            snap_len: f.snap_len,
            blocks,
            next_slot: 0,
        };
        log.next_slot = self.find_next_slot(&log).await?;
        let mut buf = [0u8; CHUNK];
        for chunk in 0..blocks.div_ceil(8).div_ceil(CHUNK as u32) {
            let n = self.merged_chunk(&log, chunk, &mut buf).await?;
            for (i, &byte) in buf.iter().take(n).enumerate() {
                for bit in 0..8 {
                    if byte & (1 << bit) != 0 {
                        let index = chunk * (CHUNK as u32) * 8 + i as u32 * 8 + bit;
                        if index < blocks {
                            received(index);
                        }
                    }
                }
            }
        }
        self.header = Some(f.header.clone());
        self.log = Some(log);
        Ok(Some(f.header))
    }

    async fn begin(&mut self, header: &JournalHeader) -> Result<(), PalError> {
        let too_big = PalError::with_sub(PalErrorKind::OutOfMemory, SUB_TOO_MANY_BLOCKS);
        let blocks = blocks_of(header).ok_or(too_big)?;
        if blocks > self.max_blocks() {
            return Err(too_big);
        }
        let seqs = self.scan_seqs().await?;
        let (mut live, mut max_seq) = (None, 0u32);
        for (h, seq) in seqs.iter().enumerate() {
            if let Some(seq) = *seq {
                if live.is_none() || seq > max_seq {
                    live = Some(h as u32);
                    max_seq = seq;
                }
            }
        }
        let half = live.map_or(0, |h| 1 - h);
        self.header = None;
        self.log = None;
        self.erase_half(half).await?;
        let seq = max_seq.wrapping_add(1);
        let mut buf = [0u8; CHUNK];
        stage_header(&mut buf, self.erase_value, header, seq, 0, 0);
        self.write_header(half, &buf).await?;
        self.header = Some(header.clone());
        self.log = Some(Log {
            half,
            seq,
            snap_len: 0,
            blocks,
            next_slot: 0,
        });
        Ok(())
    }

    async fn record_block(&mut self, index: u32) -> Result<(), PalError> {
        let mut log = self.log.ok_or(PalErrorKind::Uninitialized)?;
        if index >= log.blocks {
            return Err(PalError::with_sub(PalErrorKind::FileClose, SUB_BAD_INDEX));
        }
        // One buffer serves the compaction and the entry.
        let mut buf = [self.erase_value; CHUNK];
        if log.next_slot >= self.slots(log.snap_len) {
            log = self.compact(log, &mut buf).await?;
            self.log = Some(log);
        }
        let at = self.slot_addr(&log, log.next_slot);
        // The slot is spent even if the write fails: it may be partly programmed.
        self.log = Some(Log {
            next_slot: log.next_slot + 1,
            ..log
        });
        buf.fill(self.erase_value);
        let entry = buf
            .get_mut(..self.entry_size() as usize)
            .ok_or(PalError::with_sub(
                PalErrorKind::Uninitialized,
                SUB_BAD_AREA,
            ))?;
        put(entry, 0, &index.to_le_bytes());
        put(entry, 4, &entry_check(log.seq, index).to_le_bytes());
        self.flash.write(at, entry).await.map_err(flash_err)
    }

    async fn clear(&mut self) -> Result<(), PalError> {
        self.header = None;
        self.log = None;
        let seqs = self.scan_seqs().await?;
        // Retire the older header first, so a cut in between leaves the newer one.
        let [s0, s1] = seqs;
        let order: [u32; 2] = match (s0, s1) {
            (Some(a), Some(b)) if a > b => [1, 0],
            (Some(_), None) => [1, 0],
            _ => [0, 1],
        };
        let sector = F::ERASE_SIZE as u32;
        for half in order {
            let base = self.base(half);
            if !self.is_blank(base, self.hdr_area()).await? {
                self.flash
                    .erase(base, base + sector)
                    .await
                    .map_err(flash_err)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[cfg(feature = "sim")]
mod tests {
    extern crate std;
    use super::*;
    use crate::sim::{block_on, SimConfig, SimDevice, SimFlash};
    use proptest::prelude::*;
    use std::collections::BTreeSet;
    use std::{format, vec, vec::Vec};

    type Dev = SimDevice<Vec<u8>>;
    type J<'d, const W: usize, const E: usize> = FlashJournal<SimFlash<'d, Vec<u8>, W, E>>;

    fn hdr(id: &str, file_size: u32, block_size: u32, digest: u8) -> JournalHeader {
        JournalHeader {
            job_id: heapless::String::try_from(id).unwrap(),
            file_index: digest % 3,
            file_size,
            block_size,
            signature_digest: [digest; 32],
        }
    }

    /// A strict (ECC-like) device: programming a unit twice fails, so the journal's
    /// never-reprogram rule is checked on every test.
    fn device(w: usize, e: usize, sectors: usize, ev: u8) -> Dev {
        let d = SimDevice::new(
            vec![0u8; e * sectors],
            SimConfig::new(w, e).erase_value(ev).strict(true),
        )
        .unwrap();
        d.erase_all().unwrap();
        d
    }

    fn journal<const W: usize, const E: usize>(d: &Dev, ev: u8) -> J<'_, W, E> {
        let len = d.len().unwrap();
        FlashJournal::new(d.view::<W, E>(0, len).unwrap(), 0, len, ev).unwrap()
    }

    fn load<F: NorFlash>(j: &mut FlashJournal<F>) -> (Option<JournalHeader>, Vec<u32>) {
        let mut got = Vec::new();
        let h = block_on(j.load(&mut |i| got.push(i))).unwrap();
        (h, got)
    }

    fn round_trip<const W: usize, const E: usize>(sectors: usize, ev: u8, blocks: u32) {
        let d = device(W, E, sectors, ev);
        let h = hdr("job-42", blocks * 1024 - 100, 1024, 7);
        let mut j = journal::<W, E>(&d, ev);
        assert_eq!(load(&mut j), (None, vec![]));
        block_on(j.begin(&h)).unwrap();
        let mut want = BTreeSet::new();
        // A scrambled order with duplicates, enough for several compactions.
        for k in 0..(blocks * 2) {
            let i = (k * 37 + 11) % blocks;
            block_on(j.record_block(i)).unwrap();
            want.insert(i);
        }
        let mut again = journal::<W, E>(&d, ev);
        let (got_h, got) = load(&mut again);
        assert_eq!(got_h, Some(h.clone()));
        assert_eq!(got, want.iter().copied().collect::<Vec<_>>());
        // The reloaded journal continues where the first left off.
        block_on(again.record_block(blocks - 1)).unwrap();
        assert_eq!(
            load(&mut journal::<W, E>(&d, ev)).1.len(),
            want.len().max(1)
        );
        block_on(again.clear()).unwrap();
        assert_eq!(load(&mut journal::<W, E>(&d, ev)), (None, vec![]));
    }

    #[test]
    fn round_trip_small_units() {
        round_trip::<1, 128>(4, 0xFF, 40);
        round_trip::<4, 256>(2, 0x00, 60);
    }

    #[test]
    fn round_trip_16_byte_units() {
        round_trip::<16, 256>(2, 0xFF, 100);
        round_trip::<16, 4096>(2, 0x00, 4096);
    }

    #[test]
    fn round_trip_512_byte_rows() {
        round_trip::<512, 512>(6, 0x00, 30);
        round_trip::<512, 512>(8, 0xFF, 5000);
    }

    #[test]
    fn cost_for_4096_blocks_matches_the_docs() {
        let d = device(16, 4096, 2, 0xFF);
        let mut j = journal::<16, 4096>(&d, 0xFF);
        block_on(j.begin(&hdr("j", 4096 * 1024, 1024, 1))).unwrap();
        assert_eq!(j.free_slots(), Some(248)); // (4096 - 128) / 16 before the first compaction
        for i in 0..249 {
            block_on(j.record_block(i)).unwrap();
        }
        assert_eq!(j.free_slots(), Some(215)); // (4096 - 128 - 512) / 16 - 1 after it
        d.reset_stats().unwrap();
        for i in 249..4096 {
            block_on(j.record_block(i)).unwrap();
        }
        let s = d.stats().unwrap();
        assert_eq!(s.erases, 17, "{s:?}"); // 18 compactions in all, 1 sector erase each
        assert!(j.max_blocks() >= 4096 * 7);
        // Own state, less the flash driver: at most 176 bytes on a 64-bit host.
        let own = core::mem::size_of::<J<'_, 16, 4096>>()
            - core::mem::size_of::<SimFlash<'_, Vec<u8>, 16, 4096>>();
        assert!(own <= 176, "{own}");
        let rec = core::mem::size_of_val(&j.record_block(0));
        let mut sink = |_| {};
        let ld = core::mem::size_of_val(&j.load(&mut sink));
        std::println!("journal state {own} B, record_block future {rec} B, load future {ld} B");
    }

    #[test]
    fn bad_areas_and_arguments() {
        let d = device(16, 256, 4, 0xFF);
        let bad: Result<(), PalError> = Err(PalError::with_sub(
            PalErrorKind::Uninitialized,
            SUB_BAD_AREA,
        ));
        let v = || d.view::<16, 256>(0, 1024).unwrap();
        assert_eq!(FlashJournal::new(v(), 0, 256, 0xFF).err(), bad.err());
        assert_eq!(FlashJournal::new(v(), 0, 768, 0xFF).err(), bad.err());
        assert_eq!(FlashJournal::new(v(), 100, 512, 0xFF).err(), bad.err());
        assert_eq!(FlashJournal::new(v(), 512, 1024, 0xFF).err(), bad.err());
        let row = device(512, 512, 2, 0xFF);
        let rv = row.view::<512, 512>(0, 1024).unwrap();
        assert_eq!(FlashJournal::new(rv, 0, 1024, 0xFF).err(), bad.err()); // header only
        let mut j = FlashJournal::new(v(), 0, 512, 0xFF).unwrap();
        assert_eq!(
            block_on(j.record_block(0)),
            Err(PalError::new(PalErrorKind::Uninitialized))
        );
        let too_big = Err(PalError::with_sub(
            PalErrorKind::OutOfMemory,
            SUB_TOO_MANY_BLOCKS,
        ));
        assert_eq!(block_on(j.begin(&hdr("j", 10, 0, 1))), too_big);
        let max = j.max_blocks();
        assert_eq!(block_on(j.begin(&hdr("j", max + 1, 1, 1))), too_big);
        block_on(j.begin(&hdr("j", max, 1, 1))).unwrap();
        assert_eq!(
            block_on(j.record_block(max)),
            Err(PalError::with_sub(PalErrorKind::FileClose, SUB_BAD_INDEX))
        );
        // A long job id (64 bytes, the AWS maximum) round-trips.
        let long = "x".repeat(64);
        block_on(j.begin(&hdr(&long, 5000, 1000, 9))).unwrap();
        block_on(j.record_block(4)).unwrap();
        let mut j2 = FlashJournal::new(v(), 0, 512, 0xFF).unwrap();
        assert_eq!(load(&mut j2), (Some(hdr(&long, 5000, 1000, 9)), vec![4]));
    }

    #[test]
    fn corrupt_headers_and_entries_load_as_absent() {
        let d = device(16, 256, 2, 0xFF);
        let mut j = journal::<16, 256>(&d, 0xFF);
        block_on(j.begin(&hdr("a", 10_000, 1000, 1))).unwrap();
        for i in [1, 3, 5] {
            block_on(j.record_block(i)).unwrap();
        }
        // Flip a bit of the second entry (block 3): it is skipped, the others stay.
        d.modify(|m| m[128 + 16 + 2] ^= 0x01).unwrap();
        assert_eq!(load(&mut journal::<16, 256>(&d, 0xFF)).1, vec![1, 5]);
        // Flip a bit of the header: the journal is empty.
        d.modify(|m| m[30] ^= 0x01).unwrap();
        assert_eq!(load(&mut journal::<16, 256>(&d, 0xFF)), (None, vec![]));
    }

    #[test]
    fn a_journal_at_an_offset_keeps_to_its_area() {
        let d = device(16, 256, 6, 0xFF);
        d.modify(|m| m.fill(0x5A)).unwrap();
        let view = d.view::<16, 256>(256, 1280).unwrap();
        let mut j = FlashJournal::new(view.clone(), 256, 512, 0xFF).unwrap();
        block_on(async {
            // Erased-looking garbage is no journal; begin erases what it needs.
            assert_eq!(j.load(&mut |_| {}).await, Ok(None));
            j.begin(&hdr("off", 2000, 100, 5)).await.unwrap();
            for i in 0..20 {
                j.record_block(i).await.unwrap(); // compacts twice
            }
            j.clear().await.unwrap();
            j.begin(&hdr("off", 2000, 100, 6)).await.unwrap();
            j.record_block(19).await.unwrap();
        });
        let mut again = FlashJournal::new(view, 256, 512, 0xFF).unwrap();
        assert_eq!(load(&mut again), (Some(hdr("off", 2000, 100, 6)), vec![19]));
        let mem = d.inspect(|m| m.to_vec()).unwrap();
        assert!(mem[..512].iter().all(|&b| b == 0x5A), "before the area");
        assert!(mem[1024..].iter().all(|&b| b == 0x5A), "after the area");
    }

    #[derive(Debug, Clone)]
    enum Op {
        Begin(JournalHeader),
        Record(u32),
        Clear,
    }

    type Model = (Option<JournalHeader>, BTreeSet<u32>);

    fn apply(m: &Model, op: &Op) -> Model {
        match op {
            Op::Begin(h) => (Some(h.clone()), BTreeSet::new()),
            Op::Record(i) => {
                let mut s = m.1.clone();
                s.insert(*i);
                (m.0.clone(), s)
            }
            Op::Clear => (None, BTreeSet::new()),
        }
    }

    fn run<F: NorFlash>(j: &mut FlashJournal<F>, op: &Op) -> Result<(), PalError> {
        block_on(match op {
            Op::Begin(h) => return block_on(j.begin(h)),
            Op::Record(i) => j.record_block(*i),
            Op::Clear => return block_on(j.clear()),
        })
    }

    /// What a load may show after a cut during `op`, which started from `before`: for a
    /// record, the same header with the blocks recorded before and maybe the one in progress;
    /// for a begin or a clear, exactly the state before or exactly the state after.
    fn check_cut(before: &Model, op: &Op, got: &(Option<JournalHeader>, Vec<u32>)) {
        let set: BTreeSet<u32> = got.1.iter().copied().collect();
        assert_eq!(set.len(), got.1.len(), "a block reported twice");
        let after = apply(before, op);
        match op {
            Op::Record(_) => {
                assert_eq!(got.0, before.0, "wrong header after a cut during {op:?}");
                assert!(before.1.is_subset(&set), "lost a block: {before:?} {got:?}");
                assert!(set.is_subset(&after.1), "invented a block: {op:?} {got:?}");
            }
            Op::Begin(_) | Op::Clear => {
                let as_before = got.0 == before.0 && set == before.1;
                let as_after = got.0 == after.0 && set == after.1;
                assert!(
                    as_before || as_after,
                    "cut during {op:?}: {got:?}, before {before:?}"
                );
            }
        }
    }

    /// Play `script` with a cut at every mutating operation (and a few tear seeds each),
    /// then check what loads, and that the journal goes on working after the reboot.
    fn cut_everywhere<const W: usize, const E: usize>(sectors: usize, ev: u8, script: &[Op]) {
        let total = {
            let d = device(W, E, sectors, ev);
            let mut j = journal::<W, E>(&d, ev);
            for op in script {
                run(&mut j, op).unwrap();
            }
            d.stats().unwrap().mutating()
        };
        assert!(total > 10);
        for cut in 1..=total {
            for seed in 0..3 {
                let d = device(W, E, sectors, ev);
                let mut j = journal::<W, E>(&d, ev);
                d.cut_power_at(cut, seed * 1000 + cut).unwrap();
                let mut model: Model = (None, BTreeSet::new());
                let mut torn = None;
                for op in script {
                    match run(&mut j, op) {
                        Ok(()) => model = apply(&model, op),
                        Err(e) => {
                            assert_eq!(e, PalError::with_sub(PalErrorKind::FileClose, 3));
                            torn = Some(op.clone());
                            break;
                        }
                    }
                }
                let op = torn.unwrap_or_else(|| panic!("cut {cut} hit no operation"));
                d.power_on().unwrap();
                let mut j = journal::<W, E>(&d, ev);
                let got = load(&mut j);
                check_cut(&model, &op, &got);
                // After the reboot the journal keeps working from what it loaded.
                if let Some(h) = got.0.clone() {
                    let blocks = h.file_size.div_ceil(h.block_size);
                    let fresh = (0..blocks).find(|i| !got.1.contains(i));
                    let mut want: BTreeSet<u32> = got.1.iter().copied().collect();
                    for i in fresh.into_iter().chain(got.1.first().copied()) {
                        block_on(j.record_block(i)).unwrap();
                        want.insert(i);
                    }
                    let again = load(&mut journal::<W, E>(&d, ev));
                    assert_eq!(again.0, Some(h));
                    assert_eq!(again.1, want.into_iter().collect::<Vec<_>>());
                }
            }
        }
    }

    fn script(blocks: u32, records: u32) -> Vec<Op> {
        let mut s = vec![Op::Begin(hdr("first", blocks * 100, 100, 1))];
        s.extend((0..records).map(|k| Op::Record((k * 7 + 3) % blocks)));
        s.push(Op::Clear);
        s.push(Op::Begin(hdr("second", blocks * 100 - 1, 100, 2)));
        s.extend((0..records / 2).map(|k| Op::Record(k % blocks)));
        s.push(Op::Begin(hdr("third", 5000, 1000, 3)));
        s.push(Op::Record(4));
        s.push(Op::Clear);
        s
    }

    #[test]
    fn power_cut_at_every_operation_16_byte_units() {
        cut_everywhere::<16, 256>(2, 0xFF, &script(100, 24));
    }

    #[test]
    fn power_cut_at_every_operation_byte_units_erase_00() {
        cut_everywhere::<1, 128>(4, 0x00, &script(60, 40));
    }

    #[test]
    fn power_cut_at_every_operation_512_byte_rows() {
        cut_everywhere::<512, 512>(6, 0xFF, &script(40, 6));
    }

    fn op_strategy() -> impl Strategy<Value = (u8, u32)> {
        (0u8..10, 0u32..64)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Random sequences of begin / record / clear / reboot with one random power cut:
        /// every load agrees with a model of what returned Ok.
        #[test]
        fn random_sequences_match_the_model(
            ops in proptest::collection::vec(op_strategy(), 1..80),
            cut in 0u64..120,
            seed in any::<u64>(),
        ) {
            let d = device(16, 256, 2, 0xFF);
            let mut j = journal::<16, 256>(&d, 0xFF);
            if cut > 0 {
                d.cut_power_at(cut, seed).unwrap();
            }
            let headers = [hdr("a", 6400, 100, 1), hdr("b", 3000, 100, 2), hdr("c", 640, 10, 3)];
            let mut model: Model = (None, BTreeSet::new());
            for (kind, arg) in ops {
                let op = match kind {
                    0 => Op::Begin(headers[(arg % 3) as usize].clone()),
                    1 => Op::Clear,
                    2 => {
                        // Reboot without a cut: the load must match the model exactly.
                        let got = load(&mut j);
                        prop_assert_eq!(&got.0, &model.0);
                        prop_assert_eq!(got.1, model.1.iter().copied().collect::<Vec<_>>());
                        continue;
                    }
                    _ => Op::Record(arg),
                };
                let blocks = model.0.as_ref().map_or(0, |h| h.file_size.div_ceil(h.block_size));
                if let Op::Record(i) = op {
                    if model.0.is_none() || i >= blocks {
                        prop_assert!(run(&mut j, &op).is_err());
                        continue;
                    }
                }
                match run(&mut j, &op) {
                    Ok(()) => model = apply(&model, &op),
                    Err(_) => {
                        d.power_on().unwrap();
                        j = journal::<16, 256>(&d, 0xFF);
                        let got = load(&mut j);
                        check_cut(&model, &op, &got);
                        model = (got.0, got.1.into_iter().collect());
                    }
                }
            }
            let got = load(&mut journal::<16, 256>(&d, 0xFF));
            if d.is_powered().unwrap() {
                prop_assert_eq!(&got.0, &model.0);
                prop_assert_eq!(got.1, model.1.iter().copied().collect::<Vec<_>>());
            }
            let _ = format!("{model:?}");
        }
    }
}
