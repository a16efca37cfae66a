//! What the generator sends: customer ids drawn from a Zipf law with a
//! per-customer rate ceiling (and optionally one hot customer), and the
//! requests themselves over the synthetic catalog.

use nudge_models::synthetic;
use nudge_proto::v1::value::Kind;
use nudge_proto::v1::{DecideRequest, Event, Outcome, ReportOutcomeRequest, Value};
use rand::rngs::SmallRng;
use rand::{Rng as _, SeedableRng as _};
use rand_distr::{Distribution as _, Zipf};
use std::collections::{HashMap, VecDeque};
use std::time::Instant;

/// The id of the hot customer of `--hot-key` runs.
pub const HOT_CUSTOMER: &str = "hot-customer";

/// How customer ids are drawn.
#[derive(Debug, Clone, Copy)]
pub struct Population {
    /// Known customers: ids `c0` … `c{customers-1}`.
    pub customers: u64,
    /// The Zipf exponent (1.1: the hottest customer gets ~12 % before the
    /// ceiling; 0.75: under 1 %).
    pub zipf_exponent: f64,
    /// Most calls one customer makes per second (real people do not make
    /// hundreds of calls a second); a draw over it is drawn again.
    pub customer_max_rate: u32,
    /// Share of all calls that go to [`HOT_CUSTOMER`], past the ceiling
    /// (0 for none; `--hot-key` sets 0.1).
    pub hot_share: f64,
}

/// Which customer a call is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Customer {
    /// Its id.
    pub id: String,
    /// Whether it is [`HOT_CUSTOMER`] (reported apart).
    pub hot: bool,
}

/// Draws customer ids: Zipf over the population, at most
/// `customer_max_rate` calls per customer in each second.
#[derive(Debug)]
pub struct Sampler {
    population: Population,
    zipf: Zipf<f64>,
    random: SmallRng,
    /// Calls per customer rank in the current second.
    this_second: HashMap<u64, u32>,
    second_started: Instant,
    /// Draws that hit the ceiling and were drawn again.
    pub redrawn: u64,
}

impl Sampler {
    /// A sampler over `population`, seeded for repeatable runs.
    pub fn new(population: Population, seed: u64) -> anyhow::Result<Self> {
        anyhow::ensure!(population.customers > 0, "--customers must be at least 1");
        let zipf = Zipf::new(population.customers as f64, population.zipf_exponent)
            .map_err(|error| anyhow::anyhow!("zipf exponent: {error}"))?;
        Ok(Self {
            population,
            zipf,
            random: SmallRng::seed_from_u64(seed),
            this_second: HashMap::new(),
            second_started: Instant::now(),
            redrawn: 0,
        })
    }

    /// The next customer at `now`.
    pub fn next(&mut self, now: Instant) -> Customer {
        if self.population.hot_share > 0.0 && self.random.random_bool(self.population.hot_share) {
            return Customer {
                id: HOT_CUSTOMER.to_owned(),
                hot: true,
            };
        }
        if now.duration_since(self.second_started).as_secs() >= 1 {
            self.this_second.clear();
            self.second_started = now;
        }
        let ceiling = self.population.customer_max_rate.max(1);
        let mut rank = self.draw();
        for _ in 0..16 {
            let calls = self.this_second.entry(rank).or_insert(0);
            if *calls < ceiling {
                *calls += 1;
                break;
            }
            self.redrawn += 1;
            rank = self.draw();
        }
        Customer {
            id: customer_id(rank),
            hot: false,
        }
    }

    /// A rank in `0..customers`, Zipf-distributed (0 the most frequent).
    fn draw(&mut self) -> u64 {
        let drawn = self.zipf.sample(&mut self.random) as u64;
        drawn.saturating_sub(1).min(self.population.customers - 1)
    }

    /// A uniform number in `0..bound`.
    pub fn below(&mut self, bound: usize) -> usize {
        self.random.random_range(0..bound.max(1))
    }
}

/// The id of the customer of rank `rank`.
pub fn customer_id(rank: u64) -> String {
    format!("c{rank}")
}

/// A Decide on the synthetic placement, with a device and hour context.
pub fn decide(customer: &str, ordinal: u64) -> DecideRequest {
    let device = if ordinal.is_multiple_of(3) {
        "desktop"
    } else {
        "mobile"
    };
    DecideRequest {
        customer_id: customer.to_owned(),
        placement: synthetic::PLACEMENT.to_owned(),
        context: HashMap::from([
            ("device".to_owned(), string(device)),
            ("hour".to_owned(), number((ordinal % 24) as f64)),
        ]),
        ..Default::default()
    }
}

