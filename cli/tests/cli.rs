//! The command line: exit statuses and one-line errors.

use std::process::Command;

fn mdfuzz(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_mdfuzz"))
        .args(args)
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn tmp(name: &str, text: &str) -> String {
    let p = std::env::temp_dir().join(format!("mdfuzz-cli-{}-{name}", std::process::id()));
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[test]
fn malformed_scenarios_unknown_kernels_and_patches_exit_2_with_one_line() {
    let bad = tmp(
        "bad.scn",
        "array lv dm raid5_ls disks=4 chunk=2 dev=16\nlvm: lvchange -ay\n",
    );
    let (code, _, err) = mdfuzz(&["replay", &bad]);
    assert_eq!(code, 2);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(&format!("{bad}:2:18: expected a dm (lvm) array name")),
        "{err}"
    );
    let good = tmp(
        "good.scn",
        "array lv dm raid5_ls disks=4 chunk=2 dev=16\nlvm: lvchange -ay lv\nexpect v6.9 pass\n",
    );
    let (code, _, err) = mdfuzz(&["replay", &good, "-k", "v6.8"]);
    assert_eq!((code, err.lines().count()), (2, 1), "{err}");
    assert!(err.contains("unknown kernel `v6.8`"), "{err}");
    let (code, _, err) = mdfuzz(&["replay", &good, "-k", "v6.7+p42"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown patch `p42`"), "{err}");
    let (code, _, err) = mdfuzz(&["replay", "/nonexistent/x.scn"]);
    assert_eq!(code, 2);
    assert!(err.contains("no such file"), "{err}");
}

/// Issue 13's bad inputs: each is exit 2 and one short line, none a panic or a silent pass.
#[test]
fn bad_inputs_exit_2_with_one_short_line() {
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["replay".into(), tmp("empty.scn", "")],
            "expected at least one `array` line",
        ),
        (
            vec!["replay".into(), {
                let d = std::env::temp_dir().join(format!("mdfuzz-cli-{}-dir", std::process::id()));
                std::fs::create_dir_all(&d).unwrap();
                d.display().to_string()
            }],
            "no .scn files in this folder",
        ),
        (
            vec![
                "replay".into(),
                tmp(
                    "long.scn",
                    &format!(
                        "array lv dm raid5_ls disks=4 chunk=2 dev=16 {}\n",
                        "x".repeat(1_000_000)
                    ),
                ),
            ],
            "expected end of line, found `xxx",
        ),
        (
            vec![
                "replay".into(),
                tmp(
                    "token.scn",
                    "array lv dm raid5_ls disks=4 chunk=2 dev=16\nexpect v6.9 hang H9\n",
                ),
            ],
            "unknown token `H9` for `hang`",
        ),
        (
            vec!["fuzz".into(), "--time".into(), "1e400s".into()],
            "--time: expected a duration",
        ),
        (
            vec![
                "fuzz".into(),
                "--max-ops".into(),
                "18446744073709551615".into(),
            ],
            "--max-ops: expected 1 to 256",
        ),
        (
            vec![
                "search".into(),
                "-k".into(),
                "v6.7".into(),
                "--want".into(),
                "hang H9".into(),
                tmp(
                    "search.scn",
                    "array lv dm raid5_ls disks=4 chunk=2 dev=16\nlvm: lvchange -ay lv\n",
                ),
            ],
            "unknown token `H9` for `hang`",
        ),
        (
            vec![
                "replay".into(),
                tmp(
                    "tl.scn",
                    "array lv dm raid5_ls disks=4 chunk=2 dev=16\nlvm: lvchange -ay lv\n",
                ),
                "--timeline".into(),
                "/tmp/x.svg".into(),
            ],
            "--timeline: expected one scenario file and one -k KERNEL, found 1 file(s) and 0",
        ),
        (
            vec![
                "replay".into(),
                tmp(
                    "tl2.scn",
                    "array lv dm raid5_ls disks=4 chunk=2 dev=16\nlvm: lvchange -ay lv\n",
                ),
                "-k".into(),
                "v6.9".into(),
                "--timeline".into(),
                "/tmp/x.png".into(),
            ],
            "expected a file name ending in .svg or .html",
        ),
        (
            vec![
                "attribute".into(),
                "corpus".into(),
                "-k".into(),
                "v6.9".into(),
                "--max-set".into(),
                "9".into(),
            ],
            "--max-set: expected 1 to 4 gates",
        ),
        (
            vec!["revert-matrix".into(), "--execs".into(), "0".into()],
            "--execs: expected 1 to 1000000",
        ),
    ];
    for (args, want) in cases {
        let a: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
        let (code, _, err) = mdfuzz(&a);
        let shown = &err[..err.len().min(300)];
        assert_eq!(code, 2, "{:?}: {shown}", &a[..1]);
        assert_eq!(err.lines().count(), 1, "{shown}");
        assert!(err.len() < 400, "an error line of {} bytes", err.len());
        assert!(err.contains(want), "{shown}");
    }
}

#[test]
fn replay_exits_1_on_a_mismatch_and_prints_json_lines() {
    let f = tmp("h1.scn", "array lv dm raid5_ls disks=4 chunk=2 dev=32 resync\nlvm: lvchange -ay lv\nlvm: lvchange -an lv\nexpect v6.7 pass\n");
    let (code, out, _) = mdfuzz(&["replay", &f, "-k", "v6.7", "--json"]);
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(v["verdict"], "hang");
    assert_eq!(v["kernel"], "v6.7");
    assert!(v["detail"].as_str().unwrap().contains("stop_sync_thread"));
    let (code, out, _) = mdfuzz(&["replay", &f, "-k", "v6.9"]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn kernels_lists_every_patch() {
    let (code, out, _) = mdfuzz(&["kernels"]);
    assert_eq!(code, 0);
    for p in ["p1 ", "p11", "41425f96d7aa", "c467e97f079f", "v6.7+v2"] {
        assert!(out.contains(p), "{p} missing from\n{out}");
    }
}

/// A fuzz artifact imports to scenario text, minimizes, and replays to the same verdict.
#[test]
fn an_imported_artifact_minimizes_and_replays_to_the_same_verdict() {
    // A libFuzzer input is generator bytes; this one decodes to some scenario.
    let bytes: Vec<u8> = (0..300u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let art = std::env::temp_dir().join(format!("mdfuzz-cli-{}-crash", std::process::id()));
    std::fs::write(&art, &bytes).unwrap();
    let (code, text, _) = mdfuzz(&["import", &art.display().to_string()]);
    assert_eq!(code, 0);
    let scn = tmp("imported.scn", &text);
    let (code, before, _) = mdfuzz(&["replay", &scn, "-k", "v6.7", "--json"]);
    assert!(code == 0, "{before}");
    let v: serde_json::Value = serde_json::from_str(before.lines().next().unwrap()).unwrap();
    let (code, min, err) = mdfuzz(&["minimize", &scn, "-k", "v6.7"]);
    assert_eq!(code, 0, "{err}");
    let m = tmp("min.scn", &min);
    let (_, after, _) = mdfuzz(&["replay", &m, "-k", "v6.7", "--json"]);
    let w: serde_json::Value = serde_json::from_str(after.lines().next().unwrap()).unwrap();
    assert_eq!((&v["verdict"], &v["token"]), (&w["verdict"], &w["token"]));
}

#[test]
fn conform_refuses_what_a_vm_cannot_run_and_bad_kernel_names() {
    let md = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../corpus/h2-read-only-array-never-reaped.md-sysfs.scn"
    );
    // Nothing to boot: the md array is refused with the reason, exit 1, no VM built.
    let (code, _, err) = mdfuzz(&["conform", md, "--real", "6.12", "--harness", "/nonexistent"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("refused") && err.contains("md arrays"),
        "{err}"
    );
    let (code, _, err) = mdfuzz(&["conform", md, "--real", "5.10"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("unknown real kernel `5.10`"), "{err}");
}
