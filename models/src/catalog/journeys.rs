//! Journeys as declared in the catalog, compiled: what a journey is
//! (trigger, entry rules, goals, exits, steps), not how it runs — that is
//! [`crate::journey`]. `compile/journeys/` builds these from `[[journeys]]`.

use super::Rule;
use crate::time::Span;
use crate::value::AttrValue;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::sync::Arc;

/// What the ids of journeys' own placements start with (a `/`, which ids
/// declared in the file cannot hold).
const JOURNEY_PLACEMENT_PREFIX: &str = "journey/";

/// The id of the placement a journey's fixed-action sends decide in.
pub fn journey_placement_id(journey_id: &str) -> String {
    format!("{JOURNEY_PLACEMENT_PREFIX}{journey_id}")
}

/// Whether `placement_id` is a journey's own placement rather than one the
/// file declares.
pub fn is_journey_placement(placement_id: &str) -> bool {
    placement_id.starts_with(JOURNEY_PLACEMENT_PREFIX)
}

/// Limits over all of one customer's journeys (`[journey_policy]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JourneyPolicy {
    /// Most journeys one customer is in at once; a trigger beyond it is
    /// refused ([`Refused::TooManyJourneys`]).
    pub max_concurrent: usize,
}

impl Default for JourneyPolicy {
    fn default() -> Self {
        Self { max_concurrent: 3 }
    }
}

/// One journey, as of one version.
#[derive(Debug)]
pub struct Journey {
    /// Journey id.
    pub id: Arc<str>,
    /// Human name.
    pub name: String,
    /// A running journey keeps the version it started on; new entries take
    /// the catalog's.
    pub version: u32,
    /// Paused: no new entries, and runs hold where they are until resumed.
    pub status: JourneyStatus,
    /// When sends of several journeys are due at once, the higher priority
    /// goes first (and takes a contested cap slot).
    pub priority: i32,
    /// The event that starts a run.
    pub trigger: EventMatch,
    /// Must hold (over `profile` and the trigger's `event`) to enter.
    pub entry: Option<Rule>,
    /// Events that end a run as converted.
    pub goals: Vec<EventMatch>,
    /// Events that end a run as exited.
    pub exits: Vec<EventMatch>,
    /// The shortest time between two entries of one customer; `None`: a
    /// customer enters once.
    pub reentry_after: Option<Span>,
    /// The longest a send waits for caps or quiet hours before it is
    /// blocked.
    pub max_defer: Span,
    /// Whether a customer who already did a goal event is kept out.
    pub skip_if_goal_reached: bool,
    /// The steps; a run starts at the first.
    pub steps: Vec<Step>,
    /// Every channel its sends may use: opting out of one, or being
    /// suppressed on it, removes the customer from the journey.
    pub channels: BTreeSet<String>,
}

impl Journey {
    /// Whether the journey is paused.
    pub fn is_paused(&self) -> bool {
        self.status == JourneyStatus::Paused
    }
}

/// Whether a journey takes entries and moves its runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JourneyStatus {
    /// Running.
    Active,
    /// Held: no entries, runs hold in place.
    Paused,
}

/// An event by name, with an optional condition over `profile` and `event`.
#[derive(Debug)]
pub struct EventMatch {
    /// Event name.
    pub event: String,
    /// Must also hold.
    pub when: Option<Rule>,
}

/// One step of a journey.
#[derive(Debug)]
pub struct Step {
    /// Step id, unique in its journey (named in history and analytics).
    pub id: String,
    /// What it does.
    pub kind: StepKind,
    /// Where the run goes when the step is done (branches and splits choose
    /// their own).
    pub next: Next,
}

impl StepKind {
    /// The step's kind as the catalog writes it: `send`, `wait`,
    /// `wait_until`, `wait_for`, `branch`, `split`, `update` or `exit`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Send { .. } => "send",
            Self::Wait(_) => "wait",
            Self::WaitUntil { .. } => "wait_until",
            Self::WaitFor { .. } => "wait_for",
            Self::Branch { .. } => "branch",
            Self::Split { .. } => "split",
            Self::Update { .. } => "update",
            Self::Exit => "exit",
        }
    }
}

/// When a send step's send goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendAt {
    /// As soon as the step is reached (policy permitting).
    Now,
    /// At the customer's best time (send-time optimization) within a
    /// window from the moment the step is reached (`None`: the catalog's
    /// `[send_time]` window); policy still wins over it.
    BestTime {
        /// The window searched.
        within: Option<Span>,
    },
}

/// Where a run goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// The step at this index.
    Step(usize),
    /// The run ends, completed.
    End,
}

/// What a step does.
#[derive(Debug)]
pub enum StepKind {
    /// A decision through the full pipeline (caps, consent and quiet hours
    /// apply); deferred while caps or quiet hours say later, up to the
    /// journey's `max_defer`, then `on_blocked`.
    Send {
        /// What is sent.
        target: SendTarget,
        /// Where a send that cannot go goes.
        on_blocked: Next,
        /// For a fixed action: the actions a failed delivery may fail
        /// over to, each on another channel; the pipeline chooses among
        /// those on the channels left, as consent, caps and scores allow
        /// (a placement fails over to its actions on the other channels).
        failover: Vec<Arc<str>>,
        /// When it goes: at once, or at the customer's best time.
        at: SendAt,
    },
    /// Waits this long.
    Wait(Span),
    /// Waits until the next time the customer's local clock shows this
    /// minute of the day (now, if it shows it already).
    WaitUntil {
        /// 0..1440.
        minute_of_day: u16,
    },
    /// Waits for an event, at most `timeout`.
    WaitFor {
        /// The event awaited (then `next`); boxed, as a rule is large.
        event: Box<EventMatch>,
        /// The longest wait.
        timeout: Span,
        /// Where the run goes when the timeout passes.
        on_timeout: Next,
    },
    /// The first case whose rule holds (over `profile`) chooses the next
    /// step; none: `otherwise`.
    Branch {
        /// In order.
        cases: Vec<BranchCase>,
        /// Where no case holds.
        otherwise: Next,
    },
    /// A deterministic split of customers (by hash of the customer, journey
    /// and step) between arms, by weight.
    Split {
        /// The arms, in order.
        arms: Vec<SplitArm>,
    },
    /// Sets profile attributes.
    Update {
        /// Attribute name and value, in order.
        set: Vec<(String, AttrValue)>,
    },
    /// Ends the run.
    Exit,
}

/// What a send step sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendTarget {
    /// This action (one of the catalog's).
    Action(Arc<str>),
    /// The best action for this placement, as `Decide` would choose it.
    Placement(String),
}

/// One case of a branch.
#[derive(Debug)]
pub struct BranchCase {
    /// Over `profile`.
    pub when: Rule,
    /// Where the run goes when it holds.
    pub goto: Next,
}

/// One arm of a split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SplitArm {
    /// Relative weight (> 0).
    pub weight: u32,
    /// Where the run goes.
    pub goto: Next,
}