/// A behavioural event (one of the catalog's), or every 20th an `identify`
/// with plan and seats; ids are unique per run.
pub fn event(customer: &str, run: u64, ordinal: u64) -> Event {
    let (name, properties) = if ordinal.is_multiple_of(20) {
        let plan = if ordinal.is_multiple_of(40) {
            "trial"
        } else {
            "pro"
        };
        (
            "identify",
            HashMap::from([
                ("plan".to_owned(), string(plan)),
                ("seats".to_owned(), number((ordinal % 50) as f64)),
            ]),
        )
    } else {
        let index = (ordinal.wrapping_mul(7) % synthetic::EVENTS.len() as u64) as usize;
        (synthetic::EVENTS[index], HashMap::new())
    };
    Event {
        customer_id: customer.to_owned(),
        event_id: format!("bench-{run}-{ordinal}"),
        name: name.to_owned(),
        timestamp: None,
        properties,
    }
}

/// An action served by an earlier Decide, that an outcome can be about.
#[derive(Debug, Clone)]
pub struct Served {
    /// The customer decided for.
    pub customer: Customer,
    /// The decision's id.
    pub decision_id: String,
    /// The action served first.
    pub action_id: String,
}

/// The most recent served actions (bounded), that outcomes are drawn from.
#[derive(Debug, Default)]
pub struct RecentServed {
    served: VecDeque<Served>,
}

impl RecentServed {
    /// At most this many are kept.
    pub const CAPACITY: usize = 10_000;

    /// Remembers `served`, forgetting the oldest beyond [`Self::CAPACITY`].
    pub fn push(&mut self, served: Served) {
        if self.served.len() == Self::CAPACITY {
            self.served.pop_front();
        }
        self.served.push_back(served);
    }

    /// Takes the newest served action, if any.
    pub fn take(&mut self) -> Option<Served> {
        self.served.pop_back()
    }
}

/// An outcome for `served`: mostly impressions and clicks, some
/// conversions and dismissals.
pub fn outcome(served: &Served, ordinal: u64) -> ReportOutcomeRequest {
    let outcome = match ordinal % 10 {
        0..=4 => Outcome::Impression,
        5..=7 => Outcome::Click,
        8 => Outcome::Conversion,
        _ => Outcome::Dismiss,
    };
    ReportOutcomeRequest {
        customer_id: served.customer.id.clone(),
        decision_id: served.decision_id.clone(),
        action_id: served.action_id.clone(),
        outcome: outcome as i32,
        reward: None,
        timestamp: None,
        dispatch_id: String::new(),
    }
}

fn string(value: &str) -> Value {
    Value {
        kind: Some(Kind::StringValue(value.to_owned())),
    }
}

fn number(value: f64) -> Value {
    Value {
        kind: Some(Kind::NumberValue(value)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn population(hot_share: f64) -> Population {
        Population {
            customers: 1_000_000,
            zipf_exponent: 1.1,
            customer_max_rate: 5,
            hot_share,
        }
    }

    #[test]
    fn the_ceiling_bounds_each_customer_in_a_second() {
        let mut sampler = Sampler::new(population(0.0), 1).unwrap();
        let now = Instant::now();
        let mut calls: HashMap<String, u32> = HashMap::new();
        for _ in 0..5_000 {
            *calls.entry(sampler.next(now).id).or_default() += 1;
        }
        // Zipf(1.1) puts ~12 % of 5,000 draws on the top rank; the ceiling
        // spreads them (a draw gives up after 16 tries, rarely).
        let hottest = calls.values().max().copied().unwrap_or(0);
        assert!(hottest <= 6, "hottest customer got {hottest} calls");
        assert!(sampler.redrawn > 0);
        assert!(calls.len() > 1_000);
    }

    #[test]
    fn the_hot_key_takes_its_share() {
        let mut sampler = Sampler::new(population(0.1), 2).unwrap();
        let now = Instant::now();
        let hot = (0..10_000).filter(|_| sampler.next(now).hot).count();
        assert!((700..1_300).contains(&hot), "{hot} hot of 10,000");
    }

    #[test]
    fn recent_served_is_bounded() {
        let mut recent = RecentServed::default();
        for index in 0..RecentServed::CAPACITY + 5 {
            recent.push(Served {
                customer: Customer {
                    id: customer_id(index as u64),
                    hot: false,
                },
                decision_id: format!("d{index}"),
                action_id: "a".to_owned(),
            });
        }
        assert_eq!(recent.served.len(), RecentServed::CAPACITY);
        let newest = recent.take().unwrap();
        assert_eq!(
            newest.decision_id,
            format!("d{}", RecentServed::CAPACITY + 4)
        );
    }
}
