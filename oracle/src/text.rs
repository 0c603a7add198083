//! The line-oriented scenario format (print and parse; they round-trip).
//!
//! ```text
//! # comments (the leading ones are kept)
//! array lv dm raid5_ls disks=4 chunk=2 dev=16 [resync]
//! array md0 md raid5_ls disks=3 chunk=2 dev=16
//! lvm: lvchange -ay lv
//! lvm: lvconvert --stripes 5 [--force] lv | --stripesize N lv | --type raid5_rs lv
//! lvm: lvchange -an lv
//! lvm: wait_for_sync lv
//! lvm: dmsetup load lv raid5_ls legs=4 chunk=2 [rebuild=I]... [delta_disks=N] [data_offset=N] [nosync]
//! lvm: dmsetup reload lv [at-reshape-end] | suspend [--noflush] lv [at-reshape-end]
//! lvm: dmsetup resume lv | remove lv
//! lvm: dmsetup message lv WORD
//! adm: sysfs md0 sync_action WORD | array_state WORD | sync_max N|max | raid_disks N
//! mon: dmsetup status lv | advance lv N (the reshape checkpoint moves N blocks per member)
//! lvm: delay lv MS (the VM slows the member devices' writes; no-op in the model)
//! lvm: throttle on|off (speed_limit_max: a sync unit per timer tick while on)
//! io0: read lv START LEN | read lv across|ahead|behind LEN | write ... | fsck lv | sleep
//! schedule 3 0 1
//! expect v6.7 hang H1
//! ```

use crate::scenario::*;
use md_model::md_h::Layout;
use std::fmt::{self, Write as _};

/// `s` cut to 160 characters (a 10 MB token is not echoed whole in an error).
pub fn cut(s: &str) -> String {
    const MAX: usize = 160;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}... ({} bytes)", &s[..i], s.len()),
        None => s.to_string(),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{line}:{col}: {msg}")]
pub struct ParseError {
    pub line: usize,
    pub col: usize,
    pub msg: String,
}

struct Tok<'a> {
    s: &'a str,
    col: usize,
}

fn tokens(line: &str) -> Vec<Tok<'_>> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in line.char_indices() {
        match (c.is_whitespace(), start) {
            (true, Some(s)) => {
                out.push(Tok {
                    s: &line[s..i],
                    col: s + 1,
                });
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push(Tok {
            s: &line[s..],
            col: s + 1,
        });
    }
    out
}

struct Line<'a> {
    no: usize,
    toks: Vec<Tok<'a>>,
    pos: usize,
    end_col: usize,
}

impl<'a> Line<'a> {
    fn err(&self, col: usize, msg: impl Into<String>) -> ParseError {
        ParseError {
            line: self.no,
            col,
            msg: cut(&msg.into()),
        }
    }
    fn col(&self) -> usize {
        self.toks
            .get(self.pos)
            .map(|t| t.col)
            .unwrap_or(self.end_col)
    }
    fn next(&mut self, what: &str) -> Result<&'a str, ParseError> {
        match self.toks.get(self.pos) {
            Some(t) => {
                self.pos += 1;
                Ok(t.s)
            }
            None => Err(self.err(self.end_col, format!("expected {what}, found end of line"))),
        }
    }
    fn peek(&self) -> Option<&'a str> {
        self.toks.get(self.pos).map(|t| t.s)
    }
    fn expect_word(&mut self, words: &[&str]) -> Result<&'a str, ParseError> {
        let col = self.col();
        let w = self.next(&format!("one of {}", words.join(", ")))?;
        if words.contains(&w) {
            Ok(w)
        } else {
            Err(self.err(
                col,
                format!("expected one of {}, found `{w}`", words.join(", ")),
            ))
        }
    }
    fn number<T: std::str::FromStr>(&mut self, what: &str) -> Result<T, ParseError> {
        let col = self.col();
        let w = self.next(what)?;
        w.parse()
            .map_err(|_| self.err(col, format!("expected {what}, found `{w}`")))
    }
    fn done(&self) -> Result<(), ParseError> {
        match self.toks.get(self.pos) {
            None => Ok(()),
            Some(t) => Err(self.err(t.col, format!("expected end of line, found `{}`", t.s))),
        }
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && s.chars().next().unwrap().is_ascii_alphabetic()
}

