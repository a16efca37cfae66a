//! Journeys in the service: which journey versions runs may be on and
//! which journeys an operator paused ([`JourneyBook`]), and when each
//! customer's runs are next due ([`JourneyTimers`]), which the engine's
//! timer task fires by waking the customer's actor.
//!
//! The runs themselves live in each customer's state and move in its actor
//! (`nudge_models::journey`); what is durable is that state. The store
//! keeps an index of every customer's earliest due run beside it, read back
//! at start, so a timer due while the service was down fires once when it
//! is up again.

mod timers;

pub use timers::{JourneyTimers, TimerEntry};

use arc_swap::ArcSwap;
use nudge_models::catalog::Catalog;
use nudge_models::journey::{Journey, Versions};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

/// One view of the journey versions and pauses.
#[derive(Debug, Default)]
pub struct Book {
    /// Every version seen since start, by journey id and version.
    versions: HashMap<(Arc<str>, u32), Arc<Journey>>,
    /// The running catalog's journeys: the versions new runs take.
    current: Vec<Arc<Journey>>,
    /// Journeys an operator paused.
    paused: BTreeSet<String>,
}

impl Book {
    /// The running catalog's journeys.
    pub fn current(&self) -> &[Arc<Journey>] {
        &self.current
    }

    /// Journeys an operator paused.
    pub fn paused_by_operator(&self) -> &BTreeSet<String> {
        &self.paused
    }
}

impl Versions for Book {
    fn version(&self, id: &str, version: u32) -> Option<&Journey> {
        self.versions
            .get(&(Arc::from(id), version))
            .map(AsRef::as_ref)
    }

    fn paused(&self, id: &str) -> bool {
        self.paused.contains(id)
            || self
                .current
                .iter()
                .any(|journey| journey.id.as_ref() == id && journey.is_paused())
    }
}

/// The journey versions runs may be on and the operator's pauses; actors
/// read a snapshot ([`JourneyBook::load`]).
#[derive(Debug, Default)]
pub struct JourneyBook {
    book: ArcSwap<Book>,
    /// Serializes changes (a reload beside a pause).
    changing: Mutex<()>,
}

impl JourneyBook {
    /// A book over `catalog`'s journeys.
    pub fn new(catalog: &Catalog) -> Self {
        let book = Self::default();
        book.add_catalog(catalog);
        book
    }

    /// The current snapshot.
    pub fn load(&self) -> Arc<Book> {
        self.book.load_full()
    }

    /// `catalog` is now the running one: its journeys are the versions new
    /// runs take, and every earlier version stays known for the runs on it.
    pub fn add_catalog(&self, catalog: &Catalog) {
        self.change(|book| {
            for journey in &catalog.journeys {
                book.versions
                    .insert((journey.id.clone(), journey.version), journey.clone());
            }
            book.current.clone_from(&catalog.journeys);
        });
    }

    /// Pauses (`true`) or resumes journey `id`; whether anything changed.
    pub fn set_paused(&self, id: &str, paused: bool) -> bool {
        let mut changed = false;
        self.change(|book| {
            changed = if paused {
                book.paused.insert(id.to_owned())
            } else {
                book.paused.remove(id)
            };
        });
        changed
    }

    fn change(&self, apply: impl FnOnce(&mut Book)) {
        let _changing = self
            .changing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let current = self.book.load();
        let mut book = Book {
            versions: current.versions.clone(),
            current: current.current.clone(),
            paused: current.paused.clone(),
        };
        apply(&mut book);
        self.book.store(Arc::new(book));
    }
}
