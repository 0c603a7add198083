//! The conformance translator and log parser (no VM needed), and the model's outcome sets for
//! the real-kernel behaviours the conformance corpus documents.

use md_oracle::conform::{compare, model_set, parse_log, translate};
use md_oracle::text;
use std::path::Path;

fn scenario(dir: &str, name: &str) -> md_oracle::Scenario {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../conformance")
        .join(dir)
        .join(name);
    text::parse(&std::fs::read_to_string(&p).unwrap()).unwrap()
}

fn corpus(name: &str) -> md_oracle::Scenario {
    scenario("corpus", name)
}

#[test]
fn every_conformance_scenario_translates_with_one_step_per_op() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../conformance/corpus");
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_none_or(|x| x != "scn") {
            continue;
        }
        let s = text::parse(&std::fs::read_to_string(&p).unwrap()).unwrap();
        let script = translate(&s).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        for i in 0..s.ops.len() {
            let name = format!("op{i}");
            assert!(
                script.split_whitespace().any(|w| w == name),
                "{}: no step {name} in\n{script}",
                p.display()
            );
        }
        n += 1;
    }
    assert!(n >= 7, "conformance corpus has {n} scenarios");
}

#[test]
fn the_lv_has_the_scenario_s_stripes() {
    for (disks, stripes) in [(3, 2), (4, 3), (5, 4)] {
        let s = text::parse(&format!(
            "array lv dm raid5_ls disks={disks} chunk=2 dev=32\nlvm: lvchange -ay lv\n"
        ))
        .unwrap();
        let script = translate(&s).unwrap();
        assert!(
            script.contains(&format!("\ncreate_lv raid5 {stripes}\n")),
            "{script}"
        );
    }
}

#[test]
fn untranslatable_scenarios_are_refused_with_the_reason() {
    let md = text::parse(
        "array md0 md raid5_ls disks=4 chunk=2 dev=32\nadm: sysfs md0 sync_action frozen\n",
    )
    .unwrap();
    assert!(translate(&md).unwrap_err().contains("md arrays"));
    let raw = text::parse(
        "array lv dm raid5_ls disks=4 chunk=2 dev=32\nlvm: dmsetup load lv raid5_ls legs=4 chunk=2\n",
    )
    .unwrap();
    let e = translate(&raw).unwrap_err();
    assert!(e.contains("op 1") && e.contains("not translated"), "{e}");
    let abs =
        text::parse("array lv dm raid5_ls disks=4 chunk=2 dev=32\nio: read lv 0 8\n").unwrap();
    assert!(translate(&abs).unwrap_err().contains("absolute"));
}

const HEADER: &str = "[    1.0] kernel noise\nBOOT kernel=6.12 modules=29 modfail=0 disks=6 disk_mb=64 uptime_ms=3000\n";

#[test]
fn a_log_is_read_back_in_the_model_words() {
    let s = corpus("frozen-io-across.scn");
    // op2 = message frozen (EINVAL), op3 = write across (EIO).
    let log = format!(
        "{HEADER}STEP op0 rc=0 dur_ms=900 blocked=0\nSTEP op1 rc=0 dur_ms=1500 blocked=0\n\
         STEP op2 rc=1 dur_ms=40 blocked=0\nERR op2 device-mapper: message ioctl failed: Invalid argument\n\
         ERRNO op2 EINVAL\nSTEP op3 rc=1 dur_ms=10 blocked=0\n\
         IO op3 eio op=write off=4096 len=2048 pos=5120 src=cached\n\
         STEP op4 rc=1 dur_ms=30 blocked=0\nERRNO op4 EINVAL\nSTEP op5 rc=0 dur_ms=100 blocked=0\n\
         STEP op6 rc=0 dur_ms=100 blocked=0\nRESULT op7 ok\nRESULT op8 ok\nRESULT final ok\n\
         DONE rc=0 timeout=0 uptime_ms=45000\n"
    );
    let r = parse_log(&s, &log).unwrap();
    assert_eq!(r.verdict, "pass eio");
    assert_eq!(r.ops[2], "EINVAL");
    assert_eq!(r.ops[3], "EIO");
    assert_eq!(r.ops[5], "ok");
    assert_eq!(r.uptime_ms, Some(45000));

    // The same write blocked for good: a hang; a late return is not.
    let blocked = log.replace(
        "STEP op3 rc=1 dur_ms=10 blocked=0\nIO op3 eio",
        "STEP op3 rc=- dur_ms=20000 blocked=1\nIO op3 blocked",
    );
    let hung = format!("{blocked}LATE op3 still-blocked after_ms=90000\n");
    assert_eq!(parse_log(&s, &hung).unwrap().verdict, "hang");
    let late = blocked.replace("DONE", "LATE op3 rc=0 after_ms=60000\nDONE");
    let r = parse_log(&s, &late).unwrap();
    assert_eq!(
        (r.verdict.as_str(), r.ops[3].as_str()),
        ("pass", "ok (late)")
    );

    let bad = log.replace("RESULT final ok", "RESULT final mismatch");
    assert_eq!(parse_log(&s, &bad).unwrap().verdict, "corruption");
    let cut = log.replace("DONE rc=0 timeout=0 uptime_ms=45000\n", "");
    assert!(parse_log(&s, &cut).unwrap_err().contains("DONE"));
}

