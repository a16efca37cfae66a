//! `CustomerActor`: one per active customer. It owns the customer's state and
//! applies every decision, event, outcome and consent change in turn, so no two
//! concurrent calls can both take the last slot of a cap.
//!
//! An actor loads its own state when it starts (the registry only starts it),
//! and handles no message before the load is done; if the load fails, every
//! message it holds is answered with the storage error and the actor stops,
//! so the next call activates it afresh.

mod decide;
mod journeys;
mod scores;
mod send_times;

pub use decide::Decide;
pub use journeys::{AckDispatch, CancelRun, WAKE_RETRY, Wake, Woken};

use crate::error::{BudgetedCall, ServiceError, Stage};
use crate::journeys::TimerEntry;
use crate::requests::Deadline;
use crate::shared::Shared;
use crate::store::{
    BudgetChange, Commit, EventRecord, LogEntry, OutcomeRecord, StateChange, StoreError,
};
use actix::prelude::*;
use nudge_models::customer::{
    ConsentState, CustomerState, OutcomeResult, SuppressionReason, TrackResult,
};
use nudge_models::delta::StateDelta;
use nudge_models::ledger::OutcomeKind;
use nudge_models::profile::Event;
use nudge_models::scores::RefreshPath;
use nudge_models::time::Timestamp;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

/// What the registry and callers can see of a live actor without a message.
#[derive(Debug, Default)]
pub struct Activity {
    /// When the actor last handled a message (ms since epoch, service clock).
    pub last_active_ms: AtomicI64,
    /// Messages sent whose answer the engine still waits for (counted by the
    /// engine, so a message abandoned at its deadline, which the actor then
    /// skips, is not counted for ever).
    pub pending: AtomicUsize,
    /// Set once the actor has been asked to passivate, so that eviction does
    /// not count it as live nor pick it again.
    pub passivating: AtomicBool,
    /// Its place in the registry's recency order (0: not in it).
    pub lru_tick: AtomicU64,
}

/// An answer that may be given only once its write is durable.
#[derive(Debug)]
pub struct Durable<T> {
    /// The answer.
    pub value: T,
    /// The write of the change behind it.
    pub commit: Commit,
}

/// The actor of one customer.
pub struct CustomerActor {
    /// Whose state this is.
    customer_id: Arc<str>,
    /// The customer's state; every change is written to the store before it
    /// is acknowledged, so stopping the actor loses nothing.
    state: CustomerState,
    /// Set when loading the state failed: every message is refused with it.
    load_error: Option<Box<StoreError>>,
    /// State writes made so far (refused ones included): with `generation`,
    /// what tells the store which state a written change is from.
    writes: u64,
    /// Catalog, model, budgets, store, clock, config.
    shared: Arc<Shared>,
    /// Shared with the registry entry.
    activity: Arc<Activity>,
    /// Identifies this activation in the registry, so a stopping actor only
    /// removes its own entry.
    generation: u64,
    /// Called when the actor stops.
    on_stop: Option<Box<dyn FnOnce() + Send>>,
    /// What the journey timers hold for the customer, as far as this actor
    /// knows (`None`: not known, so the next sync sets it whatever it is).
    timer: Option<TimerEntry>,
}

impl std::fmt::Debug for CustomerActor {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("CustomerActor")
            .field("customer_id", &self.customer_id)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

impl CustomerActor {
    /// An actor for `customer_id`; it loads the customer's state when it
    /// starts.
    pub fn new(
        customer_id: Arc<str>,
        shared: Arc<Shared>,
        activity: Arc<Activity>,
        generation: u64,
        on_stop: Box<dyn FnOnce() + Send>,
    ) -> Self {
        Self {
            customer_id,
            state: CustomerState::default(),
            load_error: None,
            writes: 0,
            shared,
            activity,
            generation,
            on_stop: Some(on_stop),
            timer: None,
        }
    }

    /// The activation's generation.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Marks a message as being handled now; returns the service time.
    fn touch(&self) -> Timestamp {
        let now = self.shared.clock.now();
        self.activity
            .last_active_ms
            .store(now.millis(), Ordering::Relaxed);
        now
    }

    /// Refuses every message when the state could not be loaded, and stops
    /// so that the next call activates the customer afresh.
    fn check_loaded(&self, context: &mut Context<Self>) -> Result<(), ServiceError> {
        match &self.load_error {
            None => Ok(()),
            Some(error) => {
                context.stop();
                Err(ServiceError::Storage(error.as_ref().clone()))
            }
        }
    }

    /// Refuses a change up front while a store refuses writes, so a refused
    /// call changes nothing.
    fn check_writable(&self) -> Result<(), ServiceError> {
        Ok(self.shared.stores.check_writable()?)
    }

