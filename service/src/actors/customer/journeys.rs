//! The customer actor runs the customer's journeys: an event may end runs
//! (goals, exits), move runs waiting for it and start new ones; a timer
//! moves the runs that are due; an opt-out or a suppression removes the
//! customer from the journeys that send on that channel. Sends decide
//! through the full pipeline on the customer's state
//! ([`PipelineHost`]), and what they log and the budget units they take
//! are made durable with the state, in the same write.
//!
//! Every send goes into the customer's outbox, due at once; a wake-up hands
//! the due dispatches out ([`Wake`] replies them, and the engine offers
//! them to the delivery services' subscriptions once the change is
//! durable), acknowledgements ([`AckDispatch`]) and outcomes (`delivered`,
//! `failed`, in [`super::ReportOutcome`]) close them.
//!
//! After every change the actor tells [`JourneyTimers`] when the customer
//! is next due, so the engine's timer task wakes it ([`Wake`]) even after
//! it passivated.

use super::{CustomerActor, Durable, ReportOutcome, budget_changes};
use crate::error::ServiceError;
use crate::journeys::{Book, TimerEntry};
use crate::store::{BudgetChange, Commit, LogEntry};
use actix::prelude::*;
use nudge_models::catalog::Catalog;
use nudge_models::journey::{
    Acknowledged, CustomerJourneys, Dispatch, Outcome, PipelineHost, Versions,
};
use nudge_models::ledger::OutcomeKind;
use nudge_models::pipeline::Environment;
use nudge_models::scores::RefreshPath;
use nudge_models::time::{Span, Timestamp};
use std::collections::BTreeSet;

/// How long a customer whose wake-up could not be handled (the store
/// refused writes) waits before it is tried again.
pub const WAKE_RETRY: Span = Span(1_000);

/// What running journeys produced, made durable with the customer's state.
#[derive(Debug, Default)]
pub(super) struct JourneyEffects {
    /// Decision-log entries of the sends that went out.
    pub log: Vec<LogEntry>,
    /// Budget units they took.
    pub budget: Vec<BudgetChange>,
    /// Whether any run changed.
    pub changed: bool,
    /// Whether the journeys ran (the timer needs a sync).
    pub ran: bool,
}

