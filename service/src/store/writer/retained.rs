//! The writes a failure leaves to retry ([`Retained`]) and how the writer
//! answers while the store refuses writes.

use super::super::database::Inner;
use super::super::{BudgetChange, StoreError, TimerWrite};
use super::Op;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// What a failed commit leaves to retry: each customer's latest state and
/// the budget deltas, committed as soon as the store works again.
#[derive(Debug, Default)]
pub(super) struct Retained {
    pub(super) states: HashMap<Arc<str>, RetainedState>,
    pub(super) budgets: HashMap<String, i64>,
}

impl Retained {
    pub(super) fn is_empty(&self) -> bool {
        self.states.is_empty() && self.budgets.is_empty()
    }

    pub(super) fn keep_budgets(&mut self, changes: &[BudgetChange]) {
        for change in changes {
            *self.budgets.entry(change.action_id.clone()).or_insert(0) += change.delta;
        }
    }
}

/// A customer's state write that failed and waits to be retried.
#[derive(Debug)]
pub(super) struct RetainedState {
    pub(super) sequence: u64,
    pub(super) state: Option<Arc<[u8]>>,
    pub(super) timer: TimerWrite,
}

/// Answers `op` with the current failure, keeping a state write and budget
/// changes for the retry.
pub(super) fn refuse(inner: &Inner, op: Op, retained: &mut Retained) {
    let failure = inner
        .current_failure()
        .unwrap_or_else(|| StoreError::Reopening {
            location: inner.source.location(),
        });
    refuse_with(inner, op, retained, &failure);
}

/// Answers `op` with `error`, keeping a state write and budget changes for
/// the retry after recovery.
pub(super) fn refuse_with(inner: &Inner, op: Op, retained: &mut Retained, error: &StoreError) {
    let done = match op {
        Op::State {
            sequence,
            customer_id,
            state,
            timer,
            done,
            ..
        } => {
            retained.states.insert(
                customer_id,
                RetainedState {
                    sequence,
                    state,
                    timer,
                },
            );
            done
        }
        Op::Budget { changes, done } => {
            retained.keep_budgets(&changes);
            done
        }
        Op::Log { done, .. } | Op::ForgetLog { done, .. } | Op::Compact { done, .. } => done,
        Op::Flush(done) => {
            let _ = done.send(Err(error.clone()));
            return;
        }
        Op::Probe => {
            inner.probe_queued.store(false, Ordering::Release);
            return;
        }
    };
    let _ = done.send(Err(error.clone()));
}
