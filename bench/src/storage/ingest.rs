//! `nudge-bench ingest`: durable event ingest with group commit.
//!
//! The engine runs in-process on a [`RedbStore`] in a temporary data
//! directory. `--concurrency` tokio tasks each send one event per call, one
//! call at a time, to customers drawn at random from `--customers`, every
//! event with a unique id; a call returns once its write is durable (its
//! group commit fsynced). Before the measured events, every customer gets one
//! unmeasured event, so the measured calls hit live actors.
//!
//! Scenarios: `engine` calls [`Engine::track`] directly; `grpc` sends
//! `Events.Track` (unary, one event per call) over one loopback HTTP/2
//! connection to the same engine, with the same concurrency.
//!
//! Reported: events/s over the measured wall time; per-call acknowledgement
//! latency percentiles (HDR histogram); from the store's metrics ([`commits`]),
//! commits/s, writes per commit (the batch size) and commit durations.

use super::commits::{self, CommitStats};
use super::{DataDir, Random, customer_id, now};
use crate::report::{LATENCY_HEADER, machine, millis, new_histogram, record, row};
use hdrhistogram::Histogram;
use nudge_models::profile::Event;
use nudge_models::time::Timestamp;
use nudge_proto::v1::events_client::EventsClient;
use nudge_service::clock::SystemClock;
use nudge_service::config::Config;
use nudge_service::engine::Engine;
use nudge_service::store::{RedbStore, StoreOptions};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Flags of `nudge-bench ingest`.
#[derive(Debug, clap::Args)]
pub struct IngestArgs {
    /// Measured events per scenario (one event per call).
    #[arg(long, default_value_t = 200_000)]
    events: u64,
    /// Distinct customers the events are spread over.
    #[arg(long, default_value_t = 10_000)]
    customers: u64,
    /// Calls in flight (one tokio task each).
    #[arg(long, default_value_t = 128)]
    concurrency: u64,
    /// Which scenarios to run.
    #[arg(long, value_enum, default_value_t = Transport::Both)]
    transport: Transport,
    /// Concurrent `TrackStream` calls of the stream scenario.
    #[arg(long, default_value_t = 4)]
    streams: u64,
    /// Most writes per commit (`storage.max_batch_writes`).
    #[arg(long, default_value_t = StoreOptions::default().max_batch_writes)]
    max_batch_writes: usize,
    /// Data directory to use instead of a temporary one (kept afterwards).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Append the Markdown results to this file.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Which path events take into the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Transport {
    /// `Engine::track` in-process.
    Engine,
    /// `Events.Track` over loopback gRPC.
    Grpc,
    /// `Events.TrackStream` over loopback gRPC, `--streams` streams at once.
    Stream,
    /// All three, one after the other, on the same engine.
    Both,
}

/// One scenario's measurements.
struct Measured {
    latency: Histogram<u64>,
    wall: Duration,
    commits: u64,
    writes: u64,
    commit_durations: Histogram<u64>,
}

