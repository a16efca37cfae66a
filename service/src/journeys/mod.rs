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

mod stats;
mod timers;

pub use stats::{DROP_OFF_WINDOW, DropOff, JourneyFigures, JourneyStats, StepFigures};
pub use timers::{JourneyTimers, TimerEntry};

use crate::error::ServiceError;
use arc_swap::ArcSwap;
use nudge_models::catalog::Catalog;
use nudge_models::journey::{Journey, Versions};
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// The file in the data directory that keeps the operator's pauses.
pub const PAUSES_FILE: &str = "journey-pauses.json";

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
/// read a snapshot ([`JourneyBook::load`]). The pauses are kept in
/// [`PAUSES_FILE`] when the service has a data directory, so a journey an
/// operator paused stays paused across a restart.
#[derive(Debug, Default)]
pub struct JourneyBook {
    book: ArcSwap<Book>,
    /// Where the pauses are kept (none: in memory only).
    pauses: Option<PathBuf>,
    /// Serializes changes (a reload beside a pause).
    changing: Mutex<()>,
}

/// What [`PAUSES_FILE`] holds.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Pauses {
    paused: BTreeSet<String>,
}

impl JourneyBook {
    /// A book over `catalog`'s journeys, with the pauses kept in `pauses`
    /// (read back when the file exists).
    pub fn open(catalog: &Catalog, pauses: Option<PathBuf>) -> Result<Self, ServiceError> {
        let paused = match &pauses {
            Some(path) if path.exists() => {
                let cannot_read = |source| ServiceError::CannotRead {
                    what: "journey pauses",
                    path: path.clone(),
                    source,
                };
                let text = std::fs::read_to_string(path).map_err(cannot_read)?;
                let kept: Pauses = serde_json::from_str(&text)
                    .map_err(|error| cannot_read(std::io::Error::other(error)))?;
                kept.paused
            }
            _ => BTreeSet::new(),
        };
        let book = Self {
            pauses,
            ..Self::default()
        };
        book.change(|book| book.paused = paused);
        book.add_catalog(catalog);
        Ok(book)
    }

    /// A book over `catalog`'s journeys, pauses in memory only.
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
    /// The change is kept before it applies; a failure to keep it changes
    /// nothing.
    pub fn set_paused(&self, id: &str, paused: bool) -> Result<bool, ServiceError> {
        let _changing = self
            .changing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let current = self.book.load();
        let mut next = current.paused.clone();
        let changed = if paused {
            next.insert(id.to_owned())
        } else {
            next.remove(id)
        };
        if !changed {
            return Ok(false);
        }
        if let Some(path) = &self.pauses {
            let bytes = serde_json::to_vec_pretty(&Pauses {
                paused: next.clone(),
            })
            .map_err(|error| ServiceError::CannotWrite {
                what: "journey pauses",
                path: path.clone(),
                source: std::io::Error::other(error),
            })?;
            crate::files::write_atomically(path, &bytes).map_err(|source| {
                ServiceError::CannotWrite {
                    what: "journey pauses",
                    path: path.clone(),
                    source,
                }
            })?;
        }
        self.book.store(Arc::new(Book {
            versions: current.versions.clone(),
            current: current.current.clone(),
            paused: next,
        }));
        Ok(true)
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::testing::TempDir;

    const CATALOG: &str = r#"
[catalog]
name = "pauses"
events = ["signed_up"]

[channels.email]

[[actions]]
id = "welcome_email"
channel = "email"
category = "onboarding"

[placements.inbox]
channels = ["email"]

[[journeys]]
id = "welcome"
trigger = { event = "signed_up" }

[[journeys.steps]]
id = "send"
send = { action = "welcome_email" }
"#;

    #[test]
    fn an_operators_pause_is_kept_across_a_restart_and_lifted_by_resume() {
        let catalog = Catalog::from_toml(CATALOG).unwrap();
        let dir = TempDir::new("journey-pauses");
        std::fs::create_dir_all(dir.path()).unwrap();
        let file = dir.path().join(PAUSES_FILE);
        let book = JourneyBook::open(&catalog, Some(file.clone())).unwrap();
        assert!(!book.load().paused("welcome"));
        assert!(book.set_paused("welcome", true).unwrap());
        assert!(!book.set_paused("welcome", true).unwrap(), "paused already");
        assert!(book.load().paused("welcome"));

        let reopened = JourneyBook::open(&catalog, Some(file.clone())).unwrap();
        assert!(reopened.load().paused("welcome"));
        assert!(reopened.set_paused("welcome", false).unwrap());
        let again = JourneyBook::open(&catalog, Some(file)).unwrap();
        assert!(!again.load().paused("welcome"));
    }

    #[test]
    fn a_damaged_pauses_file_is_refused_with_its_path() {
        let catalog = Catalog::from_toml(CATALOG).unwrap();
        let dir = TempDir::new("journey-pauses-damaged");
        std::fs::create_dir_all(dir.path()).unwrap();
        let file = dir.path().join(PAUSES_FILE);
        std::fs::write(&file, "{ not json").unwrap();
        let error = JourneyBook::open(&catalog, Some(file)).unwrap_err();
        assert!(error.to_string().contains(PAUSES_FILE), "{error}");
    }

    #[test]
    fn earlier_versions_stay_known_after_a_reload() {
        let first = Catalog::from_toml(CATALOG).unwrap();
        let second = Catalog::from_toml(
            &CATALOG.replace("id = \"welcome\"\n", "id = \"welcome\"\nversion = 2\n"),
        )
        .unwrap();
        let book = JourneyBook::new(&first);
        book.add_catalog(&second);
        let snapshot = book.load();
        assert!(snapshot.version("welcome", 1).is_some());
        assert!(snapshot.version("welcome", 2).is_some());
        assert_eq!(snapshot.current()[0].version, 2);
    }
}
