//! The Redis Cluster store against a real three-primary cluster: the store
//! contract every backend keeps, what survives the Redis processes being
//! killed and restarted, the fencing that keeps a stale owner's writes
//! out, and the budget grants that keep nodes within a global budget.

use nudge_models::cluster::{FencingToken, Partitions};
use nudge_service::store::contract;
use nudge_service::store::redis::{
    ClientOptions, Durability, GrantChange, RedisOptions, RedisStore, Serves,
};
use nudge_service::store::{
    BudgetChange, BudgetLedger, DecisionLog, StateStore, StoreError, Stores,
};
use nudge_tests::redis::RedisCluster;
use std::sync::Arc;
use std::time::Duration;

fn options(cluster: &RedisCluster, namespace: &str, node: &str, lease_ms: u64) -> RedisOptions {
    RedisOptions {
        client: ClientOptions {
            urls: cluster.urls(),
            durability: Durability::Fsync,
            timeout: Duration::from_secs(2),
        },
        namespace: namespace.to_owned(),
        partitions: Partitions::new(64).expect("a partition count"),
        node: node.to_owned(),
        lease: Duration::from_millis(lease_ms),
        acquire_wait: Duration::from_millis(lease_ms * 2),
    }
}

fn open(cluster: &RedisCluster, namespace: &str) -> Arc<RedisStore> {
    RedisStore::open(options(cluster, namespace, "node-a", 5_000)).expect("open the redis store")
}

fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(future)
}

#[test]
fn the_redis_store_keeps_the_store_contract() {
    let Some(cluster) = RedisCluster::for_test(3) else {
        return;
    };
    let state: Arc<dyn StateStore> = open(&cluster, "state");
    contract::state_store(&state);
    let log: Arc<dyn DecisionLog> = open(&cluster, "log");
    contract::decision_log(&log);
    let events: Arc<dyn DecisionLog> = open(&cluster, "events");
    contract::event_log(&events);
    let budgets: Arc<dyn BudgetLedger> = open(&cluster, "budgets");
    contract::budget_ledger(&budgets);
    contract::survives_reopen(&|| Stores::from(open(&cluster, "reopen")));
}