/// Runs the ingest bench.
pub async fn run(args: IngestArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.customers > 0 && args.concurrency > 0,
        "need customers and concurrency"
    );
    let commit_stats = commits::install()?;
    let dir = DataDir::new(args.data_dir.as_deref(), "ingest", false)?;
    let store = Arc::new(RedbStore::open(
        dir.path(),
        StoreOptions {
            max_batch_writes: args.max_batch_writes,
            ..StoreOptions::default()
        },
    )?);
    let mut config = Config::default();
    config.storage.data_dir = dir.path().to_owned();
    config.storage.max_batch_writes = args.max_batch_writes;
    config.actors.max_live_customers = config
        .actors
        .max_live_customers
        .max(args.customers as usize);
    let engine = Arc::new(nudge_service::start(
        config,
        store.clone(),
        Arc::new(SystemClock),
    )?);

    // Activate every customer (unmeasured).
    let warm = Instant::now();
    let sender = EngineSender(engine.clone());
    let next = Arc::new(AtomicU64::new(0));
    drive(&sender, &next, args.customers, args.concurrency, |index| {
        (index, format!("warm-{index}"))
    })
    .await?;
    println!(
        "activated {} customers in {:.1?}",
        args.customers,
        warm.elapsed()
    );

    let mut rows = Vec::new();
    let mut offset = 0u64;
    if matches!(args.transport, Transport::Engine | Transport::Both) {
        let measured = measure(&sender, &commit_stats, &args, offset).await?;
        rows.push(("engine: Engine::track in-process", measured));
        offset += args.events;
    }
    let mut server = None;
    let mut stream_rows = Vec::new();
    if matches!(
        args.transport,
        Transport::Grpc | Transport::Stream | Transport::Both
    ) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let serving = engine.clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            nudge_service::grpc::serve(listener, serving, async move {
                let _ = stopped.await;
            })
            .await
        });
        server = Some((stop, task));
        let channel = tonic::transport::Channel::from_shared(format!("http://{address}"))?
            .connect()
            .await?;
        let client = EventsClient::new(channel);
        if args.transport != Transport::Stream {
            let sender = GrpcSender(client.clone());
            let measured = measure(&sender, &commit_stats, &args, offset).await?;
            rows.push(("grpc: Events.Track unary, loopback", measured));
            offset += args.events;
        }
        if matches!(args.transport, Transport::Stream | Transport::Both) {
            let before = commit_stats.snapshot();
            let started = Instant::now();
            let mut tasks = tokio::task::JoinSet::new();
            let per_stream = args.events / args.streams.max(1);
            for stream in 0..args.streams.max(1) {
                let mut client = client.clone();
                let customers = args.customers;
                let first = offset + stream * per_stream;
                tasks.spawn(async move {
                    let events = (first..first + per_stream).map(move |index| {
                        let mut random = Random::new(index);
                        nudge_proto::v1::Event {
                            customer_id: customer_id(random.below(customers)),
                            event_id: format!("bench-{index}"),
                            name: NAMES[(index % NAMES.len() as u64) as usize].to_owned(),
                            timestamp: None,
                            properties: Default::default(),
                        }
                    });
                    let summary = client
                        .track_stream(tokio_stream::iter(events))
                        .await?
                        .into_inner();
                    anyhow::Ok(summary.accepted)
                });
            }
            let mut accepted = 0;
            while let Some(result) = tasks.join_next().await {
                accepted += result??;
            }
            let wall = started.elapsed();
            let (commits, writes, durations) = commit_stats.snapshot().since(&before);
            stream_rows.push((accepted, wall, commits, writes, durations));
        }
    }
    if let Some((stop, task)) = server {
        let _ = stop.send(());
        task.await??;
    }
    engine.shutdown(Duration::from_secs(10)).await;
    let file_bytes = dir.data_file_bytes();
    drop(engine);
    store.close()?;

    let mut report = String::new();
    writeln!(
        report,
        "nudge-bench ingest: {} events per scenario, one event per call, {} calls in flight, over {} live customers \
         (each activated by one unmeasured event first), unique event ids, max_batch_writes {}, durable (fsync per commit); \
         data file {} MiB at the end; {}\n",
        args.events,
        args.concurrency,
        args.customers,
        args.max_batch_writes,
        super::mib(file_bytes),
        machine(),
    )?;
    if !rows.is_empty() {
        writeln!(report, "{LATENCY_HEADER}")?;
        for (name, measured) in &rows {
            writeln!(report, "{}", row(name, &measured.latency, measured.wall))?;
        }
        writeln!(report)?;
        writeln!(
            report,
            "| scenario | events/s | vs target 20,000/s | ack p99 ms | vs target 10 ms | commits/s | writes per commit (mean) | commit p50 ms | commit p99 ms |"
        )?;
        writeln!(report, "|---|---|---|---|---|---|---|---|---|")?;
        for (name, measured) in &rows {
            let seconds = measured.wall.as_secs_f64();
            let rate = measured.latency.len() as f64 / seconds;
            let p99 = measured.latency.value_at_quantile(0.99);
            writeln!(
                report,
                "| {name} | {rate:.0} | {:.2}× | {} | {:.2}× | {:.0} | {:.1} | {} | {} |",
                rate / 20_000.0,
                millis(p99),
                p99 as f64 / 10_000.0,
                measured.commits as f64 / seconds,
                measured.writes as f64 / measured.commits.max(1) as f64,
                millis(measured.commit_durations.value_at_quantile(0.50)),
                millis(measured.commit_durations.value_at_quantile(0.99)),
            )?;
        }
    }
    for (accepted, wall, commits, writes, durations) in &stream_rows {
        let seconds = wall.as_secs_f64();
        writeln!(report)?;
        writeln!(
            report,
            "| scenario | events acknowledged | events/s | vs target 20,000/s | commits/s | writes per commit (mean) | commit p99 ms |"
        )?;
        writeln!(report, "|---|---|---|---|---|---|---|")?;
        writeln!(
            report,
            "| grpc: Events.TrackStream, {} streams, loopback | {accepted} | {:.0} | {:.2}× | {:.0} | {:.1} | {} |",
            args.streams,
            *accepted as f64 / seconds,
            *accepted as f64 / seconds / 20_000.0,
            *commits as f64 / seconds,
            *writes as f64 / (*commits).max(1) as f64,
            millis(durations.value_at_quantile(0.99)),
        )?;
    }
    crate::report::emit(&report, args.out.as_deref())?;
    Ok(())
}

