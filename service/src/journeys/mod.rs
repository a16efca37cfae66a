//! Journeys in the service: which journey versions runs may be on and
//! which journeys an operator paused ([`JourneyBook`]), when each
//! customer's runs are next due ([`JourneyTimers`]), which the engine's
//! timer task fires by waking the customer's actor, and the delivery
//! services' subscriptions to the sends ([`DispatchHub`]).
//!
//! The runs themselves live in each customer's state and move in its actor
//! (`nudge_models::journey`); what is durable is that state. The store
//! keeps an index of every customer's earliest due run beside it, read back
//! at start, so a timer due while the service was down fires once when it
//! is up again.
//!
//! With a data directory, the book keeps `journeys/` in it: the operator's
//! pauses ([`PAUSES_FILE`]) and a copy of each catalog that declared
//! journeys (`catalogs/<hash>.toml`), compiled again at start, so a run on
//! a version the running catalog replaced goes on after a restart.

mod hub;
mod stats;
mod timers;

pub use hub::{DispatchHub, Handed, HubClosed, Offered, Subscription};
pub use stats::{
    DROP_OFF_WINDOW, DropOff, JourneyFigures, JourneyStats, StepExit, StepFigures, step_exit,
};
pub use timers::{JourneyTimers, TimerEntry};

use crate::error::ServiceError;
use arc_swap::ArcSwap;
use nudge_models::catalog::Catalog;
use nudge_models::journey::{Journey, Versions};
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// The directory in the data directory where the book keeps its files.
pub const JOURNEYS_DIR: &str = "journeys";

/// The file in [`JOURNEYS_DIR`] that keeps the operator's pauses.
pub const PAUSES_FILE: &str = "pauses.json";

/// The directory in [`JOURNEYS_DIR`] that keeps the catalogs that declared
/// journey versions.
const CATALOGS_DIR: &str = "catalogs";

/// One view of the journey versions and pauses.
#[derive(Debug, Default, Clone)]
pub struct Book {
    /// Every version seen since start, by journey id and version.
    versions: HashMap<(Arc<str>, u32), Arc<Journey>>,
    /// The running catalog's journeys: the versions new runs take.
    current: Vec<Arc<Journey>>,
    /// Journeys an operator paused.
    paused: BTreeSet<String>,
}

impl Book {
    /// Knows `journeys`' versions too.
    fn add_versions(&mut self, journeys: &[Arc<Journey>]) {
        for journey in journeys {
            self.versions
                .insert((journey.id.clone(), journey.version), journey.clone());
        }
    }

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
/// read a snapshot ([`JourneyBook::load`]). With a directory, the pauses
/// and the catalogs that declared journeys are kept in it, so a journey an
/// operator paused stays paused, and a run keeps its version, across a
/// restart.
#[derive(Debug, Default)]
pub struct JourneyBook {
    book: ArcSwap<Book>,
    /// Where its files are kept (none: in memory only).
    dir: Option<PathBuf>,
    /// Serializes changes (a reload beside a pause).
    changing: Mutex<()>,
}

/// What [`PAUSES_FILE`] holds.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Pauses {
    paused: BTreeSet<String>,
}

