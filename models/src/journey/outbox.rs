//! The outbox side of [`CustomerJourneys`]: putting a journey's sends into
//! the outbox, handing them out (or holding them for want of a delivery
//! service), acknowledgements, and the outcomes a delivery service reports
//! — delivered, or failed: the same channel once more, then a failover
//! through the pipeline. A run that ends from outside withdraws its sends
//! no delivery service took. The rules of one dispatch are in
//! [`super::dispatch`].

use super::StepKind;
use super::customer::{CustomerJourneys, Outcome, Report, Versions};
use super::dispatch::{ATTEMPTS_PER_CHANNEL, Acknowledged, Dispatch, DispatchPolicy};
use super::history::{Entry, Happened};
use super::host::{PipelineHost, Sent};
use super::run::{Host as _, SendAttempt, SendRequest};
use crate::time::Timestamp;

impl CustomerJourneys {
    /// The earliest moment a dispatch is due (to be handed out, or to
    /// expire).
    pub(super) fn outbox_due(&self) -> Option<Timestamp> {
        self.outbox.iter().map(|dispatch| dispatch.due).min()
    }

    /// Puts what `sent` sent into the outbox, due at once, unless it is
    /// there already (a failover's send is put there by
    /// [`CustomerJourneys::failed`], with the channels that failed).
    pub fn dispatch(&mut self, sent: &Sent, now: Timestamp) {
        if self
            .outbox
            .iter()
            .any(|dispatch| dispatch.decision_id == sent.decision_id)
        {
            return;
        }
        self.dispatch_attempt(sent, now, 1, Vec::new());
    }

    fn dispatch_attempt(
        &mut self,
        sent: &Sent,
        now: Timestamp,
        attempt: u32,
        failed_channels: Vec<String>,
    ) {
        let Some(served) = sent.decision.served.first() else {
            return;
        };
        self.outbox.push(Dispatch {
            id: Dispatch::attempt_id(&sent.decision_id, attempt),
            decision_id: sent.decision_id.clone(),
            journey: sent.journey.clone(),
            version: sent.version,
            step: sent.step.clone(),
            action: served.action_id.clone(),
            channel: served.channel.clone(),
            payload: served.payload.clone(),
            attempt,
            created_at: now,
            due: now,
            handed_out: 0,
            held: 0,
            acknowledged: false,
            failed_channels,
        });
    }

    /// The dispatches to hand to delivery services at `now`: those not
    /// acknowledged whose moment came, each due again after its backoff
    /// ([`Dispatch::hand_out`]), and those held earlier whose channel a
    /// delivery service now takes. One whose channel no delivery service
    /// takes (`takes(channel)` false) is held instead ([`Dispatch::hold`]).
    /// Those expired leave the outbox, noted in their runs' history (the
    /// returned outcome). A paused journey's dispatches stay as they are
    /// until it is resumed.
    pub fn deliverable(
        &mut self,
        now: Timestamp,
        policy: &DispatchPolicy,
        versions: &dyn Versions,
        takes: impl Fn(&str) -> bool,
    ) -> (Vec<Dispatch>, Outcome) {
        let mut out = Vec::new();
        let mut outcome = Outcome::default();
        let (expired, kept): (Vec<Dispatch>, Vec<Dispatch>) = std::mem::take(&mut self.outbox)
            .into_iter()
            .partition(|dispatch| {
                dispatch.is_due(now)
                    && dispatch.is_expired(now, policy)
                    && !versions.paused(&dispatch.journey)
            });
        self.outbox = kept;
        for dispatch in self
            .outbox
            .iter_mut()
            .filter(|dispatch| !dispatch.acknowledged && !versions.paused(&dispatch.journey))
        {
            let taken = takes(&dispatch.channel);
            let due = dispatch.is_due(now) || (dispatch.held > 0 && taken);
            if !due {
                continue;
            }
            if taken {
                dispatch.hand_out(now, policy);
                out.push(dispatch.clone());
            } else {
                dispatch.hold(now, policy);
            }
        }
        for dispatch in expired {
            self.note(
                &dispatch,
                now,
                Happened::Undelivered {
                    step: dispatch.step.clone(),
                    channel: dispatch.channel.clone(),
                    acknowledged: dispatch.acknowledged,
                },
                &mut outcome,
            );
        }
        (out, outcome)
    }

