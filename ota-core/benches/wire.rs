//! Criterion benchmarks of the wire layer (BENCHMARKS.md): job parse, signature decode,
//! DataBlock decode, GetStream request encode, block bitmap, status payloads.
//!
//! `cargo bench -p ota-core --bench wire` (add a filter such as `data_block` to run a group).
//! Kept short (few samples, short windows) so the whole suite runs in a few minutes on 2 cores.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
// `criterion_group!` defines an undocumented `pub fn`.
#![allow(missing_docs)]

mod fixtures;

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use fixtures::{Inputs, OPS};

fn wire(c: &mut Criterion) {
    let inputs = Inputs::new();
    let mut groups: Vec<&str> = OPS
        .iter()
        .map(|op| op.name.split('/').next().unwrap())
        .collect();
    groups.dedup();
    for group_name in groups {
        let mut group = c.benchmark_group(group_name);
        for op in OPS.iter().filter(|op| op.name.starts_with(group_name)) {
            // Bytes per second for the job parser (it scans every byte); elements for the rest
            // (a DataBlock decode borrows its payload, so bytes per second would say little).
            let bytes = match group_name {
                "job_parse" => Some(match op.name {
                    "job_parse/job_doc_a" => inputs.job_a.len(),
                    "job_parse/cloud_with_nulls" => inputs.job_cloud.len(),
                    _ => inputs.job_four.len(),
                }),
                _ => None,
            };
            match bytes {
                Some(n) => group.throughput(Throughput::Bytes(n as u64)),
                None => group.throughput(Throughput::Elements(op.units.into())),
            };
            let (_, name) = op.name.split_once('/').unwrap();
            group.bench_function(name, |b| b.iter(|| (op.run)(black_box(&inputs))));
        }
        group.finish();
    }
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
}

criterion_group! {
    name = benches;
    config = config();
    targets = wire
}
criterion_main!(benches);
