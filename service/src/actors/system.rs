//! The actix `System` on a dedicated thread, with its arbiters.
//!
//! Actors must be started on an arbiter (`start_in_arbiter`): tonic handlers run
//! on tokio's threads, outside actix's `LocalSet`, where `Actor::start` panics.

use actix::prelude::*;
use std::thread::JoinHandle;

/// A running actix system and the handles of its arbiters.
#[derive(Debug)]
pub struct ActorSystem {
    system: actix::System,
    arbiters: Vec<ArbiterHandle>,
    thread: Option<JoinHandle<()>>,
}

impl ActorSystem {
    /// Starts the system thread and `arbiters` arbiter threads.
    pub fn start(arbiters: usize) -> std::io::Result<Self> {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("nudge-actors".to_owned())
            .spawn(move || {
                let system = actix::System::new();
                let owned: Vec<Arbiter> = system
                    .block_on(async { (0..arbiters.max(1)).map(|_| Arbiter::new()).collect() });
                let handles = owned.iter().map(Arbiter::handle).collect::<Vec<_>>();
                // The receiver only disappears if start() already failed.
                let _ = ready_tx.send((actix::System::current(), handles));
                let _ = system.run();
                for arbiter in owned {
                    arbiter.stop();
                    let _ = arbiter.join();
                }
            })?;
        let (system, handles) = ready_rx
            .recv()
            .map_err(|_| std::io::Error::other("the actor system thread exited during start-up"))?;
        Ok(Self {
            system,
            arbiters: handles,
            thread: Some(thread),
        })
    }

    /// The arbiter for a shard.
    pub fn arbiter(&self, shard: usize) -> &ArbiterHandle {
        &self.arbiters[shard % self.arbiters.len()]
    }

    /// Number of arbiters.
    pub fn arbiter_count(&self) -> usize {
        self.arbiters.len()
    }
}

impl Drop for ActorSystem {
    fn drop(&mut self) {
        self.system.stop();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
