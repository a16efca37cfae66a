//! Progress of a long run, reported to a [`Progress`] the caller chooses:
//! the command line prints each event on stderr; tests and library users may
//! collect or ignore them. Library code never prints.

use std::fmt;
use std::time::Duration;

/// One step of a run.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Rows read so far (every 100,000 rows, and once at the end).
    RowsRead {
        /// Rows read.
        rows: u64,
    },
    /// Customers replayed to their cut-offs so far, for a profile score's
    /// rows (every 10,000 customers, and once at the end).
    Replayed {
        /// Customers replayed.
        customers: usize,
        /// Customers in the event log.
        of: usize,
        /// Labelled rows made so far.
        rows: usize,
    },
    /// The rows were split in time order.
    Split {
        /// Training rows.
        train: usize,
        /// Validation rows.
        validation: usize,
        /// Holdout rows.
        holdout: usize,
        /// Features per row.
        features: usize,
    },
    /// One L2 strength of the grid was fitted on the training rows and
    /// measured on the validation rows.
    GridPoint {
        /// Its position in the grid, from 1.
        position: usize,
        /// How many strengths the grid has.
        of: usize,
        /// The L2 strength per row.
        alpha: f64,
        /// Training rows fitted.
        rows: usize,
        /// The alpha whose solution the fit started from, if any.
        start_alpha: Option<f64>,
        /// Validation AUC.
        auc: f64,
        /// Validation log loss.
        log_loss: f64,
        /// Time to fit.
        elapsed: Duration,
    },
    /// The final model was fitted on training and validation rows.
    Fitted {
        /// The chosen L2 strength.
        alpha: f64,
        /// Rows fitted (after oversampling, with `--balance`).
        rows: usize,
        /// Whether it started from the chosen grid point's solution.
        warm_started: bool,
        /// Time to fit.
        elapsed: Duration,
    },
    /// The holdout was scored through the artifact.
    Evaluated {
        /// Holdout AUC.
        auc: f64,
        /// Holdout log loss.
        log_loss: f64,
    },
}

impl fmt::Display for Event {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::RowsRead { rows } => write!(formatter, "read {rows} rows"),
            Event::Replayed {
                customers,
                of,
                rows,
            } => write!(
                formatter,
                "replayed {customers} of {of} customers to their cut-offs: {rows} rows"
            ),
            Event::Split {
                train,
                validation,
                holdout,
                features,
            } => write!(
                formatter,
                "split in time order: {train} training, {validation} validation, {holdout} holdout rows; {features} features"
            ),
            Event::GridPoint {
                position,
                of,
                alpha,
                rows,
                start_alpha,
                auc,
                log_loss,
                elapsed,
            } => {
                let start =
                    start_alpha.map_or(String::new(), |from| format!(", from alpha {from}"));
                write!(
                    formatter,
                    "fit {position}/{of}: alpha {alpha} on {rows} rows{start}: validation auc {auc:.4}, log loss {log_loss:.4} ({:.2} s)",
                    elapsed.as_secs_f64()
                )
            }
            Event::Fitted {
                alpha,
                rows,
                warm_started,
                elapsed,
            } => write!(
                formatter,
                "final fit: alpha {alpha} on {rows} rows{} ({:.2} s)",
                if *warm_started {
                    ", from its grid solution"
                } else {
                    ""
                },
                elapsed.as_secs_f64()
            ),
            Event::Evaluated { auc, log_loss } => {
                write!(formatter, "holdout: auc {auc:.4}, log loss {log_loss:.4}")
            }
        }
    }
}

/// Receives progress events.
pub trait Progress {
    /// Called once per event, in order.
    fn report(&mut self, event: &Event);
}

impl<F: FnMut(&Event)> Progress for F {
    fn report(&mut self, event: &Event) {
        self(event);
    }
}

/// Ignores every event.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Progress for Silent {
    fn report(&mut self, _event: &Event) {}
}
