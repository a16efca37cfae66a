//! Cluster mode end to end: `nudge serve --cluster` nodes (the real binary,
//! so a node can be killed with SIGKILL) over a local Redis Cluster of
//! three primaries. Any node answers for any customer from the customer's
//! one owner; concurrent decisions over all nodes keep caps exact; a node
//! joining moves partitions without a failed call; a node killed under
//! load is taken over with nothing acknowledged lost; global budgets hold
//! across nodes; losing Redis turns health NOT_SERVING for writes while
//! live customers are still read; a Redis primary failover loses nothing
//! acknowledged and applies nothing twice; nodes serving TLS forward to
//! each other over TLS.
//!
//! Skipped without `redis-server` unless `NUDGE_REDIS_TESTS=required`
//! (`.ci/run` sets it and installs the server). The tests run one at a
//! time: each starts three Redis processes and up to three nodes.

mod common;
// The Redis Cluster harness of the end-to-end tests, shared by path (it
// names `crate::TempDir`).
#[path = "../../tests/src/redis.rs"]
#[allow(dead_code)]
mod redis;

use common::{Access, Ca, Server, TempDir, poll};
use nudge_models::cluster::Partitions;
use nudge_proto::v1 as proto;
use nudge_proto::v1::decisions_client::DecisionsClient;
use nudge_proto::v1::events_client::EventsClient;
use nudge_proto::v1::profiles_client::ProfilesClient;
use redis::RedisCluster;
use serde_json::Value as Json;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// The demo's in-app cap: 5 per 7 days (the home banner rotates through six
/// eligible in-app actions, so the cap is what stops the sixth).
const IN_APP_CAP: usize = 5;

/// The lease the tests' nodes hold partitions with: short, so a killed
/// node is taken over in seconds, yet renewed (every third) with room to
/// spare on a loaded machine.
const LEASE_MS: u64 = 3_000;

/// One test at a time: each runs six processes besides the test.
static SERIAL: Mutex<()> = Mutex::new(());

/// A `nudge serve --cluster` node with its own data directory.
struct Node {
    name: String,
    server: Server,
    _dir: TempDir,
}

impl Node {
    fn start(redis: &RedisCluster, namespace: &str, name: &str) -> Self {
        Self::start_with(redis, namespace, name, &[])
    }

    /// A node started with `extra` arguments besides the cluster's.
    fn start_with(redis: &RedisCluster, namespace: &str, name: &str, extra: &[&str]) -> Self {
        Self::start_with_access(redis, namespace, name, extra, Access::default())
    }

    /// A node with `extra` arguments whose client commands use `access`.
    fn start_with_access(
        redis: &RedisCluster,
        namespace: &str,
        name: &str,
        extra: &[&str],
        access: Access,
    ) -> Self {
        let dir = TempDir::new(name);
        let urls = redis.urls().join(",");
        let node_id = format!("cluster.node_id={name}");
        let lease = format!("cluster.lease_ms={LEASE_MS}");
        let namespace = format!("storage.redis_namespace={namespace}");
        let server = Server::start_with_access(
            &dir,
            &[
                "--cluster",
                "--redis",
                &urls,
                "--web-listen",
                "off",
                "--set",
                &node_id,
                "--set",
                &lease,
                "--set",
                &namespace,
            ]
            .into_iter()
            .chain(extra.iter().copied())
            .collect::<Vec<_>>(),
            access,
        );
        Self {
            name: name.to_owned(),
            server,
            _dir: dir,
        }
    }

    fn topology(&self) -> Json {
        self.server.json(&["cluster", "status"])
    }
}

/// Waits until `node` sees exactly `names` live and every partition held by
/// the node placement gives it; returns that topology.
fn settled(node: &Node, names: &[&str]) -> Json {
    poll(Duration::from_secs(30), "the cluster to settle", || {
        // A busy node may shed the call: asked again.
        let output = node.server.client(&["cluster", "status", "--json"]);
        if !output.status.success() {
            return Err(output.stderr);
        }
        let topology: Json =
            serde_json::from_str(&output.stdout).map_err(|error| error.to_string())?;
        let mut live: Vec<&str> = topology["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .map(|node| node["node"].as_str().expect("a node name"))
            .collect();
        live.sort_unstable();
        let mut expected = names.to_vec();
        expected.sort_unstable();
        let moving = topology["owners"]
            .as_array()
            .expect("owners")
            .iter()
            .filter(|owner| {
                owner["holder"].as_str().is_none_or(str::is_empty)
                    || owner["holder"] != owner["placed"]
            })
            .count();
        if live == expected && moving == 0 {
            Ok(topology)
        } else {
            Err(format!(
                "live {live:?} (want {expected:?}), {moving} partitions moving"
            ))
        }
    })
}

/// The holder of `customer_id`'s partition in `topology`.
fn holder_of(topology: &Json, customer_id: &str) -> String {
    let partitions = Partitions::new(
        u16::try_from(topology["partitions"].as_u64().expect("partitions")).expect("u16"),
    )
    .expect("a partition count");
    let partition = usize::from(partitions.of(customer_id).0);
    topology["owners"][partition]["holder"]
        .as_str()
        .expect("a holder")
        .to_owned()
}

async fn connect(url: &str) -> Channel {
    Channel::from_shared(url.to_owned())
        .expect("a valid url")
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(15))
        .connect()
        .await
        .expect("connect to the node")
}

fn decide_request(customer_id: &str) -> proto::DecideRequest {
    proto::DecideRequest {
        customer_id: customer_id.to_owned(),
        placement: "home_banner".to_owned(),
        ..Default::default()
    }
}

