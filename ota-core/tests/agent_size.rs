//! RAM figures of the agent (documented on `Agent` and in the README).
#![allow(clippy::unwrap_used)]

use ota_core::agent::Agent;

#[test]
fn agent_size_for_the_default_parameters() {
    let default = core::mem::size_of::<Agent>();
    let mqtt_only_1024_blocks = core::mem::size_of::<Agent<128, 0>>();
    println!("size_of::<Agent>() = {default} bytes");
    println!("size_of::<Agent<128, 0>>() = {mqtt_only_1024_blocks} bytes");
    assert!(default <= 6 * 1024, "{default}");
    assert!(
        mqtt_only_1024_blocks <= 3 * 1024 + 256,
        "{mqtt_only_1024_blocks}"
    );
}