fn layout(l: &mut Line) -> Result<Layout, ParseError> {
    let col = l.col();
    let w = l.next(
        "a segment type (raid5_ls, raid5_rs, raid5_la, raid5_ra, raid5_n, raid10, striped)",
    )?;
    Layout::parse(w).ok_or_else(|| l.err(col, format!("expected a segment type (linear, striped, raid1, raid5_ls|rs|la|ra|n, raid6_zr|nr|nc|ls_6|rs_6|la_6|ra_6|n_6, raid10), found `{w}`")))
}

/// `key=value` with a number value.
fn keyval<T: std::str::FromStr>(l: &mut Line, key: &str) -> Result<T, ParseError> {
    let col = l.col();
    let w = l.next(&format!("{key}=N"))?;
    let v = w.strip_prefix(key).and_then(|r| r.strip_prefix('='));
    v.and_then(|v| v.parse().ok())
        .ok_or_else(|| l.err(col, format!("expected {key}=N, found `{w}`")))
}

pub fn parse(text: &str) -> Result<Scenario, ParseError> {
    let mut s = Scenario::default();
    let mut seen_body = false;
    for (i, raw) in text.lines().enumerate() {
        let no = i + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            continue;
        }
        if let Some(c) = trimmed.strip_prefix('#') {
            if !seen_body {
                s.comments
                    .push(c.strip_prefix(' ').unwrap_or(c).to_string());
            }
            continue;
        }
        seen_body = true;
        let mut l = Line {
            no,
            toks: tokens(raw),
            pos: 0,
            end_col: raw.trim_end().len() + 1,
        };
        let first = l.toks[0].s;
        match first {
            "array" => {
                l.pos = 1;
                let a = parse_array(&mut l)?;
                if s.array(&a.name).is_some() {
                    return Err(l.err(
                        l.toks[1].col,
                        format!("array `{}` is declared twice", a.name),
                    ));
                }
                s.arrays.push(a);
            }
            "schedule" => {
                l.pos = 1;
                while l.peek().is_some() {
                    let v: u8 = l.number("a schedule decision (0..255)")?;
                    s.schedule.push(v);
                }
            }
            "expect" => {
                l.pos = 1;
                let col = l.col();
                let kernel = l.next("a kernel name")?.to_string();
                md_model::Kernel::parse(&kernel).map_err(|e| l.err(col, e.0))?;
                let col = l.col();
                let v = l.next("a verdict")?;
                let verdict = VerdictKind::ALL.into_iter().find(|k| k.name() == v).ok_or_else(|| {
                    l.err(col, format!("expected a verdict (pass, hang, corruption, unexpected-io-error, invariant-violation), found `{v}`"))
                })?;
                let col = l.col();
                let token = l.peek().map(|t| t.to_string());
                if let Some(t) = &token {
                    let known = crate::verdict::tokens(verdict);
                    if !known.contains(&t.as_str()) {
                        return Err(l.err(
                            col,
                            format!(
                                "unknown token `{t}` for `{}` (expected one of: {})",
                                verdict.name(),
                                if known.is_empty() {
                                    "none".into()
                                } else {
                                    known.join(", ")
                                }
                            ),
                        ));
                    }
                    l.pos += 1;
                }
                l.done()?;
                s.expects.push(Expect {
                    kernel,
                    verdict,
                    token,
                });
            }
            _ => {
                let Some(actor) = first.strip_suffix(':') else {
                    return Err(l.err(1, format!("expected `array`, `schedule`, `expect` or `ACTOR: OP`, found `{first}`")));
                };
                if !valid_name(actor) {
                    return Err(l.err(
                        1,
                        format!("expected an actor name (letters, digits, _), found `{actor}`"),
                    ));
                }
                l.pos = 1;
                let op = parse_op(&mut l, &s)?;
                l.done()?;
                s.ops.push((actor.to_string(), op));
            }
        }
    }
    if s.arrays.is_empty() {
        return Err(ParseError {
            line: text.lines().count().max(1),
            col: 1,
            msg: "expected at least one `array` line (an empty scenario tests nothing)".into(),
        });
    }
    Ok(s)
}