/// Decides for `customer_id` through `channel`. A call shed for overload
/// changed nothing: it is retried with backoff, as clients are told to.
async fn decide_retrying(channel: Channel, customer_id: &str) -> proto::DecideResponse {
    let mut backoff = Duration::from_millis(20);
    loop {
        match DecisionsClient::new(channel.clone())
            .decide(decide_request(customer_id))
            .await
        {
            Ok(response) => return response.into_inner(),
            Err(status)
                if status.code() == tonic::Code::ResourceExhausted
                    && backoff < Duration::from_secs(5) =>
            {
                tokio::time::sleep(backoff).await;
                backoff *= 2;
            }
            Err(status) => panic!("decide for {customer_id}: {status}"),
        }
    }
}

/// A `login` event of `customer_id`.
fn login(customer_id: impl Into<String>, event_id: impl Into<String>) -> proto::Event {
    proto::Event {
        customer_id: customer_id.into(),
        event_id: event_id.into(),
        name: "login".to_owned(),
        ..Default::default()
    }
}

/// `customer_id`'s profile, read through `channel`.
async fn read_profile(
    channel: &Channel,
    customer_id: impl Into<String>,
) -> Result<proto::Profile, tonic::Status> {
    ProfilesClient::new(channel.clone())
        .get_profile(proto::GetProfileRequest {
            customer_id: customer_id.into(),
        })
        .await
        .map(tonic::Response::into_inner)
}

/// The decisions in `profile`'s contact ledger.
fn decision_ids(profile: &proto::Profile) -> BTreeSet<&str> {
    profile
        .contacts
        .iter()
        .map(|contact| contact.decision_id.as_str())
        .collect()
}

fn owner_header<T>(response: &tonic::Response<T>) -> String {
    response
        .metadata()
        .get("x-nudge-owner")
        .and_then(|value| value.to_str().ok())
        .expect("every answer names its owner")
        .to_owned()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
}

fn three_nodes(namespace: &str) -> Option<(RedisCluster, Vec<Node>)> {
    let redis = RedisCluster::for_test(3)?;
    let nodes: Vec<Node> = ["node-a", "node-b", "node-c"]
        .iter()
        .map(|name| Node::start(&redis, namespace, name))
        .collect();
    Some((redis, nodes))
}

#[test]
fn any_node_answers_from_the_customers_one_owner() {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let Some((_redis, nodes)) = three_nodes("answers") else {
        return;
    };
    let topology = settled(&nodes[0], &["node-a", "node-b", "node-c"]);
    for node in &topology["nodes"].as_array().expect("nodes").clone() {
        let holds = node["holds"].as_u64().expect("holds");
        assert!(
            (40..=130).contains(&holds),
            "256 partitions over three nodes by rendezvous hashing: {node}"
        );
    }
    let status = nodes[1].server.ok(&["cluster", "status"]);
    assert!(
        status.contains("3 nodes, 256 of 256 partitions held"),
        "{status}"
    );
    assert!(
        status.contains("every partition is held by the node placement gives it"),
        "{status}"
    );
    // Each node registers what it serves: here all the same demo.
    poll(
        Duration::from_secs(10),
        "every node's catalog and models",
        || {
            let topology = nodes[2].topology();
            let served: BTreeSet<String> = topology["nodes"]
                .as_array()
                .expect("nodes")
                .iter()
                .map(|node| format!("{} {}", node["catalog_version"], node["variants"]))
                .collect();
            match served.iter().next() {
                Some(one) if served.len() == 1 && one.contains("demo-2026-11") => Ok(()),
                _ => Err(format!("{served:?}")),
            }
        },
    );
    let status = nodes[0].server.ok(&["cluster", "status"]);
    assert!(status.contains("CATALOG"), "{status}");
    assert!(!status.contains("different catalogs or models"), "{status}");

    runtime().block_on(async {
        let mut owners = BTreeSet::new();
        for index in 0..24 {
            let customer_id = format!("answers-{index}");
            let expected = holder_of(&topology, &customer_id);
            owners.insert(expected.clone());
            let mut decision_ids = BTreeSet::new();
            // Through every node: the owner answers each time, from one
            // ledger.
            for node in &nodes {
                let channel = connect(node.server.url()).await;
                let response = DecisionsClient::new(channel.clone())
                    .decide(decide_request(&customer_id))
                    .await
                    .unwrap_or_else(|status| panic!("decide through {}: {status}", node.name));
                assert_eq!(
                    owner_header(&response),
                    expected,
                    "{customer_id} through {}",
                    node.name
                );
                let response = response.into_inner();
                assert!(!response.served.is_empty(), "{response:?}");
                decision_ids.insert(response.decision_id);
                let event = login(&customer_id, format!("{customer_id}-{}", node.name));
                let tracked = EventsClient::new(channel)
                    .track(event)
                    .await
                    .unwrap_or_else(|status| panic!("track through {}: {status}", node.name));
                assert_eq!(owner_header(&tracked), expected);
                assert!(!tracked.into_inner().duplicate);
            }
            // Any node's profile shows all three decisions.
            let channel = connect(nodes[index % 3].server.url()).await;
            let profile = read_profile(&channel, &customer_id).await.expect("profile");
            let seen: BTreeSet<String> = profile
                .contacts
                .iter()
                .map(|contact| contact.decision_id.clone())
                .collect();
            assert_eq!(seen, decision_ids, "{customer_id}'s ledger");
        }
        assert_eq!(owners.len(), 3, "24 customers fall on all three nodes");

        // A stream of events through one node, for customers of all three:
        // each applied once by its owner; duplicates and bad events are
        // counted as on one node.
        let customers: Vec<String> = (0..12).map(|index| format!("stream-{index}")).collect();
        let mut events: Vec<proto::Event> = (0..3)
            .flat_map(|round| {
                customers
                    .iter()
                    .map(move |customer_id| login(customer_id, format!("{customer_id}-{round}")))
            })
            .collect();
        // A duplicate and a bad event of a customer another node holds:
        // the owner's answers about them come back to this stream.
        let remote = customers
            .iter()
            .find(|customer_id| holder_of(&topology, customer_id) != "node-a")
            .expect("a stream customer held by another node");
        events.push(login(remote, format!("{remote}-1")));
        events.push(proto::Event {
            name: String::new(),
            ..login(remote, "nameless")
        });
        let channel = connect(nodes[0].server.url()).await;
        let summary = EventsClient::new(channel.clone())
            .track_stream(tokio_stream::iter(events))
            .await
            .expect("the stream is answered")
            .into_inner();
        assert_eq!(
            (summary.accepted, summary.duplicates, summary.rejected),
            (36, 1, 1),
            "{summary:?}"
        );
        assert_eq!(summary.rejections.len(), 1, "{summary:?}");
        assert_eq!(summary.rejections[0].index, 37, "{summary:?}");
        assert_eq!(summary.rejections[0].event_id, "nameless");
        for (index, customer_id) in customers.iter().enumerate() {
            let channel = connect(nodes[index % 3].server.url()).await;
            let profile = read_profile(&channel, customer_id).await.expect("profile");
            let logins = profile
                .counters
                .iter()
                .find(|counter| counter.name == "login")
                .map(|counter| counter.last_1d);
            assert_eq!(logins, Some(3), "{customer_id}: {profile:?}");
        }
    });

    // A node not in a cluster says so.
    let dir = TempDir::new("single");
    let single = Server::start(&dir, &["--web-listen", "off"]);
    let output = single.client(&["cluster", "status"]);
    assert!(!output.status.success());
    assert!(
        output.stderr.contains("FAILED_PRECONDITION") || output.stderr.contains("not in a cluster"),
        "{}",
        output.describe()
    );
}

