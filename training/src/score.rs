//! Training rows for a model profile score (a `model = true` score of the
//! catalog, e.g. `churn_risk`) from the event log alone: each customer
//! looked at once a day (a cut-off), with the features their profile had
//! then, labelled by whether the label event (e.g.
//! `subscription_cancelled`) happened within the horizon after it. What
//! `nudge train --score` trains on; [`crate::train()`] then runs as for any
//! other source.
//!
//! The rules, in order:
//!
//! - **Cut-offs.** A customer is looked at on the boundaries of the
//!   cadence ([`ScoreOptions::cadence`], 1 day by default) counted from the
//!   Unix epoch: for a day, 00:00 UTC. Their first cut-off is the first
//!   boundary at or after their first applied event (plus
//!   [`ScoreOptions::min_history`]); there is none before, when the service
//!   knew nothing of them.
//! - **Features at a cut-off** `c` are what the service would have computed
//!   then: the profile rebuilt by applying, in the order the service did
//!   (by ordinal), exactly the events it had applied by `c` (`received_at`
//!   ≤ `c`), each with its `received_at` as the time of applying, by
//!   [`Profile::apply_event`] as [`nudge_models::replay`] does, then
//!   evaluated at `now = c` with no request context. Nothing the service
//!   applied after `c` is read, whatever the events' own timestamps say (a
//!   late event counts from when it arrived, as it did live). Only features
//!   of the profile itself can be rebuilt so ([`check_features`]).
//! - **Label**: whether the label event happened (its own `timestamp`) in
//!   `(c, c + horizon]`.
//! - **Censoring.** The data ends at the export's last applied event
//!   ([`ScoreOptions::until`] to say otherwise). A cut-off whose horizon
//!   runs past that end is not labelled: a customer without the label
//!   event by the end may still have it before their horizon is over, so
//!   "not seen" would be a false negative. The last cut-off is therefore
//!   the last boundary at or before `end − horizon`; the newer ones are
//!   counted ([`ScoreSummary::censored`]), never rows. The end is the
//!   export's, not each customer's: a customer who went quiet is still
//!   observed, and their silence is the signal.
//! - **Exclusion.** A customer who had the label event at or before a
//!   cut-off (by its timestamp, or applied by then) has no row from that
//!   cut-off on ([`ScoreSummary::excluded_after_label`]), even if they come
//!   back and have it again: the label does not recur. The score predicts
//!   the first label event of a customer who has not had it (a churn risk
//!   is read for customers still there); rows after it would teach the
//!   model what cancelling leads to (no logins), not what leads to it.
//! - **Incomplete histories.** A customer whose events are not numbered 1,
//!   2, 3, … (retention deleted older ones, or the export's range left them
//!   out) is left out and counted ([`ScoreSummary::skipped_incomplete`]):
//!   features are never computed from a partial history.
//! - **The row cap.** With more than [`ScoreOptions::max_rows`] rows,
//!   that many are kept, evenly spaced in customer order (customers by id,
//!   each one's cut-offs oldest first: position `⌊i·N/max_rows⌋` of the
//!   `N`), so each customer keeps about the same share of their days,
//!   spread over their time; only kept rows are replayed, so time and
//!   memory stay bounded.
//!
//! Rows are in cut-off order (then customer id), so the time-ordered split
//! holds out the newest cut-offs, as production will score tomorrow's. One
//! customer has rows on both sides of it, and the labels of the training
//! rows just before the holdout look into the holdout's days (their
//! features never do). There are no logged choices among actions, so no
//! off-policy evaluation.

use crate::Error;
use crate::dataset::Dataset;
use crate::progress::{Event, Progress};
use crate::split;
use chrono::{DateTime, Utc};
use ndarray::Array2;
use nudge_models::features::{FeatureInput, FeatureSet, FeatureSpec, Term};
use nudge_models::log::EventRecord;
use nudge_models::profile::{IDENTIFY_EVENT, Profile, SIGNUP_ATTRIBUTE};
use nudge_models::time::{Span, Timestamp};
use nudge_models::value::AttrValue;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// Most rows kept by default ([`ScoreOptions::max_rows`]): about what
/// trains in under a minute on two cores.
pub const DEFAULT_MAX_ROWS: usize = 1_000_000;

