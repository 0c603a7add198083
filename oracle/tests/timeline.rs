//! `replay --timeline`: the lanes, spans and verdict of a traced run, and the picture as a
//! real SVG renderer (resvg) draws it.

use md_model::Kernel;
use md_oracle::timeline::{Mark, Timeline};
use md_oracle::{run, text, RunOptions};

fn h1() -> (md_oracle::Outcome, Timeline) {
    let p = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../corpus/h1-suspended-array-never-reaped.integrity-caching.scn");
    let s = text::parse(&std::fs::read_to_string(p).unwrap()).unwrap();
    let opts = RunOptions {
        trace: true,
        ..RunOptions::default()
    };
    let o = run(&s, &Kernel::parse("v6.7").unwrap(), &opts).unwrap();
    let t = Timeline::from_trace(&o.trace, &o.short());
    (o, t)
}

#[test]
fn every_task_the_hang_report_lists_has_an_open_blocked_span_with_its_wait() {
    let (o, t) = h1();
    assert_eq!(o.short(), "hang H1");
    assert_eq!(t.verdict, "hang H1");
    // The report's lines: `  task: what [queue] in stack`.
    let waiting: Vec<(&str, &str)> = o
        .detail
        .lines()
        .filter_map(|l| l.trim().split_once(": "))
        .filter(|(_, what)| !what.starts_with("runnable"))
        .collect();
    assert!(!waiting.is_empty(), "{}", o.detail);
    for (task, what) in waiting {
        let what = what.split(" in ").next().unwrap();
        let (_, spans) = t
            .lanes
            .iter()
            .find(|(n, _)| n == task)
            .unwrap_or_else(|| panic!("no lane for {task}"));
        let open = spans.iter().find(
            |s| matches!(&s.mark, Mark::Blocked { what: w, woke: false } if w.as_str() == what),
        );
        let open = open.unwrap_or_else(|| panic!("{task}: no open span for `{what}`"));
        assert_eq!(open.to, t.end, "{task}: blocked to the end");
    }
    // lvm's second op never returned; its first did, with `ok`.
    let (_, lvm) = t.lanes.iter().find(|(n, _)| n == "lvm").unwrap();
    let ops: Vec<&Mark> = lvm
        .iter()
        .map(|s| &s.mark)
        .filter(|m| matches!(m, Mark::Op { .. }))
        .collect();
    assert_eq!(
        ops,
        [
            &Mark::Op {
                text: "lvchange -ay lv".into(),
                result: Some("ok".into())
            },
            &Mark::Op {
                text: "lvchange -an lv".into(),
                result: None
            }
        ]
    );
    // Recovery-flag changes and the suspend are on the lanes too.
    let all = || t.lanes.iter().flat_map(|(_, s)| s.iter());
    assert!(all().any(|s| matches!(&s.mark, Mark::Recovery(m) if m.contains("-> FROZEN"))));
    assert!(all().any(|s| matches!(&s.mark, Mark::Suspend(m) if m.ends_with("suspended"))));
}

#[test]
fn resvg_draws_the_lanes_the_blocked_spans_and_the_verdict_line() {
    use resvg::{tiny_skia, usvg};
    let (_, t) = h1();
    let svg = t.svg();
    assert_eq!(svg.matches("class=\"lane\"").count(), t.lanes.len());
    let tree = usvg::Tree::from_str(&svg, &usvg::Options::default()).expect("a valid SVG");
    let size = tree.size().to_int_size();
    let mut pixmap = tiny_skia::Pixmap::new(size.width(), size.height()).unwrap();
    resvg::render(
        &tree,
        tiny_skia::Transform::identity(),
        &mut pixmap.as_mut(),
    );
    let count = |rgb: (u8, u8, u8)| {
        pixmap
            .pixels()
            .iter()
            .filter(|p| (p.red(), p.green(), p.blue()) == rgb)
            .count()
    };
    // Never-woken sleeps (dark orange), ops (blue), the verdict line (black).
    assert!(
        count((0xe6, 0x55, 0x0d)) > 100,
        "no blocked-forever span drawn"
    );
    assert!(count((0x9e, 0xca, 0xe1)) > 100, "no op span drawn");
    assert!(count((0, 0, 0)) > 50, "no verdict line drawn");
    let png = std::env::temp_dir().join("mdfuzz-timeline-h1.png");
    pixmap.save_png(&png).unwrap();
}
