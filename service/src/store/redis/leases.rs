//! [`Leases`]: the partitions this node holds, with their fencing tokens,
//! as the node last heard from Redis.
//!
//! A lease is taken and renewed by `lease.lua` on Redis's clock; the node
//! counts it valid on its own clock only until the moment it asked plus the
//! lease time less a tenth (a safety margin for clock rate and the round
//! trip), so it stops writing before Redis could hand the partition to
//! another node. Past that moment [`Leases::token`] is `None` and writes to
//! the partition fail at once; a write already on its way still carries the
//! old token, which Redis refuses once another node holds the partition.

use nudge_models::cluster::{FencingToken, Partition, Partitions};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The partitions held by this node.
#[derive(Debug)]
pub(super) struct Leases {
    /// This node's name in the leases.
    node: String,
    /// How long a lease runs unless renewed.
    ttl: Duration,
    /// What the held leases' deadlines count from.
    base: Instant,
    held: Vec<Held>,
}

#[derive(Debug, Default)]
struct Held {
    /// The fencing token writes carry; 0 while not held (or while a token
    /// new to this node waits for [`Leases::activate`]).
    token: AtomicU64,
    /// A token new to this node, not written with until activated: the
    /// node first drops what it knew of the partition.
    pending: AtomicU64,
    /// Until when (ms after `base`) the lease counts as held.
    valid_until: AtomicU64,
}

impl Leases {
    pub(super) fn new(node: &str, ttl: Duration, partitions: Partitions) -> Self {
        Self {
            node: node.to_owned(),
            ttl,
            base: Instant::now(),
            held: (0..partitions.count()).map(|_| Held::default()).collect(),
        }
    }

    /// This node's name.
    pub(super) fn node(&self) -> &str {
        &self.node
    }

    /// How long a lease runs unless renewed.
    pub(super) fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The token to write `partition` with, while this node holds it.
    pub(super) fn token(&self, partition: Partition) -> Option<FencingToken> {
        let held = self.held.get(usize::from(partition.0))?;
        let token = held.token.load(Ordering::Acquire);
        if token == 0 || self.elapsed_ms() >= held.valid_until.load(Ordering::Acquire) {
            return None;
        }
        Some(FencingToken(token))
    }

    /// Redis gave (or renewed) `partition` with `token`, asked for at
    /// `asked`. Whether the token is new to this node: then it is only
    /// pending, not written with (nor [`Leases::token`]) until
    /// [`Leases::activate`]d.
    pub(super) fn hold(&self, partition: Partition, token: FencingToken, asked: Instant) -> bool {
        let Some(held) = self.held.get(usize::from(partition.0)) else {
            return false;
        };
        let until = asked + (self.ttl - self.ttl / 10);
        // A deadline before `base` is already past: 0.
        let until = until.saturating_duration_since(self.base).as_millis() as u64;
        held.valid_until.store(until, Ordering::Release);
        if held.token.load(Ordering::Acquire) == token.0 {
            return false;
        }
        held.token.store(0, Ordering::Release);
        held.pending.store(token.0, Ordering::Release);
        true
    }

    /// The token of `partition` new to this node and not activated yet.
    pub(super) fn pending(&self, partition: Partition) -> Option<FencingToken> {
        let held = self.held.get(usize::from(partition.0))?;
        let token = held.pending.load(Ordering::Acquire);
        (token != 0).then_some(FencingToken(token))
    }

    /// Writes to `partition` carry `token` from now on, if it is still the
    /// one pending; whether it was.
    pub(super) fn activate(&self, partition: Partition, token: FencingToken) -> bool {
        let Some(held) = self.held.get(usize::from(partition.0)) else {
            return false;
        };
        if held
            .pending
            .compare_exchange(token.0, 0, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return false;
        }
        held.token.store(token.0, Ordering::Release);
        true
    }