fn parse_array(l: &mut Line) -> Result<ArraySpec, ParseError> {
    let col = l.col();
    let name = l.next("an array name")?.to_string();
    if !valid_name(&name) {
        return Err(l.err(
            col,
            format!("expected an array name (letters, digits, _), found `{name}`"),
        ));
    }
    let kind = match l.expect_word(&["dm", "md"])? {
        "dm" => ArrayKind::Dm,
        _ => ArrayKind::Md,
    };
    let lcol = l.col();
    let layout = layout(l)?;
    let col = l.col();
    let disks: u32 = keyval(l, "disks")?;
    let least = match layout {
        Layout::Linear => 1,
        Layout::Striped => 2,
        l if l.level() == 1 => 2,
        l if l.level() == 6 => 4,
        _ => 3,
    };
    if layout == Layout::Linear && disks != 1 {
        return Err(l.err(col, format!("expected disks=1 for linear, found {disks}")));
    }
    if !layout.is_md() && kind == ArrayKind::Md {
        return Err(l.err(
            lcol,
            format!("{} is an lvm segment type, not an md array", layout.name()),
        ));
    }
    if !(least..=12).contains(&disks) {
        return Err(l.err(
            col,
            format!("expected disks between {least} and 12, found {disks}"),
        ));
    }
    if layout == Layout::Near2 && (disks < 4 || !disks.is_multiple_of(2)) {
        // lvm's raid10 is 2 mirrors of N >= 2 stripes.
        return Err(l.err(
            col,
            format!("expected an even number of raid10 disks, at least 4, found {disks}"),
        ));
    }
    let col = l.col();
    let chunk: u32 = keyval(l, "chunk")?;
    if !(1..=8).contains(&chunk) {
        return Err(l.err(
            col,
            format!("expected chunk between 1 and 8 blocks, found {chunk}"),
        ));
    }
    let col = l.col();
    let dev: u32 = keyval(l, "dev")?;
    if dev == 0 || !dev.is_multiple_of(chunk) || dev > 256 {
        return Err(l.err(col, format!("expected dev (data blocks per member) a multiple of chunk, at most 256, found {dev}")));
    }
    let state = match l.peek() {
        Some("resync") => {
            l.pos += 1;
            InitState::Resync
        }
        _ => InitState::Clean,
    };
    l.done()?;
    Ok(ArraySpec {
        name,
        kind,
        layout,
        disks,
        chunk,
        dev,
        state,
    })
}

fn array_ref(l: &mut Line, s: &Scenario, kind: ArrayKind) -> Result<String, ParseError> {
    let col = l.col();
    let what = if kind == ArrayKind::Dm {
        "a dm (lvm) array name"
    } else {
        "an md array name"
    };
    let name = l.next(what)?;
    match s.array(name) {
        Some(a) if a.kind == kind => Ok(name.to_string()),
        Some(_) => Err(l.err(col, format!("expected {what}, `{name}` is the other kind"))),
        None => Err(l.err(
            col,
            format!("expected {what}, `{name}` is not declared by an `array` line above"),
        )),
    }
}

fn any_array(l: &mut Line, s: &Scenario) -> Result<String, ParseError> {
    let col = l.col();
    let name = l.next("an array name")?;
    if s.array(name).is_none() {
        return Err(l.err(
            col,
            format!("expected an array name, `{name}` is not declared by an `array` line above"),
        ));
    }
    Ok(name.to_string())
}

fn parse_range(l: &mut Line) -> Result<Range, ParseError> {
    match l.peek() {
        Some("across") | Some("ahead") | Some("behind") => {
            let w = l.next("")?;
            let len: u64 = l.number("a length in blocks")?;
            Ok(match w {
                "across" => Range::Across(len),
                "ahead" => Range::Ahead(len),
                _ => Range::Behind(len),
            })
        }
        _ => {
            let start = l.number("a start block or across/ahead/behind")?;
            let len = l.number("a length in blocks")?;
            Ok(Range::Abs { start, len })
        }
    }
}

