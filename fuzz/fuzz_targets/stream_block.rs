//! Fuzzes the decoders of what the MQTT streams service sends (spec §3.3, §3.4): DataBlock
//! decode + validation and StreamRejected decode. Arbitrary bytes must never panic, and a
//! decoded block must be self-consistent and borrow its payload from the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ota_core::wire::cbor::{DataBlock, StreamRejected};

fuzz_target!(|data: &[u8]| {
    if let Ok(block) = DataBlock::decode(data) {
        assert_eq!(block.payload.len(), block.block_size as usize);
        let start = data.as_ptr() as usize;
        let p = block.payload.as_ptr() as usize;
        assert!(p >= start && p + block.payload.len() <= start + data.len());
        // The reference trace's file, and a file in which this block is exactly the last one.
        let _ = block.validate(0, 10240, 4096);
        let _ = block.validate(block.file_id, u32::MAX, block.block_size);
        let _ = block.validate(block.file_id, block.block_size, 0);
        if block.block_size != 0 {
            if let Some(size) = block
                .block_index
                .checked_mul(block.block_size)
                .and_then(|o| o.checked_add(block.block_size))
            {
                assert_eq!(
                    block.validate(block.file_id, size, block.block_size),
                    Ok(())
                );
            }
        }
        let _ = block.file_offset(4096);
    }
    if let Ok(rejected) = StreamRejected::decode(data) {
        let _ = rejected.code.as_str();
    }
});
