//! Text for the admin commands: `reload` and `stats`.

use std::path::Path;

use nudge_proto::v1::{ReloadCatalogResponse, StatsResponse};

use super::Align::{Left, Right};
use super::{or_dash, table};
use crate::cli::names::{count_text, duration_text};

/// The catalog now running and the version it replaced. `source` is the file
/// sent, `None` if the server re-read its own file.
pub fn reload(source: Option<&Path>, r: &ReloadCatalogResponse) -> String {
    let from = source.map_or_else(
        || "re-read by the server from its own file".to_owned(),
        |path| format!("loaded from {}", path.display()),
    );
    match &r.summary {
        Some(s) => format!(
            "Catalog {from}: version {} (was {}).\n  {} actions, {} placements, {} channels, {} caps",
            or_dash(&s.version),
            or_dash(&r.previous_version),
            s.actions,
            s.placements,
            s.channels,
            s.caps
        ),
        None => format!(
            "Catalog {from} (was version {}).",
            or_dash(&r.previous_version)
        ),
    }
}

/// Counters and gauges of the running service, then candidates filtered by
/// reason and actions served.
pub fn stats(r: &StatsResponse) -> String {
    let mut out = vec![format!(
        "nudge server up {}",
        duration_text(r.uptime_seconds, 2)
    )];
    let rows = vec![
        vec!["catalog".to_owned(), or_dash(&r.catalog_version).to_owned()],
        vec!["model".to_owned(), or_dash(&r.model_version).to_owned()],
        vec![
            "live customers".to_owned(),
            format!(
                "{} (activations {}, passivations {})",
                count_text(r.live_customers),
                count_text(r.activations),
                count_text(r.passivations)
            ),
        ],
        vec![
            "decisions".to_owned(),
            format!(
                "{} (fallbacks {})",
                count_text(r.decisions),
                count_text(r.fallbacks)
            ),
        ],
        vec![
            "events".to_owned(),
            format!(
                "{} (duplicates {})",
                count_text(r.events),
                count_text(r.duplicate_events)
            ),
        ],
        vec!["outcomes".to_owned(), count_text(r.outcomes)],
        vec![
            "rejected requests".to_owned(),
            count_text(r.rejected_requests),
        ],
    ];
    // Skip the header line: these are labelled values, not a table.
    out.extend(
        table(&[("", Left), ("", Left)], &rows, "  ")
            .into_iter()
            .skip(1),
    );

    out.push(String::new());
    if r.filtered.is_empty() {
        out.push("Filtered: none".to_owned());
    } else {
        out.push("Filtered by reason".to_owned());
        let rows: Vec<Vec<String>> = r
            .filtered
            .iter()
            .map(|f| vec![f.reason.clone(), count_text(f.count)])
            .collect();
        out.extend(table(&[("REASON", Left), ("COUNT", Right)], &rows, "  "));
    }

    out.push(String::new());
    if r.served.is_empty() {
        out.push("Served: none".to_owned());
    } else {
        out.push("Served actions".to_owned());
        let rows: Vec<Vec<String>> = r
            .served
            .iter()
            .map(|a| vec![a.action_id.clone(), count_text(a.count)])
            .collect();
        out.extend(table(&[("ACTION", Left), ("COUNT", Right)], &rows, "  "));
    }
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use nudge_proto::v1::{ActionCount, CatalogSummary, ReasonCountTotal};

    #[test]
    fn reload_and_stats() {
        let text = reload(
            Some(Path::new("catalog.toml")),
            &ReloadCatalogResponse {
                summary: Some(CatalogSummary {
                    version: "v2".into(),
                    actions: 12,
                    placements: 3,
                    channels: 4,
                    caps: 6,
                }),
                previous_version: "v1".into(),
            },
        );
        assert!(
            text.contains("loaded from catalog.toml: version v2 (was v1)"),
            "{text}"
        );
        assert!(
            text.contains("12 actions, 3 placements, 4 channels, 6 caps"),
            "{text}"
        );

        let text = stats(&StatsResponse {
            uptime_seconds: 11_530,
            live_customers: 1_234,
            decisions: 10_000,
            fallbacks: 2,
            filtered: vec![ReasonCountTotal {
                reason: "cap_channel".into(),
                count: 5,
            }],
            served: vec![ActionCount {
                action_id: "upgrade_banner".into(),
                count: 3_000,
            }],
            catalog_version: "v2".into(),
            ..Default::default()
        });
        for needle in [
            "up 3h 12m",
            "1,234",
            "10,000 (fallbacks 2)",
            "cap_channel",
            "upgrade_banner",
            "3,000",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
    }
}