#[test]
fn nodes_serving_tls_forward_over_tls_showing_their_own_certificates() {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let Some(redis) = RedisCluster::for_test(3) else {
        return;
    };
    // One certificate for 127.0.0.1, for serving and for calling; every
    // node asks its callers for a certificate of the cluster's CA (mTLS),
    // so a node forwarding a call must show its own.
    let dir = TempDir::new("cluster-tls");
    let both = [
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let [ca, cert, key] = Ca::new("cluster CA").write(&dir, "cluster-ca", "node", &both);
    let [stranger_ca, _, _] = Ca::new("stranger CA").write(&dir, "stranger-ca", "stranger", &both);
    let serving = [
        format!("tls.cert={cert}"),
        format!("tls.key={key}"),
        format!("tls.client_ca={ca}"),
    ];
    let node = |name: &str, cluster_ca: &str| {
        let cluster_ca = format!("cluster.tls_ca={cluster_ca}");
        let extra: Vec<&str> = serving
            .iter()
            .chain([&cluster_ca])
            .flat_map(|setting| ["--set", setting.as_str()])
            .collect();
        let access = Access {
            https: true,
            client_args: [
                "--ca-cert",
                &ca,
                "--client-cert",
                &cert,
                "--client-key",
                &key,
            ]
            .map(str::to_owned)
            .to_vec(),
            ..Access::default()
        };
        Node::start_with_access(&redis, "tls", name, &extra, access)
    };
    let read = |path: &str| std::fs::read(path).expect("read a PEM file");
    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(read(&ca)))
        .identity(tonic::transport::Identity::from_pem(
            read(&cert),
            read(&key),
        ));
    let connect_tls = |node: &Node| {
        let tls = tls.clone();
        let url = node.server.url().to_owned();
        async move {
            assert!(url.starts_with("https://"), "{url}");
            Channel::from_shared(url)
                .expect("a valid url")
                .tls_config(tls)
                .expect("a TLS client")
                .connect()
                .await
                .expect("connect over TLS")
        }
    };

    let mut nodes = vec![node("node-a", &ca), node("node-b", &ca)];
    let topology = settled(&nodes[0], &["node-a", "node-b"]);
    let rt = runtime();
    rt.block_on(async {
        let mut owners = BTreeSet::new();
        for index in 0..12 {
            let customer_id = format!("tls-{index}");
            let expected = holder_of(&topology, &customer_id);
            owners.insert(expected.clone());
            // Through both nodes, so once through the one that forwards.
            for node in &nodes {
                let response = DecisionsClient::new(connect_tls(node).await)
                    .decide(decide_request(&customer_id))
                    .await
                    .unwrap_or_else(|status| panic!("decide through {}: {status}", node.name));
                assert_eq!(owner_header(&response), expected, "{customer_id}");
                assert!(!response.into_inner().served.is_empty());
            }
        }
        assert_eq!(owners.len(), 2, "12 customers fall on both nodes");
    });

    // A node that checks the others against another CA cannot forward to
    // them: its calls for their customers fail, never go in the clear.
    nodes.push(node("node-c", &stranger_ca));
    let topology = settled(&nodes[0], &["node-a", "node-b", "node-c"]);
    rt.block_on(async {
        let channel = connect_tls(&nodes[2]).await;
        let customer_id = (0..)
            .map(|index| format!("tls-stranger-{index}"))
            .find(|customer_id| holder_of(&topology, customer_id) != "node-c")
            .expect("a customer another node holds");
        let status = DecisionsClient::new(channel)
            .decide(decide_request(&customer_id))
            .await
            .expect_err("node-c does not trust the owner's certificate");
        assert_eq!(status.code(), tonic::Code::Unavailable, "{status}");
        assert!(status.message().contains("did not answer"), "{status}");
        poll(Duration::from_secs(5), "node-c's warning", || {
            let log = nodes[2].server.log();
            if log.contains("calls forwarded to another node get no answer") {
                Ok(())
            } else {
                Err(log)
            }
        });
        // The others forward to node-c: its certificate is the cluster's.
        let customer_id = (0..)
            .map(|index| format!("tls-c-{index}"))
            .find(|customer_id| holder_of(&topology, customer_id) == "node-c")
            .expect("a customer node-c holds");
        let response = DecisionsClient::new(connect_tls(&nodes[0]).await)
            .decide(decide_request(&customer_id))
            .await
            .expect("node-a forwards to node-c");
        assert_eq!(owner_header(&response), "node-c");
    });
}