/// Fewest customers an event name or an attribute level needs to become a
/// default feature ([`default_features`]).
pub const MIN_CUSTOMERS: usize = 5;

/// Most event names among the default features.
pub const MAX_EVENTS: usize = 12;

/// Most levels of a text attribute with their own default feature.
pub const MAX_LEVELS: usize = 10;

/// Customers between two progress events.
const PROGRESS_EVERY: usize = 10_000;

/// What a score's rows are and how many.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreOptions {
    /// The score being trained (`churn_risk`): named in errors and the
    /// artifact's description.
    pub score: String,
    /// The event whose occurrence within the horizon is the label
    /// (`subscription_cancelled`).
    pub label_event: String,
    /// How far after a cut-off the label event counts.
    pub horizon: Span,
    /// The time between two cut-offs of a customer; cut-offs are its
    /// multiples since the epoch (a day: 00:00 UTC).
    pub cadence: Span,
    /// How long after their first applied event a customer gets their
    /// first cut-off (0: the first boundary at or after it).
    pub min_history: Span,
    /// Most rows kept (evenly thinned beyond).
    pub max_rows: usize,
    /// The end of the data: labels are observed up to here. `None`: the
    /// export's last applied event (`received_at`).
    pub until: Option<Timestamp>,
}

impl ScoreOptions {
    /// Daily cut-offs from each customer's first event, at most
    /// [`DEFAULT_MAX_ROWS`] rows, the data ending at its last event.
    pub fn new(score: impl Into<String>, label_event: impl Into<String>, horizon: Span) -> Self {
        Self {
            score: score.into(),
            label_event: label_event.into(),
            horizon,
            cadence: Span::days(1),
            min_history: Span(0),
            max_rows: DEFAULT_MAX_ROWS,
            until: None,
        }
    }

    /// Refuses options no row can be built with.
    fn check(&self) -> Result<(), Error> {
        let positive = |option: &'static str, span: Span| {
            if span.millis() > 0 {
                Ok(())
            } else {
                Err(Error::BadOption {
                    option,
                    value: span.to_string(),
                    reason: "must be longer than zero",
                })
            }
        };
        positive("--horizon", self.horizon)?;
        positive("--cadence", self.cadence)?;
        if self.min_history.millis() < 0 {
            return Err(Error::BadOption {
                option: "--min-history",
                value: self.min_history.to_string(),
                reason: "must not be negative",
            });
        }
        if self.max_rows == 0 {
            return Err(Error::BadOption {
                option: "--max-rows",
                value: "0".to_owned(),
                reason: "must be at least 1",
            });
        }
        if self.label_event.trim().is_empty() {
            return Err(Error::BadOption {
                option: "--label-event",
                value: format!("'{}'", self.label_event),
                reason: "must name an event",
            });
        }
        Ok(())
    }
}

/// One labelled example: a customer at a cut-off.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    /// The customer.
    pub customer: String,
    /// The cut-off: the features are as of this time, the label is about
    /// the horizon after it.
    pub cut_off: Timestamp,
    /// The feature values, in the feature set's order.
    pub features: Vec<f64>,
    /// Whether the label event happened in `(cut_off, cut_off + horizon]`.
    pub label: bool,
}

/// What became of the event log's customers and their cut-offs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScoreSummary {
    /// Events read.
    pub events: usize,
    /// Customers in the log.
    pub customers: usize,
    /// Customers left out: their events do not start at number 1 or have a
    /// gap (retention, or the export's time range).
    pub skipped_incomplete: usize,
    /// Why the first of them was left out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incomplete_reason: Option<String>,
    /// Customers (kept) who had the label event at all.
    pub labelled_customers: usize,
    /// The end of the data (labels are observed up to here).
    pub until: Timestamp,
    /// The last cut-off whose whole horizon is observed.
    pub last_cut_off: Timestamp,
    /// Customer cut-offs eligible as rows, before the row cap.
    pub cut_offs: usize,
    /// Rows made (at most `max_rows`).
    pub rows: usize,
    /// Of those, positive.
    pub positives: usize,
    /// Customer cut-offs after the last one, left out because their horizon
    /// runs past the end of the data.
    pub censored: usize,
    /// Customer cut-offs at or after the customer's label event, left out.
    pub excluded_after_label: usize,
}