#[test]
fn v6_9_model_reaches_both_answers_6_12_gives_to_a_frozen_message() {
    // Real 6.12: `message frozen` during a reshape fails with EINVAL or EBUSY (a race), and
    // never succeeds; IO across a stalled reshape fails with EIO instead of hanging.
    let s = corpus("frozen-io-across.scn");
    let k = md_model::Kernel::parse("v6.9").unwrap();
    let m = model_set(&s, &k, 50).unwrap();
    assert!(m.ops[2].contains("EINVAL"), "{:?}", m.ops[2]);
    assert!(m.ops[2].contains("EBUSY"), "{:?}", m.ops[2]);
    assert!(!m.ops[2].contains("ok"), "{:?}", m.ops[2]);
    assert!(!m.verdicts.contains_key("hang"), "{:?}", m.verdicts);
    // And a real run with those answers agrees.
    let log = format!(
        "{HEADER}STEP op0 rc=0 dur_ms=1 blocked=0\nSTEP op1 rc=0 dur_ms=1 blocked=0\n\
         STEP op2 rc=1 dur_ms=1 blocked=0\nERRNO op2 EINVAL\nIO op3 eio op=write\n\
         STEP op4 rc=1 dur_ms=1 blocked=0\nERRNO op4 EINVAL\nSTEP op5 rc=0 dur_ms=1 blocked=0\n\
         STEP op6 rc=0 dur_ms=1 blocked=0\nDONE rc=0 timeout=0 uptime_ms=1\n"
    );
    let real = parse_log(&s, &log).unwrap();
    assert_eq!(compare(&s, &real, &m), Vec::<String>::new());
    // 6.12 after the EINVAL: the stalled reshape is reported idle; the model says so too.
    assert!(m.actions[2].contains("idle"), "{:?}", m.actions[2]);
    let idle = log.replace(
        "ERRNO op2 EINVAL\n",
        "ERRNO op2 EINVAL\nSTATUS op2 0 131072 raid raid5_ls 5 AAAAA 32768/32768 idle 0 2048 -\n",
    );
    assert_eq!(
        compare(&s, &parse_log(&s, &idle).unwrap(), &m),
        Vec::<String>::new()
    );
    let odd = idle.replace("32768/32768 idle", "32768/32768 repair");
    let d = compare(&s, &parse_log(&s, &odd).unwrap(), &m);
    assert!(
        d.len() == 1 && d[0].contains("real status `repair`"),
        "{d:?}"
    );
}

#[test]
fn every_op_is_a_step_that_starts_when_the_step_before_it_returned_or_timed_out() {
    let s = corpus("frozen-writer-suspend.scn");
    let (run, map) = md_oracle::conform::as_run_in_vm(&s, 0);
    use md_oracle::scenario::Op;
    assert_eq!(map.iter().flatten().count(), s.ops.len());
    let pos = |i: usize| map.iter().position(|&x| x == Some(i)).unwrap();
    // What op i's task waits for first (every op but the very first waits for a step).
    let waits_for = |i: usize| {
        let task = &run.ops[pos(i)].0;
        run.ops
            .iter()
            .find(|(t, _)| t == task)
            .map(|(_, o)| o.clone())
            .unwrap()
    };
    // io0's first op (index 3) follows the frozen message (index 2), the first actor's op
    // before it in the file; io0's second op follows io0's first.
    assert_eq!(waits_for(3), Op::AfterOrDeadline(pos(2)));
    assert!(run.ops[pos(3)].0.starts_with("io0"));
    if s.ops.get(4).is_some_and(|(a, _)| a == "io0") {
        assert_eq!(waits_for(4), Op::AfterOrDeadline(pos(3)));
    }
    // The first actor's ops chain among themselves.
    let lvm: Vec<usize> = (0..s.ops.len()).filter(|&i| s.ops[i].0 == "lvm").collect();
    for w in lvm.windows(2) {
        assert_eq!(waits_for(w[1]), Op::AfterOrDeadline(pos(w[0])));
    }
    // The guest's throttle: on before lvconvert, off before the wait for the reshape.
    let ons: Vec<usize> = (0..run.ops.len())
        .filter(|&j| run.ops[j].1 == Op::Throttle { on: true })
        .collect();
    assert_eq!(ons.len(), 1);
    assert!(matches!(run.ops[ons[0] + 1].1, Op::Stripes { .. }));
    assert!(run
        .ops
        .iter()
        .any(|(_, o)| *o == Op::Throttle { on: false }));
    // The text form round-trips.
    let text = run.to_string();
    assert!(
        text.contains(" deadline") && text.contains("throttle on"),
        "{text}"
    );
    assert_eq!(text::parse(&text).unwrap().ops, run.ops);
}