fn parse_op(l: &mut Line, s: &Scenario) -> Result<Op, ParseError> {
    let cmd = l.expect_word(&[
        "dmsetup",
        "lvchange",
        "lvconvert",
        "wait_for_sync",
        "sysfs",
        "read",
        "write",
        "fsck",
        "sleep",
        "after",
        "advance",
        "delay",
        "throttle",
        "disable_dev",
        "enable_dev",
    ])?;
    Ok(match cmd {
        "dmsetup" => match l.expect_word(&[
            "load", "reload", "suspend", "resume", "remove", "message", "status",
        ])? {
            "load" => {
                let dev = array_ref(l, s, ArrayKind::Dm)?;
                let layout = layout(l)?;
                let legs = keyval(l, "legs")?;
                let chunk = keyval(l, "chunk")?;
                let mut t = TableArgs {
                    layout,
                    legs,
                    chunk,
                    delta_disks: 0,
                    data_offset: None,
                    nosync: false,
                    rebuild: 0,
                };
                while let Some(w) = l.peek() {
                    if w == "nosync" {
                        l.pos += 1;
                        t.nosync = true;
                    } else if w.starts_with("rebuild=") {
                        let col = l.col();
                        let leg: u32 = keyval(l, "rebuild")?;
                        if leg >= t.legs {
                            return Err(l.err(
                                col,
                                format!("expected rebuild=LEG below legs={}, found {leg}", t.legs),
                            ));
                        }
                        t.rebuild |= 1 << leg;
                    } else if w.starts_with("delta_disks=") {
                        t.delta_disks = keyval(l, "delta_disks")?;
                    } else if w.starts_with("data_offset=") {
                        t.data_offset = Some(keyval(l, "data_offset")?);
                    } else {
                        return Err(l.err(
                            l.col(),
                            format!("expected rebuild=N, delta_disks=N, data_offset=N or nosync, found `{w}`"),
                        ));
                    }
                }
                Op::Load { dev, table: t }
            }
            "reload" => {
                let dev = array_ref(l, s, ArrayKind::Dm)?;
                if l.peek() == Some("at-reshape-end") {
                    l.pos += 1;
                    Op::ReloadAtReshapeEnd { dev }
                } else {
                    Op::Reload { dev }
                }
            }
            "suspend" => {
                let noflush = l.peek() == Some("--noflush");
                if noflush {
                    l.pos += 1;
                }
                let dev = array_ref(l, s, ArrayKind::Dm)?;
                if l.peek() == Some("at-reshape-end") {
                    l.pos += 1;
                    Op::SuspendAtReshapeEnd { dev, noflush }
                } else {
                    Op::Suspend { dev, noflush }
                }
            }
            "resume" => Op::Resume {
                dev: array_ref(l, s, ArrayKind::Dm)?,
            },
            "remove" => Op::Remove {
                dev: array_ref(l, s, ArrayKind::Dm)?,
            },
            "status" => Op::Status {
                dev: array_ref(l, s, ArrayKind::Dm)?,
            },
            _ => {
                let dev = array_ref(l, s, ArrayKind::Dm)?;
                let word = l
                    .expect_word(&[
                        "idle", "frozen", "resync", "recover", "check", "repair", "reshape",
                    ])?
                    .to_string();
                Op::Message { dev, word }
            }
        },
        w @ ("disable_dev" | "enable_dev") => {
            let dev = array_ref(l, s, ArrayKind::Dm)?;
            let col = l.col();
            let leg: u32 = l.number("a leg number")?;
            if leg as usize >= md_model::md_h::MAX_MEMBERS {
                return Err(l.err(
                    col,
                    format!(
                        "expected a leg number below {}, found {leg}",
                        md_model::md_h::MAX_MEMBERS
                    ),
                ));
            }
            Op::LegDevice {
                dev,
                leg,
                works: w == "enable_dev",
            }
        }
        "lvchange" => match l.expect_word(&["-ay", "-an", "-pr", "-prw", "--refresh"])? {
            "-ay" => Op::Activate {
                dev: array_ref(l, s, ArrayKind::Dm)?,
            },
            "--refresh" => Op::Refresh {
                dev: array_ref(l, s, ArrayKind::Dm)?,
            },
            p @ ("-pr" | "-prw") => Op::Permission {
                writable: p == "-prw",
                dev: array_ref(l, s, ArrayKind::Dm)?,
            },
            _ => Op::Deactivate {
                dev: array_ref(l, s, ArrayKind::Dm)?,
            },
        },
        "lvconvert" => {
            match l.expect_word(&["--stripes", "--stripesize", "--type", "-m", "--repair"])? {
                "--repair" => Op::Repair {
                    dev: array_ref(l, s, ArrayKind::Dm)?,
                },
                "-m" => {
                    let col = l.col();
                    let mirrors: u32 = l.number("a mirror count")?;
                    if !(0..=11).contains(&mirrors) {
                        return Err(l.err(
                            col,
                            format!("expected a mirror count between 0 and 11, found {mirrors}"),
                        ));
                    }
                    Op::Mirrors {
                        dev: array_ref(l, s, ArrayKind::Dm)?,
                        mirrors,
                    }
                }
                "--stripes" => {
                    let col = l.col();
                    let stripes: u32 = l.number("a stripe count")?;
                    if !(1..=15).contains(&stripes) {
                        return Err(l.err(
                            col,
                            format!("expected a stripe count between 1 and 15, found {stripes}"),
                        ));
                    }
                    let force = l.peek() == Some("--force");
                    if force {
                        l.pos += 1;
                    }
                    Op::Stripes {
                        dev: array_ref(l, s, ArrayKind::Dm)?,
                        stripes,
                        force,
                    }
                }
                "--stripesize" => {
                    let col = l.col();
                    let chunk: u32 = l.number("a stripe size in blocks")?;
                    if !(1..=8).contains(&chunk) {
                        return Err(l.err(
                            col,
                            format!("expected a stripe size between 1 and 8 blocks, found {chunk}"),
                        ));
                    }
                    Op::Stripesize {
                        dev: array_ref(l, s, ArrayKind::Dm)?,
                        chunk,
                    }
                }
                _ => {
                    let layout = layout(l)?;
                    Op::Retype {
                        dev: array_ref(l, s, ArrayKind::Dm)?,
                        layout,
                    }
                }
            }
        }
        "wait_for_sync" => Op::WaitForSync {
            dev: array_ref(l, s, ArrayKind::Dm)?,
        },
        "sysfs" => {
            let md = array_ref(l, s, ArrayKind::Md)?;
            match l.expect_word(&["sync_action", "array_state", "sync_max", "raid_disks"])? {
                "sync_action" => {
                    let word = l
                        .expect_word(&[
                            "idle", "frozen", "resync", "recover", "check", "repair", "reshape",
                        ])?
                        .to_string();
                    Op::SyncAction { md, word }
                }
                "array_state" => {
                    let word = l
                        .expect_word(&["readonly", "read-auto", "active", "clean"])?
                        .to_string();
                    Op::ArrayState { md, word }
                }
                "sync_max" => {
                    let max = if l.peek() == Some("max") {
                        l.pos += 1;
                        None
                    } else {
                        Some(l.number("a block number or max")?)
                    };
                    Op::SyncMax { md, max }
                }
                _ => Op::RaidDisks {
                    md,
                    disks: l.number("a disk count")?,
                },
            }
        }
        "read" => Op::Read {
            dev: any_array(l, s)?,
            range: parse_range(l)?,
        },
        "write" => Op::Write {
            dev: any_array(l, s)?,
            range: parse_range(l)?,
        },
        "fsck" => Op::Fsck {
            dev: any_array(l, s)?,
        },
        "advance" => {
            let dev = any_array(l, s)?;
            let col = l.col();
            let by: u32 = l.number("a distance in blocks per member")?;
            if by == 0 || by > 256 {
                return Err(l.err(
                    col,
                    format!("expected a distance between 1 and 256 blocks per member, found {by}"),
                ));
            }
            Op::Advance { dev, by }
        }
        "throttle" => Op::Throttle {
            on: l.expect_word(&["on", "off"])? == "on",
        },
        "delay" => {
            let dev = array_ref(l, s, ArrayKind::Dm)?;
            let col = l.col();
            let ms: u32 = l.number("a write delay in milliseconds")?;
            if ms > 10_000 {
                return Err(l.err(
                    col,
                    format!("expected a write delay of at most 10000 ms, found {ms}"),
                ));
            }
            Op::Delay { dev, ms }
        }
        "after" => {
            let col = l.col();
            let n: usize = l.number("an op number")?;
            if n == 0 || n > s.ops.len() {
                return Err(l.err(
                    col,
                    format!(
                        "expected an earlier op's number (1..={}), found {n}",
                        s.ops.len()
                    ),
                ));
            }
            if l.peek() == Some("deadline") {
                l.pos += 1;
                Op::AfterOrDeadline(n - 1)
            } else {
                Op::After(n - 1)
            }
        }
        _ => Op::Sleep,
    })
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Range::Abs { start, len } => write!(f, "{start} {len}"),
            Range::Ahead(n) => write!(f, "ahead {n}"),
            Range::Across(n) => write!(f, "across {n}"),
            Range::Behind(n) => write!(f, "behind {n}"),
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Load { dev, table: t } => {
                write!(
                    f,
                    "dmsetup load {dev} {} legs={} chunk={}",
                    t.layout.name(),
                    t.legs,
                    t.chunk
                )?;
                for leg in (0..t.legs).filter(|i| t.rebuild & (1 << i) != 0) {
                    write!(f, " rebuild={leg}")?;
                }
                if t.delta_disks != 0 {
                    write!(f, " delta_disks={}", t.delta_disks)?;
                }
                if let Some(o) = t.data_offset {
                    write!(f, " data_offset={o}")?;
                }
                if t.nosync {
                    write!(f, " nosync")?;
                }
                Ok(())
            }
            Op::Reload { dev } => write!(f, "dmsetup reload {dev}"),
            Op::ReloadAtReshapeEnd { dev } => write!(f, "dmsetup reload {dev} at-reshape-end"),
            Op::SuspendAtReshapeEnd { dev, noflush } => write!(
                f,
                "dmsetup suspend {}{dev} at-reshape-end",
                if *noflush { "--noflush " } else { "" }
            ),
            Op::Suspend { dev, noflush } => write!(
                f,
                "dmsetup suspend {}{dev}",
                if *noflush { "--noflush " } else { "" }
            ),
            Op::Resume { dev } => write!(f, "dmsetup resume {dev}"),
            Op::Remove { dev } => write!(f, "dmsetup remove {dev}"),
            Op::Message { dev, word } => write!(f, "dmsetup message {dev} {word}"),
            Op::Status { dev } => write!(f, "dmsetup status {dev}"),
            Op::Advance { dev, by } => write!(f, "advance {dev} {by}"),
            Op::Delay { dev, ms } => write!(f, "delay {dev} {ms}"),
            Op::Throttle { on } => write!(f, "throttle {}", if *on { "on" } else { "off" }),
            Op::Activate { dev } => write!(f, "lvchange -ay {dev}"),
            Op::Deactivate { dev } => write!(f, "lvchange -an {dev}"),
            Op::Permission { dev, writable } => {
                write!(f, "lvchange -p{} {dev}", if *writable { "rw" } else { "r" })
            }
            Op::Stripes {
                dev,
                stripes,
                force,
            } => write!(
                f,
                "lvconvert --stripes {stripes} {}{dev}",
                if *force { "--force " } else { "" }
            ),
            Op::Stripesize { dev, chunk } => write!(f, "lvconvert --stripesize {chunk} {dev}"),
            Op::Retype { dev, layout } => write!(f, "lvconvert --type {} {dev}", layout.name()),
            Op::Mirrors { dev, mirrors } => write!(f, "lvconvert -m {mirrors} {dev}"),
            Op::Repair { dev } => write!(f, "lvconvert --repair {dev}"),
            Op::Refresh { dev } => write!(f, "lvchange --refresh {dev}"),
            Op::LegDevice { dev, leg, works } => write!(
                f,
                "{} {dev} {leg}",
                if *works { "enable_dev" } else { "disable_dev" }
            ),
            Op::WaitForSync { dev } => write!(f, "wait_for_sync {dev}"),
            Op::SyncAction { md, word } => write!(f, "sysfs {md} sync_action {word}"),
            Op::ArrayState { md, word } => write!(f, "sysfs {md} array_state {word}"),
            Op::SyncMax { md, max } => match max {
                Some(m) => write!(f, "sysfs {md} sync_max {m}"),
                None => write!(f, "sysfs {md} sync_max max"),
            },
            Op::RaidDisks { md, disks } => write!(f, "sysfs {md} raid_disks {disks}"),
            Op::Read { dev, range } => write!(f, "read {dev} {range}"),
            Op::Write { dev, range } => write!(f, "write {dev} {range}"),
            Op::Fsck { dev } => write!(f, "fsck {dev}"),
            Op::Sleep => write!(f, "sleep"),
            Op::After(i) => write!(f, "after {}", i + 1),
            Op::AfterOrDeadline(i) => write!(f, "after {} deadline", i + 1),
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        for c in &self.comments {
            if c.is_empty() {
                out.push_str("#\n");
            } else {
                let _ = writeln!(out, "# {c}");
            }
        }
        for a in &self.arrays {
            let kind = if a.kind == ArrayKind::Dm { "dm" } else { "md" };
            let _ = write!(
                out,
                "array {} {kind} {} disks={} chunk={} dev={}",
                a.name,
                a.layout.name(),
                a.disks,
                a.chunk,
                a.dev
            );
            if a.state == InitState::Resync {
                out.push_str(" resync");
            }
            out.push('\n');
        }
        for (actor, op) in &self.ops {
            let _ = writeln!(out, "{actor}: {op}");
        }
        if !self.schedule.is_empty() {
            let v: Vec<String> = self.schedule.iter().map(|b| b.to_string()).collect();
            let _ = writeln!(out, "schedule {}", v.join(" "));
        }
        for e in &self.expects {
            let _ = write!(out, "expect {} {}", e.kernel, e.verdict);
            if let Some(t) = &e.token {
                let _ = write!(out, " {t}");
            }
            out.push('\n');
        }
        f.write_str(&out)
    }
}
