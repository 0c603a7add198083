//! The shadow copy: every write as an interval on the oracle clock, per block.
//!
//! A read of block `b` over the interval `[rs, re]` may return any write acknowledged before
//! `rs` that no other such write superseded (W2 supersedes W when W2 started after W was
//! acknowledged; overlapping writes leave either), or any write of `b` that was not
//! acknowledged before `rs` and started before `re` (concurrent, failed or never completed
//! writes may or may not have landed). Anything else is corruption.

/// What a block holds, as a tag: `writer << 20 | block`. Writer 0 is the initial pattern.
pub fn tag(writer: u64, block: u64) -> u64 {
    (writer << 20) | block
}
pub fn tag_writer(t: u64) -> u64 {
    t >> 20
}
pub fn tag_block(t: u64) -> u64 {
    t & 0xfffff
}

#[derive(Clone, Debug)]
struct Version {
    tag: u64,
    start: u64,
    /// Set when acknowledged successfully.
    acked: Option<u64>,
}

#[derive(Clone, Debug, Default)]
pub struct Shadow {
    blocks: Vec<Vec<Version>>,
    /// Blocks beyond the initial size hold no data anyone wrote: anything may be read there.
    initial_size: u64,
}

impl Shadow {
    pub fn new(size: u64) -> Shadow {
        let blocks = (0..size)
            .map(|b| {
                vec![Version {
                    tag: tag(0, b) + 1,
                    start: 0,
                    acked: Some(0),
                }]
            })
            .collect();
        Shadow {
            blocks,
            initial_size: size,
        }
    }

    /// The initial content of block `b` (what setup wrote).
    pub fn initial(b: u64) -> u64 {
        tag(0, b) + 1
    }

    fn ensure(&mut self, b: u64) {
        while self.blocks.len() as u64 <= b {
            self.blocks.push(Vec::new());
        }
    }

    pub fn write_started(&mut self, writer: u64, start: u64, len: u64, now: u64) {
        for b in start..start + len {
            self.ensure(b);
            self.blocks[b as usize].push(Version {
                tag: tag(writer, b),
                start: now,
                acked: None,
            });
        }
    }

    pub fn write_acked(&mut self, writer: u64, start: u64, len: u64, now: u64) {
        for b in start..start + len {
            // A block forgotten by a shrink since the write started: nothing to ack.
            let Some(vs) = self.blocks.get_mut(b as usize) else {
                continue;
            };
            for v in vs.iter_mut() {
                if v.tag == tag(writer, b) {
                    v.acked = Some(now);
                }
            }
        }
    }

    /// The array shrank to `size` blocks (a `--force` stripe removal): what lay beyond is gone,
    /// and whatever the array later grows into there is undefined until written.
    pub fn shrink_to(&mut self, size: u64) {
        if (size as usize) < self.blocks.len() {
            self.blocks.truncate(size as usize);
        }
        self.initial_size = self.initial_size.min(size);
    }

    /// The tags block `b` may hold for a read over `[rs, re]`; None means "anything".
    pub fn allowed(&self, b: u64, rs: u64, re: u64) -> Option<Vec<u64>> {
        let vs = self.blocks.get(b as usize)?;
        let done = |v: &&Version| v.acked.is_some_and(|a| a < rs);
        let Some(latest_start) = vs.iter().filter(done).map(|v| v.start).max() else {
            // A block the array grew into, never written: its content is undefined.
            return if b >= self.initial_size {
                None
            } else {
                Some(Vec::new())
            };
        };
        let mut out: Vec<u64> = vs
            .iter()
            .filter(done)
            .filter(|v| v.acked.is_some_and(|a| a >= latest_start))
            .map(|v| v.tag)
            .collect();
        for v in vs {
            let landed_before = v.acked.is_some_and(|a| a < rs);
            if !landed_before && v.start <= re && !out.contains(&v.tag) {
                out.push(v.tag);
            }
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_sees_the_last_acked_write_or_a_concurrent_one() {
        let mut s = Shadow::new(4);
        assert_eq!(s.allowed(1, 5, 6), Some(vec![Shadow::initial(1)]));
        s.write_started(7, 1, 2, 10);
        // Concurrent with the write: old or new.
        assert_eq!(
            s.allowed(1, 9, 11),
            Some(vec![Shadow::initial(1), tag(7, 1)])
        );
        s.write_acked(7, 1, 2, 12);
        // After the ack: only the new data.
        assert_eq!(s.allowed(2, 13, 14), Some(vec![tag(7, 2)]));
        // Untouched block: only the initial pattern.
        assert_eq!(s.allowed(0, 13, 14), Some(vec![Shadow::initial(0)]));
        // Beyond the initial size and never written: anything.
        assert_eq!(s.allowed(9, 13, 14), None);
    }

    #[test]
    fn a_write_in_flight_across_a_shrink_is_forgotten() {
        let mut s = Shadow::new(4);
        s.write_started(7, 2, 2, 10);
        s.shrink_to(2);
        s.write_acked(7, 2, 2, 12);
        assert_eq!(s.allowed(3, 13, 14), None);
        assert_eq!(s.allowed(1, 13, 14), Some(vec![Shadow::initial(1)]));
    }
}
