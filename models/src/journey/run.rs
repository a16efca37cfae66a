//! One run of one journey for one customer, and the engine that moves it.
//!
//! A run is always at one step, in one [`RunState`]: ready to run it, waiting
//! (a `wait`, a `wait_until`), waiting for an event (a `wait_for`), deferred
//! (a send that caps or quiet hours put off), or ended. [`Run::advance`]
//! runs every step that is due at `now` and stops at the first wait; it is
//! what a timer calls. [`Run::on_event`] ends the run on a goal or an exit
//! event — at once, whatever it was waiting for — and otherwise moves a run
//! waiting for that event. Sends, updates and rules go through the [`Host`]:
//! the customer's actor, which decides through the full pipeline.
//!
//! Every change is an [`Entry`] in the run's history (its audit trail) and
//! in what the call returns, from which the service counts its analytics:
//! a step entered, left (how, after how long), a send made, deferred or
//! blocked, the run's ending.

use super::history::{Ending, Entry, Happened, Via};
use super::{EventMatch, Journey, Next, SendAt, SendTarget, Step, StepKind, split_arm};
use crate::Error;
use crate::catalog::Rule;
use crate::profile::Event;
use crate::time::{Span, Timestamp, next_local_minute};
use crate::value::AttrValue;
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// How an ending names the event that caused it.
type EndingOf = fn(String) -> Ending;

/// Most history entries a run keeps: past it, the oldest after its start
/// are dropped.
pub const MAX_HISTORY: usize = 200;

/// The cause a send waiting for the customer's best time is deferred with
/// (what analytics count by).
pub const BEST_TIME_CAUSE: &str = "best_time";

/// The shortest deferral: a host that says "later" with a moment already
/// past gets this long, so a run never spins.
pub const MIN_DEFERRAL: Span = Span(60_000);

/// What a run needs from the customer it runs for: the service's actor, or
/// a test's fake.
pub trait Host {
    /// The customer's id (splits hash it).
    fn customer_id(&self) -> &str;
    /// The customer's timezone (`wait_until` counts in it).
    fn timezone(&self) -> Tz;
    /// Whether `rule` holds for this customer, with `event`'s properties as
    /// `event` when given (see [`super::holds`]).
    fn holds(&self, rule: &Rule, event: Option<&Event>) -> Result<bool, Error>;
    /// Whether the customer ever did `event`.
    fn has_done(&self, event: &str) -> bool;
    /// Sends now, through the full pipeline (caps, consent, suppression,
    /// quiet hours), or says when it could or why it cannot.
    fn send(&mut self, request: &SendRequest<'_>) -> SendAttempt;
    /// Sets one profile attribute.
    fn update(&mut self, attribute: &str, value: &AttrValue);
    /// The customer's best moment for this send within `within` (the
    /// catalog's window when `None`), with its explanation; `None` when
    /// there is no better moment than now (or no send-time optimization).
    fn best_time(
        &mut self,
        request: &SendRequest<'_>,
        within: Option<Span>,
    ) -> Option<(Timestamp, String)> {
        let _ = (request, within);
        None
    }
}

/// One send a run asks its host for.
#[derive(Debug, Clone, Copy)]
pub struct SendRequest<'a> {
    /// The journey.
    pub journey: &'a Journey,
    /// The send step.
    pub step: &'a Step,
    /// What to send.
    pub target: &'a SendTarget,
    /// Channels not to use (a failover after they failed).
    pub exclude_channels: &'a [String],
}

/// What came of a send.
#[derive(Debug, Clone, PartialEq)]
pub enum SendAttempt {
    /// It went out.
    Sent {
        /// The decision's id.
        decision_id: String,
        /// The action sent.
        action: String,
        /// On this channel.
        channel: String,
    },
    /// Caps or quiet hours allow it later, at the earliest at `until`.
    Deferred {
        /// When to try again.
        until: Timestamp,
        /// Why not now, e.g. `quiet hours 21:00–08:00 on sms`.
        reason: String,
        /// The filter reason's code, e.g. `quiet_hours`, `cap_channel`
        /// (what analytics count by).
        cause: String,
    },
    /// It cannot go: no consent, suppressed, nothing eligible.
    Blocked {
        /// Why.
        reason: String,
        /// The filter reason's code, e.g. `opted_out`, `not_eligible`.
        cause: String,
    },
}