#[test]
fn a_step_blocked_past_its_deadline_does_not_hold_up_the_script() {
    // v7.3: the write across an orphaned reshape blocks; the VM's script goes on (its step
    // deadline) and the suspend releases the write with EIO. The model runs the same
    // script order: the write returns after the first actor's `idle` (and its sleeps).
    let s = text::parse(
        "array lv dm raid5_ls disks=4 chunk=2 dev=32\nlvm: lvchange -ay lv\n\
         lvm: lvconvert --stripes 4 lv\nlvm: dmsetup message lv frozen\n\
         lvm: write lv across 8\nlvm: dmsetup message lv idle\nlvm: dmsetup suspend lv\n\
         lvm: dmsetup resume lv\nlvm: wait_for_sync lv\nlvm: fsck lv\n",
    )
    .unwrap();
    let k = md_model::Kernel::parse("v7.3").unwrap();
    let m = model_set(&s, &k, 60).unwrap();
    // Some schedule got -EINVAL for `frozen`, blocked the write and released it at the
    // suspend with EIO; none hung.
    assert!(m.ops[2].contains("EINVAL"), "{:?}", m.ops[2]);
    assert!(m.ops[3].contains("EIO"), "{:?}", m.ops[3]);
    assert!(!m.verdicts.contains_key("hang"), "{:?}", m.verdicts);
}

#[test]
fn v6_9_model_reaches_the_eio_6_12_gave_a_write_right_after_lvconvert() {
    // Real 6.12 (conformance/corpus/writer-suspend-cycles.scn, 2 of 2 runs): the background
    // writer's first write, issued as lvconvert returned, failed with EIO: lvconvert's
    // final resume had just restarted the reshape (corpus/finding-eio-right-after-resume).
    let s = corpus("writer-suspend-cycles.scn");
    let k = md_model::Kernel::parse("v6.9").unwrap();
    let m = model_set(&s, &k, 50).unwrap_or_else(|e| panic!("{e}"));
    assert!(m.ops[2].contains("EIO"), "{:?}", m.ops[2]);
    assert!(m.ops[2].contains("ok"), "{:?}", m.ops[2]);
}

#[test]
fn status_after_an_op_without_an_array_is_not_compared() {
    // frozen-writer-suspend: op 7 is the first actor's `sleep`; the VM prints the status after
    // it like after any op, the model has no array to look at for a sleep.
    let s = corpus("frozen-writer-suspend.scn");
    let k = md_model::Kernel::parse("v6.9").unwrap();
    let m = model_set(&s, &k, 10).unwrap();
    let log = format!(
        "{HEADER}STEP op0 rc=0 dur_ms=1 blocked=0\nSTEP op1 rc=0 dur_ms=1 blocked=0\n\
         STEP op2 rc=1 dur_ms=1 blocked=0\nERRNO op2 EBUSY\nSTEP op3 rc=0 dur_ms=1 blocked=0\n\
         STEP op6 rc=0 dur_ms=1 blocked=0\n\
         STATUS op6 0 131072 raid raid5_ls 5 aaaaa 4608/32768 reshape 0 2048 -\n\
         STEP op7 rc=0 dur_ms=1 blocked=0\nSTEP op8 rc=0 dur_ms=1 blocked=0\n\
         IO op4 ok op=write\nIO op5 ok op=write\nRESULT op9 ok dur_ms=1\n\
         STEP op10 rc=0 dur_ms=1 blocked=0\nDONE rc=0 timeout=0 uptime_ms=1\n"
    );
    let real = parse_log(&s, &log).unwrap();
    assert_eq!(real.ops[9], "ok", "wait_for_sync's RESULT is its result");
    assert_eq!(compare(&s, &real, &m), Vec::<String>::new());
}