/// Refuses a feature the event log cannot rebuild at a past cut-off, naming
/// the spec and the score: a profile score's model reads only the profile,
/// and of the profile only what events make.
pub fn check_features(score: &str, features: &FeatureSet) -> Result<(), Error> {
    for spec in features.specs() {
        if let Some(reason) = spec.terms().iter().find_map(refusal) {
            return Err(Error::ScoreFeature {
                score: score.to_owned(),
                spec: spec.text().to_owned(),
                reason,
            });
        }
    }
    Ok(())
}

/// Why `term` cannot be a feature of a score trained from the event log.
fn refusal(term: &Term) -> Option<&'static str> {
    match term {
        Term::Count { .. }
        | Term::LogCount { .. }
        | Term::DaysSince { .. }
        | Term::Tenure
        | Term::Attr { .. }
        | Term::Is { .. }
        | Term::IsNoneOf { .. } => None,
        Term::Ctx { .. } | Term::CtxIs { .. } => Some(
            "it reads the request context, which a profile score does not have (it is computed from the profile alone)",
        ),
        Term::Category { .. } | Term::Channel { .. } | Term::Action { .. } | Term::ActionValue => {
            Some("it reads the action, which a profile score does not have")
        }
        Term::Score { .. } => Some(
            "it reads a profile score, and scores at past cut-offs are not in the event log (give the features that score reads instead)",
        ),
        Term::Tier { .. } => Some(
            "it reads a tier, and tiers at past cut-offs are not in the event log (give the features its score reads instead)",
        ),
        Term::ClickRate { .. } => Some(
            "it reads channel engagement, which serves and outcomes make, not events: engagement at past cut-offs is not in the event log",
        ),
    }
}

/// The end of the data: `until`, else the latest `received_at`.
fn data_end(events: &[EventRecord], options: &ScoreOptions) -> Option<i64> {
    options
        .until
        .or_else(|| events.iter().map(|event| event.received_at).max())
        .map(Timestamp::millis)
}

/// The largest multiple of `step` at or before `at`.
fn floor_to(at: i64, step: i64) -> i64 {
    at.div_euclid(step).saturating_mul(step)
}

/// The smallest multiple of `step` at or after `at`.
fn ceil_to(at: i64, step: i64) -> i64 {
    let floor = floor_to(at, step);
    if floor == at {
        floor
    } else {
        floor.saturating_add(step)
    }
}

/// Multiples of `step` in `[from, to]`.
fn multiples(from: i64, to: i64, step: i64) -> usize {
    let (first, last) = (ceil_to(from, step), floor_to(to, step));
    if last < first {
        0
    } else {
        usize::try_from((last - first) / step + 1).unwrap_or(usize::MAX)
    }
}

/// One customer's events and their eligible cut-offs.
struct Customer<'a> {
    id: &'a str,
    /// By ordinal, numbered 1, 2, 3, …
    events: Vec<&'a EventRecord>,
    /// The first cut-off.
    first: i64,
    /// How many cut-offs are rows (before the cap).
    rows: usize,
    /// The label event's timestamps, oldest first.
    labels: Vec<i64>,
}

