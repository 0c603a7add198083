//! Every input must pass under v6.7+v2 and v6.9 (a pass may carry the expected IO error or
//! requeue; known model findings are named, not failures). Inputs: scenario text or bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use md_oracle::campaign::{check, Target};

fuzz_target!(|data: &[u8]| {
    let s = md_oracle::gen::decode_input(data);
    let hunted = md_model::Kernel::parse("v6.7").unwrap();
    if let (_, Some(f)) = check(Target::Postfix, &hunted, &s) {
        panic!("{}\n{}\n{s}", f.why, f.outcome.detail);
    }
});
