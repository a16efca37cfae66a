//! Reading the write-ahead log back: the number of the last frame a
//! checkpoint applied, and the writer's ops rebuilt from the frames after
//! it, each state whole.

use super::super::database::{Inner, META, WAL_APPLIED};
use super::super::records::{decode, encode};
use super::super::wal::{self, Entry, LoggedState};
use super::super::{StoreError, TimerWrite};
use super::{EncodedChange, Op, detached};
use nudge_models::customer::CustomerState;
use nudge_models::delta::StateDelta;
use redb::ReadableDatabase;
use std::collections::HashMap;
use std::sync::Arc;

/// The number of the last frame a checkpoint applied (0: none).
pub(super) fn last_applied(inner: &Inner) -> Result<u64, StoreError> {
    let database = inner.database()?;
    let read = database.begin_read().map_err(|error| inner.error(error))?;
    let meta = read.open_table(META).map_err(|error| inner.error(error))?;
    Ok(meta
        .get(WAL_APPLIED)
        .map_err(|error| inner.error(error))?
        .map_or(0, |value| value.value()))
}

/// The writer's ops for `frames`, in order, each state whole: a change is
/// applied to the customer's state before it (the previous frame's, else
/// the database's).
pub(super) fn rebuild(inner: &Inner, frames: &[(u64, Vec<u8>)]) -> Result<Vec<Op>, StoreError> {
    let mut latest: HashMap<Arc<str>, Arc<[u8]>> = HashMap::new();
    let mut ops = Vec::new();
    for (_, payload) in frames {
        for entry in wal::decode(payload)? {
            let op = match entry {
                Entry::State {
                    sequence,
                    customer_id,
                    state: LoggedState::Whole(whole),
                } => {
                    latest.insert(customer_id.clone(), whole.clone());
                    let state: CustomerState = decode("customer state", &whole)?;
                    Op::State {
                        sequence,
                        customer_id,
                        state: Some(whole),
                        change: None,
                        timer: TimerWrite::of(&state),
                        done: detached(),
                    }
                }
                Entry::State {
                    sequence,
                    customer_id,
                    state:
                        LoggedState::Change {
                            delta,
                            writer,
                            previous_writes,
                        },
                } => {
                    let mut state: CustomerState = match latest.get(&customer_id) {
                        Some(before) => decode("customer state", before)?,
                        None => inner.committed_state(&customer_id)?.unwrap_or_default(),
                    };
                    let change: StateDelta = decode("state change", &delta)?;
                    change
                        .apply(&mut state)
                        .map_err(|mismatch| StoreError::Undecodable {
                            what: "write-ahead log",
                            source: Arc::new(mismatch),
                        })?;
                    let whole: Arc<[u8]> = Arc::from(encode(&state)?);
                    latest.insert(customer_id.clone(), whole.clone());
                    Op::State {
                        sequence,
                        customer_id,
                        state: Some(whole),
                        change: Some(EncodedChange {
                            delta,
                            writer,
                            previous_writes,
                        }),
                        timer: TimerWrite::of(&state),
                        done: detached(),
                    }
                }
                Entry::Log(entry) => Op::Log {
                    entries: vec![entry],
                    done: detached(),
                },
                Entry::Budget(change) => Op::Budget {
                    changes: vec![change],
                    done: detached(),
                },
            };
            ops.push(op);
        }
    }
    Ok(ops)
}