/// Where a run is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RunState {
    /// About to run its step (a paused journey's runs can hold here).
    Ready,
    /// In a `wait` or `wait_until`, until then.
    Waiting {
        /// When it goes on.
        until: Timestamp,
    },
    /// In a `wait_for`: until the event comes, or its timeout.
    WaitingFor {
        /// When it times out.
        until: Timestamp,
    },
    /// A send put off by caps or quiet hours.
    Deferred {
        /// When it is tried again.
        until: Timestamp,
        /// The latest it may still go (the journey's `max_defer` after the
        /// first try); past it, the send is blocked.
        deadline: Timestamp,
    },
    /// Over.
    Ended {
        /// When.
        at: Timestamp,
        /// How.
        ending: Ending,
    },
}

/// One customer's run of one journey (as of one version).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    /// The journey's id.
    pub journey: String,
    /// The version it started on and keeps.
    pub version: u32,
    /// When it started.
    pub started_at: Timestamp,
    /// Its step (an index into the version's steps).
    pub step: usize,
    /// When it entered that step.
    pub step_entered_at: Timestamp,
    /// Where it is.
    pub state: RunState,
    /// What happened, oldest first (at most [`MAX_HISTORY`]).
    pub history: Vec<Entry>,
}

impl Run {
    /// A run of `journey` started by `trigger` at `now`, ready at its first
    /// step (call [`Run::advance`] to run it).
    pub fn start(journey: &Journey, trigger: &Event, now: Timestamp) -> (Self, Vec<Entry>) {
        debug_assert!(!journey.steps.is_empty(), "a journey has steps");
        let mut run = Self {
            journey: journey.id.to_string(),
            version: journey.version,
            started_at: now,
            step: 0,
            step_entered_at: now,
            state: RunState::Ready,
            history: Vec::new(),
        };
        let mut out = Vec::new();
        run.record(
            &mut out,
            now,
            Happened::Started {
                trigger: trigger.name.clone(),
                step: journey
                    .steps
                    .first()
                    .map(|step| step.id.clone())
                    .unwrap_or_default(),
            },
        );
        (run, out)
    }

    /// The steps the run entered, in order, from its history: the path
    /// it took.
    pub fn steps_entered(&self) -> impl Iterator<Item = &str> {
        self.history.iter().filter_map(|entry| match &entry.what {
            Happened::Started { step, .. } => Some(step.as_str()),
            Happened::Moved { to: Some(to), .. } => Some(to.as_str()),
            _ => None,
        })
    }

    /// Whether the run is over.
    pub fn is_ended(&self) -> bool {
        matches!(self.state, RunState::Ended { .. })
    }

    /// When the run next needs [`Run::advance`]: now for a ready run, the
    /// end of its wait or deferral, `None` when it only waits for an event
    /// with no timeout or is over.
    pub fn due(&self) -> Option<Timestamp> {
        match self.state {
            RunState::Ready => Some(self.step_entered_at),
            RunState::Waiting { until }
            | RunState::WaitingFor { until }
            | RunState::Deferred { until, .. } => Some(until),
            RunState::Ended { .. } => None,
        }
    }

    /// Runs every step that is due at `now`, stopping at the first wait, a
    /// deferral or the end. Nothing moves while the journey is `paused`.
    /// `journey` must be the run's version.
    pub fn advance(
        &mut self,
        journey: &Journey,
        paused: bool,
        now: Timestamp,
        host: &mut dyn Host,
    ) -> Vec<Entry> {
        debug_assert_eq!(
            (journey.id.as_ref(), journey.version),
            (self.journey.as_str(), self.version)
        );
        let mut out = Vec::new();
        if paused {
            return out;
        }
        // The catalog refuses a cycle of steps without a wait, so a run
        // passes each step at most once before it waits; the bound only
        // guards against a definition that slipped through.
        for _ in 0..=2 * journey.steps.len() + 1 {
            match self.state {
                RunState::Ended { .. } => return out,
                RunState::Waiting { until } => {
                    if until > now {
                        return out;
                    }
                    let next = self.current(journey).next;
                    self.go(journey, next, Via::Done, now, &mut out);
                }
                RunState::WaitingFor { until } => {
                    if until > now {
                        return out;
                    }
                    let on_timeout = match &self.current(journey).kind {
                        StepKind::WaitFor { on_timeout, .. } => *on_timeout,
                        _ => self.current(journey).next,
                    };
                    self.go(journey, on_timeout, Via::Timeout, now, &mut out);
                }
                RunState::Deferred { until, deadline } => {
                    if until > now {
                        return out;
                    }
                    self.send(journey, Some(deadline), now, host, &mut out);
                }
                RunState::Ready => self.run_step(journey, now, host, &mut out),
            }
        }
        if !self.is_ended() && self.due().is_some_and(|due| due <= now) {
            self.finish(
                Ending::Failed {
                    reason: "its steps looped without waiting".to_owned(),
                },
                now,
                &mut out,
            );
        }
        out
    }

