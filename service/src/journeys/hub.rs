//! Where delivery services' subscriptions (`Dispatches.Subscribe`) meet the
//! dispatches customers' actors hand out.
//!
//! A subscription names its channels (or takes every channel) and gets a
//! bounded buffer of dispatches, streamed to its worker. The engine offers
//! each dispatch a customer's actor handed out, once the change behind it
//! is durable, to one subscriber of its channel, turn by turn; one whose
//! buffer is full is skipped. A dispatch no subscriber took is not lost: it
//! is still in the customer's outbox and is handed out again after the
//! acknowledgement timeout.
//!
//! When a dispatch is due and no subscriber takes its channel, the actor
//! *holds* it ([`nudge_models::journey::Dispatch::hold`]) and the hub
//! remembers the customer as waiting for that channel; the first
//! subscription that takes the channel hands those customers back to be
//! woken at once. That memory is not kept across a restart: there, a held
//! dispatch waits for its backoff.
//!
//! [`DispatchHub::close`] (shutdown) ends every subscription: its stream
//! ends with UNAVAILABLE, so its worker subscribes again elsewhere.

use nudge_models::journey::Dispatch;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Poll;
use tokio::sync::mpsc;

/// One dispatch handed to a subscriber.
#[derive(Debug, Clone)]
pub struct Handed {
    /// Whose it is.
    pub customer_id: Arc<str>,
    /// The dispatch, as handed out.
    pub dispatch: Dispatch,
}

/// What offering a dispatch came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offered {
    /// A subscriber's buffer took it.
    Taken,
    /// No subscriber takes its channel, or every one's buffer is full: it
    /// is handed out again after the acknowledgement timeout.
    NotTaken,
}

/// The hub was closed (the service is shutting down).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("nudge is shutting down")]
pub struct HubClosed;

#[derive(Debug)]
struct Subscriber {
    id: u64,
    /// `None`: every channel.
    channels: Option<HashSet<String>>,
    sender: mpsc::Sender<Handed>,
}

impl Subscriber {
    fn takes(&self, channel: &str) -> bool {
        !self.sender.is_closed()
            && self
                .channels
                .as_ref()
                .is_none_or(|channels| channels.contains(channel))
    }
}

#[derive(Debug, Default)]
struct Hub {
    subscribers: Vec<Subscriber>,
    /// Where the next offer starts, so subscribers of a channel take turns.
    turn: usize,
    /// Customers holding dispatches for want of a subscriber, with the
    /// channels they wait for.
    waiting: HashMap<Arc<str>, HashSet<String>>,
    next_id: u64,
    closed: bool,
}

/// The subscriptions of delivery services. Cheap to clone; every clone is
/// the same hub.
#[derive(Debug, Clone)]
pub struct DispatchHub {
    hub: Arc<Mutex<Hub>>,
    /// Dispatches buffered per subscriber.
    buffer: usize,
}

impl DispatchHub {
    /// A hub whose subscribers each buffer up to `buffer` dispatches.
    pub fn new(buffer: usize) -> Self {
        Self {
            hub: Arc::new(Mutex::new(Hub::default())),
            buffer: buffer.max(1),
        }
    }

    fn hub(&self) -> MutexGuard<'_, Hub> {
        self.hub.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Subscribes for `channels` (`None`: every channel). Returns the
    /// subscription and the customers that held dispatches for those
    /// channels, to be woken now.
    pub fn subscribe(
        &self,
        channels: Option<HashSet<String>>,
    ) -> Result<(Subscription, Vec<Arc<str>>), HubClosed> {
        let mut hub = self.hub();
        if hub.closed {
            return Err(HubClosed);
        }
        let (sender, receiver) = mpsc::channel(self.buffer);
        hub.next_id += 1;
        let id = hub.next_id;
        let subscriber = Subscriber {
            id,
            channels,
            sender,
        };
        let mut woken = Vec::new();
        hub.waiting.retain(|customer_id, channels| {
            if channels.iter().any(|channel| subscriber.takes(channel)) {
                woken.push(customer_id.clone());
                false
            } else {
                true
            }
        });
        hub.subscribers.push(subscriber);
        let subscription = Subscription {
            id,
            hub: self.hub.clone(),
            receiver,
        };
        Ok((subscription, woken))
    }

    /// Whether a subscriber takes `channel` now.
    pub fn takes(&self, channel: &str) -> bool {
        self.hub()
            .subscribers
            .iter()
            .any(|subscriber| subscriber.takes(channel))
    }

    /// Remembers that `customer_id` holds a dispatch for `channel`, to be
    /// woken when a subscriber takes it. Returns true when one already does
    /// (it subscribed since the actor looked): wake the customer now.
    pub fn wait_for(&self, channel: &str, customer_id: &Arc<str>) -> bool {
        let mut hub = self.hub();
        if hub
            .subscribers
            .iter()
            .any(|subscriber| subscriber.takes(channel))
        {
            return true;
        }
        if !hub.closed {
            hub.waiting
                .entry(customer_id.clone())
                .or_default()
                .insert(channel.to_owned());
        }
        false
    }

    /// Offers one handed-out dispatch to a subscriber of its channel.
    pub fn offer(&self, handed: Handed) -> Offered {
        let mut hub = self.hub();
        let count = hub.subscribers.len();
        let mut handed = handed;
        for step in 0..count {
            let index = (hub.turn + step) % count;
            let subscriber = &hub.subscribers[index];
            if !subscriber.takes(&handed.dispatch.channel) {
                continue;
            }
            match subscriber.sender.try_send(handed) {
                Ok(()) => {
                    hub.turn = (index + 1) % count;
                    return Offered::Taken;
                }
                Err(
                    mpsc::error::TrySendError::Full(back) | mpsc::error::TrySendError::Closed(back),
                ) => handed = back,
            }
        }
        Offered::NotTaken
    }

