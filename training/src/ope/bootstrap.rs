//! The bootstrap: resample the decisions with replacement, re-estimate on
//! each resample, and read an interval off the spread of the re-estimates.
//!
//! The generator is SplitMix64 (Steele, Lea and Flood, 2014), written here
//! rather than taken from `rand`, whose small generator may change between
//! versions: the same seed must give the same intervals in every build, so
//! that a report can be reproduced. Indices are drawn by Lemire's
//! multiply-and-reject method, exactly uniform.
//!
//! Percentiles use the nearest rank: the `p`-th percentile of `B` values is
//! the `⌈p·B⌉`-th smallest, a rule simple enough to check by hand.

use super::{Estimates, Sums, Term};

/// SplitMix64: a 64-bit state advanced by a constant, output through a
/// mixing function. Fast, and fully determined by its seed.
#[derive(Debug, Clone)]
pub(super) struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator starting from `seed`.
    pub(super) fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 random bits.
    pub(super) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A uniform integer in `0..bound` (`bound` ≥ 1): the high half of a
    /// random word times `bound`, redrawn in the rare case the low half
    /// falls in the short, biased stretch (Lemire, 2019).
    pub(super) fn below(&mut self, bound: u64) -> u64 {
        let mut product = u128::from(self.next_u64()) * u128::from(bound);
        if (product as u64) < bound {
            let threshold = bound.wrapping_neg() % bound;
            while (product as u64) < threshold {
                product = u128::from(self.next_u64()) * u128::from(bound);
            }
        }
        (product >> 64) as u64
    }
}

/// The estimates of `resamples` resamples of `terms` (not empty), each as
/// many decisions as the log, drawn with replacement from a generator seeded
/// with `seed`.
pub(super) fn resample(terms: &[Term], resamples: usize, seed: u64) -> Vec<Estimates> {
    let mut generator = SplitMix64::new(seed);
    let bound = terms.len() as u64;
    (0..resamples)
        .map(|_| {
            let mut sums = Sums::default();
            for _ in 0..terms.len() {
                sums.add(&terms[generator.below(bound) as usize]);
            }
            sums.estimates()
        })
        .collect()
}

/// The 1-based nearest rank of the `p`-th quantile of `count` values,
/// `⌈p·count⌉` within `1..=count`. The product is shrunk by a relative
/// 10⁻¹² first, so that float noise cannot push an exact rank up one:
/// `(1 − 0.95) / 2` is 0.025000000000000022, and 1000 of it must be rank
/// 25, not 26.
pub(super) fn nearest_rank(p: f64, count: usize) -> usize {
    let rank = (p * count as f64 * (1.0 - 1e-12)).ceil() as usize;
    rank.clamp(1, count.max(1))
}

/// `estimate` with the nearest-rank percentile interval of `values` at
/// `confidence`; `None` without values.
pub(super) fn interval(
    estimate: f64,
    mut values: Vec<f64>,
    confidence: f64,
) -> Option<super::Interval> {
    values.sort_by(f64::total_cmp);
    let count = values.len();
    let low = *values.get(nearest_rank((1.0 - confidence) / 2.0, count) - 1)?;
    let high = *values.get(nearest_rank((1.0 + confidence) / 2.0, count) - 1)?;
    Some(super::Interval {
        estimate,
        low,
        high,
    })
}