#[test]
fn fifty_concurrent_decides_over_three_nodes_serve_exactly_the_cap() {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let Some((_redis, nodes)) = three_nodes("caps") else {
        return;
    };
    settled(&nodes[0], &["node-a", "node-b", "node-c"]);
    let urls: Vec<String> = nodes
        .iter()
        .map(|node| node.server.url().to_owned())
        .collect();
    runtime().block_on(async {
        let mut channels = Vec::new();
        for url in &urls {
            channels.push(connect(url).await);
        }
        let calls: Vec<_> = (0..50)
            .map(|index| {
                let channel = channels[index % 3].clone();
                tokio::spawn(async move { decide_retrying(channel, "capped").await })
            })
            .collect();
        let mut in_app = 0;
        let mut served = BTreeSet::new();
        for call in calls {
            let response = call.await.expect("the call's task");
            for action in &response.served {
                served.insert((response.decision_id.clone(), action.action_id.clone()));
                if action.channel == "in_app" {
                    in_app += 1;
                }
            }
        }
        assert_eq!(
            in_app, IN_APP_CAP,
            "in-app serves over 50 concurrent decides"
        );
        let profile = read_profile(&channels[2], "capped").await.expect("profile");
        let ledger: BTreeSet<(String, String)> = profile
            .contacts
            .iter()
            .map(|contact| (contact.decision_id.clone(), contact.action_id.clone()))
            .collect();
        assert_eq!(ledger, served, "the ledger holds exactly what was served");
    });
}

/// The units of each budgeted in-app action in [`budgeted_catalog`].
const IN_APP_BUDGET: usize = 4;

/// The demo catalog with a global budget of [`IN_APP_BUDGET`] on each of
/// the six in-app actions a new customer is eligible for.
fn budgeted_catalog() -> String {
    let catalog = nudge_models::demo::CATALOG_TOML;
    let mut budgeted = String::new();
    for (index, block) in catalog.split("[[actions]]").enumerate() {
        if index > 0 {
            budgeted.push_str("[[actions]]");
        }
        let new_customers = [
            "welcome_tour",
            "connect_first_integration",
            "create_first_report",
            "invite_teammates",
            "upgrade_to_pro_banner",
            "template_gallery",
        ];
        if new_customers
            .iter()
            .any(|id| block.contains(&format!("id = \"{id}\"\n")))
        {
            budgeted.push_str(&block.replacen(
                "cooldown = \"1h\"\n",
                &format!("cooldown = \"1h\"\nbudget = {IN_APP_BUDGET}\n"),
                1,
            ));
        } else {
            budgeted.push_str(block);
        }
    }
    assert_eq!(
        budgeted
            .matches(&format!("budget = {IN_APP_BUDGET}\n"))
            .count(),
        6,
        "the six in-app actions of a new customer are budgeted"
    );
    budgeted
}

