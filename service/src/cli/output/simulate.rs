//! Text for `nudge simulate`: what was simulated, then the tallies per
//! placement, per model version and variant, and per action.

use super::{Align::Left, Align::Right, or_dash, plural, table};
use crate::cli::names::count_text;
use crate::cli::simulate::Run;
use crate::simulate::Tally;

/// A rate as a percentage with two decimals, `-` when undefined.
fn percent(rate: Option<f64>) -> String {
    rate.map_or_else(|| "-".to_owned(), |rate| format!("{:.2} %", 100.0 * rate))
}

/// The counts and rates of one tally, after its name cells.
fn cells(tally: &Tally) -> Vec<String> {
    vec![
        count_text(tally.decisions),
        count_text(tally.served),
        count_text(tally.impressions),
        count_text(tally.clicks),
        count_text(tally.conversions),
        percent(tally.observed_conversion_rate()),
        percent(tally.true_reward()),
        number(tally.true_value_per_served()),
    ]
}

/// A number with three decimals, `-` when undefined.
fn number(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |value| format!("{value:.3}"))
}

/// The columns after the name columns.
const COLUMNS: [(&str, super::Align); 8] = [
    ("DECISIONS", Right),
    ("SERVED", Right),
    ("IMPRESSIONS", Right),
    ("CLICKS", Right),
    ("CONVERSIONS", Right),
    ("OBSERVED", Right),
    ("TRUE REWARD", Right),
    ("TRUE VALUE", Right),
];

/// The summary of a finished simulation against `server`.
pub fn simulate(run: &Run, server: &str) -> String {
    let s = &run.summary;
    let last = s.customers.saturating_sub(1);
    let mut lines = vec![
        format!(
            "Simulated {} ({p}-00000 … {p}-{last:05}, seed {}) for {} against {server} in {:.1} s.",
            plural(s.customers, "customer"),
            run.seed,
            plural(u64::from(s.rounds), "round"),
            run.elapsed.as_secs_f64(),
            p = run.prefix,
        ),
        format!(
            "{}; events sent: {} history, {} in sessions, {} between them, {} from conversions{}.",
            plural(s.visits, "visit"),
            count_text(s.events.history),
            count_text(s.events.sessions),
            count_text(s.events.daily),
            count_text(s.events.effects),
            if s.events.duplicates > 0 {
                format!(
                    " ({} already applied: these customers were simulated before)",
                    count_text(s.events.duplicates)
                )
            } else {
                String::new()
            }
        ),
    ];
    if s.errors.retried > 0 {
        lines.push(format!(
            "The server shed load: {} retried with backoff.",
            plural(s.errors.retried, "call")
        ));
    }
    if s.errors.total() > 0 {
        lines.push(format!(
            "{} failed: {} events, {} decisions, {} outcomes; the first: {}",
            plural(s.errors.total(), "call"),
            s.errors.events,
            s.errors.decisions,
            s.errors.outcomes,
            s.errors.first.as_deref().unwrap_or("-"),
        ));
    }
    lines.push(String::new());
    let mut headers = vec![("PLACEMENT", Left)];
    headers.extend(COLUMNS);
    let mut rows: Vec<Vec<String>> = s
        .placements
        .iter()
        .map(|(placement, tally)| {
            let mut row = vec![placement.clone()];
            row.extend(cells(tally));
            row
        })
        .collect();
    let mut all = vec!["all".to_owned()];
    all.extend(cells(&s.overall));
    rows.push(all);
    lines.extend(table(&headers, &rows, ""));
    lines.push(String::new());
    let headers = [
        ("FIRST SLOT", Left),
        ("TRUE REWARD", Right),
        ("BEST ELIGIBLE", Right),
        ("TRUE P·V·L·C", Right),
        ("BEST P·V·L·C", Right),
    ];
    let first_slot = |name: &str, tally: &Tally| {
        vec![
            name.to_owned(),
            percent(tally.first_slot_reward()),
            percent(tally.best_eligible_reward()),
            number(tally.true_priority()),
            number(tally.best_priority()),
        ]
    };
    let mut rows: Vec<Vec<String>> = s
        .placements
        .iter()
        .map(|(placement, tally)| first_slot(placement, tally))
        .collect();
    rows.push(first_slot("all", &s.overall));
    lines.extend(table(&headers, &rows, ""));
    lines.push(String::new());
    let mut headers = vec![("MODEL", Left), ("VARIANT", Left)];
    headers.extend(COLUMNS);
    headers.push(("FALLBACKS", Right));
    let rows: Vec<Vec<String>> = s
        .models
        .iter()
        .map(|((model, variant), tally)| {
            let mut row = vec![or_dash(model).to_owned(), variant.clone()];
            row.extend(cells(tally));
            row.push(count_text(tally.fallbacks));
            row
        })
        .collect();
    lines.extend(table(&headers, &rows, ""));
    lines.push(String::new());
    let headers = [
        ("ACTION", Left),
        ("SERVED", Right),
        ("CONVERSIONS", Right),
        ("OBSERVED", Right),
        ("TRUE REWARD", Right),
    ];
    let mut actions: Vec<_> = s.actions.iter().collect();
    actions.sort_by(|a, b| b.1.served.cmp(&a.1.served).then(a.0.cmp(b.0)));
    let rows: Vec<Vec<String>> = actions
        .into_iter()
        .map(|(action, tally)| {
            vec![
                action.clone(),
                count_text(tally.served),
                count_text(tally.conversions),
                percent(tally.observed_conversion_rate()),
                percent(tally.true_reward()),
            ]
        })
        .collect();
    lines.extend(table(&headers, &rows, ""));
    lines.push(String::new());
    lines.push(
        "True reward: the mean true conversion probability of what was served (the world's ground \
truth, not the sampled outcomes); true value: the mean true probability × the action's value. \
First slot: its true reward against the best true probability among the actions that competed \
for it (served, ranked below the limit or left out for diversity), and its true P·V·L·C (the \
true probability × the action's V·L·C in the decision) against the best one: what ranking by \
P·V·L·C with the true probabilities would have had."
            .to_owned(),
    );
    lines.join("\n")
}