impl CustomerActor {
    /// Runs `step` over the customer's journeys, with the pipeline as the
    /// host; every send goes into the outbox. The caller syncs the timer
    /// once it is done with the journeys ([`CustomerActor::sync_timer`]).
    pub(super) fn run_journeys(
        &mut self,
        now: Timestamp,
        catalog: &Catalog,
        effects: &mut JourneyEffects,
        step: impl FnOnce(&mut CustomerJourneys, &Book, &mut PipelineHost<'_>) -> Outcome,
    ) {
        let book = self.shared.journeys.load();
        let serving = self.shared.models.serving();
        let (variant, model) = serving.for_customer(&self.customer_id);
        let mut journeys = std::mem::take(&mut self.state.journeys);
        let mut new_decision_id = || uuid::Uuid::new_v4().simple().to_string();
        let population = self.shared.population.snapshot();
        let mut host = PipelineHost {
            env: Environment {
                catalog,
                model: model.map(|model| &**model),
                budgets: &self.shared.budgets,
            },
            state: &mut self.state,
            customer_id: &self.customer_id,
            variant,
            shadow: serving.shadow().map(|model| &**model),
            now,
            new_decision_id: &mut new_decision_id,
            population: &population,
            sent: Vec::new(),
        };
        let outcome = step(&mut journeys, &book, &mut host);
        let sent = std::mem::take(&mut host.sent);
        self.state.journeys = journeys;
        // Counted by the journey metrics (`nudge_journey_sends_total`), not
        // as Decide calls.
        for sent in sent {
            // Each send waits in the outbox for a delivery service.
            self.state.journeys.dispatch(&sent, now);
            effects.changed = true;
            effects.log.extend(sent.log);
            effects.budget.extend(budget_changes(sent.budget_taken, 1));
        }
        effects.changed |= !outcome.reports.is_empty();
        effects.ran = true;
        self.shared.record_journeys(&outcome);
    }

    /// Ends the runs of journeys that send on `channel` (an opt-out, a
    /// suppression); whether any ended.
    pub(super) fn remove_from_channel(
        &mut self,
        channel: &str,
        reason: &str,
        now: Timestamp,
    ) -> bool {
        if self.state.journeys.runs.is_empty() {
            return false;
        }
        let book = self.shared.journeys.load();
        let outcome = self
            .state
            .journeys
            .remove_for_channel(channel, reason, book.as_ref(), now);
        self.shared.record_journeys(&outcome);
        self.sync_timer(book.as_ref());
        !outcome.reports.is_empty()
    }

    /// Hands out the outbox's due dispatches: those a delivery service
    /// takes are returned, to be offered once the change is durable; the
    /// others are held, and the hub wakes the customer when a delivery
    /// service subscribes for their channel. Expired ones leave the outbox.
    /// Sets the customer's timer after.
    fn hand_out(&mut self, now: Timestamp) -> Vec<Dispatch> {
        if self.state.journeys.outbox.is_empty() {
            let book = self.shared.journeys.load();
            self.sync_timer(book.as_ref());
            return Vec::new();
        }
        let policy = self.shared.config.journeys.dispatch_policy();
        let hub = &self.shared.dispatches;
        let book = self.shared.journeys.load();
        let (handed, outcome) =
            self.state
                .journeys
                .deliverable(now, &policy, book.as_ref(), |channel| hub.takes(channel));
        self.shared.record_journeys(&outcome);
        let held: BTreeSet<&str> = self.state.journeys.held_channels().collect();
        let mut subscribed_since = false;
        for channel in held {
            subscribed_since |= hub.wait_for(channel, &self.customer_id);
        }
        self.sync_timer(book.as_ref());
        if subscribed_since {
            self.set_timer(TimerEntry::Due(now));
        }
        handed
    }

    /// Sets the customer's timer to `entry`.
    fn set_timer(&mut self, entry: TimerEntry) {
        self.timer = Some(entry);
        self.shared.timers.set(&self.customer_id, entry);
    }

    /// Tells the timers when the customer is next due, if the journeys ran.
    pub(super) fn sync_timer_after(&mut self, effects: &JourneyEffects) {
        if effects.ran {
            let book = self.shared.journeys.load();
            self.sync_timer(book.as_ref());
        }
    }

    /// Tells the timers when the customer is next due, if that changed.
    pub(super) fn sync_timer(&mut self, versions: &dyn Versions) {
        let journeys = &self.state.journeys;
        if journeys.is_idle() && self.timer == Some(TimerEntry::None) {
            return;
        }
        let entry = match journeys.next_due(versions) {
            Some(due) => TimerEntry::Due(due),
            None if journeys.has_paused(versions) => TimerEntry::Parked,
            None => TimerEntry::None,
        };
        if self.timer != Some(entry) {
            self.set_timer(entry);
        }
    }
}

/// What a delivery outcome (`ReportOutcome`) is to the customer's outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Delivery {
    /// Not a `delivered` or `failed` of a dispatch in the outbox: the
    /// ledger alone takes it.
    NotDispatched,
    /// It names an attempt already retried while another attempt of the
    /// send is out: a repeated report, nothing changes.
    Repeated,
    /// A failure tried again on the same channel.
    Retried,
    /// It closes the dispatch (delivered), or fails it over.
    Closes,
}

impl CustomerActor {
    /// What `message` is to the customer's outbox.
    pub(super) fn delivery_of(&self, message: &ReportOutcome) -> Delivery {
        if !matches!(
            message.outcome,
            OutcomeKind::Delivered | OutcomeKind::Failed
        ) {
            return Delivery::NotDispatched;
        }
        let journeys = &self.state.journeys;
        let dispatch_id = message.dispatch_id.as_deref();
        let named = journeys
            .dispatch_of(&message.decision_id, dispatch_id)
            .filter(|dispatch| dispatch.action == message.action_id);
        match named {
            None if dispatch_id.is_some()
                && journeys.dispatch_of(&message.decision_id, None).is_some() =>
            {
                Delivery::Repeated
            }
            None => Delivery::NotDispatched,
            Some(_)
                if message.outcome == OutcomeKind::Failed
                    && journeys.retries_on_failure(&message.decision_id, dispatch_id) =>
            {
                Delivery::Retried
            }
            Some(_) => Delivery::Closes,
        }
    }

    /// Applies `message`, the outcome of a dispatch in the outbox:
    /// delivered closes it, failed retries or fails it over (the
    /// failover's send, its log entries and budget units in `effects`).
    pub(super) fn close_dispatch(
        &mut self,
        message: &ReportOutcome,
        now: Timestamp,
        effects: &mut JourneyEffects,
    ) {
        let catalog = self.shared.catalog.load_full();
        let decision_id = &message.decision_id;
        let dispatch_id = message.dispatch_id.as_deref();
        self.run_journeys(now, &catalog, effects, |journeys, book, host| {
            if message.outcome == OutcomeKind::Delivered {
                journeys.delivered(decision_id, dispatch_id, now)
            } else {
                journeys.failed(decision_id, dispatch_id, book, now, host)
            }
        });
        self.sync_timer_after(effects);
    }
}

/// What a wake-up did.
#[derive(Debug, Default)]
pub struct Woken {
    /// History entries it added.
    pub entries: usize,
    /// Dispatches handed out, to offer to the delivery services once the
    /// change is durable.
    pub handed: Vec<Dispatch>,
}

