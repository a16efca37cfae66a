//! `nudge-bench predictive`: send-time optimization measured on the
//! simulator (`nudge_service::simulate`), in process and deterministic for
//! a seed.
//!
//! **Send time.** `--customers` simulated customers (each with a timezone
//! and a true preferred hour) have their 30-day history applied to a
//! customer state on the demo catalog, exactly as the actor applies it:
//! the events its `[send_time]` names (`email_opened`, `login`) go on the
//! customer's engagement clock and the population's. Then, on each of
//! `--days` days, one email (`tips_newsletter_email`) goes to every
//! customer in two arms:
//!
//! - **fixed**: at 10:00 local, the usual campaign time;
//! - **best time**: at `send_time::suggest` from local midnight within 24
//!   hours: the customer's best open hour (email's quiet hours,
//!   21:00–08:00, always win).
//!
//! and, as the ceiling no system can beat, **oracle**: at the middle of the
//! customer's true preferred hour (inside the quiet hours too).
//!
//! Each send's open and click are sampled from the simulator's truth with
//! exactly their probabilities (each arm its own draws); the expected rates
//! (the truth's probabilities, no sampling noise) are reported beside.
//! The lift is best ÷ fixed − 1 with a 95 % confidence interval for a ratio
//! of two proportions (normal on the log ratio: Var = (1−p₁)/(n₁p₁) +
//! (1−p₂)/(n₂p₂); the arms are the same customers, so this is
//! conservative).
//!
//! **Churn score.** `--churn-customers` customers live `--rounds` days
//! after their history, in process (their day away from the product and
//! their sessions, no decisions): their event log, numbered as the service
//! numbers it (the history applied at the start, each round's events when
//! the round comes), goes through `nudge train --score churn_risk
//! --label-event subscription_cancelled --horizon 30d`'s code
//! (`nudge_training::score`, its default features), and the holdout AUC of
//! the trained model is the newest fifth of the cut-offs (time-ordered).
//! Beside it, the AUC on the same rows of the simulator's true daily
//! hazard as of each cut-off: the ranking no model of these events can
//! beat by much (a model well above it would mean a leak).
//!
//! The results go to stdout and `--out` (markdown).

use nudge_models::catalog::Catalog;
use nudge_models::customer::CustomerState;
use nudge_models::profile::Event;
use nudge_models::send_time::{Basis, PopulationClock, SendTime, record_engagement, suggest};
use nudge_models::time::{DAY_MS, Timestamp};
use nudge_service::simulate::truth::ActionRef;
use nudge_service::simulate::world::Customer;
use std::fmt::Write as _;
use std::path::PathBuf;

/// Flags of `nudge-bench predictive`.
#[derive(Debug, clap::Args)]
pub struct PredictiveArgs {
    /// Simulated customers.
    #[arg(long, default_value_t = 20_000)]
    customers: u64,
    /// Days on which every customer is sent one email in each arm.
    #[arg(long, default_value_t = 7)]
    days: u32,
    /// The simulator's seed.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Customers whose churn is simulated (0: skip the churn score).
    #[arg(long, default_value_t = 4_000)]
    churn_customers: u64,
    /// Days simulated after the history for the churn score.
    #[arg(long, default_value_t = 120)]
    rounds: u32,
    /// Where to write the results (markdown); stdout always gets them.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// 2026-11-23T00:00:00Z, a Monday: the simulation's start.
const START: i64 = 1_795_392_000_000;

/// The email every arm sends.
const EMAIL: ActionRef<'static> = ActionRef {
    id: "tips_newsletter_email",
    channel: "email",
    category: "education",
};

/// Sends, opens and clicks of one arm, sampled and expected.
#[derive(Debug, Default, Clone, Copy)]
struct Arm {
    sends: u64,
    opens: u64,
    clicks: u64,
    expected_opens: f64,
    expected_clicks: f64,
}

impl Arm {
    fn add(&mut self, customer: &Customer, send: u64, at: i64) {
        let response = customer.respond_to_send(EMAIL, at);
        let outcome = customer.send_outcome(send, EMAIL, response);
        self.sends += 1;
        self.opens += u64::from(outcome.impression.is_some());
        self.clicks += u64::from(outcome.click.is_some());
        self.expected_opens += response.seen;
        self.expected_clicks += response.click;
    }