/// Each customer's events by ordinal, or why they are incomplete.
fn by_customer(events: &[EventRecord]) -> BTreeMap<&str, Result<Vec<&EventRecord>, String>> {
    let mut grouped: BTreeMap<&str, Vec<&EventRecord>> = BTreeMap::new();
    for event in events {
        grouped
            .entry(event.customer_id.as_str())
            .or_default()
            .push(event);
    }
    grouped
        .into_iter()
        .map(|(id, mut events)| {
            events.sort_by_key(|event| event.ordinal);
            let gap = events
                .iter()
                .zip(1_u64..)
                .find(|(event, number)| event.ordinal != *number);
            let checked = match gap {
                None => Ok(events),
                Some((event, 1)) => Err(format!(
                    "customer {id}: the events start at number {}, not 1 (older events were deleted by retention or left out of the export)",
                    event.ordinal
                )),
                Some((event, number)) => Err(format!(
                    "customer {id}: event number {number} is missing (the next is {})",
                    event.ordinal
                )),
            };
            (id, checked)
        })
        .collect()
}

/// The labelled examples of `events` (every customer's applied events, in
/// any order), in cut-off order then customer id, with what became of the
/// rest; `source` names the export in errors.
pub fn examples(
    source: &str,
    events: &[EventRecord],
    features: &FeatureSet,
    options: &ScoreOptions,
    progress: &mut dyn Progress,
) -> Result<(Vec<Example>, ScoreSummary), Error> {
    options.check()?;
    check_features(&options.score, features)?;
    let no_rows = |reason: String| Error::Events {
        file: source.to_owned(),
        reason,
    };
    let end =
        data_end(events, options).ok_or_else(|| no_rows("the event log is empty".to_owned()))?;
    let step = options.cadence.millis();
    let horizon = options.horizon.millis();
    let last = floor_to(end.saturating_sub(horizon), step);
    let mut summary = ScoreSummary {
        events: events.len(),
        customers: 0,
        skipped_incomplete: 0,
        incomplete_reason: None,
        labelled_customers: 0,
        until: Timestamp::from_millis(end),
        last_cut_off: Timestamp::from_millis(last),
        cut_offs: 0,
        rows: 0,
        positives: 0,
        censored: 0,
        excluded_after_label: 0,
    };
    let mut customers = Vec::new();
    for (id, checked) in by_customer(events) {
        summary.customers += 1;
        let events = match checked {
            Ok(events) => events,
            Err(reason) => {
                summary.skipped_incomplete += 1;
                summary.incomplete_reason.get_or_insert(reason);
                continue;
            }
        };
        let Some(first_event) = events.first() else {
            continue;
        };
        let start = first_event
            .received_at
            .millis()
            .saturating_add(options.min_history.millis());
        let mut labels = Vec::new();
        // Known by then, or happened by then: either ends the customer's rows.
        let mut labelled_at = i64::MAX;
        for event in events
            .iter()
            .filter(|e| e.event.name == options.label_event)
        {
            labels.push(event.event.timestamp.millis());
            labelled_at = labelled_at
                .min(event.event.timestamp.millis())
                .min(event.received_at.millis());
        }
        labels.sort_unstable();
        if !labels.is_empty() {
            summary.labelled_customers += 1;
        }
        let before_label = labelled_at.saturating_sub(1);
        let rows = multiples(start, last.min(before_label), step);
        summary.cut_offs += rows;
        summary.excluded_after_label += multiples(start.max(labelled_at), last, step);
        summary.censored += multiples(
            start.max(last.saturating_add(1)),
            end.min(before_label),
            step,
        );
        customers.push(Customer {
            id,
            events,
            first: ceil_to(start, step),
            rows,
            labels,
        });
    }
    if summary.cut_offs == 0 {
        return Err(no_rows(format!(
            "no customer has a cut-off whose {} horizon ends by the end of the data ({}): {} customers, {} left out as incomplete{}; a longer event log or a shorter --horizon",
            options.horizon,
            summary.until,
            summary.customers,
            summary.skipped_incomplete,
            summary
                .incomplete_reason
                .as_ref()
                .map(|reason| format!(" ({reason})"))
                .unwrap_or_default()
        )));
    }
    let kept = split::evenly_spaced(0..summary.cut_offs, options.max_rows);
    let mut kept = kept.into_iter().peekable();
    let mut examples = Vec::with_capacity(summary.cut_offs.min(options.max_rows));
    let no_context = BTreeMap::new();
    let mut offset = 0;
    let of = customers.len();
    for (done, customer) in customers.into_iter().enumerate() {
        let mut profile = Profile::default();
        let mut applied = 0;
        while let Some(&position) = kept.peek()
            && position < offset + customer.rows
        {
            kept.next();
            let index = i64::try_from(position - offset).unwrap_or(i64::MAX);
            let cut_off = customer.first.saturating_add(index.saturating_mul(step));
            // Exactly what the service had applied by the cut-off, in its order.
            while let Some(event) = customer.events.get(applied)
                && event.received_at.millis() <= cut_off
            {
                profile.apply_event(&event.event, event.received_at);
                applied += 1;
            }
            let now = Timestamp::from_millis(cut_off);
            let input = FeatureInput {
                profile: &profile,
                context: &no_context,
                now,
            };
            let until = cut_off.saturating_add(horizon);
            examples.push(Example {
                customer: customer.id.to_owned(),
                cut_off: now,
                features: features.customer_factors(&input),
                label: customer
                    .labels
                    .iter()
                    .any(|&at| at > cut_off && at <= until),
            });
        }
        offset += customer.rows;
        if (done + 1) % PROGRESS_EVERY == 0 {
            progress.report(&Event::Replayed {
                customers: done + 1,
                of,
                rows: examples.len(),
            });
        }
    }
    progress.report(&Event::Replayed {
        customers: of,
        of,
        rows: examples.len(),
    });
    // Customers were taken by id: a stable sort keeps it within a cut-off.
    examples.sort_by_key(|example| example.cut_off);
    summary.rows = examples.len();
    summary.positives = examples.iter().filter(|example| example.label).count();
    Ok((examples, summary))
}

