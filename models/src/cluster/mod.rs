//! Cluster ownership, as pure rules (PRODUCT.md §11): which partition a
//! customer is in, which node owns a partition, and the leases with
//! fencing tokens that make "exactly one live owner per customer" hold even
//! when a node pauses or is cut off.
//!
//! - [`partition`]: a fixed number of [`Partition`]s; a customer's is a
//!   stable hash of its id, so it never moves between partitions.
//! - [`placement`]: rendezvous (highest random weight) hashing of
//!   partitions over the live nodes: every node computes the same owners
//!   from the same membership, and a node joining or leaving moves only the
//!   partitions it takes or gives up.
//! - [`lease`]: one partition's lease and the fencing rule the store
//!   applies to every write: a holder renews before expiry; once it
//!   expires another node takes it with a larger [`FencingToken`], and from
//!   then on a write carrying an older token is refused, so a paused old
//!   owner waking up cannot overwrite the new owner's state.
//!
//! Nothing here reads a clock or talks to a store: a backend keeps the
//! leases (Redis, in a server-side script that applies [`Lease::acquire`]
//! and [`Lease::admits`] exactly) and passes `now`.

pub mod lease;
pub mod partition;
pub mod placement;

pub use lease::{FencingToken, Lease, LeaseRefused, StaleWrite};
pub use partition::{Partition, Partitions};
pub use placement::{Move, NodeId, assignment, moves, owner};
