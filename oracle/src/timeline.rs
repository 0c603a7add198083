//! A run as a picture: one lane per task (user actors, md daemons, sync threads, workers),
//! the ops each actor ran as spans, the time each task slept blocked (labelled with what it
//! waits for and the wait queue), recovery-flag changes, suspends and resumes, and the
//! verdict. Built from a traced run's lines (`step task message`), drawn with the `svg`
//! crate; the x axis is the model's step count.

use svg::node::element::{Group, Line, Rectangle as Rect, Text, Title};
use svg::Document;

/// What a lane shows at a point or over a span of steps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mark {
    /// An op of a user actor, from `> op` to `< op: result` (None: it never returned).
    Op {
        text: String,
        result: Option<String>,
    },
    /// A sleep on a wait queue, from `zz sleeps` to `zz woke` (None: it never woke).
    Blocked { what: String, woke: bool },
    /// `lv#1 recovery A -> B (function)`.
    Recovery(String),
    /// A suspend or resume of an mddev or a dm device.
    Suspend(String),
    /// A broken invariant or a model finding.
    Alarm(String),
}

#[derive(Clone, Debug)]
pub struct Span {
    pub from: u64,
    pub to: u64,
    pub mark: Mark,
}

/// The lanes of a traced run, in the order their tasks first appear.
#[derive(Debug, Default)]
pub struct Timeline {
    pub lanes: Vec<(String, Vec<Span>)>,
    pub end: u64,
    pub verdict: String,
}

fn parse_line(l: &str) -> Option<(u64, &str, &str)> {
    let l = l.trim_start();
    let (step, rest) = l.split_once(' ')?;
    let step = step.parse().ok()?;
    let rest = rest.trim_start();
    let (task, msg) = rest.split_once(' ').unwrap_or((rest, ""));
    Some((step, task, msg.trim_start()))
}

/// Ends the last open span of a kind at `step`.
fn close(spans: &mut [Span], step: u64, kind: impl Fn(&Mark) -> bool) -> Option<&mut Span> {
    let s = spans
        .iter_mut()
        .rev()
        .find(|s| s.to == u64::MAX && kind(&s.mark))?;
    s.to = step;
    Some(s)
}

impl Timeline {
    /// The timeline of a run's trace lines (`Outcome::trace` of a run with `trace: true`)
    /// ending in `verdict`.
    pub fn from_trace(trace: &[String], verdict: &str) -> Timeline {
        let mut t = Timeline {
            verdict: verdict.to_string(),
            ..Timeline::default()
        };
        for l in trace {
            // Broken invariants are logged without a step or task: an alarm on the lane of
            // the oracle at the last step seen.
            let alarm = l.strip_prefix("!! ").map(|m| (t.end, "oracle", m));
            let Some((step, task, msg)) = alarm.or_else(|| parse_line(l)) else {
                continue;
            };
            let msg = if alarm.is_some() { l.as_str() } else { msg };
            t.end = t.end.max(step);
            let lane = match t.lanes.iter().position(|(n, _)| n == task) {
                Some(i) => i,
                None => {
                    t.lanes.push((task.to_string(), Vec::new()));
                    t.lanes.len() - 1
                }
            };
            let spans = &mut t.lanes[lane].1;
            let point = |mark| Span {
                from: step,
                to: step,
                mark,
            };
            if let Some(op) = msg.strip_prefix("> ") {
                spans.push(Span {
                    from: step,
                    to: u64::MAX,
                    mark: Mark::Op {
                        text: op.to_string(),
                        result: None,
                    },
                });
            } else if let Some(done) = msg.strip_prefix("< ") {
                if let Some(s) = close(spans, step, |m| matches!(m, Mark::Op { .. })) {
                    if let Mark::Op { text, result } = &mut s.mark {
                        // `< OP: RESULT`, where RESULT may hold ": " itself.
                        let r = done.strip_prefix(text.as_str()).unwrap_or(done);
                        *result = Some(r.trim_start_matches(": ").to_string());
                    }
                }
            } else if msg.starts_with("!! ") || msg.starts_with("model finding") {
                spans.push(point(Mark::Alarm(msg.to_string())));
            } else if let Some(what) = msg.strip_prefix("zz sleeps: ") {
                spans.push(Span {
                    from: step,
                    to: u64::MAX,
                    mark: Mark::Blocked {
                        what: what.to_string(),
                        woke: false,
                    },
                });
            } else if msg == "zz woke" {
                if let Some(s) = close(spans, step, |m| matches!(m, Mark::Blocked { .. })) {
                    if let Mark::Blocked { woke, .. } = &mut s.mark {
                        *woke = true;
                    }
                }
            } else if msg.contains(" recovery ") && msg.contains(" -> ") {
                spans.push(point(Mark::Recovery(msg.to_string())));
            } else if msg.ends_with(" suspended")
                || msg.ends_with(" resumed")
                || msg.ends_with("(noflush)")
            {
                spans.push(point(Mark::Suspend(msg.to_string())));
            }
        }
        // Spans still open at the end (blocked forever, an op that never returned) run to
        // the verdict.
        let end = t.end;
        for (_, spans) in t.lanes.iter_mut() {
            for s in spans.iter_mut().filter(|s| s.to == u64::MAX) {
                s.to = end;
            }
        }
        t.lanes.retain(|(_, spans)| !spans.is_empty());
        t
    }

