//! Crashes whenever the hunted kernel ($MDFUZZ_KERNEL, default v6.7) hangs, corrupts or breaks
//! an invariant: each crash is a corpus candidate (`mdfuzz import ARTIFACT`).
//!
//! $MDFUZZ_CLASS (e.g. `hang H5`, `corruption`) crashes only on that class (the benchmark's
//! time-to-first-find). $MDFUZZ_FEEDBACK=lifecycle feeds each run's transitions of coarse
//! lifecycle state (recovery flags, suspended, read-only; `World::state_hashes`) to libFuzzer
//! as extra counters, on top of the code coverage.
#![no_main]
use libfuzzer_sys::fuzz_target;
use md_oracle::campaign::{check, Target};
use md_oracle::scenario::Expect;
use std::sync::OnceLock;

struct Hunt {
    kernel: md_model::Kernel,
    class: Option<Expect>,
    feedback: bool,
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
        let feedback = match std::env::var("MDFUZZ_FEEDBACK").as_deref() {
            Ok("lifecycle") => true,
            Ok("") | Ok("none") | Err(_) => false,
            Ok(other) => panic!("MDFUZZ_FEEDBACK: expected `lifecycle` or `none`, got `{other}`"),
        };
        Hunt {
            kernel,
            class,
            feedback,
        }
    })
}

const COUNTERS: usize = 1 << 12;

/// libFuzzer collects every byte of this section as an extra coverage counter (and clears
/// them before each input).
#[used]
#[link_section = "__libfuzzer_extra_counters"]
static mut LIFECYCLE: [u8; COUNTERS] = [0; COUNTERS];

fn feed(hashes: &[u32]) {
    let mut prev = 0u32;
    for &h in hashes {
        let i = (prev.rotate_left(7) ^ h).wrapping_mul(0x9e37_79b1) as usize % COUNTERS;
        // SAFETY: libFuzzer runs inputs on one thread; nothing else writes the array.
        unsafe {
            let p = std::ptr::addr_of_mut!(LIFECYCLE).cast::<u8>().add(i);
            p.write_volatile(p.read_volatile().saturating_add(1));
        }
        prev = h;
    }
}

fuzz_target!(|data: &[u8]| {
    let h = hunt();
    let s = md_oracle::gen::decode_input(data);
    let (outs, failure) = check(Target::Hunt, &h.kernel, &s);
    if h.feedback {
        outs.iter().for_each(|o| feed(&o.state_hashes));
    }
    if let Some(f) = failure {
        if h.class.as_ref().is_none_or(|c| f.outcome.matches(c)) {
            panic!("{}\n{}\n{s}", f.why, f.outcome.detail);
        }
    }
});
