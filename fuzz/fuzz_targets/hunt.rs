//! Crashes whenever the hunted kernel ($MDFUZZ_KERNEL, default v6.7) hangs, corrupts or breaks
//! an invariant: each crash is a corpus candidate (`mdfuzz import ARTIFACT`).
//!
//! $MDFUZZ_CLASS (e.g. `hang H5`, `corruption`) crashes only on that class (the benchmark's
//! time-to-first-find).
#![no_main]
use libfuzzer_sys::fuzz_target;
use md_oracle::campaign::{check, Target};
use md_oracle::scenario::Expect;
use std::sync::OnceLock;

struct Hunt {
    kernel: md_model::Kernel,
    class: Option<Expect>,
}

fn hunt() -> &'static Hunt {
    static H: OnceLock<Hunt> = OnceLock::new();
    H.get_or_init(|| {
        let name = std::env::var("MDFUZZ_KERNEL").unwrap_or_else(|_| "v6.7".into());
        let kernel =
            md_model::Kernel::parse(&name).unwrap_or_else(|e| panic!("MDFUZZ_KERNEL: {e}"));
        let class = std::env::var("MDFUZZ_CLASS").ok().map(|c| {
            Expect::parse_verdict(&name, &c).unwrap_or_else(|e| panic!("MDFUZZ_CLASS: {e}"))
        });
        Hunt { kernel, class }
    })
}

fuzz_target!(|data: &[u8]| {
    let h = hunt();
    let s = md_oracle::gen::decode_input(data);
    if let (_, Some(f)) = check(Target::Hunt, &h.kernel, &s) {
        if h.class.as_ref().is_none_or(|c| f.outcome.matches(c)) {
            panic!("{}\n{}\n{s}", f.why, f.outcome.detail);
        }
    }
});