    /// The channels of the dispatches held for want of a delivery service.
    pub fn held_channels(&self) -> impl Iterator<Item = &str> {
        self.outbox
            .iter()
            .filter(|dispatch| dispatch.held > 0)
            .map(|dispatch| dispatch.channel.as_str())
    }

    /// A delivery service took dispatch `id`: it is not handed out again,
    /// and waits for its outcome until it expires.
    pub fn acknowledge(&mut self, id: &str, policy: &DispatchPolicy) -> Acknowledged {
        match self.outbox.iter_mut().find(|dispatch| dispatch.id == id) {
            None => Acknowledged::Unknown,
            Some(dispatch) if dispatch.acknowledged => Acknowledged::Already,
            Some(dispatch) => {
                dispatch.acknowledged = true;
                // Taken, by hand even while held: no longer waiting for a
                // delivery service.
                dispatch.held = 0;
                dispatch.due = dispatch.created_at.plus(policy.expire_after);
                Acknowledged::Taken
            }
        }
    }

    /// The dispatch in the outbox an outcome is about: decision
    /// `decision_id`'s, and when the delivery service names the attempt
    /// (`dispatch_id`), only that attempt (a repeated report of an attempt
    /// already retried finds nothing).
    pub fn dispatch_of(&self, decision_id: &str, dispatch_id: Option<&str>) -> Option<&Dispatch> {
        self.outbox
            .iter()
            .find(|dispatch| Self::is_about(dispatch, decision_id, dispatch_id))
    }

    fn is_about(dispatch: &Dispatch, decision_id: &str, dispatch_id: Option<&str>) -> bool {
        dispatch.decision_id == decision_id && dispatch_id.is_none_or(|id| dispatch.id == id)
    }

    /// Whether a failure of that dispatch is tried again on the same
    /// channel (so the contact is not given up yet).
    pub fn retries_on_failure(&self, decision_id: &str, dispatch_id: Option<&str>) -> bool {
        self.dispatch_of(decision_id, dispatch_id)
            .is_some_and(|dispatch| dispatch.attempt < ATTEMPTS_PER_CHANNEL)
    }

    /// Takes that dispatch out of the outbox.
    fn take_dispatch(&mut self, decision_id: &str, dispatch_id: Option<&str>) -> Option<Dispatch> {
        let position = self
            .outbox
            .iter()
            .position(|dispatch| Self::is_about(dispatch, decision_id, dispatch_id))?;
        Some(self.outbox.remove(position))
    }

    /// A delivery service delivered decision `decision_id`'s send (attempt
    /// `dispatch_id`, when named): it leaves the outbox, and its run's
    /// history says so.
    pub fn delivered(
        &mut self,
        decision_id: &str,
        dispatch_id: Option<&str>,
        now: Timestamp,
    ) -> Outcome {
        let mut outcome = Outcome::default();
        let Some(dispatch) = self.take_dispatch(decision_id, dispatch_id) else {
            return outcome;
        };
        self.note(
            &dispatch,
            now,
            Happened::Delivered {
                step: dispatch.step.clone(),
                channel: dispatch.channel.clone(),
            },
            &mut outcome,
        );
        outcome
    }