    /// The customer did `event`: a goal or an exit ends the run at once,
    /// whatever it waited for; otherwise a run waiting for this event goes
    /// on (and runs what is due after it). A `paused` journey's runs still
    /// end on goals and exits, but do not move.
    pub fn on_event(
        &mut self,
        journey: &Journey,
        paused: bool,
        event: &Event,
        now: Timestamp,
        host: &mut dyn Host,
    ) -> Vec<Entry> {
        let mut out = Vec::new();
        if self.is_ended() {
            return out;
        }
        let endings: [(&[EventMatch], EndingOf); 2] = [
            (&journey.goals, |event| Ending::Converted { event }),
            (&journey.exits, |event| Ending::Exited { event }),
        ];
        for (wanted, ending) in endings {
            for candidate in wanted {
                if self.matches(candidate, event, host, now, &mut out) {
                    self.finish(ending(event.name.clone()), now, &mut out);
                    return out;
                }
            }
        }
        if paused || !matches!(self.state, RunState::WaitingFor { .. }) {
            return out;
        }
        let step = self.current(journey);
        if let StepKind::WaitFor { event: awaited, .. } = &step.kind
            && self.matches(awaited, event, host, now, &mut out)
        {
            let next = step.next;
            self.go(
                journey,
                next,
                Via::Event {
                    event: event.name.clone(),
                },
                now,
                &mut out,
            );
            out.extend(self.advance(journey, paused, now, host));
        }
        out
    }

    /// Ends the run now (an operator's cancel, an opt-out), unless it is
    /// over already.
    pub fn end(&mut self, ending: Ending, now: Timestamp) -> Vec<Entry> {
        let mut out = Vec::new();
        if !self.is_ended() {
            self.finish(ending, now, &mut out);
        }
        out
    }

