//! `agent-min-baseline`: `agent-min`'s start-up, clock, `block_on`, report and exit without the
//! agent. Subtract it from `agent-min` for the agent and driver alone.
#![no_std]
#![no_main]

use agent_min::{run_baseline, start};
use cortex_m_rt::entry;

const NAME: &str = "agent-min-baseline";

#[entry]
fn main() -> ! {
    start(NAME);
    run_baseline(NAME)
}
