//! The change of a [`SmallMap`]: the entries added (whole), the entries
//! changed (each by its own delta: an event's counters, one engagement
//! counter) and the names removed.

use super::{DeltaMismatch, Diff, Misfit};
use crate::small_map::SmallMap;
use serde::{Deserialize, Serialize};

/// How a map of names changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
// The bounds come from `Diff` (serde would also ask `Default` of the items).
#[serde(deny_unknown_fields, bound = "")]
pub(super) struct MapDelta<V: Diff> {
    /// Entries the old map did not have.
    #[serde(rename = "a", default, skip_serializing_if = "SmallMap::is_empty")]
    pub(super) added: SmallMap<V>,
    /// Entries of both maps whose value changed, by their change.
    #[serde(rename = "c", default, skip_serializing_if = "SmallMap::is_empty")]
    pub(super) changed: SmallMap<V::Delta>,
    /// Names the new map no longer has.
    #[serde(rename = "r", default, skip_serializing_if = "Vec::is_empty")]
    pub(super) removed: Vec<String>,
}

impl<V: Diff> Diff for SmallMap<V> {
    type Delta = MapDelta<V>;

    fn diff(old: &Self, new: &Self) -> MapDelta<V> {
        let mut delta = MapDelta {
            added: SmallMap::default(),
            changed: SmallMap::default(),
            removed: Vec::new(),
        };
        for (name, value) in new.iter() {
            match old.get(name) {
                None => {
                    delta.added.insert(name, value.clone());
                }
                Some(previous) if previous != value => {
                    delta.changed.insert(name, V::diff(previous, value));
                }
                Some(_) => {}
            }
        }
        delta.removed = old
            .keys()
            .filter(|name| !new.contains_key(name))
            .map(str::to_owned)
            .collect();
        delta
    }

    fn check(&self, delta: &MapDelta<V>) -> Result<(), DeltaMismatch> {
        for name in &delta.removed {
            if !self.contains_key(name) {
                return Err(Misfit::MissingName(name.clone()).into());
            }
        }
        for (name, change) in delta.changed.iter() {
            let current = self
                .get(name)
                .ok_or_else(|| Misfit::MissingName(name.to_owned()))?;
            current
                .check(change)
                .map_err(|mismatch| mismatch.within(&format!("[{name}]")))?;
        }
        for name in delta.added.keys() {
            if self.contains_key(name) {
                return Err(Misfit::ExistingName(name.to_owned()).into());
            }
        }
        Ok(())
    }

    fn patch(&mut self, delta: &MapDelta<V>) {
        for name in &delta.removed {
            self.remove(name);
        }
        for (name, change) in delta.changed.iter() {
            if let Some(current) = self.get_mut(name) {
                current.patch(change);
            }
        }
        for (name, value) in delta.added.iter() {
            self.insert(name, value.clone());
        }
    }
}
