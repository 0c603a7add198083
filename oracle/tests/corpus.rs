//! Every corpus scenario gets the verdict its `expect` lines name under every kernel they
//! name, and the verdict table per scenario matches its insta snapshot (corpus/snapshots).

use md_model::Kernel;
use md_oracle::{run, text, RunOptions};
use std::path::PathBuf;

fn corpus() -> Vec<(String, md_oracle::Scenario)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../corpus");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "scn"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            let s = text::parse(&std::fs::read_to_string(&p).unwrap())
                .unwrap_or_else(|e| panic!("{}:{e}", p.display()));
            (name, s)
        })
        .collect()
}

#[test]
fn every_corpus_scenario_gets_its_expected_verdicts() {
    let all = corpus();
    assert!(all.len() >= 15, "the corpus lost scenarios: {}", all.len());
    let mut failures = Vec::new();
    for (name, s) in &all {
        assert!(!s.expects.is_empty(), "{name} has no expect lines");
        let mut table = String::new();
        for e in &s.expects {
            let k = Kernel::parse(&e.kernel).unwrap();
            let o = run(s, &k, &RunOptions::default())
                .unwrap_or_else(|err| panic!("{name} under {k}: {err}"));
            table.push_str(&format!("{:<22} {}\n", e.kernel, o.short()));
            if !o.matches(e) {
                failures.push(format!(
                    "{name} under {}: got {}, expected {} {}",
                    e.kernel,
                    o.short(),
                    e.verdict,
                    e.token.clone().unwrap_or_default()
                ));
            }
        }
        insta::with_settings!({ snapshot_path => "../../corpus/snapshots", prepend_module_to_snapshot => false, omit_expression => true }, {
            insta::assert_snapshot!(name.as_str(), table);
        });
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The pre-fix kernel reproduces each mechanism the corpus is named for, blocked where the
/// kernel was.
#[test]
fn v6_7_hangs_where_the_kernel_hung() {
    let v67 = Kernel::parse("v6.7").unwrap();
    let cases = [
        (
            "h1-suspended-array-never-reaped.integrity-caching",
            "H1",
            "dm_remove > raid_dtr > md_stop > __md_stop_writes > stop_sync_thread",
        ),
        (
            "h3-wait-instance-never-sets-done.lvconvert-raid-reshape",
            "H3",
            "raid_postsuspend > md_stop_writes > __md_stop_writes > stop_sync_thread",
        ),
        (
            "h5-wait-instance-read-then-suspend.lvconvert-raid-reshape",
            "H5",
            "raid_map > md_handle_request > raid5_make_request",
        ),
    ];
    let all = corpus();
    for (name, class, stack) in cases {
        let s = &all
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("{name} missing"))
            .1;
        let o = run(s, &v67, &RunOptions::default()).unwrap();
        assert_eq!(o.short(), format!("hang {class}"), "{name}");
        assert!(
            o.detail.contains(stack),
            "{name}: blocked where? {}",
            o.detail
        );
    }
    let h5 = &all
        .iter()
        .find(|(n, _)| n == "h5-wait-instance-read-then-suspend.lvconvert-raid-reshape")
        .unwrap()
        .1;
    let o = run(h5, &v67, &RunOptions::default()).unwrap();
    assert!(
        // __dm_suspend's synchronize_srcu: the bio holds the live table while raid_map sleeps.
        o.detail
            .contains("synchronize_srcu(io_barrier): waiting for table readers [lv.wait] in dm_suspend > __dm_suspend"),
        "{}",
        o.detail
    );
}

#[test]
fn the_same_run_twice_gives_byte_identical_traces() {
    let opts = RunOptions {
        trace: true,
        ..RunOptions::default()
    };
    for (name, s) in corpus().iter().take(6) {
        for k in ["v6.7", "v6.9"] {
            let k = Kernel::parse(k).unwrap();
            let a = run(s, &k, &opts).unwrap();
            let b = run(s, &k, &opts).unwrap();
            assert!(!a.trace.is_empty());
            assert_eq!(a.trace, b.trace, "{name} under {k}");
            assert_eq!(a.short(), b.short());
        }
    }
}

/// Sabotage of the data (a flipped slot) must show up as a corruption naming the block: the
/// shadow comparison can fail.
#[test]
fn a_broken_data_path_is_reported_as_corruption() {
    let s = text::parse(
        "array lv dm raid5_ls disks=4 chunk=2 dev=16\nlvm: lvchange -ay lv\nlvm: fsck lv\n",
    )
    .unwrap();
    let k = Kernel::parse("v6.9").unwrap();
    let clean = run(&s, &k, &RunOptions::default()).unwrap();
    assert_eq!(clean.short(), "pass");
    let broken = run(
        &s,
        &k,
        &RunOptions {
            sabotage_block: Some(13),
            ..RunOptions::default()
        },
    )
    .unwrap();
    assert_eq!(broken.verdict, md_oracle::VerdictKind::Corruption);
    assert!(broken.detail.contains("lv block 13:"), "{}", broken.detail);
}

/// The same through a raid10 reshape: both copies move to the new geometry, and a block
/// damaged before it is still found after it.
#[test]
fn a_broken_block_survives_a_raid10_reshape_as_corruption() {
    let s = text::parse(
        "array lv dm raid10 disks=4 chunk=2 dev=16\nlvm: lvchange -ay lv\n\
         lvm: lvconvert --stripes 3 lv\nlvm: wait_for_sync lv\nlvm: fsck lv\n",
    )
    .unwrap();
    let k = Kernel::parse("v6.9").unwrap();
    let clean = run(&s, &k, &RunOptions::default()).unwrap();
    assert_eq!(clean.short(), "pass", "{}", clean.detail);
    assert!(
        clean.op_results.iter().all(|r| r == "ok"),
        "{:?}",
        clean.op_results
    );
    let broken = run(
        &s,
        &k,
        &RunOptions {
            sabotage_block: Some(13),
            ..RunOptions::default()
        },
    )
    .unwrap();
    assert_eq!(broken.verdict, md_oracle::VerdictKind::Corruption);
    assert!(broken.detail.contains("lv block 13:"), "{}", broken.detail);
}

/// A known finding names a corruption only when its mechanism made it: the same run with a
/// member slot damaged at set-up (garbage, no block's data) is a corruption nobody explains,
/// although the stale-position finding happened in it too.
#[test]
fn a_corruption_with_another_cause_is_not_put_down_to_a_known_finding() {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../corpus/finding-stale-ctr-position.load-reload.scn");
    let s = text::parse(&std::fs::read_to_string(p).unwrap()).unwrap();
    let k = Kernel::parse("v6.9").unwrap();
    let finding = run(&s, &k, &RunOptions::default()).unwrap();
    assert_eq!(finding.short(), "corruption stale-ctr-position");
    let damaged = run(
        &s,
        &k,
        &RunOptions {
            sabotage_block: Some(0),
            ..RunOptions::default()
        },
    )
    .unwrap();
    assert_eq!(damaged.verdict, md_oracle::VerdictKind::Corruption);
    assert!(damaged.detail.contains("lv block 0:"), "{}", damaged.detail);
    assert!(
        damaged.detail.contains("after stale-ctr-position"),
        "{}",
        damaged.detail
    );
    assert_eq!(damaged.token, "", "{}", damaged.detail);
}

/// Issue 13: a hang's token is a function of its end state. Every corpus scenario that hangs
/// under some kernel is replayed under many random schedules; hangs with the same blocked
/// tasks under one kernel (what each waits for, where; instance numbers left out) must get
/// the same token.
#[test]
fn one_deadlock_gets_one_token_under_every_schedule() {
    use std::collections::{BTreeMap, BTreeSet};
    let strip = |l: &str| {
        let mut out = String::new();
        let mut chars = l.chars().peekable();
        while let Some(c) = chars.next() {
            out.push(c);
            if c == '#' {
                while chars.peek().is_some_and(|d| d.is_ascii_digit()) {
                    chars.next();
                }
            }
        }
        out
    };
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut rand = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut seen: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut hangs = 0;
    for (name, s) in corpus() {
        for e in s.expects.iter().filter(|e| e.verdict.to_string() == "hang") {
            let k = Kernel::parse(&e.kernel).unwrap();
            for _ in 0..40 {
                let mut v = s.clone();
                let n = 16 + (rand() % 240) as usize;
                v.schedule = (0..n).map(|_| (rand() >> 24) as u8).collect();
                let o = run(&v, &k, &RunOptions::default()).unwrap();
                if o.verdict.to_string() != "hang" {
                    continue;
                }
                hangs += 1;
                let mut blocked: Vec<String> = o
                    .detail
                    .lines()
                    .filter(|l| l.starts_with("  ") && !l.contains("runnable"))
                    .map(strip)
                    .collect();
                blocked.sort();
                seen.entry(format!("{k}\n{}", blocked.join("\n")))
                    .or_default()
                    .insert(format!("{} ({name} under {k})", o.token));
            }
        }
    }
    assert!(hangs > 100, "only {hangs} hangs");
    let split: Vec<String> = seen
        .iter()
        .filter(|(_, t)| {
            t.iter()
                .map(|t| t.split(' ').next().unwrap())
                .collect::<BTreeSet<_>>()
                .len()
                > 1
        })
        .map(|(state, t)| format!("{state}\n  -> {t:?}"))
        .collect();
    assert!(
        split.is_empty(),
        "one end state, several tokens:\n{}",
        split.join("\n\n")
    );
}
