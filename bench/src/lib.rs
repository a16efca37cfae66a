//! Benches for nudge: how fast and how big it is on this machine.
//!
//! - [`load`] (`nudge-bench load`): the release server under open-loop load
//!   — a rate sweep to the knee of Decide and of an empty call on the same
//!   server, Zipf customers, durable events alongside, server CPU, memory and
//!   disk writes per call, a plot; `--smoke` is the correctness check CI runs;
//! - [`latency`]: sequential Decide latency, in-process and over loopback
//!   gRPC, on an in-memory store;
//! - [`storage`]: the durable store — event ingest with group commit, first
//!   calls to stored customers after a restart, `nudge serve` restart time on
//!   a large data directory, memory per live actor;
//! - [`journeys`]: journey timers at scale (lateness of a million waits,
//!   memory per wait, Decide while they fire) and dispatch throughput to
//!   one subscriber;
//! - [`predictive`]: send-time optimization on the simulator (the open-rate
//!   lift of best-time sends over fixed-time ones, with a confidence
//!   interval) and the churn score's AUC on a time-ordered holdout.
//!
//! Each prints a Markdown report (and writes its files where `--out` says;
//! the reports in `bench/results/` are made that way). [`report`] holds what
//! they share: histograms, table rows, the machine's description.

#![forbid(unsafe_code)]

pub mod journeys;
pub mod latency;
pub mod load;
pub mod predictive;
pub mod report;
pub mod storage;
