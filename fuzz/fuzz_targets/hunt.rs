//! Crashes whenever the hunted kernel ($MDFUZZ_KERNEL, default v6.7) hangs, corrupts or breaks
//! an invariant: each crash is a corpus candidate (`mdfuzz import ARTIFACT`).
#![no_main]
use libfuzzer_sys::fuzz_target;
use md_oracle::campaign::{check, Target};
use std::sync::OnceLock;

fn hunted() -> &'static md_model::Kernel {
    static K: OnceLock<md_model::Kernel> = OnceLock::new();
    K.get_or_init(|| {
        let name = std::env::var("MDFUZZ_KERNEL").unwrap_or_else(|_| "v6.7".into());
        md_model::Kernel::parse(&name).unwrap_or_else(|e| panic!("MDFUZZ_KERNEL: {e}"))
    })
}

fuzz_target!(|data: &[u8]| {
    let s = md_oracle::gen::decode_input(data);
    if let (_, Some(f)) = check(Target::Hunt, hunted(), &s) {
        panic!("{}\n{}\n{s}", f.why, f.outcome.detail);
    }
});
