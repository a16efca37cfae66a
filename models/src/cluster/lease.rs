//! One partition's lease, and the fencing rule.
//!
//! A node owns a partition while it holds the partition's lease: it
//! [`Lease::acquire`]s it, renews it (acquires again) well before it
//! expires, and gives it up with [`Lease::release`] when it leaves. Once a
//! lease expires any node may take it, and taking it always issues a
//! larger [`FencingToken`]. Every write of a partition's customers carries
//! the token its writer holds, and the store admits it only if it is the
//! partition's current token ([`Lease::admits`]). So after a takeover the
//! old holder's writes are refused, even if it was paused through its
//! expiry and wakes up believing it still owns the partition: correctness
//! never depends on the nodes' clocks, only on the store's.

use super::placement::NodeId;
use crate::time::{Span, Timestamp};
use std::fmt;

/// A lease's generation: larger for every new holder of a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FencingToken(pub u64);

impl fmt::Display for FencingToken {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "#{}", self.0)
    }
}

/// A partition's lease as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Who holds (or last held) it.
    pub holder: NodeId,
    /// Its generation.
    pub token: FencingToken,
    /// When it ends unless renewed.
    pub expires_at: Timestamp,
}

/// Why a node could not take a lease.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the lease is held by {holder} until {until}")]
pub struct LeaseRefused {
    /// The holder.
    pub holder: NodeId,
    /// When its lease ends unless renewed.
    pub until: Timestamp,
}

/// A write (or release) with a token that is not the partition's current one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("fencing token {presented} is stale: the partition's lease is at {current}")]
pub struct StaleWrite {
    /// The token the writer sent.
    pub presented: FencingToken,
    /// The partition's current token.
    pub current: FencingToken,
}

impl Lease {
    /// The lease `node` holds after asking for it at `now` for `ttl`, given
    /// the partition's `current` lease (`None`: never leased):
    /// - none, or an expired one (whoever held it): a new generation;
    /// - its own, unexpired: renewed, same token, new expiry;
    /// - another node's, unexpired: refused.
    pub fn acquire(
        current: Option<&Lease>,
        node: &NodeId,
        now: Timestamp,
        ttl: Span,
    ) -> Result<Lease, LeaseRefused> {
        let expires_at = now.plus(ttl);
        match current {
            None => Ok(Lease {
                holder: node.clone(),
                token: FencingToken(1),
                expires_at,
            }),
            Some(lease) if now >= lease.expires_at => Ok(Lease {
                holder: node.clone(),
                token: FencingToken(lease.token.0 + 1),
                expires_at,
            }),
            Some(lease) if lease.holder == *node => Ok(Lease {
                holder: node.clone(),
                token: lease.token,
                expires_at,
            }),
            Some(lease) => Err(LeaseRefused {
                holder: lease.holder.clone(),
                until: lease.expires_at,
            }),
        }
    }

    /// The lease after its holder gives it up at `now` with `token`: expired
    /// at once (the token stays, so the next holder's is larger), or
    /// refused when `token` is not the current one.
    pub fn release(&self, token: FencingToken, now: Timestamp) -> Result<Lease, StaleWrite> {
        self.admits(token)?;
        Ok(Lease {
            expires_at: now.min(self.expires_at),
            ..self.clone()
        })
    }

    /// Whether a write carrying `token` may be applied: only the current
    /// generation's.
    pub fn admits(&self, token: FencingToken) -> Result<(), StaleWrite> {
        if token == self.token {
            Ok(())
        } else {
            Err(StaleWrite {
                presented: token,
                current: self.token,
            })
        }
    }

    /// Whether the lease still runs at `now`.
    pub fn is_live(&self, now: Timestamp) -> bool {
        now < self.expires_at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Span = Span(5_000);

    fn at(ms: i64) -> Timestamp {
        Timestamp(ms)
    }

    #[test]
    fn a_paused_owner_is_fenced_off_after_a_takeover() {
        let (a, b) = (NodeId::new("a"), NodeId::new("b"));
        let first = Lease::acquire(None, &a, at(0), TTL).expect("free");
        assert_eq!(first.token, FencingToken(1));
        let renewed = Lease::acquire(Some(&first), &a, at(3_000), TTL).expect("its own");
        assert_eq!(renewed.token, first.token);
        assert_eq!(renewed.expires_at, at(8_000));
        // b cannot take it while it runs...
        let refused = Lease::acquire(Some(&renewed), &b, at(7_999), TTL).expect_err("held");
        assert_eq!(refused.holder, a);
        // ...but can once a stops renewing (paused, cut off, dead).
        let taken = Lease::acquire(Some(&renewed), &b, at(8_000), TTL).expect("expired");
        assert_eq!(taken.token, FencingToken(2));
        // a wakes up and writes with its old token: refused.
        assert_eq!(
            taken.admits(first.token),
            Err(StaleWrite {
                presented: FencingToken(1),
                current: FencingToken(2)
            })
        );
        assert_eq!(taken.admits(taken.token), Ok(()));
        // And a's renewal is a refusal, not a silent second owner.
        assert!(Lease::acquire(Some(&taken), &a, at(9_000), TTL).is_err());
    }

    #[test]
    fn a_release_hands_over_at_once_with_a_new_generation() {
        let (a, b) = (NodeId::new("a"), NodeId::new("b"));
        let lease = Lease::acquire(None, &a, at(0), TTL).expect("free");
        assert!(lease.release(FencingToken(7), at(1_000)).is_err());
        let released = lease.release(lease.token, at(1_000)).expect("its token");
        assert!(!released.is_live(at(1_000)));
        let next = Lease::acquire(Some(&released), &b, at(1_000), TTL).expect("released");
        assert_eq!(next.token, FencingToken(2));
    }

    #[test]
    fn the_same_node_coming_back_after_expiry_gets_a_new_generation() {
        let a = NodeId::new("a");
        let lease = Lease::acquire(None, &a, at(0), TTL).expect("free");
        let again = Lease::acquire(Some(&lease), &a, at(6_000), TTL).expect("expired");
        assert_eq!(
            again.token,
            FencingToken(2),
            "its in-flight writes are fenced too"
        );
    }
}
