//! Runs one wire-layer operation a given number of times, for counting instructions under
//! valgrind (`scripts/bench-instructions.sh`): the count of a run with `n2` repetitions minus
//! that of a run with `n1`, divided by `n2 - n1`, is the cost of one operation, free of
//! process start-up and input set-up.
//!
//! ```text
//! wire_instructions --list          name, units, unit and description of each operation
//! wire_instructions <name> <count>  run <name> <count> times
//! ```
//!
//! Run by `cargo bench` with no operation, it only lists the operations.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod fixtures;

use std::hint::black_box;
use std::process::ExitCode;

use fixtures::{Inputs, OPS};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--") || a == "--list")
        .collect();
    let (name, count) = match args.as_slice() {
        [name, count] if name != "--list" => (name.as_str(), count.parse::<u64>()),
        _ => {
            for op in OPS {
                println!("{}\t{}\t{}\t{}", op.name, op.units, op.unit, op.what);
            }
            return ExitCode::SUCCESS;
        }
    };
    let (Some(op), Ok(count)) = (OPS.iter().find(|op| op.name == name), count) else {
        eprintln!("usage: wire_instructions --list | <operation> <count>");
        return ExitCode::from(2);
    };
    let inputs = Inputs::new();
    let mut sum = 0usize;
    for _ in 0..count {
        sum = sum.wrapping_add((op.run)(black_box(&inputs)));
    }
    black_box(sum);
    ExitCode::SUCCESS
}
