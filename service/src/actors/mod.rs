//! Customer actors on actix.
//!
//! - [`system`]: the actix `System` on its own thread with a fixed set of
//!   arbiters (actor threads); tonic runs on tokio beside it.
//! - [`customer`]: `CustomerActor`, one per active customer, and its messages.
//!   Every call of one customer is serialized through its actor.
//! - [`registry`]: `CustomerRegistry`, which finds or activates a customer's
//!   actor (racing activations resolve to one), passivates idle ones and bounds
//!   how many are live.

pub mod customer;
pub mod registry;
pub mod system;

pub use customer::CustomerActor;
pub use registry::{CustomerRegistry, RegistryEntry};
pub use system::ActorSystem;