    /// Live subscriptions.
    pub fn subscribers(&self) -> usize {
        self.hub().subscribers.len()
    }

    /// Customers remembered as holding dispatches for want of a subscriber.
    pub fn waiting(&self) -> usize {
        self.hub().waiting.len()
    }

    /// Ends every subscription and refuses new ones (shutdown).
    pub fn close(&self) {
        let mut hub = self.hub();
        hub.closed = true;
        hub.subscribers.clear();
        hub.waiting.clear();
    }
}

/// One delivery service's subscription; it leaves the hub when dropped.
#[derive(Debug)]
pub struct Subscription {
    id: u64,
    hub: Arc<Mutex<Hub>>,
    receiver: mpsc::Receiver<Handed>,
}

impl Subscription {
    /// The next dispatch; `None` once the hub closed.
    pub async fn next(&mut self) -> Option<Handed> {
        self.receiver.recv().await
    }

    /// Polls for the next dispatch; `None` once the hub closed.
    pub fn poll_next(&mut self, context: &mut std::task::Context<'_>) -> Poll<Option<Handed>> {
        self.receiver.poll_recv(context)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut hub = self.hub.lock().unwrap_or_else(PoisonError::into_inner);
        hub.subscribers
            .retain(|subscriber| subscriber.id != self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nudge_models::time::Timestamp;

    fn handed(customer: &str, channel: &str) -> Handed {
        Handed {
            customer_id: Arc::from(customer),
            dispatch: Dispatch {
                id: format!("d-{customer}"),
                decision_id: format!("d-{customer}"),
                journey: "j".to_owned(),
                version: 1,
                step: "s".to_owned(),
                action: "a".to_owned(),
                channel: channel.to_owned(),
                payload: std::collections::BTreeMap::new(),
                attempt: 1,
                created_at: Timestamp(0),
                due: Timestamp(0),
                handed_out: 1,
                held: 0,
                acknowledged: false,
                failed_channels: Vec::new(),
            },
        }
    }

    fn only(channels: &[&str]) -> Option<HashSet<String>> {
        Some(channels.iter().map(|&channel| channel.to_owned()).collect())
    }

    #[tokio::test]
    async fn a_dispatch_goes_to_a_subscriber_of_its_channel_only() {
        let hub = DispatchHub::new(8);
        let (mut email, _) = hub.subscribe(only(&["email"])).expect("open");
        assert!(hub.takes("email"));
        assert!(!hub.takes("push"));
        assert_eq!(hub.offer(handed("a", "push")), Offered::NotTaken);
        assert_eq!(hub.offer(handed("b", "email")), Offered::Taken);
        let got = email.next().await.expect("a dispatch");
        assert_eq!(&*got.customer_id, "b");
        let (mut all, _) = hub.subscribe(None).expect("open");
        assert_eq!(hub.offer(handed("c", "push")), Offered::Taken);
        assert_eq!(&*all.next().await.expect("a dispatch").customer_id, "c");
    }

    #[tokio::test]
    async fn subscribers_of_a_channel_take_turns_and_a_full_buffer_is_skipped() {
        let hub = DispatchHub::new(1);
        let (mut first, _) = hub.subscribe(None).expect("open");
        let (mut second, _) = hub.subscribe(None).expect("open");
        assert_eq!(hub.offer(handed("a", "email")), Offered::Taken);
        assert_eq!(hub.offer(handed("b", "email")), Offered::Taken);
        // Both buffers are full now.
        assert_eq!(hub.offer(handed("c", "email")), Offered::NotTaken);
        let mut got = [
            first.next().await.expect("one").customer_id,
            second.next().await.expect("one").customer_id,
        ];
        got.sort();
        assert_eq!(got, [Arc::from("a"), Arc::from("b")]);
    }

    #[tokio::test]
    async fn customers_waiting_for_a_channel_are_handed_back_when_it_is_subscribed() {
        let hub = DispatchHub::new(8);
        let alice: Arc<str> = Arc::from("alice");
        let bob: Arc<str> = Arc::from("bob");
        assert!(!hub.wait_for("sms", &alice));
        assert!(!hub.wait_for("email", &bob));
        // Bob holds sends for two channels: one customer waiting.
        assert!(!hub.wait_for("push", &bob));
        assert_eq!(hub.waiting(), 2);
        let (_in_app, woken) = hub.subscribe(only(&["in_app"])).expect("open");
        assert!(woken.is_empty());
        let (_sms, woken) = hub.subscribe(only(&["sms"])).expect("open");
        assert_eq!(woken, std::slice::from_ref(&alice));
        // Taken now: nothing to wait for.
        assert!(hub.wait_for("sms", &alice));
        assert_eq!(hub.waiting(), 1);
        // A subscriber for either of bob's channels wakes him, once.
        let (_push, woken) = hub.subscribe(only(&["push"])).expect("open");
        assert_eq!(woken, [bob]);
        assert_eq!(hub.waiting(), 0);
    }

    #[tokio::test]
    async fn a_dropped_subscription_leaves_and_closing_ends_the_others() {
        let hub = DispatchHub::new(8);
        let (gone, _) = hub.subscribe(None).expect("open");
        let (mut staying, _) = hub.subscribe(None).expect("open");
        assert_eq!(hub.subscribers(), 2);
        drop(gone);
        assert_eq!(hub.subscribers(), 1);
        hub.close();
        assert!(staying.next().await.is_none());
        assert_eq!(hub.subscribe(None).err(), Some(HubClosed));
        assert!(!hub.takes("email"));
    }
}