    fn current<'j>(&self, journey: &'j Journey) -> &'j Step {
        &journey.steps[self.step]
    }

    /// Runs the current step, which the run is ready at.
    fn run_step(
        &mut self,
        journey: &Journey,
        now: Timestamp,
        host: &mut dyn Host,
        out: &mut Vec<Entry>,
    ) {
        let step = self.current(journey);
        match &step.kind {
            StepKind::Send { .. } => self.send(journey, None, now, host, out),
            StepKind::Wait(span) => {
                self.state = RunState::Waiting {
                    until: now.plus(*span),
                };
            }
            StepKind::WaitUntil { minute_of_day } => {
                let until = next_local_minute(now, host.timezone(), *minute_of_day);
                if until <= now {
                    self.go(journey, step.next, Via::Done, now, out);
                } else {
                    self.state = RunState::Waiting { until };
                }
            }
            StepKind::WaitFor { timeout, .. } => {
                self.state = RunState::WaitingFor {
                    until: now.plus(*timeout),
                };
            }
            StepKind::Branch { cases, otherwise } => {
                for (index, case) in cases.iter().enumerate() {
                    match host.holds(&case.when, None) {
                        Ok(true) => {
                            self.go(journey, case.goto, Via::Case { index }, now, out);
                            return;
                        }
                        Ok(false) => {}
                        Err(error) => self.rule_failed(&case.when, &error, now, out),
                    }
                }
                self.go(journey, *otherwise, Via::Else, now, out);
            }
            StepKind::Split { arms } => {
                let index = split_arm(arms, host.customer_id(), &journey.id, &step.id);
                let goto = arms.get(index).map_or(step.next, |arm| arm.goto);
                self.go(journey, goto, Via::Arm { index }, now, out);
            }
            StepKind::Update { set } => {
                for (attribute, value) in set {
                    host.update(attribute, value);
                    self.record(
                        out,
                        now,
                        Happened::Updated {
                            step: step.id.clone(),
                            attribute: attribute.clone(),
                        },
                    );
                }
                self.go(journey, step.next, Via::Done, now, out);
            }
            StepKind::Exit => self.finish(Ending::ExitStep, now, out),
        }
    }

    /// Tries the current (send) step: the first try when `deadline` is
    /// `None`, a deferred one's retry otherwise.
    fn send(
        &mut self,
        journey: &Journey,
        deadline: Option<Timestamp>,
        now: Timestamp,
        host: &mut dyn Host,
        out: &mut Vec<Entry>,
    ) {
        let step = self.current(journey);
        let StepKind::Send {
            target,
            on_blocked,
            at,
            ..
        } = &step.kind
        else {
            debug_assert!(false, "only a send step is sent");
            return;
        };
        let request = SendRequest {
            journey,
            step,
            target,
            exclude_channels: &[],
        };
        // The first try of a send at the customer's best time waits for
        // it; the pipeline decides when it comes (policy still wins).
        if let (None, SendAt::BestTime { within }) = (deadline, at)
            && let Some((best, reason)) = host.best_time(&request, *within)
            && best > now
        {
            self.record(
                out,
                now,
                Happened::Deferred {
                    step: step.id.clone(),
                    until: best,
                    reason,
                    cause: BEST_TIME_CAUSE.to_owned(),
                },
            );
            self.state = RunState::Deferred {
                until: best,
                deadline: best.plus(journey.max_defer),
            };
            return;
        }
        let deadline = deadline.unwrap_or_else(|| now.plus(journey.max_defer));
        let attempt = host.send(&request);
        let (blocked, cause) = match attempt {
            SendAttempt::Sent {
                decision_id,
                action,
                channel,
            } => {
                self.record(
                    out,
                    now,
                    Happened::Sent {
                        step: step.id.clone(),
                        decision_id,
                        action,
                        channel,
                    },
                );
                self.go(journey, step.next, Via::Done, now, out);
                return;
            }
            SendAttempt::Deferred {
                until,
                reason,
                cause,
            } if until <= deadline => {
                let until = until.max(now.plus(MIN_DEFERRAL));
                self.record(
                    out,
                    now,
                    Happened::Deferred {
                        step: step.id.clone(),
                        until,
                        reason,
                        cause,
                    },
                );
                self.state = RunState::Deferred { until, deadline };
                return;
            }
            SendAttempt::Deferred {
                until,
                reason,
                cause,
            } => (
                format!(
                    "{reason}; not before {until}, past the {} a send may wait",
                    journey.max_defer
                ),
                cause,
            ),
            SendAttempt::Blocked { reason, cause } => (reason, cause),
        };
        self.record(
            out,
            now,
            Happened::Blocked {
                step: step.id.clone(),
                reason: blocked,
                cause,
            },
        );
        self.go(journey, *on_blocked, Via::Blocked, now, out);
    }

    /// Whether `event` is `wanted`'s event and its condition holds.
    fn matches(
        &mut self,
        wanted: &EventMatch,
        event: &Event,
        host: &dyn Host,
        now: Timestamp,
        out: &mut Vec<Entry>,
    ) -> bool {
        if wanted.event != event.name {
            return false;
        }
        let Some(rule) = &wanted.when else {
            return true;
        };
        match host.holds(rule, Some(event)) {
            Ok(verdict) => verdict,
            Err(error) => {
                self.rule_failed(rule, &error, now, out);
                false
            }
        }
    }

    fn rule_failed(&mut self, rule: &Rule, error: &Error, now: Timestamp, out: &mut Vec<Entry>) {
        let reason = match error {
            Error::RuleFailed { reason, .. } => reason.clone(),
            other => other.to_string(),
        };
        self.record(
            out,
            now,
            Happened::RuleFailed {
                rule: rule.source().to_owned(),
                reason,
            },
        );
    }

    /// Leaves the current step for `next`.
    fn go(
        &mut self,
        journey: &Journey,
        next: Next,
        via: Via,
        now: Timestamp,
        out: &mut Vec<Entry>,
    ) {
        let from = self.current(journey).id.clone();
        let in_step_ms = now.millis().saturating_sub(self.step_entered_at.millis());
        match next {
            Next::Step(index) => {
                self.record(
                    out,
                    now,
                    Happened::Moved {
                        from,
                        to: Some(journey.steps[index].id.clone()),
                        via,
                        in_step_ms,
                    },
                );
                self.step = index;
                self.step_entered_at = now;
                self.state = RunState::Ready;
            }
            Next::End => {
                self.record(
                    out,
                    now,
                    Happened::Moved {
                        from,
                        to: None,
                        via,
                        in_step_ms,
                    },
                );
                self.finish(Ending::Completed, now, out);
            }
        }
    }

    fn finish(&mut self, ending: Ending, now: Timestamp, out: &mut Vec<Entry>) {
        self.state = RunState::Ended {
            at: now,
            ending: ending.clone(),
        };
        let in_step_ms = now.millis().saturating_sub(self.step_entered_at.millis());
        self.record(
            out,
            now,
            Happened::Ended {
                ending,
                step: self.step,
                in_step_ms,
            },
        );
    }

    fn record(&mut self, out: &mut Vec<Entry>, at: Timestamp, what: Happened) {
        let entry = Entry { at, what };
        self.note(entry.clone());
        out.push(entry);
    }

    /// Adds `entry` to the history, within [`MAX_HISTORY`].
    pub(crate) fn note(&mut self, entry: Entry) {
        if self.history.len() >= MAX_HISTORY {
            // Keep the start: it says how the run began.
            self.history.remove(1);
        }
        self.history.push(entry);
    }
}
