//! The campaign properties as bolero harnesses: under plain `cargo test` bolero feeds random
//! byte strings for a bounded budget (set BOLERO_RANDOM_ITERATIONS; ci/test.sh does), under
//! `cargo bolero test` any engine drives them. Inputs decode like fuzz inputs.

use md_model::Kernel;
use md_oracle::campaign::{check, Target};
use md_oracle::gen::decode_input;

fn property(target: Target) {
    let hunted = Kernel::parse("v6.7").unwrap();
    bolero::check!()
        .with_type::<Vec<u8>>()
        .for_each(|data: &Vec<u8>| {
            let s = decode_input(data);
            if let (_, Some(f)) = check(target, &hunted, &s) {
                panic!("{}\n{}\n{s}", f.why, f.outcome.detail);
            }
        });
}

#[test]
fn postfix_kernels_pass() {
    property(Target::Postfix);
}

#[test]
fn fixes_change_only_what_they_may() {
    property(Target::Differential);
}
