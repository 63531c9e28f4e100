//! `agent-min`: ota-core's agent and driver with no-op board parts (see the library docs).
#![no_std]
#![no_main]

use agent_min::{run_agent, start, NullStorage, NullVerifier};
use cortex_m_rt::entry;

const NAME: &str = "agent-min";

#[entry]
fn main() -> ! {
    start(NAME);
    run_agent(NAME, NullStorage, NullVerifier)
}
