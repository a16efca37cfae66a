//! `CustomerRegistry`: finds a customer's live actor or activates one (which
//! loads its state from the store), passivates idle actors, and bounds how many are live, evicting the
//! least recently used.
//!
//! Recency is exact: every call routed to an actor takes a fresh tick from a
//! counter and moves the actor to that tick in an ordered map (one short lock
//! and two O(log n) map operations), so eviction pops the oldest tick instead
//! of scanning every live actor.

use super::customer::{Activity, CustomerActor, Passivate};
use super::system::ActorSystem;
use crate::shared::Shared;
use actix::prelude::*;
use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use nudge_models::time::Timestamp;
use std::collections::BTreeMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

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

/// Live actors in order of last use: tick → customer id. Actors asked to
/// passivate are no longer in it.
#[derive(Debug, Default)]
struct Recency {
    ticks: Mutex<BTreeMap<u64, Arc<str>>>,
    next_tick: AtomicU64,
}

impl Recency {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<str>>> {
        self.ticks.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Moves `entry` to the newest tick, unless it was asked to passivate.
    fn touch(&self, key: &Arc<str>, activity: &Activity) {
        let tick = self.next_tick.fetch_add(1, Ordering::Relaxed) + 1;
        let mut ticks = self.lock();
        if activity.passivating.load(Ordering::Acquire) {
            return;
        }
        let previous = activity.lru_tick.swap(tick, Ordering::AcqRel);
        if previous != 0 {
            ticks.remove(&previous);
        }
        ticks.insert(tick, key.clone());
    }

    /// Forgets the actor whose activity this is.
    fn remove(&self, activity: &Activity) {
        let tick = activity.lru_tick.swap(0, Ordering::AcqRel);
        if tick != 0 {
            self.lock().remove(&tick);
        }
    }

    /// The least recently used actor's id, taken out of the order.
    fn pop_oldest(&self, at_least: usize) -> Option<(u64, Arc<str>)> {
        let mut ticks = self.lock();
        if ticks.len() < at_least {
            return None;
        }
        ticks.pop_first()
    }
}

/// Live customer actors by customer id.
#[derive(Debug)]
pub struct CustomerRegistry {
    entries: Arc<DashMap<Arc<str>, RegistryEntry>>,
    recency: Arc<Recency>,
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
            recency: Arc::new(Recency::default()),
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

    /// The actor of `customer_id`, activated if it is not live. Racing
    /// activations resolve to one actor: the first to take the map entry
    /// starts it; the others find it there. No disk is read while the entry
    /// is held: the new actor loads its own state before it handles a
    /// message.
    pub fn get_or_activate(&self, customer_id: &str) -> RegistryEntry {
        if let Some((key, entry)) = self
            .entries
            .get(customer_id)
            .map(|entry| (entry.key().clone(), entry.value().clone()))
        {
            self.recency.touch(&key, &entry.activity);
            return entry;
        }
        self.make_room();
        let key: Arc<str> = Arc::from(customer_id);
        match self.entries.entry(key.clone()) {
            Entry::Occupied(occupied) => {
                let entry = occupied.get().clone();
                drop(occupied);
                self.recency.touch(&key, &entry.activity);
                entry
            }
            Entry::Vacant(vacant) => {
                // The previous activation (if any) removed its entry only
                // once stopped, after queueing its last write, and the store
                // returns queued writes: the new actor loads the newest state.
                let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
                let activity = Arc::new(Activity::default());
                activity
                    .last_active_ms
                    .store(self.shared.clock.now().millis(), Ordering::Relaxed);
                let entries = Arc::downgrade(&self.entries);
                let recency = Arc::downgrade(&self.recency);
                let stop_key = key.clone();
                let stop_activity = activity.clone();
                let on_stop = Box::new(move || {
                    if let Some(recency) = recency.upgrade() {
                        recency.remove(&stop_activity);
                    }
                    if let Some(entries) = entries.upgrade() {
                        entries.remove_if(&stop_key, |_, entry| entry.generation == generation);
                    }
                });
                let shared = self.shared.clone();
                let actor_activity = activity.clone();
                let recency_key = key.clone();
                let arbiter = self.system.arbiter(self.shard_of(customer_id));
                let addr = CustomerActor::start_in_arbiter(arbiter, move |_| {
                    CustomerActor::new(key, shared, actor_activity, generation, on_stop)
                });
                self.shared.record_activation();
                let entry = RegistryEntry {
                    addr,
                    generation,
                    activity,
                };
                vacant.insert(entry.clone());
                self.recency.touch(&recency_key, &entry.activity);
                entry
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
            .filter(|entry| self.ask_to_passivate(entry))
            .count()
    }

    /// Asks every live actor whose customer `matches` to passivate; how
    /// many are still live (asked now or before, not yet stopped).
    pub fn passivate_matching(&self, matches: impl Fn(&str) -> bool) -> usize {
        let matching: Vec<RegistryEntry> = self
            .entries
            .iter()
            .filter(|entry| matches(entry.key()))
            .map(|entry| entry.value().clone())
            .collect();
        for entry in &matching {
            self.ask_to_passivate(entry);
        }
        matching.len()
    }

    /// Passivates every live actor (shutdown).
    pub fn passivate_all(&self) {
        for entry in self.entries.iter() {
            entry.value().addr.do_send(Passivate);
        }
    }

    /// Asks the least recently used actors to passivate until fewer than
    /// `max_live_customers` remain that were not already asked. Each eviction
    /// pops its victim out of the recency order, so concurrent activations
    /// evict distinct actors.
    fn make_room(&self) {
        let max_live = self.shared.config.actors.max_live_customers;
        while let Some((tick, key)) = self.recency.pop_oldest(max_live) {
            if let Some(entry) = self.get(&key)
                && entry.activity.lru_tick.load(Ordering::Acquire) == tick
            {
                entry.activity.lru_tick.store(0, Ordering::Release);
                self.ask_to_passivate(&entry);
            }
        }
    }

    /// Sends `Passivate` unless the actor was already asked; true if sent.
    fn ask_to_passivate(&self, entry: &RegistryEntry) -> bool {
        if entry.activity.passivating.swap(true, Ordering::AcqRel) {
            return false;
        }
        self.recency.remove(&entry.activity);
        entry.addr.do_send(Passivate);
        true
    }

    fn shard_of(&self, customer_id: &str) -> usize {
        let hash = self.shard_hasher.hash_one(customer_id);
        usize::try_from(hash % self.system.arbiter_count() as u64).unwrap_or(0)
    }
}