    /// Queues the customer's state, with its change from `before` (the
    /// state before this message: every change is written, so that is the
    /// state written or loaded last), decision-log entries and budget
    /// changes, for a durable write: the commit resolves when all are.
    fn persist(
        &mut self,
        before: &CustomerState,
        log: Vec<LogEntry>,
        budget: Vec<BudgetChange>,
    ) -> Commit {
        let delta = StateDelta::between(before, &self.state);
        let change = StateChange {
            delta: &delta,
            writer: self.generation,
            previous_writes: self.writes,
        };
        self.writes += 1;
        let stores = &self.shared.stores;
        crate::store::together(|| {
            stores
                .state
                .write_change(&self.customer_id, &self.state, change)
                .and(stores.log.append(log))
                .and(stores.budgets.record(budget))
        })
    }
}

/// The budget ledger's changes for units taken (+1) or given back (-1).
fn budget_changes(action_ids: Vec<String>, delta: i64) -> Vec<BudgetChange> {
    action_ids
        .into_iter()
        .map(|action_id| BudgetChange { action_id, delta })
        .collect()
}

impl Actor for CustomerActor {
    type Context = Context<Self>;

    fn started(&mut self, context: &mut Self::Context) {
        context.set_mailbox_capacity(self.shared.config.actors.mailbox_capacity);
        // No message is handled before the state is loaded.
        let store = self.shared.stores.state.clone();
        let customer_id = self.customer_id.clone();
        let load = async move { store.load(&customer_id).await };
        context.wait(load.into_actor(self).map(|loaded, actor, _| match loaded {
            Ok(state) => {
                actor.state = state.unwrap_or_default();
                if actor.state.journeys.is_idle() {
                    // Nothing of a journey: the timers hold nothing for it.
                    actor.timer = Some(TimerEntry::None);
                } else {
                    // The timers may hold what the index restored at start:
                    // make it exact (and park paused journeys' runs).
                    let book = actor.shared.journeys.load();
                    actor.sync_timer(book.as_ref());
                }
            }
            Err(error) => {
                tracing::warn!(
                    customer = %crate::logging::customer(&actor.customer_id),
                    %error,
                    "customer state not loaded; its calls are refused"
                );
                actor.load_error = Some(Box::new(error));
            }
        }));
    }

    fn stopped(&mut self, _context: &mut Self::Context) {
        self.shared.record_passivation();
        if let Some(on_stop) = self.on_stop.take() {
            on_stop();
        }
    }
}

/// Apply events.
#[derive(Debug, Message)]
#[rtype(result = "Result<Durable<Vec<TrackResult>>, ServiceError>")]
pub struct Track {
    /// Validated events of this customer, in order (shared, so a retried
    /// send does not copy them).
    pub events: Arc<[Event]>,
    /// When the events must be applied by (none for a stream's).
    pub deadline: Option<Deadline>,
}

impl Handler<Track> for CustomerActor {
    type Result = Result<Durable<Vec<TrackResult>>, ServiceError>;

    fn handle(&mut self, message: Track, context: &mut Self::Context) -> Self::Result {
        let now = self.touch();
        let arrived = Instant::now();
        self.check_loaded(context)?;
        if let Some(deadline) = message.deadline
            && deadline.passed(arrived)
        {
            return Err(deadline.exceeded(BudgetedCall::Track, Stage::Queued));
        }
        self.check_writable()?;
        let catalog = self.shared.catalog.load_full();
        let serving = self.shared.models.serving();
        let before = self.state.clone();
        let mut ordinal = before.profile.events_applied();
        let mut log = Vec::new();
        let mut effects = journeys::JourneyEffects::default();
        let mut results = Vec::with_capacity(message.events.len());
        for event in message.events.iter() {
            let result = self.state.track(event, now);
            self.shared.record_event(&catalog, &event.name, result);
            if result == TrackResult::Applied {
                self.note_event_for_scores(&catalog, &serving.score_models, &event.name);
                self.note_event_for_send_times(&catalog, &event.name, event.timestamp);
                // The event log, for point-in-time replay.
                ordinal += 1;
                log.push(LogEntry::Event(EventRecord {
                    customer_id: self.customer_id.to_string(),
                    ordinal,
                    received_at: now,
                    event: event.clone(),
                }));
                // Only an event a run waits on, or one that triggers a
                // journey, can change the customer's journeys.
                let triggers = || {
                    catalog
                        .journeys
                        .iter()
                        .any(|journey| journey.trigger.event == event.name)
                };
                if self.state.journeys.active().next().is_some() || triggers() {
                    // Journey rules and sends decide on fresh scores.
                    self.refresh_scores(
                        &catalog,
                        &serving.score_models,
                        now,
                        RefreshPath::Decision,
                    );
                    self.run_journeys(now, &catalog, &mut effects, |journeys, book, host| {
                        journeys.on_event(
                            book.current(),
                            book,
                            &catalog.journey_policy,
                            event,
                            now,
                            host,
                        )
                    });
                }
            }
            results.push(result);
        }
        self.refresh_scores(
            &catalog,
            &serving.score_models,
            now,
            RefreshPath::Background,
        );
        self.sync_timer_after(&effects);
        log.extend(effects.log);
        // Duplicates are written too: their first delivery may still be
        // queued, and an acknowledgement promises durability.
        Ok(Durable {
            value: results,
            commit: self.persist(&before, log, effects.budget),
        })
    }
}

/// Apply an outcome of a served action.
#[derive(Debug, Message)]
#[rtype(result = "Result<Durable<OutcomeResult>, ServiceError>")]
pub struct ReportOutcome {
    /// The decision.
    pub decision_id: String,
    /// The served action.
    pub action_id: String,
    /// What happened.
    pub outcome: OutcomeKind,
    /// Optional reward (finite).
    pub reward: Option<f64>,
    /// When (the service's time if the client gave none).
    pub at: Option<Timestamp>,
    /// For a journey's dispatch: the attempt it is about, when named.
    pub dispatch_id: Option<String>,
    /// When the outcome must be applied by.
    pub deadline: Deadline,
}

impl Handler<ReportOutcome> for CustomerActor {
    type Result = Result<Durable<OutcomeResult>, ServiceError>;