    /// This node no longer holds `partition`; whether it did.
    pub(super) fn drop_partition(&self, partition: Partition) -> bool {
        self.held.get(usize::from(partition.0)).is_some_and(|held| {
            let pending = held.pending.swap(0, Ordering::AcqRel);
            held.token.swap(0, Ordering::AcqRel) != 0 || pending != 0
        })
    }

    /// The partitions held now.
    pub(super) fn owned(&self) -> Vec<Partition> {
        (0..self.held.len())
            .filter_map(|index| {
                let partition = Partition(index as u16);
                self.token(partition).map(|_| partition)
            })
            .collect()
    }

    /// Whether `partition` is recorded as held, valid or not: this node
    /// held it last and has not heard that another node took it.
    pub(super) fn recorded_as_held(&self, partition: Partition) -> bool {
        self.recorded_token(partition) != 0
    }

    /// The token `partition` is recorded as held with (valid or not,
    /// active or pending); 0 when not held.
    pub(super) fn recorded_token(&self, partition: Partition) -> u64 {
        self.held.get(usize::from(partition.0)).map_or(0, |held| {
            let token = held.token.load(Ordering::Acquire);
            if token != 0 {
                token
            } else {
                held.pending.load(Ordering::Acquire)
            }
        })
    }

    /// Partitions recorded as held (valid or not): the ones to renew.
    pub(super) fn recorded(&self) -> Vec<(Partition, FencingToken)> {
        self.held
            .iter()
            .enumerate()
            .filter_map(|(index, _)| {
                let partition = Partition(index as u16);
                let token = self.recorded_token(partition);
                (token != 0).then_some((partition, FencingToken(token)))
            })
            .collect()
    }

    fn elapsed_ms(&self) -> u64 {
        self.base.elapsed().as_millis() as u64
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_lease_counts_only_until_its_time_less_the_margin_from_when_it_was_asked() {
        let leases = Leases::new(
            "n1",
            Duration::from_millis(1_000),
            Partitions::new(4).unwrap(),
        );
        assert_eq!(leases.token(Partition(1)), None);
        let long_ago = Instant::now() - Duration::from_millis(950);
        assert!(leases.hold(Partition(1), FencingToken(3), long_ago));
        assert_eq!(leases.token(Partition(1)), None, "pending");
        assert_eq!(leases.pending(Partition(1)), Some(FencingToken(3)));
        assert!(
            !leases.activate(Partition(1), FencingToken(2)),
            "not the pending one"
        );
        assert!(leases.activate(Partition(1), FencingToken(3)));
        assert_eq!(leases.pending(Partition(1)), None);
        assert_eq!(leases.token(Partition(1)), None, "past ttl less a tenth");
        assert_eq!(leases.recorded(), [(Partition(1), FencingToken(3))]);
        assert!(leases.recorded_as_held(Partition(1)));
        assert!(!leases.recorded_as_held(Partition(2)));
        assert!(
            !leases.hold(Partition(1), FencingToken(3), Instant::now()),
            "renewed"
        );
        assert_eq!(leases.token(Partition(1)), Some(FencingToken(3)));
        assert_eq!(leases.owned(), [Partition(1)]);
        assert!(leases.drop_partition(Partition(1)));
        assert_eq!(leases.token(Partition(1)), None);
        assert!(!leases.recorded_as_held(Partition(1)));
        // A token new to the node (another held the partition between)
        // stays pending, the old one unusable, until activated.
        assert!(leases.hold(Partition(2), FencingToken(5), Instant::now()));
        assert!(leases.activate(Partition(2), FencingToken(5)));
        assert!(leases.hold(Partition(2), FencingToken(7), Instant::now()));
        assert_eq!(leases.token(Partition(2)), None);
        assert!(leases.recorded_as_held(Partition(2)));
        assert_eq!(leases.recorded(), [(Partition(2), FencingToken(7))]);
        assert!(leases.drop_partition(Partition(2)));
        assert!(!leases.recorded_as_held(Partition(2)));
        assert!(leases.owned().is_empty());
    }
}
