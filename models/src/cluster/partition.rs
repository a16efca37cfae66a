//! Customers in a fixed number of partitions. The partition is the unit of
//! ownership: a node owns whole partitions, never single customers, so the
//! ownership table stays small whatever the number of customers.

use crate::hash;
use std::fmt;

/// One partition, `0..count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Partition(pub u16);

impl fmt::Display for Partition {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "p{}", self.0)
    }
}

/// How many partitions a cluster has. Fixed for a cluster's life: changing
/// it moves most customers to another partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partitions(u16);

impl Partitions {
    /// The default: 256, enough to spread over tens of nodes evenly, few
    /// enough that a node renews all its leases in one round trip.
    pub const DEFAULT: Partitions = Partitions(256);

    /// `count` partitions; `None` unless `1..=4096`.
    pub fn new(count: u16) -> Option<Self> {
        (1..=4_096).contains(&count).then_some(Self(count))
    }

    /// How many there are.
    pub fn count(self) -> u16 {
        self.0
    }

    /// Every partition, in order.
    pub fn all(self) -> impl Iterator<Item = Partition> {
        (0..self.0).map(Partition)
    }

    /// The partition of `customer_id`: a stable hash of its bytes (the same
    /// on every node and version, since stored data is keyed by it).
    pub fn of(self, customer_id: &str) -> Partition {
        let hash = hash::mix(hash::fnv1a(customer_id.bytes()));
        // Lemire's multiply-shift: uniform over 0..count without a division.
        let index = (u128::from(hash) * u128::from(self.0)) >> 64;
        Partition(u16::try_from(index).unwrap_or(0))
    }
}

impl Default for Partitions {
    fn default() -> Self {
        Self::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_customer_is_always_in_the_same_partition() {
        let partitions = Partitions::DEFAULT;
        let first = partitions.of("acme-42");
        assert_eq!(partitions.of("acme-42"), first);
        assert!(first.0 < 256);
        // Pinned: stored data depends on it.
        assert_eq!(partitions.of("acme-42"), Partition(pinned("acme-42")));
    }

    fn pinned(customer: &str) -> u16 {
        let hash = hash::mix(hash::fnv1a(customer.bytes()));
        u16::try_from((u128::from(hash) * 256) >> 64).expect("below 256")
    }

    #[test]
    fn customers_spread_over_every_partition() {
        let partitions = Partitions::new(16).expect("a valid count");
        let mut counts = [0u32; 16];
        for index in 0..16_000 {
            counts[usize::from(partitions.of(&format!("customer-{index}")).0)] += 1;
        }
        for count in counts {
            assert!((800..1_200).contains(&count), "{counts:?}");
        }
    }

    #[test]
    fn the_count_is_bounded() {
        assert_eq!(Partitions::new(0), None);
        assert_eq!(Partitions::new(4_097), None);
        assert_eq!(Partitions::new(1).map(Partitions::count), Some(1));
        assert_eq!(Partitions::DEFAULT.all().count(), 256);
    }
}