    fn handle(&mut self, message: ReportOutcome, context: &mut Self::Context) -> Self::Result {
        let now = self.touch();
        let arrived = Instant::now();
        self.check_loaded(context)?;
        if message.deadline.passed(arrived) {
            return Err(message
                .deadline
                .exceeded(BudgetedCall::Outcome, Stage::Queued));
        }
        self.check_writable()?;
        let at = message.at.unwrap_or(now);
        let before = self.state.clone();
        let delivery = self.delivery_of(&message);
        if delivery == journeys::Delivery::Repeated {
            return Ok(Durable {
                value: OutcomeResult {
                    applied: false,
                    slot_released: false,
                },
                commit: Commit::none(),
            });
        }
        // A failure tried again on the same channel does not give the
        // contact up yet: the ledger and the decision log see the final one.
        let retried = delivery == journeys::Delivery::Retried;
        let result = if retried {
            OutcomeResult {
                applied: true,
                slot_released: false,
            }
        } else {
            self.state.report_outcome(
                &message.decision_id,
                &message.action_id,
                message.outcome,
                message.reward,
                at,
                &self.shared.budgets,
            )?
        };
        let mut effects = journeys::JourneyEffects::default();
        if delivery != journeys::Delivery::NotDispatched {
            self.close_dispatch(&message, now, &mut effects);
        }
        if result.applied && !retried {
            let catalog = self.shared.catalog.load_full();
            let serving = self.shared.models.serving();
            self.note_outcome_for_send_times(&catalog, &message.action_id, message.outcome, at);
            self.note_engagement_for_scores(&catalog, &serving.score_models);
            self.refresh_scores(
                &catalog,
                &serving.score_models,
                now,
                RefreshPath::Background,
            );
        }
        let mut log = effects.log;
        let mut budget = effects.budget;
        if result.slot_released
            && self
                .shared
                .catalog
                .load()
                .action(&message.action_id)
                .is_some_and(|action| action.budget.is_some())
        {
            budget.extend(budget_changes(vec![message.action_id.clone()], -1));
        }
        if result.applied && !retried {
            // Counted for the variant the customer is assigned to now: the
            // one that decided, unless the experiment changed since (the
            // decision log has each decision's own variant).
            let serving = self.shared.models.serving();
            let (variant, _) = serving.for_customer(&self.customer_id);
            self.shared.record_outcome(variant, message.outcome);
            let decision_at = self
                .state
                .ledger
                .contacts()
                .rev()
                .find(|contact| {
                    contact.decision_id == message.decision_id
                        && contact.action_id == message.action_id
                })
                .map_or(at, |contact| contact.at);
            if message.outcome == OutcomeKind::Conversion
                && let Some(trial) = serving.trial()
                && trial.converted(&self.customer_id, decision_at)
            {
                self.shared.check_guardrail(trial);
            }
            log.push(LogEntry::Outcome(OutcomeRecord {
                decision_id: message.decision_id,
                decision_at,
                customer_id: self.customer_id.to_string(),
                action_id: message.action_id,
                outcome: message.outcome,
                at,
                reward: message.reward,
            }));
        }
        Ok(Durable {
            value: result,
            commit: self.persist(&before, log, budget),
        })
    }
}

/// Record consent for one channel (`None` clears it); replies the previous state.
#[derive(Debug, Message)]
#[rtype(result = "Result<Durable<Option<ConsentState>>, ServiceError>")]
pub struct SetConsent {
    /// The channel.
    pub channel: String,
    /// The new state.
    pub state: Option<ConsentState>,
}

impl Handler<SetConsent> for CustomerActor {
    type Result = Result<Durable<Option<ConsentState>>, ServiceError>;