impl JourneyBook {
    /// A book over `catalog` (whose file is `text`), keeping its files in
    /// `dir`: the pauses and the journey versions kept there are read back.
    pub fn open(catalog: &Catalog, text: &str, dir: Option<PathBuf>) -> Result<Self, ServiceError> {
        let pauses = dir.as_ref().map(|dir| dir.join(PAUSES_FILE));
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
            dir,
            ..Self::default()
        };
        let kept = book.kept_catalogs();
        book.change(|book| {
            book.paused = paused;
            for catalog in &kept {
                book.add_versions(&catalog.journeys);
            }
            Ok(())
        })?;
        book.add_catalog(catalog, text)?;
        Ok(book)
    }

    /// The catalogs kept in the book's directory, oldest first (a later one
    /// wins a version both declare). One that no longer compiles is left
    /// out with a warning: its runs end as failed when they next move.
    fn kept_catalogs(&self) -> Vec<Catalog> {
        let Some(dir) = &self.dir else {
            return Vec::new();
        };
        let Ok(entries) = std::fs::read_dir(dir.join(CATALOGS_DIR)) else {
            return Vec::new();
        };
        let mut files: Vec<(std::time::SystemTime, PathBuf)> = entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| {
                path.extension()
                    .is_some_and(|extension| extension == "toml")
            })
            .map(|path| {
                let modified = std::fs::metadata(&path)
                    .and_then(|metadata| metadata.modified())
                    .unwrap_or(std::time::UNIX_EPOCH);
                (modified, path)
            })
            .collect();
        files.sort();
        files
            .into_iter()
            .filter_map(|(_, path)| {
                let compiled = std::fs::read_to_string(&path)
                    .map_err(|error| error.to_string())
                    .and_then(|text| Catalog::from_toml(&text).map_err(|error| error.to_string()));
                match compiled {
                    Ok(catalog) => Some(catalog),
                    Err(error) => {
                        tracing::warn!(file = %path.display(), %error, "a kept catalog with journey versions no longer loads; runs on its versions will fail");
                        None
                    }
                }
            })
            .collect()
    }

    /// The current snapshot.
    pub fn load(&self) -> Arc<Book> {
        self.book.load_full()
    }

    /// `catalog` (whose file is `text`) is now the running one: its
    /// journeys are the versions new runs take, and every earlier version
    /// stays known for the runs on it. With a directory, a catalog that
    /// declares journeys is kept there first; failing to keep it changes
    /// nothing.
    pub fn add_catalog(&self, catalog: &Catalog, text: &str) -> Result<(), ServiceError> {
        if let Some(dir) = &self.dir
            && !catalog.journeys.is_empty()
        {
            let dir = dir.join(CATALOGS_DIR);
            let path = dir.join(format!(
                "{:016x}.toml",
                nudge_models::hash::fnv1a(text.bytes())
            ));
            if !path.exists() {
                let cannot_write = |source| ServiceError::CannotWrite {
                    what: "journey versions",
                    path: path.clone(),
                    source,
                };
                std::fs::create_dir_all(&dir).map_err(cannot_write)?;
                crate::files::write_atomically(&path, text.as_bytes()).map_err(cannot_write)?;
            }
        }
        self.change(|book| {
            book.add_versions(&catalog.journeys);
            book.current.clone_from(&catalog.journeys);
            Ok(())
        })
    }

    /// Pauses (`true`) or resumes journey `id`; whether anything changed.
    /// The change is kept before it applies; a failure to keep it changes
    /// nothing.
    pub fn set_paused(&self, id: &str, paused: bool) -> Result<bool, ServiceError> {
        self.change(|book| {
            let changed = if paused {
                book.paused.insert(id.to_owned())
            } else {
                book.paused.remove(id)
            };
            if changed {
                self.keep_pauses(&book.paused)?;
            }
            Ok(changed)
        })
    }

    /// Writes `paused` to [`PAUSES_FILE`], when the book has a directory.
    fn keep_pauses(&self, paused: &BTreeSet<String>) -> Result<(), ServiceError> {
        let Some(dir) = &self.dir else {
            return Ok(());
        };
        let path = &dir.join(PAUSES_FILE);
        let cannot_write = |source| ServiceError::CannotWrite {
            what: "journey pauses",
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(cannot_write)?;
        let bytes = serde_json::to_vec_pretty(&Pauses {
            paused: paused.clone(),
        })
        .map_err(|error| cannot_write(std::io::Error::other(error)))?;
        crate::files::write_atomically(path, &bytes).map_err(cannot_write)
    }

    /// Applies `apply` to a copy of the book and swaps it in, unless it
    /// fails; changes are serialized.
    fn change<T>(
        &self,
        apply: impl FnOnce(&mut Book) -> Result<T, ServiceError>,
    ) -> Result<T, ServiceError> {
        let _changing = self
            .changing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut book = Book::clone(&self.book.load());
        let value = apply(&mut book)?;
        self.book.store(Arc::new(book));
        Ok(value)
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
        let book = JourneyBook::open(&catalog, CATALOG, Some(dir.path().to_owned())).unwrap();
        assert!(!book.load().paused("welcome"));
        assert!(book.set_paused("welcome", true).unwrap());
        assert!(!book.set_paused("welcome", true).unwrap(), "paused already");
        assert!(book.load().paused("welcome"));

        let reopened = JourneyBook::open(&catalog, CATALOG, Some(dir.path().to_owned())).unwrap();
        assert!(reopened.load().paused("welcome"));
        assert!(reopened.set_paused("welcome", false).unwrap());
        let again = JourneyBook::open(&catalog, CATALOG, Some(dir.path().to_owned())).unwrap();
        assert!(!again.load().paused("welcome"));
    }

    #[test]
    fn a_damaged_pauses_file_is_refused_with_its_path() {
        let catalog = Catalog::from_toml(CATALOG).unwrap();
        let dir = TempDir::new("journey-pauses-damaged");
        std::fs::create_dir_all(dir.path()).unwrap();
        std::fs::write(dir.path().join(PAUSES_FILE), "{ not json").unwrap();
        let error = JourneyBook::open(&catalog, CATALOG, Some(dir.path().to_owned())).unwrap_err();
        assert!(error.to_string().contains(PAUSES_FILE), "{error}");
    }

    #[test]
    fn earlier_versions_stay_known_after_a_reload() {
        let first = Catalog::from_toml(CATALOG).unwrap();
        let second = Catalog::from_toml(
            &CATALOG.replace("id = \"welcome\"\n", "id = \"welcome\"\nversion = 2\n"),
        )
        .unwrap();
        let book = JourneyBook::open(&first, "", None).unwrap();
        book.add_catalog(&second, "").unwrap();
        let snapshot = book.load();
        assert!(snapshot.version("welcome", 1).is_some());
        assert!(snapshot.version("welcome", 2).is_some());
        assert_eq!(snapshot.current()[0].version, 2);
    }

    #[test]
    fn a_replaced_version_is_still_known_after_a_restart() {
        let second_text = CATALOG.replace("id = \"welcome\"\n", "id = \"welcome\"\nversion = 2\n");
        let first = Catalog::from_toml(CATALOG).unwrap();
        let second = Catalog::from_toml(&second_text).unwrap();
        let dir = TempDir::new("journey-versions");
        std::fs::create_dir_all(dir.path()).unwrap();
        let book = JourneyBook::open(&first, CATALOG, Some(dir.path().to_owned())).unwrap();
        book.add_catalog(&second, &second_text).unwrap();
        drop(book);
        // Restarted on the second catalog: version 1 is still known.
        let book = JourneyBook::open(&second, &second_text, Some(dir.path().to_owned())).unwrap();
        let snapshot = book.load();
        assert!(snapshot.version("welcome", 1).is_some());
        assert_eq!(snapshot.current()[0].version, 2);
        // The same catalog is kept once.
        let kept = std::fs::read_dir(dir.path().join(CATALOGS_DIR))
            .unwrap()
            .count();
        assert_eq!(kept, 2);
    }

    #[test]
    fn a_kept_catalog_that_no_longer_loads_is_left_out_and_the_rest_opens() {
        let catalog = Catalog::from_toml(CATALOG).unwrap();
        let dir = TempDir::new("journey-versions-damaged");
        std::fs::create_dir_all(dir.path().join(CATALOGS_DIR)).unwrap();
        std::fs::write(
            dir.path().join(CATALOGS_DIR).join("0.toml"),
            "not a catalog",
        )
        .unwrap();
        let book = JourneyBook::open(&catalog, CATALOG, Some(dir.path().to_owned())).unwrap();
        assert!(book.load().version("welcome", 1).is_some());
    }

    #[test]
    fn a_catalog_that_cannot_be_kept_changes_nothing() {
        let first = Catalog::from_toml(CATALOG).unwrap();
        let dir = TempDir::new("journey-versions-unwritable");
        std::fs::create_dir_all(dir.path()).unwrap();
        let book = JourneyBook::open(&first, CATALOG, Some(dir.path().to_owned())).unwrap();
        // Where the catalogs go is now a file: keeping one fails.
        let catalogs = dir.path().join(CATALOGS_DIR);
        std::fs::remove_dir_all(&catalogs).unwrap();
        std::fs::write(&catalogs, "in the way").unwrap();
        let second_text = CATALOG.replace("id = \"welcome\"\n", "id = \"welcome\"\nversion = 2\n");
        let second = Catalog::from_toml(&second_text).unwrap();
        let error = book.add_catalog(&second, &second_text).unwrap_err();
        assert!(
            error.to_string().contains("cannot write journey versions"),
            "{error}"
        );
        assert!(book.load().version("welcome", 2).is_none());
        assert_eq!(book.load().current()[0].version, 1);
    }
}