/// Measures `args.events` calls through `sender`, event ids numbered from
/// `offset` so they never repeat.
async fn measure<S: Sender>(
    sender: &S,
    commit_stats: &CommitStats,
    args: &IngestArgs,
    offset: u64,
) -> anyhow::Result<Measured> {
    let before = commit_stats.snapshot();
    let next = Arc::new(AtomicU64::new(0));
    let customers = args.customers;
    let started = Instant::now();
    let latency = drive(sender, &next, args.events, args.concurrency, move |index| {
        let mut random = Random::new(offset + index);
        (random.below(customers), format!("bench-{}", offset + index))
    })
    .await?;
    let wall = started.elapsed();
    let (commits, writes, commit_durations) = commit_stats.snapshot().since(&before);
    Ok(Measured {
        latency,
        wall,
        commits,
        writes,
        commit_durations,
    })
}

/// Sends `total` events from `concurrency` tasks; `pick(index)` gives the
/// customer and event id of the `index`th. Returns the merged latencies.
async fn drive<S: Sender>(
    sender: &S,
    next: &Arc<AtomicU64>,
    total: u64,
    concurrency: u64,
    pick: impl Fn(u64) -> (u64, String) + Send + Sync + Copy + 'static,
) -> anyhow::Result<Histogram<u64>> {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let sender = sender.clone();
        let next = next.clone();
        tasks.spawn(async move {
            let mut histogram = new_histogram()?;
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= total {
                    return anyhow::Ok(histogram);
                }
                let (customer, event_id) = pick(index);
                let call = Instant::now();
                sender.send(customer, event_id, index).await?;
                record(&mut histogram, call);
            }
        });
    }
    let mut merged = new_histogram()?;
    while let Some(histogram) = tasks.join_next().await {
        merged.add(histogram??)?;
    }
    Ok(merged)
}

/// The event names measured calls cycle through.
const NAMES: [&str; 4] = ["page_view", "login", "feature_activated", "report_created"];

/// Sends one event and waits for its acknowledgement.
trait Sender: Clone + Send + Sync + 'static {
    fn send(
        &self,
        customer: u64,
        event_id: String,
        index: u64,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// Through [`Engine::track`].
#[derive(Clone)]
struct EngineSender(Arc<Engine>);

impl Sender for EngineSender {
    async fn send(&self, customer: u64, event_id: String, index: u64) -> anyhow::Result<()> {
        let mut properties = std::collections::BTreeMap::new();
        properties.insert(
            "path".to_owned(),
            nudge_models::value::AttrValue::Str(format!("/app/page/{}", index % 7)),
        );
        let event = Event {
            event_id,
            name: NAMES[(index % NAMES.len() as u64) as usize].to_owned(),
            timestamp: Timestamp::from_millis(now().millis()),
            properties,
        };
        self.0.track(&customer_id(customer), vec![event]).await?;
        Ok(())
    }
}

/// Through `Events.Track` on one gRPC channel.
#[derive(Clone)]
struct GrpcSender(EventsClient<tonic::transport::Channel>);

impl Sender for GrpcSender {
    async fn send(&self, customer: u64, event_id: String, index: u64) -> anyhow::Result<()> {
        let mut properties = std::collections::HashMap::new();
        properties.insert(
            "path".to_owned(),
            nudge_proto::v1::Value {
                kind: Some(nudge_proto::v1::value::Kind::StringValue(format!(
                    "/app/page/{}",
                    index % 7
                ))),
            },
        );
        let event = nudge_proto::v1::Event {
            customer_id: customer_id(customer),
            event_id,
            name: NAMES[(index % NAMES.len() as u64) as usize].to_owned(),
            timestamp: None,
            properties,
        };
        self.0.clone().track(event).await?;
        Ok(())
    }
}