    /// A delivery service failed decision `decision_id`'s send (attempt
    /// `dispatch_id`, when named): tried again on the same channel once,
    /// then the send step decides again without the channels that failed
    /// (the host's pipeline picks the next channel that consent and caps
    /// allow), its send dispatched in turn and left in the host's `sent`
    /// for the caller to log. Every step is in the run's history.
    pub fn failed(
        &mut self,
        decision_id: &str,
        dispatch_id: Option<&str>,
        versions: &dyn Versions,
        now: Timestamp,
        host: &mut PipelineHost<'_>,
    ) -> Outcome {
        let mut outcome = Outcome::default();
        let Some(dispatch) = self.take_dispatch(decision_id, dispatch_id) else {
            return outcome;
        };
        self.note(
            &dispatch,
            now,
            Happened::DeliveryFailed {
                step: dispatch.step.clone(),
                channel: dispatch.channel.clone(),
                attempt: dispatch.attempt,
            },
            &mut outcome,
        );
        if dispatch.attempt < ATTEMPTS_PER_CHANNEL {
            let attempt = dispatch.attempt + 1;
            self.outbox.push(Dispatch {
                id: Dispatch::attempt_id(&dispatch.decision_id, attempt),
                attempt,
                created_at: now,
                due: now,
                handed_out: 0,
                held: 0,
                acknowledged: false,
                ..dispatch
            });
            return outcome;
        }
        let mut failed_channels = dispatch.failed_channels.clone();
        failed_channels.push(dispatch.channel.clone());
        let step = versions
            .version(&dispatch.journey, dispatch.version)
            .and_then(|journey| {
                journey
                    .steps
                    .iter()
                    .find(|step| step.id == dispatch.step)
                    .map(|step| (journey, step))
            });
        let attempt = match step {
            Some((journey, step)) => match &step.kind {
                StepKind::Send { target, .. } => host.send(&SendRequest {
                    journey,
                    step,
                    target,
                    exclude_channels: &failed_channels,
                }),
                _ => return outcome,
            },
            None => SendAttempt::Blocked {
                reason: format!(
                    "version {} of journey '{}' is no longer known",
                    dispatch.version, dispatch.journey
                ),
                cause: "unknown_version".to_owned(),
            },
        };
        match attempt {
            SendAttempt::Sent {
                decision_id,
                action,
                channel,
            } => {
                self.note(
                    &dispatch,
                    now,
                    Happened::FailedOver {
                        step: dispatch.step.clone(),
                        from_channel: dispatch.channel.clone(),
                        decision_id,
                        action,
                        channel,
                    },
                    &mut outcome,
                );
                // The host's latest send is the failover's.
                if let Some(new) = host.sent.last() {
                    self.dispatch_attempt(new, now, 1, failed_channels);
                }
            }
            SendAttempt::Deferred { reason, cause, .. }
            | SendAttempt::Blocked { reason, cause } => {
                self.note(
                    &dispatch,
                    now,
                    Happened::Blocked {
                        step: dispatch.step.clone(),
                        reason: format!("failover: {reason}"),
                        cause,
                    },
                    &mut outcome,
                );
            }
        }
        outcome
    }

    /// Withdraws the sends not yet acknowledged of the runs `outcome` says
    /// ended from outside ([`Ending::withdraws_sends`]), noting each in
    /// its run's history and in `outcome`.
    pub(super) fn withdraw_ended(&mut self, now: Timestamp, outcome: &mut Outcome) {
        if self.outbox.is_empty() {
            return;
        }
        let ended: Vec<(String, u32)> = outcome
            .reports
            .iter()
            .filter(|report| {
                matches!(&report.entry.what, Happened::Ended { ending, .. } if ending.withdraws_sends())
            })
            .map(|report| (report.journey.clone(), report.version))
            .collect();
        if ended.is_empty() {
            return;
        }
        let (withdrawn, kept): (Vec<Dispatch>, Vec<Dispatch>) = std::mem::take(&mut self.outbox)
            .into_iter()
            .partition(|dispatch| {
                !dispatch.acknowledged
                    && ended.iter().any(|(journey, version)| {
                        *journey == dispatch.journey && *version == dispatch.version
                    })
            });
        self.outbox = kept;
        for dispatch in withdrawn {
            self.note(
                &dispatch,
                now,
                Happened::Withdrawn {
                    step: dispatch.step.clone(),
                    channel: dispatch.channel.clone(),
                },
                outcome,
            );
        }
    }

    /// Adds `what` to the history of the run that made `dispatch` (its
    /// latest run of that journey), and to `outcome`.
    fn note(&mut self, dispatch: &Dispatch, at: Timestamp, what: Happened, outcome: &mut Outcome) {
        if let Some(run) = self
            .runs
            .iter_mut()
            .rev()
            .find(|run| run.journey == dispatch.journey && run.version == dispatch.version)
        {
            let entry = Entry { at, what };
            run.note(entry.clone());
            outcome.reports.push(Report {
                journey: run.journey.clone(),
                version: run.version,
                entry,
            });
        }
    }
}
