//! What a score reads of the profile, so the actor knows which events and
//! outcomes can change it: every other event leaves its scores as they are.

use crate::catalog::rule::Rule;
use crate::features::{FeatureSpec, Term};
use crate::profile::IDENTIFY_EVENT;
use std::collections::BTreeSet;

/// The parts of a profile a set of features and rules reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfileReads {
    /// Events whose counts or recency are read.
    pub events: BTreeSet<String>,
    /// Whether any event can change what is read (the last time anything
    /// was seen, or a rule that uses the whole profile).
    pub any_event: bool,
    /// Whether attributes are read (set by `identify` events).
    pub attributes: bool,
    /// Whether channel engagement is read (changed by outcomes and serves).
    pub engagement: bool,
}

impl ProfileReads {
    /// Everything: what a rule that uses the profile whole reads.
    pub fn everything() -> Self {
        Self {
            events: BTreeSet::new(),
            any_event: true,
            attributes: true,
            engagement: true,
        }
    }

    /// Adds what `other` reads.
    pub fn merge(&mut self, other: &ProfileReads) {
        self.events.extend(other.events.iter().cloned());
        self.any_event |= other.any_event;
        self.attributes |= other.attributes;
        self.engagement |= other.engagement;
    }

    /// Whether an event named `name` can change what is read.
    pub fn reads_event(&self, name: &str) -> bool {
        self.any_event || (self.attributes && name == IDENTIFY_EVENT) || self.events.contains(name)
    }

    /// What one customer term reads (action and context terms read no
    /// profile; `score` and `tier` read what their scores read, which the
    /// caller merges in).
    pub fn of_term(term: &Term) -> Self {
        let mut reads = Self::default();
        match term {
            Term::Count { event, .. }
            | Term::LogCount { event, .. }
            | Term::DaysSince { event } => {
                reads.events.insert(event.clone());
            }
            // Tenure is the `signup_at` attribute, else the first event seen.
            Term::Tenure | Term::Attr { .. } | Term::Is { .. } | Term::IsNoneOf { .. } => {
                reads.attributes = true;
            }
            Term::ClickRate { .. } => reads.engagement = true,
            Term::Score { .. }
            | Term::Tier { .. }
            | Term::Ctx { .. }
            | Term::CtxIs { .. }
            | Term::Category { .. }
            | Term::Channel { .. }
            | Term::Action { .. }
            | Term::ActionValue => {}
        }
        reads
    }

    /// What a feature reads.
    pub fn of_feature(spec: &FeatureSpec) -> Self {
        let mut reads = Self::default();
        for term in spec.terms() {
            reads.merge(&Self::of_term(term));
        }
        reads
    }

    /// What a CEL rule reads of `profile` (see [`Rule::profile_paths`]).
    pub fn of_rule(rule: &Rule) -> Self {
        let Some(paths) = rule.profile_paths() else {
            return Self::everything();
        };
        let mut reads = Self::default();
        for path in paths {
            let first = path.first().map_or("", String::as_str);
            let second = path.get(1);
            match first {
                "count_1d" | "count_7d" | "count_30d" => match second {
                    Some(event) => {
                        reads.events.insert(event.clone());
                    }
                    None => reads.any_event = true,
                },
                "days_since_signup" => reads.attributes = true,
                "days_since_last_seen" | "" => reads.any_event = true,
                "engagement" => reads.engagement = true,
                // Scores and tiers are computed in one pass, in order.
                "scores" | "tiers" => {}
                field => match field.strip_prefix("days_since_") {
                    Some(event) => {
                        reads.events.insert(event.to_owned());
                        // An attribute may have a name like this too.
                        reads.attributes = true;
                    }
                    None => reads.attributes = true,
                },
            }
        }
        reads
    }
}

/// The score and tier ids a rule names (`profile.scores.<id>`,
/// `profile.tiers.<id>`), so a catalog can refuse a name it does not
/// declare; `None` for a rule that reads the profile whole.
pub fn named_scores(rule: &Rule) -> Option<(BTreeSet<String>, BTreeSet<String>)> {
    let mut scores = BTreeSet::new();
    let mut tiers = BTreeSet::new();
    for path in rule.profile_paths()? {
        match (path.first().map(String::as_str), path.get(1)) {
            (Some("scores"), Some(id)) => {
                scores.insert(id.clone());
            }
            (Some("tiers"), Some(id)) => {
                tiers.insert(id.clone());
            }
            _ => {}
        }
    }
    Some((scores, tiers))
}