    fn rate(count: u64, sends: u64) -> f64 {
        count as f64 / sends.max(1) as f64
    }
}

/// `treated ÷ control − 1` and its 95 % interval, from counts.
fn lift(treated: u64, control: u64, sends_treated: u64, sends_control: u64) -> (f64, f64, f64) {
    let p1 = Arm::rate(treated, sends_treated);
    let p2 = Arm::rate(control, sends_control);
    let ratio = p1 / p2;
    let variance =
        (1.0 - p1) / (sends_treated as f64 * p1) + (1.0 - p2) / (sends_control as f64 * p2);
    let half = 1.96 * variance.sqrt();
    let log_ratio = ratio.ln();
    (
        ratio - 1.0,
        (log_ratio - half).exp() - 1.0,
        (log_ratio + half).exp() - 1.0,
    )
}

/// One customer with their history applied as the actor applies it.
struct Simulated {
    customer: Customer,
    state: CustomerState,
}

fn simulate(catalog: &Catalog, args: &PredictiveArgs) -> (Vec<Simulated>, PopulationClock) {
    let mut population = PopulationClock::default();
    let mut simulated = Vec::with_capacity(args.customers as usize);
    for index in 0..args.customers {
        let mut customer = Customer::new(args.seed, "c", index, START);
        let mut state = CustomerState::default();
        for event in customer.history() {
            let applied = Event {
                event_id: event.event_id,
                name: event.name.to_owned(),
                timestamp: Timestamp(event.at),
                properties: event.properties,
            };
            state.track(&applied, Timestamp(START));
            let engages = catalog
                .send_time
                .as_ref()
                .is_some_and(|settings| settings.is_engagement(&applied.name));
            if engages {
                record_engagement(catalog, &mut state.profile, applied.timestamp);
            }
        }
        population.add(&state.profile.send_times);
        simulated.push(Simulated { customer, state });
    }
    (simulated, population)
}

