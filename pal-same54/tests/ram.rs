//! RAM cost of the PAL types and of their largest futures, on the simulated flash view (the
//! README subtracts the view itself). `cargo test -p pal-same54 --all-features --test ram --
//! --nocapture` prints the figures.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use common::*;
use core::mem::size_of_val;
use ota_pal_traits::{BootControl, ImageStorage};
use pal_same54::sim::SimNvm;
use pal_same54::Config;

#[test]
fn ram_cost() {
    let board = factory_board();
    let (mut s, mut b) = pal(&board, Config::default());
    let view = core::mem::size_of::<SimNvm<'_, Vec<u8>>>();
    let f = file(100);
    let data = [0u8; 16];
    let mut buf = [0u8; 16];
    let storage = size_of_val(&s) - view;
    let boot = size_of_val(&b) - view;
    let prepare = size_of_val(&s.prepare(&f));
    let write = size_of_val(&s.write(0, &data));
    let read = size_of_val(&s.read(0, &mut buf));
    let trial = size_of_val(&b.request_trial_boot(&f));
    let confirm = size_of_val(&b.confirm());
    let state = size_of_val(&b.platform_state());
    let sizes = [
        ("Same54Storage", storage),
        ("Same54Boot", boot),
        ("prepare future", prepare),
        ("write future", write),
        ("read future", read),
        ("request_trial_boot future", trial),
        ("confirm future", confirm),
        ("platform_state future", state),
    ];
    for (name, n) in sizes {
        println!("ram: {name}: {n} bytes (x86_64, flash view excluded for the types)");
    }
    assert!(sizes[0].1 <= 64);
    assert!(sizes[1].1 <= 300);
}