/// The training rows of score `options.score` from `events` (see
/// [`examples`]): times are the cut-offs, no action ids, no propensities,
/// no off-policy evaluation.
pub fn dataset(
    source: &str,
    events: &[EventRecord],
    features: &FeatureSet,
    options: &ScoreOptions,
    progress: &mut dyn Progress,
) -> Result<(Dataset, ScoreSummary), Error> {
    let (examples, summary) = self::examples(source, events, features, options, progress)?;
    let mut x = Array2::zeros((examples.len(), features.len()));
    let mut y = Vec::with_capacity(examples.len());
    let mut times = Vec::with_capacity(examples.len());
    for (mut row, example) in x.rows_mut().into_iter().zip(examples) {
        for (cell, value) in row.iter_mut().zip(example.features) {
            *cell = value;
        }
        y.push(example.label);
        times.push(example.cut_off.millis());
    }
    let dataset = Dataset {
        source: source.to_owned(),
        features: features
            .specs()
            .iter()
            .map(|spec| spec.text().to_owned())
            .collect(),
        x,
        y,
        times: Some(times),
        action_ids: None,
        propensities: None,
        columns: Vec::new(),
        choices: Err(
            "no off-policy evaluation: a profile score's rows are customers at cut-offs, not logged choices among actions".to_owned(),
        ),
    };
    Ok((dataset, summary))
}

