//! Customer-state storage behind a narrow trait: the seam for the embedded
//! durable store and, later, a Redis-backed cluster mode. [`MemoryStore`] keeps
//! passivated customers in memory.

use dashmap::DashMap;
use nudge_models::customer::CustomerState;
use std::fmt;

/// Why a storage call failed.
#[derive(Debug, thiserror::Error)]
#[error("storage: {0}")]
pub struct StoreError(pub String);

/// Where customer state lives while its actor is passive.
pub trait CustomerStore: Send + Sync + fmt::Debug {
    /// The stored state of `customer_id`, if any.
    fn load(&self, customer_id: &str) -> Result<Option<CustomerState>, StoreError>;
    /// Stores the state of `customer_id`.
    fn save(&self, customer_id: &str, state: &CustomerState) -> Result<(), StoreError>;
    /// Number of stored customers.
    fn len(&self) -> usize;
    /// Whether no customer is stored.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An in-memory store: survives passivation, not a restart.
#[derive(Debug, Default)]
pub struct MemoryStore {
    customers: DashMap<String, CustomerState>,
}

impl CustomerStore for MemoryStore {
    fn load(&self, customer_id: &str) -> Result<Option<CustomerState>, StoreError> {
        Ok(self.customers.get(customer_id).map(|state| state.clone()))
    }

    fn save(&self, customer_id: &str, state: &CustomerState) -> Result<(), StoreError> {
        if state.is_empty() {
            self.customers.remove(customer_id);
        } else {
            self.customers.insert(customer_id.to_owned(), state.clone());
        }
        Ok(())
    }

    fn len(&self) -> usize {
        self.customers.len()
    }
}
