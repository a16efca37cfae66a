//! Keyed, reproducible randomness: every draw of the world is made from a
//! generator seeded by the run's seed and a key naming what it is for
//! (customer 17's traits, their session in round 2, the outcome of
//! `welcome_tour` in `home_banner` in round 3, …), never from a generator
//! shared across customers. So a customer's draws do not depend on how many
//! other customers there are, on the order the driver's concurrent tasks
//! run in, or on what the server served to anyone else.
//!
//! The generator is SplitMix64 (Steele, Lea and Flood, 2014), written out
//! here so the stream of a seed never changes with a dependency's version.

/// SplitMix64's increment.
const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's output function.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A 64-bit key for a name (FNV-1a), e.g. an action or placement id.
pub fn key(text: &str) -> u64 {
    nudge_models::hash::fnv1a(text.bytes())
}

/// A stream of draws for one purpose: the same seed and key give the same
/// draws, any other key independent ones.
#[derive(Debug, Clone)]
pub struct Draws {
    state: u64,
}

impl Draws {
    /// The draws of `seed` for `key` (e.g. `[CUSTOMER, index, ROUND, r]`).
    pub fn new(seed: u64, key: &[u64]) -> Self {
        let state = key
            .iter()
            .fold(mix(seed.wrapping_add(GOLDEN)), |state, part| {
                mix(state ^ mix(part.wrapping_add(GOLDEN)))
            });
        Self { state }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN);
        mix(self.state)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1_u64 << 53) as f64
    }

    /// Uniform in [low, high).
    pub fn between(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * self.uniform()
    }

    /// True with probability `p` (clamped to [0, 1]).
    pub fn chance(&mut self, p: f64) -> bool {
        self.uniform() < p
    }

    /// Uniform in 0..n (0 when n is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        // Multiply-shift: bias below 2^-64 · n, irrelevant here.
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// A standard normal draw (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform(); // (0, 1]: ln is finite
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// A Poisson draw with mean `lambda` (Knuth's method below 30, a rounded
    /// normal above; 0 for a mean that is not positive).
    pub fn poisson(&mut self, lambda: f64) -> u32 {
        if lambda.is_nan() || lambda <= 0.0 {
            return 0;
        }
        if lambda >= 30.0 {
            let draw = (lambda + lambda.sqrt() * self.normal()).round();
            return draw.clamp(0.0, f64::from(u32::MAX)) as u32;
        }
        let limit = (-lambda).exp();
        let mut count = 0;
        let mut product = self.uniform();
        while product > limit {
            count += 1;
            product *= self.uniform();
        }
        count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_key_gives_the_same_draws_and_another_key_others() {
        let draws = |key: &[u64]| {
            let mut draws = Draws::new(7, key);
            (0..4).map(|_| draws.next_u64()).collect::<Vec<_>>()
        };
        assert_eq!(draws(&[1, 2]), draws(&[1, 2]));
        assert_ne!(draws(&[1, 2]), draws(&[2, 1]));
        assert_ne!(draws(&[1, 2]), draws(&[1, 2, 0]));
        assert_ne!(
            Draws::new(7, &[1]).next_u64(),
            Draws::new(8, &[1]).next_u64()
        );
    }

    #[test]
    fn the_stream_of_a_seed_is_pinned() {
        // Changing the generator changes every simulation: this fails first.
        let mut draws = Draws::new(1, &[]);
        let first: Vec<u64> = (0..3).map(|_| draws.next_u64()).collect();
        assert_eq!(
            first,
            [
                6_791_897_765_849_424_158,
                17_405_687_883_870_564_846,
                834_844_254_806_117_752
            ]
        );
        assert_eq!(key("home_banner"), key("home_banner"));
        assert_ne!(key("home_banner"), key("daily_email"));
    }

    #[test]
    fn distributions_have_their_moments() {
        let mut draws = Draws::new(3, &[9]);
        let n = 20_000;
        let uniform: Vec<f64> = (0..n).map(|_| draws.uniform()).collect();
        assert!(uniform.iter().all(|u| (0.0..1.0).contains(u)));
        let mean = uniform.iter().sum::<f64>() / f64::from(n);
        assert!((mean - 0.5).abs() < 0.01, "{mean}");
        let normal: Vec<f64> = (0..n).map(|_| draws.normal()).collect();
        let mean = normal.iter().sum::<f64>() / f64::from(n);
        let variance = normal.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / f64::from(n);
        assert!(
            mean.abs() < 0.03 && (variance - 1.0).abs() < 0.05,
            "{mean} {variance}"
        );
        for lambda in [0.3, 4.0, 45.0] {
            let total: u64 = (0..n).map(|_| u64::from(draws.poisson(lambda))).sum();
            let mean = total as f64 / f64::from(n);
            assert!(
                (mean - lambda).abs() < 0.05 * lambda.max(1.0),
                "{lambda}: {mean}"
            );
        }
        assert_eq!(draws.poisson(0.0), 0);
        assert_eq!(draws.poisson(f64::NAN), 0);
        let mut counts = [0_u32; 5];
        for _ in 0..n {
            counts[draws.below(5) as usize] += 1;
        }
        assert!(counts.iter().all(|c| c.abs_diff(4_000) < 300), "{counts:?}");
        assert_eq!(draws.below(0), 0);
    }
}
