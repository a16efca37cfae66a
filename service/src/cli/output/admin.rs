//! Text for the admin commands `reload` and `export` (`stats` has its own
//! dashboard module).

use std::path::Path;

use nudge_proto::v1::ReloadCatalogResponse;

use super::{or_dash, plural};
use crate::cli::export::ExportSummary;

/// How many decisions and rows an export wrote, and where.
pub fn export(summary: &ExportSummary) -> String {
    if let Some(events) = summary.events {
        return format!(
            "wrote {} to {}",
            plural(events, "event"),
            summary.path.display()
        );
    }
    format!(
        "wrote {} ({}) to {}",
        plural(summary.decisions, "decision"),
        plural(summary.rows, "row"),
        summary.path.display()
    )
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::export::ExportFormat;
    use nudge_proto::v1::CatalogSummary;

    #[test]
    fn export_counts_decisions_and_rows() {
        let summary = ExportSummary {
            path: "decisions.parquet".into(),
            format: ExportFormat::Parquet,
            decisions: 1_204,
            events: None,
            rows: 1,
        };
        assert_eq!(
            export(&summary),
            "wrote 1204 decisions (1 row) to decisions.parquet"
        );
    }

    #[test]
    fn reload_names_the_file_and_both_versions() {
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
    }
}