/// Runs the bench and prints (and writes) its results.
pub async fn run(args: PredictiveArgs) -> anyhow::Result<()> {
    let catalog = Catalog::from_toml(nudge_models::demo::CATALOG_TOML)?;
    let email = catalog
        .action(EMAIL.id)
        .ok_or_else(|| anyhow::anyhow!("the demo catalog has no {}", EMAIL.id))?;
    let started = std::time::Instant::now();
    let (simulated, population) = simulate(&catalog, &args);
    let history_secs = started.elapsed().as_secs_f64();
    let mut fixed = Arm::default();
    let mut best = Arm::default();
    let mut oracle = Arm::default();
    let mut by_basis = [(Arm::default(), Arm::default()); 2];
    let mut within_an_hour = [0u64; 2];
    let mut suggested = [0u64; 2];
    let mut moved = 0u64;
    let suggest_started = std::time::Instant::now();
    for Simulated { customer, state } in &simulated {
        let zone = customer.timezone();
        for day in 0..args.days {
            let midnight = zone.next_at(START + i64::from(day) * DAY_MS, 0.0);
            let send = u64::from(day) * 3;
            let at_ten = zone.next_at(midnight, 10.0);
            fixed.add(customer, send, at_ten);
            let Some(SendTime {
                at,
                basis,
                placement,
                ..
            }) = suggest(
                &catalog,
                state,
                email,
                &population,
                Timestamp(midnight),
                None,
            )
            else {
                anyhow::bail!("no send time for {}", customer.id);
            };
            best.add(customer, send + 1, at.millis());
            let preferred = f64::from(customer.preferred_hour()) + 0.5;
            oracle.add(customer, send + 2, zone.next_at(midnight, preferred));
            let which = usize::from(basis == Basis::Population);
            by_basis[which].0.add(customer, send, at_ten);
            by_basis[which].1.add(customer, send + 1, at.millis());
            suggested[which] += 1;
            within_an_hour[which] += u64::from(customer.hours_from_preferred(at.millis()) <= 1.5);
            moved += u64::from(!matches!(
                placement,
                nudge_models::send_time::Placement::Best
            ));
        }
    }
    let suggest_secs = suggest_started.elapsed().as_secs_f64();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## Send time: best time vs a fixed 10:00 (seed {}, {} customers × {} days, demo catalog)\n",
        args.seed, args.customers, args.days
    );
    let _ = writeln!(out, "{}\n", crate::report::machine());
    let _ = writeln!(
        out,
        "| arm | sends | opens | open rate | expected open rate | clicks | click rate | expected click rate |\n|---|---|---|---|---|---|---|---|"
    );
    for (name, arm) in [
        ("fixed 10:00 local", fixed),
        ("best time (suggest)", best),
        ("oracle (true hour, ignores quiet hours)", oracle),
    ] {
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {:.4} | {:.4} | {} | {:.4} | {:.4} |",
            arm.sends,
            arm.opens,
            Arm::rate(arm.opens, arm.sends),
            arm.expected_opens / arm.sends as f64,
            arm.clicks,
            Arm::rate(arm.clicks, arm.sends),
            arm.expected_clicks / arm.sends as f64,
        );
    }
    let (open_lift, open_low, open_high) = lift(best.opens, fixed.opens, best.sends, fixed.sends);
    let (click_lift, click_low, click_high) =
        lift(best.clicks, fixed.clicks, best.sends, fixed.sends);
    let expected_lift = best.expected_opens / fixed.expected_opens - 1.0;
    let _ = writeln!(
        out,
        "\n**Open-rate lift, best time vs fixed: {:+.1} % (95 % CI {:+.1} % to {:+.1} %)**; expected (truth) {:+.1} %. Click-rate lift {:+.1} % ({:+.1} % to {:+.1} %).\n",
        100.0 * open_lift,
        100.0 * open_low,
        100.0 * open_high,
        100.0 * expected_lift,
        100.0 * click_lift,
        100.0 * click_low,
        100.0 * click_high,
    );
    let _ = writeln!(
        out,
        "| basis | sends | fixed open rate | best-time open rate | lift (95 % CI) | suggested within ±1 h of the true hour |\n|---|---|---|---|---|---|"
    );
    for (which, name) in [
        (0, "personal (enough history)"),
        (1, "population (thin history)"),
    ] {
        let (fixed_arm, best_arm) = by_basis[which];
        if best_arm.sends == 0 {
            continue;
        }
        let (value, low, high) = lift(
            best_arm.opens,
            fixed_arm.opens,
            best_arm.sends,
            fixed_arm.sends,
        );
        let _ = writeln!(
            out,
            "| {name} | {} | {:.4} | {:.4} | {:+.1} % ({:+.1} % to {:+.1} %) | {:.1} % |",
            best_arm.sends,
            Arm::rate(fixed_arm.opens, fixed_arm.sends),
            Arm::rate(best_arm.opens, best_arm.sends),
            100.0 * value,
            100.0 * low,
            100.0 * high,
            100.0 * within_an_hour[which] as f64 / suggested[which].max(1) as f64,
        );
    }
    let _ = writeln!(
        out,
        "\n{moved} of {} suggestions were moved by policy (email's quiet hours 21:00–08:00 local). History applied in {history_secs:.1} s; {} suggestions in {suggest_secs:.1} s ({:.1} µs each, a 24-hour search against caps, cooldowns, quiet hours and blackouts).",
        best.sends,
        best.sends,
        1e6 * suggest_secs / best.sends.max(1) as f64,
    );
    if args.churn_customers > 0 {
        churn(&args, &mut out)?;
    }
    print!("{out}");
    if let Some(path) = &args.out {
        std::fs::write(path, &out)?;
    }
    Ok(())
}

