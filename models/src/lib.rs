//! nudge's decision domain: pure, synchronous logic shared by the service and the
//! training jobs. No async, no I/O, no wire types: every function that depends on
//! time takes `now`.
//!
//! - [`time`]: instants and the catalog's duration syntax.
//! - [`value`]: typed scalars of events, context and attributes.
//! - [`profile`]: the live profile built from events (windowed counters, recency,
//!   attributes, engagement) and its view for CEL rules.
//! - [`ledger`]: the contact ledger that caps and cooldowns count from.
//! - [`customer`]: one customer's whole state and every change to it.
//! - [`delta`]: the small change between two states of one customer, and
//!   applying it (what a store journals instead of the whole state).
//! - [`log`]: the decision log's typed records (decisions, outcomes, applied
//!   events) and the join that turns them into training rows.
//! - [`replay`]: a customer's profile as it was at a logged decision,
//!   rebuilt from the event log (point-in-time features for training).
//! - [`scores`]: predictive profile scores (formulas, models, lifetime
//!   value) and tiers, declared in the catalog and kept on the profile.
//! - [`action`]: one catalog action, as features, rules and the pipeline
//!   read it.
//! - [`catalog`]: actions, channels, placements and policy from the TOML file,
//!   validated with field-and-line errors; CEL rules compiled once.
//! - [`experiment`]: which model serves which customer: variants with
//!   shares, hashed assignment, promotion and rollback.
//! - [`journey`]: multi-step journeys declared in the catalog: their
//!   definitions, the engine that moves one customer's runs through them
//!   (entry rules, waits, sends, branches, goals and exits), pure like the
//!   pipeline.
//! - [`hash`]: 64-bit FNV-1a, the stable hash of fingerprints, buckets and seeds.
//! - [`guardrail`]: the live guardrail's sequential test of a variant's
//!   conversion rate against the control's (mSPRT, always valid).
//! - [`features`]: feature specs and extraction (the same code at training time).
//! - [`model`]: the versioned logistic-regression artifact and scoring.
//! - [`pipeline`]: the decision pipeline — filters, scoring, arbitration, rationale
//!   — and its stages one at a time ([`pipeline::stages`], for the benches).
//! - `rule_vars`: the lazy `profile`, `context` and `action` views CEL rules read.
//! - [`send_time`]: send-time optimization for outbound channels: each
//!   customer's engagement by local hour of week, shrunk toward the
//!   population's pattern, and the best open moment within a window.
//! - [`budget`]: global per-action budgets shared across customers.
//! - [`cluster`]: ownership across nodes: customers in partitions, partitions
//!   placed on nodes by rendezvous hashing, leases with fencing tokens.
//! - [`demo`]: the embedded demo catalog and model.
//! - [`synthetic`]: a generated 50-action × 64-feature catalog, model and
//!   customer that the pipeline benches and the load bench share.

#![forbid(unsafe_code)]

pub mod action;
pub mod budget;
pub mod catalog;
pub mod cluster;
pub mod customer;
pub mod delta;
pub mod demo;
mod error;
pub mod experiment;
pub mod features;
pub mod guardrail;
pub mod hash;
pub mod journey;
pub mod ledger;
pub mod log;
pub mod model;
pub mod pipeline;
pub mod profile;
pub mod replay;
mod rule_vars;
pub mod scores;
pub mod send_time;
pub mod small_map;
pub mod synthetic;
pub mod time;
pub mod value;

pub use error::Error;