    fn handle(&mut self, message: SetConsent, context: &mut Self::Context) -> Self::Result {
        let now = self.touch();
        self.check_loaded(context)?;
        self.check_writable()?;
        let before = self.state.clone();
        let previous = self.state.set_consent(&message.channel, message.state, now);
        if message.state == Some(ConsentState::OptedOut) {
            let reason = format!("opted out of {}", message.channel);
            self.remove_from_channel(&message.channel, &reason, now);
        }
        Ok(Durable {
            value: previous,
            commit: self.persist(&before, Vec::new(), Vec::new()),
        })
    }
}

/// Add (`lift = false`) or lift a suppression; replies whether anything changed.
#[derive(Debug, Message)]
#[rtype(result = "Result<Durable<bool>, ServiceError>")]
pub struct ChangeSuppression {
    /// The channel, `None` for all channels.
    pub channel: Option<String>,
    /// The reason; `None` when lifting every reason.
    pub reason: Option<SuppressionReason>,
    /// Operator's note (when adding).
    pub note: String,
    /// Lift instead of add.
    pub lift: bool,
}

impl Handler<ChangeSuppression> for CustomerActor {
    type Result = Result<Durable<bool>, ServiceError>;

    fn handle(&mut self, message: ChangeSuppression, context: &mut Self::Context) -> Self::Result {
        let now = self.touch();
        self.check_loaded(context)?;
        self.check_writable()?;
        let channel = message.channel.as_deref();
        let before = self.state.clone();
        let changed = match (message.lift, message.reason) {
            (true, reason) => self.state.unsuppress(channel, reason),
            (false, Some(reason)) => self.state.suppress(channel, reason, &message.note, now),
            (false, None) => false,
        };
        if let (false, Some(reason)) = (message.lift, message.reason) {
            let why = |channel: &str| format!("suppressed on {channel} ({})", reason.name());
            match channel {
                Some(channel) => {
                    self.remove_from_channel(channel, &why(channel), now);
                }
                None => {
                    let catalog = self.shared.catalog.load();
                    for channel in catalog.channels.keys() {
                        self.remove_from_channel(channel, &why(channel), now);
                    }
                }
            }
        }
        Ok(Durable {
            value: changed,
            // Written even when unchanged: an earlier identical change may
            // still be queued.
            commit: self.persist(&before, Vec::new(), Vec::new()),
        })
    }
}

/// Erase the customer everywhere and stop; replies whether any state was live.
#[derive(Debug, Message)]
#[rtype(result = "Result<Durable<bool>, ServiceError>")]
pub struct Forget;

impl Handler<Forget> for CustomerActor {
    type Result = Result<Durable<bool>, ServiceError>;

    fn handle(&mut self, _message: Forget, context: &mut Self::Context) -> Self::Result {
        self.touch();
        self.check_loaded(context)?;
        self.check_writable()?;
        let had_state = !self.state.is_empty();
        self.state = CustomerState::default();
        self.timer = Some(TimerEntry::None);
        self.shared.timers.set(&self.customer_id, TimerEntry::None);
        let stores = &self.shared.stores;
        let commit = stores
            .state
            .forget(&self.customer_id)
            .and(stores.log.forget(&self.customer_id));
        // Later calls reach a new activation, which finds nothing stored.
        context.stop();
        Ok(Durable {
            value: had_state,
            commit,
        })
    }
}

/// A copy of the customer's state.
#[derive(Debug, Message)]
#[rtype(result = "Result<CustomerState, ServiceError>")]
pub struct Snapshot;

impl Handler<Snapshot> for CustomerActor {
    type Result = Result<CustomerState, ServiceError>;

    fn handle(&mut self, _message: Snapshot, context: &mut Self::Context) -> Self::Result {
        self.touch();
        self.check_loaded(context)?;
        Ok(self.state.clone())
    }
}

/// Stop (idle, evicted, or shutting down); the state is already stored.
/// Queued messages before it are handled first; later ones are refused and
/// retried on a new activation.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Passivate;

impl Handler<Passivate> for CustomerActor {
    type Result = ();

    fn handle(&mut self, _message: Passivate, context: &mut Self::Context) {
        context.stop();
    }
}
