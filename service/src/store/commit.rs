//! [`Commit`]: the acknowledgement of a queued write, resolved once it is
//! durable, and [`Erased`], what a committed erasure removed.

use super::StoreError;
use tokio::sync::oneshot;

/// What committed writes erased (all zero for plain writes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Erased {
    /// Whether customer state was stored.
    pub state: bool,
    /// Decision log entries deleted.
    pub decisions: u64,
    /// Outcome log entries deleted.
    pub outcomes: u64,
    /// Event log entries deleted.
    pub events: u64,
}

impl Erased {
    /// Both erasures together.
    pub(crate) fn merge(self, other: Erased) -> Erased {
        Erased {
            state: self.state || other.state,
            decisions: self.decisions + other.decisions,
            outcomes: self.outcomes + other.outcomes,
            events: self.events + other.events,
        }
    }
}

/// The acknowledgement of one or more queued writes: resolves once all are
/// durable.
#[derive(Debug)]
pub struct Commit(Vec<Part>);

#[derive(Debug)]
enum Part {
    Done(Result<Erased, StoreError>),
    Pending(oneshot::Receiver<Result<Erased, StoreError>>),
}

impl Commit {
    /// An already committed (or failed) write.
    pub fn done(result: Result<Erased, StoreError>) -> Self {
        Self(vec![Part::Done(result)])
    }

    /// Nothing to wait for.
    pub fn none() -> Self {
        Self(Vec::new())
    }

    /// A write resolved by a writer through `receiver`.
    pub fn pending(receiver: oneshot::Receiver<Result<Erased, StoreError>>) -> Self {
        Self(vec![Part::Pending(receiver)])
    }

    /// Both this write and `other`: resolves when both are durable.
    #[must_use]
    pub fn and(mut self, mut other: Commit) -> Commit {
        self.0.append(&mut other.0);
        self
    }

    /// Waits until every write is durable; what they erased together. The
    /// first failure is returned, after every part has resolved.
    pub async fn wait(self) -> Result<Erased, StoreError> {
        let mut erased = Erased::default();
        let mut failure = None;
        for part in self.0 {
            let result = match part {
                Part::Done(result) => result,
                Part::Pending(receiver) => receiver.await.unwrap_or(Err(StoreError::Closed)),
            };
            match result {
                Ok(part) => erased = erased.merge(part),
                Err(error) => {
                    failure.get_or_insert(error);
                }
            }
        }
        match failure {
            Some(error) => Err(error),
            None => Ok(erased),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(future)
    }

    #[test]
    fn a_joined_commit_sums_what_its_parts_erased() {
        let (sender, receiver) = oneshot::channel();
        let commit = Commit::done(Ok(Erased {
            state: true,
            ..Erased::default()
        }))
        .and(Commit::pending(receiver))
        .and(Commit::none());
        sender
            .send(Ok(Erased {
                decisions: 2,
                outcomes: 3,
                ..Erased::default()
            }))
            .unwrap();
        assert_eq!(
            block_on(commit.wait()).unwrap(),
            Erased {
                state: true,
                decisions: 2,
                outcomes: 3,
                events: 0
            }
        );
    }

    #[test]
    fn a_joined_commit_fails_if_any_part_fails_and_a_dropped_writer_is_closed() {
        let (sender, receiver) = oneshot::channel::<Result<Erased, StoreError>>();
        drop(sender);
        let commit = Commit::done(Ok(Erased::default())).and(Commit::pending(receiver));
        assert!(matches!(block_on(commit.wait()), Err(StoreError::Closed)));
        let full = Commit::done(Err(StoreError::Full {
            location: "disk".into(),
            source: std::sync::Arc::new(std::io::Error::from_raw_os_error(28)),
        }))
        .and(Commit::done(Ok(Erased::default())));
        assert!(matches!(
            block_on(full.wait()),
            Err(StoreError::Full { .. })
        ));
        assert_eq!(block_on(Commit::none().wait()).unwrap(), Erased::default());
    }
}