#[test]
fn a_stale_owners_write_is_refused_by_its_fencing_token_and_changes_nothing() {
    let Some(cluster) = RedisCluster::for_test(3) else {
        return;
    };
    // Node A holds every partition for 600 ms and does not renew: it
    // stalls.
    let a = RedisStore::connect(options(&cluster, "fence", "node-a", 600)).expect("connect a");
    let all: Vec<_> = Partitions::new(64).expect("count").all().collect();
    assert!(a.acquire(&all).expect("a acquires").refused.is_empty());
    let alice: Arc<str> = Arc::from("alice");
    let partition = a.partition_of(&alice);
    let a_token = a.token(partition).expect("a holds alice's partition");
    block_on(StateStore::write(a.as_ref(), &alice, &contract::sample_state(1)).wait())
        .expect("a writes as owner");

    // B may not take the partition while A's lease runs.
    let b = RedisStore::connect(options(&cluster, "fence", "node-b", 5_000)).expect("connect b");
    let refused = b.acquire(&[partition]).expect("b asks").refused;
    assert_eq!(refused.len(), 1, "a's lease still runs");
    assert_eq!(refused[0].holder, "node-a");

    // Once it ends, B takes it with a larger token and writes.
    let b_token = loop {
        if b.acquire(&[partition]).expect("b asks").refused.is_empty() {
            break b.token(partition).expect("b holds it");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(b_token > a_token, "a new holder's token is larger");
    block_on(StateStore::write(b.as_ref(), &alice, &contract::sample_state(2)).wait())
        .expect("b writes as owner");

    // A wakes up and sends the write it had prepared with its old token.
    let stale = block_on(
        a.write_stalled(&alice, &contract::sample_state(7), a_token)
            .wait(),
    );
    match stale {
        Err(StoreError::Fenced {
            token,
            current,
            partition: refused_partition,
        }) => {
            assert_eq!(FencingToken(token), a_token);
            assert_eq!(FencingToken(current), b_token);
            assert_eq!(refused_partition, partition.0);
        }
        other => panic!("a stale token must be refused, got {other:?}"),
    }
    // A's own view has expired too: its ordinary writes fail before Redis.
    assert!(matches!(
        block_on(StateStore::write(a.as_ref(), &alice, &contract::sample_state(7)).wait()),
        Err(StoreError::NotOwner { .. })
    ));
    assert_eq!(
        block_on(StateStore::load(b.as_ref(), &alice)).expect("load"),
        Some(contract::sample_state(2)),
        "the new owner's state stands"
    );
}

#[test]
fn the_ledger_grants_budget_units_within_the_limit_and_takes_back_a_gone_nodes() {
    let Some(cluster) = RedisCluster::for_test(3) else {
        return;
    };
    let a = RedisStore::connect(options(&cluster, "grants", "node-a", 5_000)).expect("connect a");
    let b = RedisStore::connect(options(&cluster, "grants", "node-b", 5_000)).expect("connect b");
    // Each registers what it serves too; the members list it.
    let serves = Serves {
        catalog: "demo-2026-11".to_owned(),
        variants: vec![nudge_models::experiment::Variant {
            name: "default".to_owned(),
            model_version: "m1".to_owned(),
            share: 100,
        }],
    };
    a.register("a:1", Duration::from_secs(5), &serves)
        .expect("a joins");
    let members = b
        .register("b:1", Duration::from_secs(5), &Serves::default())
        .expect("b joins");
    let listed: Option<Serves> = members
        .iter()
        .find(|member| member.node == "node-a")
        .and_then(|member| serde_json::from_str(&member.serving).ok());
    assert_eq!(listed, Some(serves));
    let ask = |store: &RedisStore, delta: i64| {
        let granted = block_on(store.change_grants(vec![GrantChange {
            action_id: "coupon".to_owned(),
            limit: 5,
            delta,
        }]))
        .expect("the ledger answers");
        assert_eq!(granted.len(), 1);
        let granted = granted.into_iter().next().expect("one answer");
        (granted.units, granted.used, granted.free)
    };
    let held = |store: &RedisStore| -> Vec<(String, u64)> {
        let nodes = ["node-a".to_owned(), "node-b".to_owned()];
        let budgets = store.budgets(&nodes).expect("read the budgets");
        budgets
            .into_iter()
            .find(|budget| budget.action_id == "coupon")
            .map(|budget| {
                let mut held = budget.held;
                held.insert(0, ("used".to_owned(), budget.used));
                held
            })
            .unwrap_or_default()
    };
    let line = |used: u64, a: u64, b: u64| {
        let mut line = vec![("used".to_owned(), used)];
        if a > 0 {
            line.push(("node-a".to_owned(), a));
        }
        if b > 0 {
            line.push(("node-b".to_owned(), b));
        }
        line
    };

    // Grants never pass the limit, whoever asks.
    assert_eq!(ask(&a, 3), (3, 0, 2));
    assert_eq!(ask(&b, 4), (2, 0, 0), "only the 2 units left");
    assert_eq!(ask(&a, 1), (0, 0, 0));
    assert_eq!(held(&a), line(0, 3, 2));

    // A unit served leaves its node's grant in the same call that counts
    // it used; a unit given back is free for any node.
    let spend = |store: &RedisStore, delta: i64| {
        block_on(
            BudgetLedger::record(
                store,
                vec![BudgetChange {
                    action_id: "coupon".to_owned(),
                    delta,
                }],
            )
            .wait(),
        )
        .expect("the change is stored");
    };
    spend(&a, 1);
    assert_eq!(held(&b), line(1, 2, 2));
    assert_eq!(ask(&b, 1), (0, 1, 0), "used + held is the limit");
    assert_eq!(ask(&a, -1), (-1, 1, 1));
    assert_eq!(ask(&a, -9), (-1, 1, 2), "only what it holds");
    assert_eq!(held(&a), line(1, 0, 2));

    // A failed delivery's unit goes back to the ledger.
    spend(&b, 1);
    spend(&b, -1);
    assert_eq!(held(&a), line(1, 0, 1));

    // A node leaving gives its units back.
    b.leave().expect("b leaves");
    assert_eq!(held(&a), line(1, 0, 0));

    // So does a node whose registration runs out, once any node looks.
    assert_eq!(ask(&b, 3), (3, 1, 1));
    b.heartbeat("b:1", Duration::from_millis(300), &Serves::default())
        .expect("b renews briefly");
    std::thread::sleep(Duration::from_millis(400));
    let live = a.members_now().expect("a lists the members");
    assert_eq!(
        live.iter()
            .map(|member| member.node.as_str())
            .collect::<Vec<_>>(),
        ["node-a"]
    );
    assert_eq!(held(&a), line(1, 0, 0));

    // And a node starting again under the same name starts with none.
    b.register("b:1", Duration::from_secs(5), &Serves::default())
        .expect("b joins");
    assert_eq!(ask(&b, 2), (2, 1, 2));
    b.register("b:1", Duration::from_secs(5), &Serves::default())
        .expect("b starts again");
    assert_eq!(held(&a), line(1, 0, 0));
    assert_eq!(ask(&a, 9), (4, 1, 0), "every unit not used is grantable");
}

#[test]
fn acknowledged_writes_survive_every_redis_process_being_killed() {
    let Some(mut cluster) = RedisCluster::for_test(3) else {
        return;
    };
    {
        let store = open(&cluster, "crash");
        let commits: Vec<_> = (0..50)
            .map(|customer| {
                let id: Arc<str> = Arc::from(format!("crash-{customer}"));
                StateStore::write(store.as_ref(), &id, &contract::sample_state(customer % 4))
            })
            .collect();
        for commit in commits {
            block_on(commit.wait()).expect("acknowledged");
        }
    }
    cluster.kill_and_restart_all();
    let store = RedisStore::open(options(&cluster, "crash", "node-a", 5_000))
        .expect("open after the restart");
    for customer in 0..50 {
        let id = format!("crash-{customer}");
        assert_eq!(
            block_on(StateStore::load(store.as_ref(), &id)).expect("load"),
            Some(contract::sample_state(customer % 4)),
            "{id}"
        );
    }
}

#[test]
fn a_changes_state_and_log_entries_queued_together_take_one_round_trip() {
    let Some(cluster) = RedisCluster::for_test(3) else {
        return;
    };
    let store = open(&cluster, "together");
    let applies = |store: &RedisStore| {
        store
            .round_trips()
            .into_iter()
            .find(|(operation, _)| *operation == "apply")
            .map_or(0, |(_, count)| count)
    };
    let alice: Arc<str> = Arc::from("alice");
    // A first write of each kind, so one-time writes (the model's feature
    // names) are out of the way.
    block_on(
        StateStore::write(store.as_ref(), &alice, &contract::sample_state(1))
            .and(DecisionLog::append(
                store.as_ref(),
                vec![contract::sample_decision("alice", "d-0", 0)],
            ))
            .wait(),
    )
    .expect("first writes");

    for round in 1..=20_u32 {
        let before = applies(&store);
        // What an actor queues for one change: its state, a decision and
        // an event of the customer.
        let commit = nudge_service::store::together(|| {
            StateStore::write(
                store.as_ref(),
                &alice,
                &contract::sample_state(round as usize + 1),
            )
            .and(DecisionLog::append(
                store.as_ref(),
                vec![
                    contract::sample_decision("alice", &format!("d-{round}"), i64::from(round)),
                    contract::sample_event("alice", u64::from(round), i64::from(round)),
                ],
            ))
        });
        block_on(commit.wait()).expect("the change is durable");
        assert_eq!(
            applies(&store) - before,
            1,
            "round {round}: one script call for the whole change"
        );
    }
    // All of it is there.
    let loaded = block_on(StateStore::load(store.as_ref(), "alice"))
        .expect("load")
        .expect("alice");
    assert_eq!(loaded, contract::sample_state(21));
}
