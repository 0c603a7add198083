//! v6.7, v6.7+v2 and v6.9 on the same scenario and schedule: a fixed kernel may only turn a
//! hang (or the M1 violation) into a pass (architecture.md §4).
#![no_main]
use libfuzzer_sys::fuzz_target;
use md_oracle::campaign::{check, Target};

fuzz_target!(|data: &[u8]| {
    let s = md_oracle::gen::decode_input(data);
    let hunted = md_model::Kernel::parse("v6.7").unwrap();
    if let (_, Some(f)) = check(Target::Differential, &hunted, &s) {
        panic!("{}\n{}\n{s}", f.why, f.outcome.detail);
    }
});
