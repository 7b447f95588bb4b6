//! Segments: one plan's load split over N generators without changing it. The ladder's
//! global send schedule is striped: global slot `s` (intended at `s / rate` from the
//! stage start) belongs to segment `s mod N`. The union of the segments' sends is the
//! single-machine schedule at the same instants; each segment's sends are evenly spaced
//! (every N-th slot), never a burst; every stage's and every second's counts sum exactly.
//!
//! ```text
//! rate 6/s, N = 3:  slot  0   1   2   3   4   5   6 …
//!                   seg   0   1   2   0   1   2   0 …
//! ```

use std::fmt;

/// Most segments one plan is split into.
pub const MAX_SEGMENTS: u32 = 1024;

/// Segment `index` of `count` (from 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub index: u32,
    pub count: u32,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SegmentError {
    #[error("--segment `{0}`: give INDEX/COUNT with INDEX from 0, e.g. 0/4")]
    Malformed(String),
    #[error("--segment {index}/{count}: the index counts from 0 and must be below {count}")]
    IndexTooHigh { index: u32, count: u32 },
    #[error("--segments must be between 1 and {MAX_SEGMENTS} (got {0})")]
    Count(u32),
    #[error(
        "--segments {0}: JOB_COMPLETION_INDEX is not set (an Indexed Job sets it); give --segment I/{0}"
    )]
    NoJobIndex(u32),
    #[error("JOB_COMPLETION_INDEX `{0}` is not a number")]
    BadJobIndex(String),
}

impl Segment {
    /// The whole plan on one generator.
    pub const WHOLE: Self = Self { index: 0, count: 1 };

    pub fn new(index: u32, count: u32) -> Result<Self, SegmentError> {
        if count == 0 || count > MAX_SEGMENTS {
            return Err(SegmentError::Count(count));
        }
        if index >= count {
            return Err(SegmentError::IndexTooHigh { index, count });
        }
        Ok(Self { index, count })
    }

    /// `I/N`, as `--segment` takes it.
    pub fn parse(text: &str) -> Result<Self, SegmentError> {
        let malformed = || SegmentError::Malformed(text.trim().to_owned());
        let (index, count) = text.trim().split_once('/').ok_or_else(malformed)?;
        let index = index.trim().parse().map_err(|_| malformed())?;
        let count = count.trim().parse().map_err(|_| malformed())?;
        Self::new(index, count)
    }

    /// `--segments N` alone: the index is the pod's `JOB_COMPLETION_INDEX`.
    pub fn of_job(count: u32, job_index: Option<&str>) -> Result<Self, SegmentError> {
        let index = job_index.ok_or(SegmentError::NoJobIndex(count))?;
        let parsed = index
            .trim()
            .parse()
            .map_err(|_| SegmentError::BadJobIndex(index.to_owned()))?;
        Self::new(parsed, count)
    }

    pub fn is_whole(self) -> bool {
        self.count == 1
    }

    /// Whether global slot `slot` is this segment's.
    pub fn owns(self, slot: u64) -> bool {
        slot % u64::from(self.count) == u64::from(self.index)
    }

    /// The global slot of this segment's `local`-th slot.
    pub fn global_slot(self, local: u64) -> u64 {
        local * u64::from(self.count) + u64::from(self.index)
    }

    /// How many of the global slots `0..slots` are this segment's.
    pub fn owned_below(self, slots: u64) -> u64 {
        let index = u64::from(self.index);
        if slots <= index {
            0
        } else {
            (slots - index).div_ceil(u64::from(self.count))
        }
    }

    /// This segment's share of a rate.
    pub fn share(self, rate_per_second: f64) -> f64 {
        rate_per_second / f64::from(self.count)
    }
}

impl fmt::Display for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_segment_is_index_over_count_from_zero() {
        assert_eq!(Segment::parse("2/4"), Ok(Segment { index: 2, count: 4 }));
        assert_eq!(Segment::parse(" 0/1 "), Ok(Segment::WHOLE));
        assert_eq!(
            Segment::parse("4/4"),
            Err(SegmentError::IndexTooHigh { index: 4, count: 4 })
        );
        assert_eq!(Segment::parse("1/0"), Err(SegmentError::Count(0)));
        for bad in ["1", "a/4", "1/b", "-1/4", "1/4/2", ""] {
            assert!(
                matches!(Segment::parse(bad), Err(SegmentError::Malformed(_))),
                "{bad}"
            );
        }
        assert_eq!(
            Segment::of_job(3, Some("2")),
            Ok(Segment { index: 2, count: 3 })
        );
        assert_eq!(Segment::of_job(3, None), Err(SegmentError::NoJobIndex(3)));
        assert_eq!(
            Segment::of_job(3, Some("x")),
            Err(SegmentError::BadJobIndex("x".into()))
        );
    }

    #[test]
    fn every_slot_belongs_to_exactly_one_segment() {
        for count in 1..=16 {
            for slot in 0..1000 {
                let owners = (0..count)
                    .filter(|&index| Segment { index, count }.owns(slot))
                    .count();
                assert_eq!(owners, 1, "slot {slot}, N = {count}");
            }
            for slots in 0..100 {
                let total: u64 = (0..count)
                    .map(|index| Segment { index, count }.owned_below(slots))
                    .sum();
                assert_eq!(total, slots, "N = {count}, {slots} slots");
            }
        }
    }
}