/// The default features of a score trained on `events`, by a rule that
/// needs no knowledge of the product, looking only at the events the rows
/// can see (applied by the last cut-off):
///
/// - for each event name other than `identify` and the label event (whose
///   count is always 0 before a row's cut-off) that at least
///   [`MIN_CUSTOMERS`] customers had, the [`MAX_EVENTS`] most widespread:
///   `days_since(E)`, `log_count(E,7d)` and `log_count(E,30d)`;
/// - `tenure_days`;
/// - for each attribute `identify` set (but `signup_at`, which
///   `tenure_days` reads): `attr(A)` when every value is a number or a
///   boolean; otherwise `is(A,LEVEL)` for the [`MAX_LEVELS`] most common
///   text values at least [`MIN_CUSTOMERS`] customers had, and
///   `is_none_of(A,…)` for the rest when some customer had another value
///   (an attribute none of whose values is that common, such as an email,
///   gives none).
///
/// Names that cannot be written in a feature spec are left out. Events
/// and attributes come in name order.
pub fn default_features(events: &[EventRecord], options: &ScoreOptions) -> Vec<String> {
    let last = data_end(events, options).map_or(i64::MIN, |end| {
        floor_to(
            end.saturating_sub(options.horizon.millis()),
            options.cadence.millis().max(1),
        )
    });
    let mut event_customers: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    // Per attribute: whether every value is a number or boolean, and the
    // customers of each text value.
    let mut attributes: BTreeMap<&str, (bool, BTreeMap<&str, BTreeSet<&str>>)> = BTreeMap::new();
    for record in events.iter().filter(|e| e.received_at.millis() <= last) {
        let (customer, event) = (record.customer_id.as_str(), &record.event);
        if event.name == IDENTIFY_EVENT {
            for (name, value) in &event.properties {
                if name == SIGNUP_ATTRIBUTE {
                    continue;
                }
                let (numeric, levels) = attributes
                    .entry(name.as_str())
                    .or_insert((true, BTreeMap::new()));
                if let AttrValue::Str(text) = value {
                    *numeric = false;
                    levels.entry(text.as_str()).or_default().insert(customer);
                }
            }
        } else if event.name != options.label_event {
            event_customers
                .entry(event.name.as_str())
                .or_default()
                .insert(customer);
        }
    }
    let mut widespread: Vec<(&str, usize)> = event_customers
        .iter()
        .map(|(name, customers)| (*name, customers.len()))
        .filter(|(name, customers)| {
            *customers >= MIN_CUSTOMERS && writable(&format!("days_since({name})"))
        })
        .collect();
    widespread.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    widespread.truncate(MAX_EVENTS);
    widespread.sort();
    let mut features = Vec::new();
    for (name, _) in widespread {
        features.push(format!("days_since({name})"));
        features.push(format!("log_count({name},7d)"));
        features.push(format!("log_count({name},30d)"));
    }
    features.push("tenure_days".to_owned());
    for (name, (numeric, levels)) in attributes {
        if !writable(&format!("attr({name})")) {
            continue;
        }
        if numeric {
            features.push(format!("attr({name})"));
            continue;
        }
        let mut common: Vec<(&str, usize)> = levels
            .iter()
            .map(|(level, customers)| (*level, customers.len()))
            .filter(|(level, customers)| {
                *customers >= MIN_CUSTOMERS
                    && !level.contains('|')
                    && writable(&format!("is({name},{level})"))
            })
            .collect();
        common.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        common.truncate(MAX_LEVELS);
        common.sort();
        if common.is_empty() {
            continue;
        }
        let kept: Vec<&str> = common.iter().map(|(level, _)| *level).collect();
        for level in &kept {
            features.push(format!("is({name},{level})"));
        }
        if levels.len() > kept.len() {
            features.push(format!("is_none_of({name},{})", kept.join("|")));
        }
    }
    features
}

/// Whether `text` parses as one feature whose canonical text is `text`
/// (names with `,`, `*`, `(` or spaces around them do not).
fn writable(text: &str) -> bool {
    FeatureSpec::parse(text).is_ok_and(|spec| spec.text() == text)
}

/// The artifact's description for score `options.score`: what it
/// predicts, from what, then the training's own `description`.
pub fn describe(options: &ScoreOptions, summary: &ScoreSummary, description: &str) -> String {
    format!(
        "the {} profile score's model: the probability of {} within {} after a cut-off, trained on {} customers' profiles replayed from the event log at cut-offs every {} up to {} (later ones censored, none after a customer's first {}); {description}",
        options.score,
        options.label_event,
        options.horizon,
        summary.customers - summary.skipped_incomplete,
        options.cadence,
        summary.last_cut_off,
        options.label_event,
    )
}

/// The default version of score `score`'s model trained at `now`:
/// `churn_risk-YYYYMMDDTHHMM` (UTC).
pub fn default_version(score: &str, now: DateTime<Utc>) -> String {
    format!("{score}-{}", now.format("%Y%m%dT%H%M"))
}
