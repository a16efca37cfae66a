//! `CustomerRegistry`: finds a customer's live actor or activates one from the
//! store, passivates idle actors, and bounds how many are live.

use super::customer::{Activity, CustomerActor, Passivate};
use super::system::ActorSystem;
use crate::engine::Shared;
use crate::error::ServiceError;
use actix::prelude::*;
use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use nudge_models::time::Timestamp;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A live actor as the registry knows it.
#[derive(Debug, Clone)]
pub struct RegistryEntry {
    /// The actor's address.
    pub addr: Addr<CustomerActor>,
    /// Which activation this is.
    pub generation: u64,
    /// Last activity and queued messages.
    pub activity: Arc<Activity>,
}

/// Live customer actors by customer id.
#[derive(Debug)]
pub struct CustomerRegistry {
    entries: Arc<DashMap<Arc<str>, RegistryEntry>>,
    system: ActorSystem,
    shared: Arc<Shared>,
    next_generation: AtomicU64,
    shard_hasher: std::hash::BuildHasherDefault<std::hash::DefaultHasher>,
}

impl CustomerRegistry {
    /// A registry starting actors on `system`'s arbiters.
    pub fn new(system: ActorSystem, shared: Arc<Shared>) -> Self {
        Self {
            entries: Arc::new(DashMap::new()),
            system,
            shared,
            next_generation: AtomicU64::new(1),
            shard_hasher: Default::default(),
        }
    }

    /// Number of live actors.
    pub fn live(&self) -> usize {
        self.entries.len()
    }

    /// The live actor of `customer_id`, if any.
    pub fn get(&self, customer_id: &str) -> Option<RegistryEntry> {
        self.entries.get(customer_id).map(|entry| entry.clone())
    }

    /// The actor of `customer_id`, activated from the store if it is not live.
    /// Racing activations resolve to one actor: the first to take the map entry
    /// loads the state and starts it; the others find it there.
    pub fn get_or_activate(&self, customer_id: &str) -> Result<RegistryEntry, ServiceError> {
        if let Some(entry) = self.get(customer_id) {
            return Ok(entry);
        }
        if self.entries.len() >= self.shared.config.actors.max_live_customers {
            self.make_room();
        }
        let key: Arc<str> = Arc::from(customer_id);
        match self.entries.entry(key.clone()) {
            Entry::Occupied(occupied) => Ok(occupied.get().clone()),
            Entry::Vacant(vacant) => {
                // Loaded while holding the entry, so no other activation of
                // this customer can save newer state in between.
                let state = self
                    .shared
                    .store
                    .load(customer_id)
                    .map_err(|error| ServiceError::Unavailable(error.to_string()))?
                    .unwrap_or_default();
                let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
                let activity = Arc::new(Activity::default());
                activity
                    .last_active_ms
                    .store(self.shared.clock.now().millis(), Ordering::Relaxed);
                let entries = Arc::downgrade(&self.entries);
                let stop_key = key.clone();
                let on_stop = Box::new(move || {
                    if let Some(entries) = entries.upgrade() {
                        entries.remove_if(&stop_key, |_, entry| entry.generation == generation);
                    }
                });
                let shared = self.shared.clone();
                let actor_activity = activity.clone();
                let arbiter = self.system.arbiter(self.shard_of(customer_id));
                let addr = CustomerActor::start_in_arbiter(arbiter, move |_| {
                    CustomerActor::new(key, state, shared, actor_activity, generation, on_stop)
                });
                self.shared.record_activation();
                let entry = RegistryEntry {
                    addr,
                    generation,
                    activity,
                };
                vacant.insert(entry.clone());
                Ok(entry)
            }
        }
    }

    /// Asks every actor idle for longer than the configured timeout at `now` to
    /// passivate; returns how many were asked.
    pub fn passivate_idle(&self, now: Timestamp) -> usize {
        let timeout_ms = i64::try_from(
            self.shared
                .config
                .actors
                .idle_timeout_secs
                .saturating_mul(1_000),
        )
        .unwrap_or(i64::MAX);
        let idle: Vec<RegistryEntry> = self
            .entries
            .iter()
            .filter(|entry| {
                let activity = &entry.value().activity;
                activity.pending.load(Ordering::Relaxed) == 0
                    && now
                        .millis()
                        .saturating_sub(activity.last_active_ms.load(Ordering::Relaxed))
                        >= timeout_ms
            })
            .map(|entry| entry.value().clone())
            .collect();
        idle.iter()
            .filter(|entry| Self::ask_to_passivate(entry))
            .count()
    }

    /// Passivates every live actor (shutdown).
    pub fn passivate_all(&self) {
        for entry in self.entries.iter() {
            entry.value().addr.do_send(Passivate);
        }
    }

    /// Asks the least recently active actors to passivate until fewer than
    /// `max_live_customers` remain that were not already asked. Skipping those
    /// already asked makes concurrent activations evict distinct actors (they
    /// used to all pick the same least recent one, leaving the rest live).
    fn make_room(&self) {
        let max_live = self.shared.config.actors.max_live_customers;
        loop {
            let mut active = 0_usize;
            let mut oldest: Option<(i64, RegistryEntry)> = None;
            for entry in self.entries.iter() {
                let activity = &entry.value().activity;
                if activity.passivating.load(Ordering::Acquire) {
                    continue;
                }
                active += 1;
                let last_active = activity.last_active_ms.load(Ordering::Relaxed);
                if oldest
                    .as_ref()
                    .is_none_or(|(oldest, _)| last_active < *oldest)
                {
                    oldest = Some((last_active, entry.value().clone()));
                }
            }
            match oldest {
                // Whoever flips the flag, the count drops: the loop ends.
                Some((_, entry)) if active >= max_live => {
                    Self::ask_to_passivate(&entry);
                }
                _ => return,
            }
        }
    }

    /// Sends `Passivate` unless the actor was already asked; true if sent.
    fn ask_to_passivate(entry: &RegistryEntry) -> bool {
        if entry.activity.passivating.swap(true, Ordering::AcqRel) {
            return false;
        }
        entry.addr.do_send(Passivate);
        true
    }

    fn shard_of(&self, customer_id: &str) -> usize {
        let hash = self.shard_hasher.hash_one(customer_id);
        usize::try_from(hash % self.system.arbiter_count() as u64).unwrap_or(0)
    }
}