/// The churn score: the event log of simulated customers, trained as
/// `nudge train --score` trains, its holdout AUC appended to `out`.
fn churn(args: &PredictiveArgs, out: &mut String) -> anyhow::Result<()> {
    use nudge_models::features::FeatureSet;
    use nudge_models::log::EventRecord;
    use nudge_models::time::Span;
    use nudge_training::score::{ScoreOptions, dataset, default_features, examples};
    use nudge_training::{Silent, TrainOptions, train};
    use std::collections::HashMap;

    let started = std::time::Instant::now();
    let mut events = Vec::new();
    let mut cancellations = 0u64;
    // The true daily hazard as of each midnight: (customer, cut-off) → hazard.
    let mut hazards: HashMap<(String, i64), f64> = HashMap::new();
    for index in 0..args.churn_customers {
        let mut customer = Customer::new(args.seed, "churn", index, START);
        let mut ordinal = 0;
        let mut log = |event: nudge_service::simulate::world::SimEvent, received_at: i64| {
            ordinal += 1;
            events.push(EventRecord {
                customer_id: customer_id(index),
                ordinal,
                received_at: Timestamp(received_at),
                event: Event {
                    event_id: event.event_id,
                    name: event.name.to_owned(),
                    timestamp: Timestamp(event.at),
                    properties: event.properties,
                },
            });
        };
        for event in customer.history() {
            cancellations += u64::from(event.name == "subscription_cancelled");
            log(event, START);
        }
        hazards.insert((customer_id(index), START), customer.churn_hazard(START));
        for round in 1..=args.rounds {
            let now = START + i64::from(round) * DAY_MS;
            let mut day = customer.day(round, now);
            day.extend(customer.session(round, now).unwrap_or_default());
            for event in day {
                cancellations += u64::from(event.name == "subscription_cancelled");
                log(event, now);
            }
            hazards.insert((customer_id(index), now), customer.churn_hazard(now));
        }
    }
    let simulated_secs = started.elapsed().as_secs_f64();
    let options = ScoreOptions::new("churn_risk", "subscription_cancelled", Span::days(30));
    let specs = default_features(&events, &options);
    let features = FeatureSet::parse(&specs)?;
    let started = std::time::Instant::now();
    let (rows, summary) = dataset("simulator", &events, &features, &options, &mut Silent)?;
    let trained = train(&rows, &TrainOptions::new(chrono::Utc::now()), &mut Silent)?;
    let trained_secs = started.elapsed().as_secs_f64();
    let report = &trained.report;
    // The same rows, in the same (cut-off) order, with their customers.
    let (labelled, _) = examples("simulator", &events, &features, &options, &mut Silent)?;
    let holdout = &labelled[trained.split.holdout.clone()];
    let truth: Vec<f64> = holdout
        .iter()
        .map(|example| {
            hazards
                .get(&(example.customer.clone(), example.cut_off.millis()))
                .copied()
                .unwrap_or(0.0)
        })
        .collect();
    let labels: Vec<bool> = holdout.iter().map(|example| example.label).collect();
    let truth_auc = nudge_training::metrics::auc(&truth, &labels).unwrap_or(f64::NAN);
    let _ = writeln!(
        out,
        "\n## Churn score: `nudge train --score churn_risk --label-event subscription_cancelled --horizon 30d` on the simulator (seed {}, {} customers, {} days after their 30-day history)\n",
        args.seed, args.churn_customers, args.rounds
    );
    let _ = writeln!(
        out,
        "{} events, {cancellations} cancellations; {} rows (customer-days) labelled, {} positive; {} censored (horizon past the data), {} after a cancellation. {} default features.\n",
        events.len(),
        summary.rows,
        summary.positives,
        summary.censored,
        summary.excluded_after_label,
        features.len(),
    );
    let _ = writeln!(
        out,
        "| holdout (newest 20 % of cut-offs) | AUC | the true hazard's AUC | log loss | calibration error (ECE) | base rate | mean predicted |\n|---|---|---|---|---|---|---|\n| {} rows | **{:.4}** | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} |\n",
        report.rows.holdout,
        report.auc,
        truth_auc,
        report.log_loss,
        report.calibration_error,
        report.base_rate,
        report.mean_predicted,
    );
    let _ = writeln!(
        out,
        "Simulated in {simulated_secs:.1} s; labelled and trained in {trained_secs:.1} s (alpha {}).",
        report.alpha
    );
    Ok(())
}

/// A churn customer's id.
fn customer_id(index: u64) -> String {
    format!("churn-{index:05}")
}