    /// The picture.
    pub fn svg(&self) -> String {
        const LEFT: f64 = 150.0;
        const LANE: f64 = 28.0;
        const TOP: f64 = 30.0;
        let px = (2400.0 / self.end.max(1) as f64).clamp(0.05, 8.0);
        let x = |step: u64| LEFT + step as f64 * px;
        let width = x(self.end) + 260.0;
        let height = TOP + LANE * self.lanes.len() as f64 + 30.0;
        let mut doc = Document::new()
            .set("viewBox", (0, 0, width, height))
            .set("width", width)
            .set("height", height)
            .set("font-family", "monospace")
            .set("font-size", 10)
            .add(
                Rect::new()
                    .set("width", width)
                    .set("height", height)
                    .set("fill", "white"),
            );
        for (i, (task, spans)) in self.lanes.iter().enumerate() {
            let y = TOP + LANE * i as f64;
            let mut g = Group::new()
                .set("class", "lane")
                .set("data-task", task.as_str())
                .add(Text::new(task.as_str()).set("x", 4).set("y", y + 16.0))
                .add(
                    Line::new()
                        .set("x1", LEFT)
                        .set("x2", x(self.end))
                        .set("y1", y + LANE / 2.0)
                        .set("y2", y + LANE / 2.0)
                        .set("stroke", "#ddd"),
                );
            for s in spans {
                let w = ((s.to - s.from) as f64 * px).max(2.0);
                let (class, fill, label, tip) = match &s.mark {
                    Mark::Op { text, result } => {
                        let r = result.clone().unwrap_or_else(|| "never returned".into());
                        ("op", "#9ecae1", text.clone(), format!("{text}: {r}"))
                    }
                    Mark::Blocked { what, woke } => (
                        "blocked",
                        if *woke { "#fdae6b" } else { "#e6550d" },
                        what.clone(),
                        format!("{what}{}", if *woke { "" } else { " (never woke)" }),
                    ),
                    Mark::Recovery(m) => ("recovery", "#31a354", String::new(), m.clone()),
                    Mark::Suspend(m) => ("suspend", "#756bb1", String::new(), m.clone()),
                    Mark::Alarm(m) => ("alarm", "#de2d26", String::new(), m.clone()),
                };
                let (ry, rh) = match &s.mark {
                    Mark::Op { .. } => (y + 3.0, LANE - 6.0),
                    Mark::Blocked { .. } => (y + 8.0, LANE - 16.0),
                    _ => (y + 1.0, LANE - 2.0),
                };
                let mut r = Group::new()
                    .set("class", class)
                    .set("data-from", s.from)
                    .set("data-to", s.to)
                    .add(Title::new(format!("[{}..{}] {tip}", s.from, s.to)))
                    .add(
                        Rect::new()
                            .set("x", x(s.from))
                            .set("y", ry)
                            .set("width", w)
                            .set("height", rh)
                            .set("fill", fill),
                    );
                if !label.is_empty() && w > 40.0 {
                    let max = (w / 6.0) as usize;
                    let shown: String = label.chars().take(max).collect();
                    r = r.add(
                        Text::new(shown)
                            .set("x", x(s.from) + 2.0)
                            .set("y", y + 17.0),
                    );
                }
                g = g.add(r);
            }
            doc = doc.add(g);
        }
        let vx = x(self.end);
        doc = doc
            .add(
                Group::new()
                    .set("class", "verdict")
                    .add(
                        Line::new()
                            .set("x1", vx)
                            .set("x2", vx)
                            .set("y1", TOP - 10.0)
                            .set("y2", height - 10.0)
                            .set("stroke", "black")
                            .set("stroke-width", 2),
                    )
                    .add(
                        Text::new(self.verdict.as_str())
                            .set("x", vx + 6.0)
                            .set("y", TOP - 14.0)
                            .set("font-size", 12),
                    ),
            )
            .add(
                Text::new(format!("step 0 .. {}", self.end))
                    .set("x", LEFT)
                    .set("y", 14),
            );
        doc.to_string()
    }
}