/// The customer's journeys are due: move every run that is, and hand out
/// the dispatches that are.
#[derive(Debug, Message)]
#[rtype(result = "Result<Durable<Woken>, ServiceError>")]
pub struct Wake;

impl Handler<Wake> for CustomerActor {
    type Result = Result<Durable<Woken>, ServiceError>;

    fn handle(&mut self, _message: Wake, context: &mut Self::Context) -> Self::Result {
        let now = self.touch();
        // The timer task took the customer out of the schedule.
        self.timer = Some(TimerEntry::None);
        self.check_loaded(context)?;
        if let Err(error) = self.check_writable() {
            self.set_timer(TimerEntry::Due(now.plus(WAKE_RETRY)));
            return Err(error);
        }
        let catalog = self.shared.catalog.load_full();
        let book = self.shared.journeys.load();
        if let Some(due) = self.state.journeys.next_due(book.as_ref())
            && due <= now
        {
            let late = u64::try_from(now.millis() - due.millis()).unwrap_or(0);
            self.shared
                .metrics
                .journey_timer_fired(std::time::Duration::from_millis(late));
        }
        let before = self.state.clone();
        // Journey rules and sends decide on fresh scores.
        let serving = self.shared.models.serving();
        self.refresh_scores(&catalog, &serving.score_models, now, RefreshPath::Decision);
        let mut effects = JourneyEffects::default();
        let mut entries = 0;
        self.run_journeys(now, &catalog, &mut effects, |journeys, book, host| {
            let outcome = journeys.on_time(book, now, host);
            entries = outcome.reports.len();
            outcome
        });
        let handed = self.hand_out(now);
        let commit = if effects.changed
            || self.state.journeys.outbox != before.journeys.outbox
            || self.state.profile.scores != before.profile.scores
        {
            self.persist(&before, effects.log, effects.budget)
        } else {
            Commit::none()
        };
        Ok(Durable {
            value: Woken { entries, handed },
            commit,
        })
    }
}

/// A delivery service took dispatch `dispatch_id`: it waits for its
/// outcome and is not handed out again. Replies what that did, and the
/// dispatch's channel when it is in the outbox.
#[derive(Debug, Message)]
#[rtype(result = "Result<Durable<(Acknowledged, Option<String>)>, ServiceError>")]
pub struct AckDispatch {
    /// The dispatch (one attempt of a send).
    pub dispatch_id: String,
}

impl Handler<AckDispatch> for CustomerActor {
    type Result = Result<Durable<(Acknowledged, Option<String>)>, ServiceError>;

    fn handle(&mut self, message: AckDispatch, context: &mut Self::Context) -> Self::Result {
        self.touch();
        self.check_loaded(context)?;
        self.check_writable()?;
        let policy = self.shared.config.journeys.dispatch_policy();
        let before = self.state.clone();
        let journeys = &mut self.state.journeys;
        let channel = journeys
            .outbox
            .iter()
            .find(|dispatch| dispatch.id == message.dispatch_id)
            .map(|dispatch| dispatch.channel.clone());
        let acknowledged = journeys.acknowledge(&message.dispatch_id, &policy);
        let commit = if acknowledged == Acknowledged::Taken {
            let book = self.shared.journeys.load();
            self.sync_timer(book.as_ref());
            self.persist(&before, Vec::new(), Vec::new())
        } else {
            Commit::none()
        };
        Ok(Durable {
            value: (acknowledged, channel),
            commit,
        })
    }
}

/// An operator ends the customer's run of a journey. Replies whether a run
/// in progress was ended; a customer nudge has never heard of is an error.
#[derive(Debug, Message)]
#[rtype(result = "Result<Durable<bool>, ServiceError>")]
pub struct CancelRun {
    /// The journey.
    pub journey_id: String,
}

impl Handler<CancelRun> for CustomerActor {
    type Result = Result<Durable<bool>, ServiceError>;

    fn handle(&mut self, message: CancelRun, context: &mut Self::Context) -> Self::Result {
        let now = self.touch();
        self.check_loaded(context)?;
        if self.state.is_empty() {
            return Err(ServiceError::UnknownCustomer(self.customer_id.to_string()));
        }
        self.check_writable()?;
        let before = self.state.clone();
        let outcome = self.state.journeys.cancel(&message.journey_id, now);
        let cancelled = !outcome.reports.is_empty();
        self.shared.record_journeys(&outcome);
        let book = self.shared.journeys.load();
        self.sync_timer(book.as_ref());
        let commit = if cancelled {
            self.persist(&before, Vec::new(), Vec::new())
        } else {
            Commit::none()
        };
        Ok(Durable {
            value: cancelled,
            commit,
        })
    }
}