#[test]
fn a_6_1_log_frozen_write_blocks_then_completes_after_idle() {
    // What 6.1 printed for frozen-io-across: frozen works, the write across blocks past the
    // step deadline and completes once `idle` restarts the reshape (its IO line comes again).
    let s = corpus("frozen-io-across.scn");
    let log = format!(
        "{HEADER}STEP op0 rc=0 dur_ms=520 blocked=0\nSTEP op1 rc=0 dur_ms=1450 blocked=0\n\
         STEP op2 rc=0 dur_ms=510 blocked=0\nSTEP op3 rc=- dur_ms=20060 blocked=1\n\
         IO op3 blocked op=write off=7168 len=2048 pos=8192 src=cached\n\
         STEP op4 rc=0 dur_ms=100 blocked=0\nSTEP op5 rc=0 dur_ms=440 blocked=0\n\
         STEP op6 rc=0 dur_ms=100 blocked=0\nRESULT op7 ok dur_ms=1620\n\
         STEP op8 rc=0 dur_ms=710 blocked=0\nRESULT op8 ok sectors=98304\n\
         LATE op3 rc=0 after_ms=20980\nIO op3 ok op=write off=7168 len=2048 done=2048\n\
         RESULT final ok sectors=98304\nDONE rc=0 timeout=0 uptime_ms=60000\n"
    );
    let r = parse_log(&s, &log).unwrap();
    assert_eq!(r.ops[3], "ok (late)");
    assert_eq!(r.verdict, "pass");
    // frozen-write-suspend on 6.1: the write and the suspend never return.
    let s = corpus("frozen-write-suspend.scn");
    let log = format!(
        "{HEADER}STEP op0 rc=0 dur_ms=1 blocked=0\nSTEP op1 rc=0 dur_ms=1 blocked=0\n\
         STEP op2 rc=0 dur_ms=1 blocked=0\nSTEP op3 rc=- dur_ms=20100 blocked=1\n\
         IO op3 blocked op=write\nSTEP op4 rc=- dur_ms=20100 blocked=1\n\
         STEP op5 rc=0 dur_ms=80 blocked=0\nRESULT op6 timeout dur_ms=60000\n\
         LATE op3 still-blocked after_ms=473770\nLATE op4 still-blocked after_ms=452860\n\
         DONE rc=0 timeout=0 uptime_ms=500000\n"
    );
    let r = parse_log(&s, &log).unwrap();
    assert_eq!(
        (r.ops[3].as_str(), r.ops[4].as_str()),
        ("blocked", "blocked")
    );
    assert_eq!(r.ops[6], "blocked", "wait_for_sync timed out");
    assert_eq!(r.verdict, "hang");
}

fn finding(name: &str) -> md_oracle::Scenario {
    scenario("findings", name)
}

#[test]
fn advance_and_status_translate_with_the_scale_of_the_lv() {
    let s = text::parse(
        "array lv dm raid5_ls disks=4 chunk=2 dev=32\nlvm: lvchange -ay lv\n\
         lvm: lvconvert --stripes 4 lv\nlvm: advance lv 12\nmon: dmsetup status lv\n",
    )
    .unwrap();
    let script = translate(&s).unwrap();
    // N blocks of `dev` per member: the guest scales by its status total.
    assert!(script.contains("\nadvance op2 12 32\n"), "{script}");
    assert!(
        script.contains("step op3 dmsetup status vg-lv\nstatus op3"),
        "{script}"
    );
    // The superblock after each op of the first actor, and the kernel's own warnings.
    assert!(
        script.contains("\nsb op2\n") && script.contains("kmsg final"),
        "{script}"
    );
}

