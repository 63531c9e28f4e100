//! Criterion benchmarks of the PAL helpers over the RAM flash simulator (BENCHMARKS.md):
//! `NorFlashImageStorage::write`, `verify_stored_image` (SHA-256 + ECDSA P-256) and
//! `FlashJournal::record_block`.
//!
//! `cargo bench -p ota-pal-traits --features sim --bench pal`. Kept short (few samples, short
//! windows) so it runs in well under a minute on 2 cores.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
// `criterion_group!` defines an undocumented `pub fn`.
#![allow(missing_docs)]

mod fixtures;

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use fixtures::{Inputs, OPS};

fn pal(c: &mut Criterion) {
    let mut inputs = Inputs::new();
    let mut groups: Vec<&str> = OPS
        .iter()
        .map(|op| op.name.split('/').next().unwrap())
        .collect();
    groups.dedup();
    for group_name in groups {
        let mut group = c.benchmark_group(group_name);
        for op in OPS.iter().filter(|op| op.name.starts_with(group_name)) {
            if op.bytes > 0 {
                group.throughput(Throughput::Bytes(op.bytes));
            } else {
                group.throughput(Throughput::Elements(op.units.into()));
            }
            let (_, name) = op.name.split_once('/').unwrap();
            group.bench_function(name, |b| b.iter(|| (op.run)(&mut inputs)));
        }
        group.finish();
    }
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = pal
}
criterion_main!(benches);
