//! [`SmallMap`]: a map from names to values kept as one sorted vector.
//!
//! A customer's profile holds a handful of event names, attributes and
//! channels. A `BTreeMap` allocates a whole node (eleven slots) for the first
//! entry, which made those few entries cost several hundred bytes per live
//! customer; one sorted vector holds exactly what is there, finds a name by
//! binary search and iterates in name order like the `BTreeMap` it replaces.
//! It serializes as a map, so the stored form is the same.

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::marker::PhantomData;

/// A map from names to `V`, sorted by name.
#[derive(Debug, Clone, PartialEq)]
pub struct SmallMap<V> {
    entries: Vec<(Box<str>, V)>,
}

impl<V> Default for SmallMap<V> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
        }
    }
}

impl<V> SmallMap<V> {
    fn position(&self, key: &str) -> Result<usize, usize> {
        self.entries
            .binary_search_by(|(name, _)| name.as_ref().cmp(key))
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&V> {
        self.position(key).ok().map(|index| &self.entries[index].1)
    }

    /// The value of `key`, mutably.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut V> {
        self.position(key)
            .ok()
            .map(|index| &mut self.entries[index].1)
    }

    /// Whether `key` has a value.
    pub fn contains_key(&self, key: &str) -> bool {
        self.position(key).is_ok()
    }

    /// Sets the value of `key`; returns the previous one.
    pub fn insert(&mut self, key: &str, value: V) -> Option<V> {
        match self.position(key) {
            Ok(index) => Some(std::mem::replace(&mut self.entries[index].1, value)),
            Err(index) => {
                self.entries.insert(index, (Box::from(key), value));
                None
            }
        }
    }

    /// Removes `key`; returns its value.
    pub fn remove(&mut self, key: &str) -> Option<V> {
        self.position(key)
            .ok()
            .map(|index| self.entries.remove(index).1)
    }

    /// The value of `key`, inserted as `V::default()` if absent.
    pub fn get_or_default(&mut self, key: &str) -> &mut V
    where
        V: Default,
    {
        let index = match self.position(key) {
            Ok(index) => index,
            Err(index) => {
                self.entries.insert(index, (Box::from(key), V::default()));
                index
            }
        };
        &mut self.entries[index].1
    }

    /// Entries in name order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &V)> {
        self.entries
            .iter()
            .map(|(name, value)| (name.as_ref(), value))
    }

    /// Names in order.
    pub fn keys(&self) -> impl ExactSizeIterator<Item = &str> {
        self.entries.iter().map(|(name, _)| name.as_ref())
    }

    /// Values, mutably, in name order.
    pub fn values_mut(&mut self) -> impl ExactSizeIterator<Item = &mut V> {
        self.entries.iter_mut().map(|(_, value)| value)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl<V> std::ops::Index<&str> for SmallMap<V> {
    type Output = V;

    /// The value of `key`; panics if absent (tests only).
    fn index(&self, key: &str) -> &V {
        match self.get(key) {
            Some(value) => value,
            None => panic!("no entry for '{key}'"),
        }
    }
}

impl<V: Serialize> Serialize for SmallMap<V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.entries.len()))?;
        for (name, value) in &self.entries {
            map.serialize_entry(name.as_ref(), value)?;
        }
        map.end()
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for SmallMap<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MapVisitor<V>(PhantomData<V>);

        impl<'de, V: Deserialize<'de>> Visitor<'de> for MapVisitor<V> {
            type Value = SmallMap<V>;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a map of names to values")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
                let mut map = SmallMap {
                    entries: Vec::with_capacity(access.size_hint().unwrap_or(0).min(1_024)),
                };
                while let Some((name, value)) = access.next_entry::<String, V>()? {
                    map.insert(&name, value);
                }
                map.entries.shrink_to_fit();
                Ok(map)
            }
        }

        deserializer.deserialize_map(MapVisitor(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    proptest! {
        /// Behaves like a `BTreeMap` under any sequence of inserts and
        /// removals, and survives a serde round trip.
        #[test]
        fn behaves_like_a_btree_map(operations in proptest::collection::vec(("[a-e]{1,2}", 0u32..100, any::<bool>()), 0..60)) {
            let mut small = SmallMap::default();
            let mut reference = BTreeMap::new();
            for (key, value, remove) in operations {
                if remove {
                    prop_assert_eq!(small.remove(&key), reference.remove(&key));
                } else {
                    prop_assert_eq!(small.insert(&key, value), reference.insert(key.clone(), value));
                }
                *small.get_or_default("zz") += 1;
                *reference.entry("zz".to_owned()).or_default() += 1;
            }
            let pairs: Vec<(&str, &u32)> = small.iter().collect();
            let expected: Vec<(&str, &u32)> = reference.iter().map(|(k, v)| (k.as_str(), v)).collect();
            prop_assert_eq!(pairs, expected);
            let json = serde_json::to_string(&small).unwrap_or_default();
            prop_assert_eq!(&json, &serde_json::to_string(&reference).unwrap_or_default());
            let back: SmallMap<u32> = serde_json::from_str(&json).map_err(|error| TestCaseError::fail(error.to_string()))?;
            prop_assert_eq!(back, small);
        }
    }
}
