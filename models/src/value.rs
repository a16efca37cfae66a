//! Typed scalar values: profile attributes, event properties and request context.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A string, number or boolean, as carried by events, context and attributes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AttrValue {
    /// A UTF-8 string.
    Str(String),
    /// A finite number.
    Num(f64),
    /// A boolean.
    Bool(bool),
}

impl AttrValue {
    /// The value as a number for features: numbers as they are, booleans as 0/1,
    /// and strings that parse as numbers; other strings give `None`.
    pub fn as_number(&self) -> Option<f64> {
        match self {
            AttrValue::Num(number) => Some(*number),
            AttrValue::Bool(flag) => Some(if *flag { 1.0 } else { 0.0 }),
            AttrValue::Str(text) => text.trim().parse::<f64>().ok().filter(|n| n.is_finite()),
        }
    }

    /// The value as a string, if it is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            AttrValue::Str(text) => Some(text),
            _ => None,
        }
    }

    /// Whether this value equals the text `expected` when written out
    /// (`plan == "pro"`, `vip == "true"`, `seats == "25"`).
    pub fn matches_text(&self, expected: &str) -> bool {
        match self {
            AttrValue::Str(text) => text == expected,
            AttrValue::Bool(flag) => expected == if *flag { "true" } else { "false" },
            AttrValue::Num(number) => expected.parse::<f64>().is_ok_and(|e| e == *number),
        }
    }

    /// Bytes this value occupies beyond its own size, for input limits.
    pub fn text_len(&self) -> usize {
        match self {
            AttrValue::Str(text) => text.len(),
            _ => 0,
        }
    }
}

impl fmt::Display for AttrValue {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttrValue::Str(text) => write!(formatter, "{text}"),
            AttrValue::Num(number) => write!(formatter, "{number}"),
            AttrValue::Bool(flag) => write!(formatter, "{flag}"),
        }
    }
}

impl From<&str> for AttrValue {
    fn from(text: &str) -> Self {
        AttrValue::Str(text.to_owned())
    }
}

impl From<f64> for AttrValue {
    fn from(number: f64) -> Self {
        AttrValue::Num(number)
    }
}

impl From<bool> for AttrValue {
    fn from(flag: bool) -> Self {
        AttrValue::Bool(flag)
    }
}