#[test]
fn three_nodes_together_serve_a_global_budget_exactly_never_past_it() {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let Some(redis) = RedisCluster::for_test(3) else {
        return;
    };
    let dir = TempDir::new("budgets");
    let catalog = dir.path().join("catalog.toml");
    std::fs::write(&catalog, budgeted_catalog()).expect("write the catalog");
    let catalog = catalog.to_str().expect("a UTF-8 path").to_owned();
    let nodes: Vec<Node> = ["node-a", "node-b", "node-c"]
        .iter()
        .map(|name| Node::start_with(&redis, "budgets", name, &["--catalog", &catalog]))
        .collect();
    settled(&nodes[0], &["node-a", "node-b", "node-c"]);
    let urls: Vec<String> = nodes
        .iter()
        .map(|node| node.server.url().to_owned())
        .collect();
    let budgeted = 6 * IN_APP_BUDGET;
    let mut served: BTreeMap<String, usize> = BTreeMap::new();
    runtime().block_on(async {
        let mut channels = Vec::new();
        for url in &urls {
            channels.push(connect(url).await);
        }
        // Waves of new customers, each deciding once through a node in
        // turn (so through owners and non-owners), all at once: demand far
        // past the budgets on every node. Waves go on until every unit is
        // served; a node holding units serves them to the next wave.
        let started = Instant::now();
        let mut wave = 0;
        while served.values().sum::<usize>() < budgeted {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the budgets were not used up within a minute: {served:?}"
            );
            let calls: Vec<_> = (0..60)
                .map(|index| {
                    let channel = channels[index % 3].clone();
                    let customer = format!("budget-{wave}-{index}");
                    tokio::spawn(async move { decide_retrying(channel, &customer).await })
                })
                .collect();
            for call in calls {
                let response = call.await.expect("the call's task");
                for action in response.served.iter().filter(|action| action.channel == "in_app") {
                    *served.entry(action.action_id.clone()).or_default() += 1;
                }
            }
            for (action, count) in &served {
                assert!(
                    *count <= IN_APP_BUDGET,
                    "{action} served {count} times, past its budget of {IN_APP_BUDGET} (wave {wave}: {served:?})"
                );
            }
            wave += 1;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    assert_eq!(
        served.len(),
        6,
        "every budgeted action was served: {served:?}"
    );
    assert!(
        served.values().all(|count| *count == IN_APP_BUDGET),
        "{served:?}"
    );
    // The ledger agrees: every unit used, none left held by a node.
    let topology = nodes[1].topology();
    let budgets = topology["budgets"].as_array().expect("budgets");
    let in_app: Vec<&Json> = budgets
        .iter()
        .filter(|budget| served.contains_key(budget["action_id"].as_str().expect("an action")))
        .collect();
    assert_eq!(in_app.len(), 6, "{budgets:?}");
    for budget in in_app {
        assert_eq!(budget["limit"], IN_APP_BUDGET, "{budget}");
        assert_eq!(budget["used"], IN_APP_BUDGET, "{budget}");
        assert_eq!(budget["held"], Json::Array(Vec::new()), "{budget}");
    }
    // The status table shows them too.
    let table = nodes[2].server.ok(&["cluster", "status"]);
    assert!(table.contains("BUDGET"), "{table}");
    assert!(table.contains("welcome_tour"), "{table}");
}

/// Health of the whole server, Decisions, Events and Profiles.
async fn health(channel: &Channel) -> Vec<ServingStatus> {
    let mut health = HealthClient::new(channel.clone());
    let mut statuses = Vec::new();
    for service in [
        "",
        "nudge.v1.Decisions",
        "nudge.v1.Events",
        "nudge.v1.Profiles",
    ] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("health answers")
            .into_inner()
            .status();
        statuses.push(status);
    }
    statuses
}

/// Waits (at most a minute) until [`health`] through `channel` is
/// `expected`.
fn health_becomes(rt: &tokio::runtime::Runtime, channel: &Channel, expected: [ServingStatus; 4]) {
    poll(Duration::from_secs(60), "health to change", || {
        let seen = rt.block_on(health(channel));
        if seen == expected {
            Ok(())
        } else {
            Err(format!("{seen:?}, expected {expected:?}"))
        }
    });
}

#[test]
fn losing_redis_turns_health_not_serving_for_writes_while_live_customers_are_read() {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let Some(mut redis) = RedisCluster::for_test(3) else {
        return;
    };
    let node = Node::start(&redis, "outage", "node-a");
    settled(&node, &["node-a"]);
    let url = node.server.url().to_owned();
    let rt = runtime();
    let channel = rt.block_on(connect(&url));
    let first = rt.block_on(async {
        let decided = decide_retrying(channel.clone(), "kept").await;
        EventsClient::new(channel.clone())
            .track(login("kept", "kept-1"))
            .await
            .expect("tracked");
        assert_eq!(health(&channel).await, [ServingStatus::Serving; 4]);
        decided
    });

    redis.kill_all();
    let refusing = [
        ServingStatus::NotServing,
        ServingStatus::NotServing,
        ServingStatus::NotServing,
        ServingStatus::Serving,
    ];
    health_becomes(&rt, &channel, refusing);
    // Past the lease: as far as the node knows it no longer holds the
    // customer's partition (no renewal was answered).
    std::thread::sleep(Duration::from_millis(LEASE_MS));
    rt.block_on(async {
        // Writes are refused with UNAVAILABLE…
        let decide = DecisionsClient::new(channel.clone())
            .decide(decide_request("kept"))
            .await
            .expect_err("a decision is a write");
        assert_eq!(decide.code(), tonic::Code::Unavailable, "{decide:?}");
        let track = EventsClient::new(channel.clone())
            .track(login("kept", "kept-2"))
            .await
            .expect_err("an event is a write");
        assert_eq!(track.code(), tonic::Code::Unavailable, "{track:?}");
        // …while a dry run and a profile read of the live customer answer,
        // with nothing of the refused calls applied.
        let mut dry = decide_request("kept");
        dry.dry_run = true;
        let probe = DecisionsClient::new(channel.clone())
            .decide(dry)
            .await
            .expect("a dry run needs no write")
            .into_inner();
        assert!(!probe.served.is_empty(), "{probe:?}");
        let profile = read_profile(&channel, "kept")
            .await
            .expect("the live customer's profile");
        let decisions = decision_ids(&profile);
        assert_eq!(decisions, BTreeSet::from([first.decision_id.as_str()]));
        // A customer not in memory cannot be read: it lives in Redis.
        let stranger = read_profile(&channel, "stranger")
            .await
            .expect_err("not in memory");
        assert_eq!(stranger.code(), tonic::Code::Unavailable, "{stranger:?}");
    });

    // Redis back: health turns SERVING by itself and writes work again,
    // on top of everything acknowledged before.
    redis.restart_all();
    health_becomes(&rt, &channel, [ServingStatus::Serving; 4]);
    rt.block_on(async {
        let second = poll_async(Duration::from_secs(30), || async {
            DecisionsClient::new(channel.clone())
                .decide(decide_request("kept"))
                .await
                .map(tonic::Response::into_inner)
                .map_err(|status| format!("{status:?}"))
        })
        .await;
        let profile = read_profile(&channel, "kept").await.expect("profile");
        let decisions = decision_ids(&profile);
        assert_eq!(
            decisions,
            BTreeSet::from([first.decision_id.as_str(), second.decision_id.as_str()])
        );
    });
}

/// Calls `attempt` until it succeeds, for up to `limit`.
async fn poll_async<T, F, Fut>(limit: Duration, mut attempt: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let started = Instant::now();
    loop {
        match attempt().await {
            Ok(value) => return value,
            Err(error) if started.elapsed() > limit => panic!("gave up after {limit:?}: {error}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// What the load acknowledged, for checking afterwards.
#[derive(Debug, Default)]
struct Acknowledged {
    events: BTreeMap<String, Vec<String>>,
    served: BTreeMap<String, Vec<(String, String)>>,
    failures: Vec<String>,
    /// Events whose track failed (maybe applied, maybe not), by customer:
    /// a client sends them again.
    unanswered: BTreeMap<String, Vec<String>>,
    /// Calls shed for overload (RESOURCE_EXHAUSTED before anything was
    /// done): the machine was busy, not a failure of the cluster.
    shed: usize,
    calls: usize,
}

impl Acknowledged {
    fn failed(&mut self, call: &str, who: &str, status: &tonic::Status) {
        if status.code() == tonic::Code::ResourceExhausted
            && status.message().starts_with("nudge is overloaded")
        {
            self.shed += 1;
        } else {
            self.failures.push(format!("{call} {who}: {status}"));
        }
    }
}

/// Decides and tracks for `customers` through `urls` (round robin) until
/// `stop`; each customer belongs to one task, so the acknowledged record is
/// exact.
async fn load(
    urls: Vec<String>,
    task: usize,
    customers: usize,
    stop: Arc<AtomicBool>,
) -> Acknowledged {
    let mut channels = Vec::new();
    for url in &urls {
        channels.push(connect(url).await);
    }
    let mut ack = Acknowledged::default();
    for step in 0usize.. {
        if stop.load(Ordering::Acquire) {
            break;
        }
        let who = format!("load-{task}-{}", step % customers);
        let channel = channels[step % channels.len()].clone();
        ack.calls += 1;
        if step % 2 == 0 {
            let event_id = format!("t{task}-{step}");
            let event = login(&who, &event_id);
            match EventsClient::new(channel).track(event).await {
                Ok(response) => {
                    assert!(!response.into_inner().duplicate, "{event_id} is new");
                    ack.events.entry(who).or_default().push(event_id);
                }
                Err(status) => {
                    ack.failed("track", &who, &status);
                    ack.unanswered.entry(who).or_default().push(event_id);
                }
            }
        } else {
            match DecisionsClient::new(channel)
                .decide(decide_request(&who))
                .await
            {
                Ok(response) => {
                    let response = response.into_inner();
                    for served in response.served {
                        ack.served
                            .entry(who.clone())
                            .or_default()
                            .push((response.decision_id.clone(), served.action_id));
                    }
                }
                Err(status) => ack.failed("decide", &who, &status),
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    ack
}

/// Stops the load tasks and collects what they acknowledged.
fn stop_load(
    runtime: &tokio::runtime::Runtime,
    stop: &AtomicBool,
    tasks: Vec<tokio::task::JoinHandle<Acknowledged>>,
) -> Vec<Acknowledged> {
    stop.store(true, Ordering::Release);
    runtime.block_on(async {
        let mut acks = Vec::new();
        for task in tasks {
            acks.push(task.await.expect("a load task"));
        }
        acks
    })
}

/// Checks through `url` that everything acknowledged is there once and no
/// customer was served past the in-app cap.
async fn verify(url: &str, acks: &[Acknowledged]) {
    let channel = connect(url).await;
    let events = EventsClient::new(channel.clone());
    let profiles = ProfilesClient::new(channel);
    for ack in acks {
        for (who, ids) in &ack.events {
            for event_id in ids {
                let event = login(who, event_id);
                // A call refused while the cluster settles is retried, as
                // clients do.
                let response = poll_async(Duration::from_secs(30), || {
                    let mut events = events.clone();
                    let event = event.clone();
                    async move {
                        events
                            .track(event)
                            .await
                            .map(tonic::Response::into_inner)
                            .map_err(|status| format!("track: {status:?}"))
                    }
                })
                .await;
                assert!(
                    response.duplicate,
                    "acknowledged event {event_id} of {who} was lost"
                );
            }
        }
        for (who, served) in &ack.served {
            let profile = poll_async(Duration::from_secs(30), || {
                let mut profiles = profiles.clone();
                let request = proto::GetProfileRequest {
                    customer_id: who.clone(),
                };
                async move {
                    profiles
                        .get_profile(request)
                        .await
                        .map(tonic::Response::into_inner)
                        .map_err(|status| format!("{who} was not read: {status:?}"))
                }
            })
            .await;
            let ledger: BTreeSet<(String, String)> = profile
                .contacts
                .iter()
                .map(|contact| (contact.decision_id.clone(), contact.action_id.clone()))
                .collect();
            for decision in served {
                assert!(
                    ledger.contains(decision),
                    "acknowledged decision {decision:?} of {who} is not in the ledger"
                );
            }
            let in_app = profile
                .contacts
                .iter()
                .filter(|contact| contact.channel == "in_app" && !contact.released)
                .count();
            assert!(
                in_app <= IN_APP_CAP,
                "{who} was served {in_app} in-app actions"
            );
        }
    }
}

#[test]
fn a_node_joining_moves_partitions_without_a_failed_call() {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let Some(redis) = RedisCluster::for_test(3) else {
        return;
    };
    let a = Node::start(&redis, "joining", "node-a");
    let b = Node::start(&redis, "joining", "node-b");
    settled(&a, &["node-a", "node-b"]);
    let urls = vec![a.server.url().to_owned(), b.server.url().to_owned()];
    let runtime = runtime();
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..4)
        .map(|task| runtime.spawn(load(urls.clone(), task, 12, stop.clone())))
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let c = Node::start(&redis, "joining", "node-c");
    let topology = settled(&c, &["node-a", "node-b", "node-c"]);
    std::thread::sleep(Duration::from_millis(500));
    let acks = stop_load(&runtime, &stop, tasks);
    let failures: Vec<&String> = acks.iter().flat_map(|ack| &ack.failures).collect();
    let calls: usize = acks.iter().map(|ack| ack.calls).sum();
    assert!(
        failures.is_empty(),
        "{} of {calls} calls failed: {failures:?}",
        failures.len()
    );
    let joined = topology["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .find(|node| node["node"] == "node-c")
        .expect("node-c is live")["holds"]
        .as_u64()
        .expect("holds");
    assert!(joined > 0, "node-c took partitions: {topology}");
    runtime.block_on(verify(c.server.url(), &acks));
}

#[test]
fn an_owner_killed_under_load_is_taken_over_with_nothing_acknowledged_lost() {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let Some((_redis, mut nodes)) = three_nodes("takeover") else {
        return;
    };
    settled(&nodes[0], &["node-a", "node-b", "node-c"]);
    // The load goes through a and b; c owns about a third of its customers.
    let urls = vec![
        nodes[0].server.url().to_owned(),
        nodes[1].server.url().to_owned(),
    ];
    let runtime = runtime();
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..4)
        .map(|task| runtime.spawn(load(urls.clone(), task, 12, stop.clone())))
        .collect();
    std::thread::sleep(Duration::from_millis(800));
    let victim = nodes.pop().expect("node-c");
    let killed = std::process::Command::new("kill")
        .args(["-9", &victim.server.pid()])
        .status()
        .expect("run kill");
    assert!(killed.success());
    let at = Instant::now();
    settled(&nodes[0], &["node-a", "node-b"]);
    let takeover = at.elapsed();
    // The load goes on a while on the two nodes left.
    std::thread::sleep(Duration::from_millis(1_000));
    let acks = stop_load(&runtime, &stop, tasks);
    let calls: usize = acks.iter().map(|ack| ack.calls).sum();
    let failures: Vec<&String> = acks.iter().flat_map(|ack| &ack.failures).collect();
    let shed: usize = acks.iter().map(|ack| ack.shed).sum();
    eprintln!(
        "takeover after kill -9: {} ms (lease {LEASE_MS} ms); {} of {calls} calls failed meanwhile, {shed} shed for overload",
        takeover.as_millis(),
        failures.len()
    );
    for failure in &failures {
        assert!(
            failure.contains("Unavailable") || failure.contains("unavailable"),
            "a call failed otherwise than UNAVAILABLE: {failure}"
        );
    }
    runtime.block_on(verify(nodes[1].server.url(), &acks));
    // After the takeover every customer is served again.
    runtime.block_on(async {
        let channel = connect(nodes[0].server.url()).await;
        for task in 0..4 {
            for index in 0..12 {
                let who = format!("load-{task}-{index}");
                DecisionsClient::new(channel.clone())
                    .decide(decide_request(&who))
                    .await
                    .unwrap_or_else(|status| panic!("{who} after the takeover: {status}"));
            }
        }
    });
}

#[test]
fn a_redis_primary_failover_loses_nothing_acknowledged_and_applies_nothing_twice() {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let Some(mut redis) = RedisCluster::with_replicas_for_test(3) else {
        return;
    };
    // A write is acknowledged once a replica has it too.
    let durability = [
        "--set",
        "storage.redis_durability=replicas",
        "--set",
        "storage.redis_wait_replicas=1",
        // Room for a replica on a loaded machine.
        "--set",
        "storage.redis_wait_timeout_ms=500",
    ];
    let nodes: Vec<Node> = ["node-a", "node-b"]
        .iter()
        .map(|name| Node::start_with(&redis, "failover", name, &durability))
        .collect();
    settled(&nodes[0], &["node-a", "node-b"]);
    let urls: Vec<String> = nodes
        .iter()
        .map(|node| node.server.url().to_owned())
        .collect();
    let runtime = runtime();
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..4)
        .map(|task| runtime.spawn(load(urls.clone(), task, 12, stop.clone())))
        .collect();
    std::thread::sleep(Duration::from_millis(800));

    // A primary dies; its replica is promoted in its place.
    let victim = redis.primaries()[0];
    redis.kill(victim);
    let at = Instant::now();
    poll(Duration::from_secs(30), "a replica to be promoted", || {
        let primaries = redis.primaries();
        if primaries.len() == 3 {
            Ok(())
        } else {
            Err(format!("primaries {primaries:?}"))
        }
    });
    let promoted = at.elapsed();
    // The old primary comes back as a replica of the new one (so that
    // writes find the replica they wait for again).
    redis.restart_all();
    redis.wait_whole();
    let at = Instant::now();
    poll(
        Duration::from_secs(60),
        "writes to be acknowledged again",
        || {
            runtime.block_on(async {
                let channel = connect(&urls[0]).await;
                for index in 0..24 {
                    DecisionsClient::new(channel.clone())
                        .decide(decide_request(&format!("after-failover-{index}")))
                        .await
                        .map_err(|status| format!("{status:?}"))?;
                }
                Ok(())
            })
        },
    );
    let resumed = at.elapsed();
    std::thread::sleep(Duration::from_millis(1_000));
    let acks = stop_load(&runtime, &stop, tasks);
    let calls: usize = acks.iter().map(|ack| ack.calls).sum();
    let failures: Vec<&String> = acks.iter().flat_map(|ack| &ack.failures).collect();
    eprintln!(
        "failover: replica promoted {} ms after the kill, writes to every partition acknowledged {} ms after the restart of the old primary; {} of {calls} calls failed meanwhile",
        promoted.as_millis(),
        resumed.as_millis(),
        failures.len()
    );
    for failure in &failures {
        assert!(
            failure.contains("Unavailable") || failure.contains("unavailable"),
            "a call failed otherwise than UNAVAILABLE: {failure}"
        );
    }
    runtime.block_on(async {
        verify(&urls[1], &acks).await;
        // Events whose track failed are sent again, as a client does: each
        // event is then applied exactly once, whether or not its first
        // attempt was.
        let channel = connect(&urls[0]).await;
        for ack in &acks {
            let customers: BTreeSet<&String> =
                ack.events.keys().chain(ack.unanswered.keys()).collect();
            for who in customers {
                let unanswered = ack.unanswered.get(who).cloned().unwrap_or_default();
                for event_id in &unanswered {
                    poll_async(Duration::from_secs(10), || async {
                        EventsClient::new(channel.clone())
                            .track(login(who, event_id))
                            .await
                            .map_err(|status| format!("{status:?}"))
                    })
                    .await;
                }
                let profile = poll_async(Duration::from_secs(15), || async {
                    read_profile(&channel, who)
                        .await
                        .map_err(|status| format!("{status:?}"))
                })
                .await;
                let logins = profile
                    .counters
                    .iter()
                    .find(|counter| counter.name == "login")
                    .map_or(0, |counter| counter.last_1d as usize);
                let acknowledged = ack.events.get(who).map_or(0, Vec::len);
                assert_eq!(
                    logins,
                    acknowledged + unanswered.len(),
                    "{who}: every event applied once ({acknowledged} acknowledged, {} sent again)",
                    unanswered.len()
                );
            }
        }
    });
}

/// `tests/cluster/local.sh` running: stopped with SIGTERM (its trap stops
/// the nodes and Redis) when dropped, whatever the test's outcome.
struct Script(std::process::Child);

impl Script {
    /// Sends SIGTERM and waits up to 30 s; whether the script ended.
    fn terminate(&mut self) -> bool {
        if matches!(self.0.try_wait(), Ok(Some(_))) {
            return true;
        }
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
        false
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// The first of `count` consecutive loopback ports that are free now (with
/// their Redis Cluster bus ports, 10,000 up, when `bus`).
fn free_ports(count: u16, bus: bool) -> u16 {
    let bindable = |port: u16| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok();
    loop {
        let first = common::free_port();
        if first > 50_000 {
            continue;
        }
        if (first..first + count).all(|port| bindable(port) && (!bus || bindable(port + 10_000))) {
            return first;
        }
    }
}

#[test]
fn the_local_cluster_script_starts_three_nodes_that_answer_and_stops_them() {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    // The script needs what the Redis harness needs.
    if !redis::available() {
        return;
    }
    let dir = TempDir::new("local-cluster");
    let redis_port = free_ports(3, true);
    let nudge_port = free_ports(3, false);
    let metrics_port = free_ports(3, false);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/cluster/local.sh");
    let mut command = std::process::Command::new("bash");
    command.arg(script);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("NUDGE_") {
            command.env_remove(name);
        }
    }
    let child = command
        .env("NUDGE", env!("CARGO_BIN_EXE_nudge"))
        .env("CLUSTER_REDIS_PORT", redis_port.to_string())
        .env("CLUSTER_NUDGE_PORT", nudge_port.to_string())
        .env("CLUSTER_METRICS_PORT", metrics_port.to_string())
        .env("CLUSTER_DIR", dir.path())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run tests/cluster/local.sh");
    let mut script_process = Script(child);
    // Its output, line by line as it comes.
    let (lines, printed) = std::sync::mpsc::channel::<String>();
    let stdout = script_process.0.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        use std::io::BufRead as _;
        let mut all = String::new();
        for line in std::io::BufReader::new(stdout).lines() {
            let line = line.expect("the script's output");
            all.push_str(&line);
            all.push('\n');
            let _ = lines.send(line);
        }
        all
    });
    let stderr = common::drain(script_process.0.stderr.take());
    let ready_by = Instant::now() + Duration::from_secs(90);
    let ready = loop {
        match printed.recv_timeout(ready_by.saturating_duration_since(Instant::now())) {
            Ok(line) if line.starts_with("nudge cluster ready") => break true,
            Ok(_) => continue,
            Err(_) => break false,
        }
    };
    if !ready {
        drop(script_process);
        let out = reader.join().expect("stdout");
        let err = stderr.join().expect("stderr");
        panic!("the script did not report a ready cluster:\n{out}\n{err}");
    }
    // Every node answers, from the customer's owner.
    runtime().block_on(async {
        let mut owners = BTreeSet::new();
        for offset in 0..3 {
            let channel = connect(&format!("http://127.0.0.1:{}", nudge_port + offset)).await;
            let response = DecisionsClient::new(channel)
                .decide(decide_request("local-script-1"))
                .await
                .unwrap_or_else(|status| panic!("decide through node {offset}: {status}"));
            assert!(!response.get_ref().served.is_empty());
            owners.insert(owner_header(&response));
        }
        assert_eq!(owners.len(), 1, "one owner: {owners:?}");
    });
    // SIGTERM stops the nodes and Redis, and the script ends.
    assert!(
        script_process.terminate(),
        "the script ends within 30 s of SIGTERM"
    );
    let out = reader.join().expect("stdout");
    let err = stderr.join().expect("stderr");
    assert!(
        out.contains("nudge cluster ready") && out.contains("every partition is held"),
        "{out}\n{err}"
    );
    assert!(out.contains("stopping"), "{out}\n{err}");
    for port in [redis_port, nudge_port, nudge_port + 2] {
        poll(
            Duration::from_secs(10),
            "the script's processes to stop",
            || {
                std::net::TcpListener::bind(("127.0.0.1", port))
                    .map(drop)
                    .map_err(|error| format!("port {port}: {error}"))
            },
        );
    }
}