#[test]
fn a_log_with_superblocks_bad_blocks_and_kernel_warnings() {
    let s = finding("stale-ctr-position.scn");
    let log = format!(
        "{HEADER}STEP op0 rc=0 dur_ms=900 blocked=0\nSB op0 magic=ok events=22 reshape_position=max\n\
         STEP op1 rc=0 dur_ms=1500 blocked=0\nSTEP op2 rc=0 dur_ms=300 blocked=0\n\
         ADVANCE op3 ok from=4608 to=18816 want=12288 dur_ms=14130\nSTEP op3 rc=0 dur_ms=14130 blocked=0\n\
         SB op3 magic=ok events=39 reshape_position=75264\n\
         STEP op4 rc=0 dur_ms=100 blocked=0\nSTEP op5 rc=0 dur_ms=100 blocked=0\n\
         SB op5 magic=ok events=37 reshape_position=8192\nRESULT op6 ok\n\
         RESULT op7 mismatch sectors=98304 lv_sectors=131072 sha256=0 bad=8192 got=19200\n\
         BADMAP op7 bad=47104 first=8192 runs=2 run=8192+512:19200 run=8704+512:19840\n\
         RESULT final ok\n\
         KMSG final [  40.1] WARNING: CPU: 0 PID: 77 at drivers/md/dm-raid.c:4049 raid_resume+0x1\n\
         KMSG final [  50.2] INFO: task dd:123 blocked for more than 10 seconds.\n\
         DONE rc=0 timeout=0 uptime_ms=45000\n"
    );
    let r = parse_log(&s, &log).unwrap();
    assert_eq!(r.verdict, "corruption");
    assert!(
        r.evidence.iter().any(|e| e.contains("BADMAP op7")),
        "{:?}",
        r.evidence
    );
    assert_eq!(
        r.sb[5]
            .as_deref()
            .map(|x| x.contains("reshape_position=8192")),
        Some(true)
    );
    assert_eq!(r.advances.len(), 1);
    assert_eq!(r.warnings.len(), 1);
    assert_eq!(r.hung_tasks.len(), 1);
    assert_eq!(r.ops[3], "ok");
    // A stalled advance is the model's `stalled`, not an errno.
    let stalled = log.replace(
        "ADVANCE op3 ok from=4608 to=18816 want=12288 dur_ms=14130\nSTEP op3 rc=0",
        "ADVANCE op3 stalled from=- to=- want=- dur_ms=60000\nSTEP op3 rc=1",
    );
    assert_eq!(parse_log(&s, &stalled).unwrap().ops[3], "stalled");
}

#[test]
fn a_broken_set_up_is_the_harness_not_the_kernel() {
    let s = corpus("plain-reshape.scn");
    let ok = format!(
        "{HEADER}STEP lvcreate rc=0 dur_ms=700 blocked=0\nRESULT wait_sync ok dur_ms=900\n\
         STEP op0 rc=0 dur_ms=900 blocked=0\nDONE rc=0 timeout=0 uptime_ms=45000\n"
    );
    assert!(parse_log(&s, &ok).is_ok());
    let e = parse_log(&s, &ok.replace("lvcreate rc=0", "lvcreate rc=5")).unwrap_err();
    assert!(e.contains("harness") && e.contains("lvcreate"), "{e}");
    let e = parse_log(&s, &ok.replace("wait_sync ok", "wait_sync timeout")).unwrap_err();
    assert!(e.contains("did not sync"), "{e}");
    let e = parse_log(&s, &ok.replace("modfail=0", "modfail=2")).unwrap_err();
    assert!(e.contains("modules"), "{e}");
    let e = parse_log(&s, &ok.replace(HEADER, "[ 1.0] panic\n")).unwrap_err();
    assert!(e.contains("BOOT"), "{e}");
}

#[test]
fn a_kernel_warning_the_model_does_not_know_is_a_disagreement_and_model_only_outcomes_are_debts() {
    let s = finding("stale-ctr-position.scn");
    let k = md_model::Kernel::parse("v6.9").unwrap();
    let m = model_set(&s, &k, 20).unwrap();
    // The model corrupts here (the finding) and, in some schedules, passes.
    assert!(m.verdicts.contains_key("corruption"), "{:?}", m.verdicts);
    let log = format!(
        "{HEADER}RESULT final mismatch sectors=98304\nDONE rc=0 timeout=0 uptime_ms=45000\n"
    );
    let mut r = parse_log(&s, &log).unwrap();
    for (i, op) in r.ops.iter_mut().enumerate() {
        // Every op returned as the model's first result says (only the verdict matters here).
        *op = m.ops[i]
            .iter()
            .next()
            .cloned()
            .unwrap_or_else(|| "ok".into());
    }
    assert!(compare(&s, &r, &m).is_empty(), "{:?}", compare(&s, &r, &m));
    let d = md_oracle::conform::debts(&s, &[&r], &m);
    if m.verdicts.contains_key("pass") {
        assert!(d.iter().any(|x| x.contains("verdict `pass`")), "{d:?}");
    }
    assert!(
        !d.iter().any(|x| x.contains("verdict `corruption`")),
        "{d:?}"
    );
    r.warnings
        .push("WARNING: CPU: 0 PID: 1 at drivers/md/dm-raid.c:1 x".into());
    assert!(compare(&s, &r, &m)
        .iter()
        .any(|x| x.contains("kernel warned")));
}
