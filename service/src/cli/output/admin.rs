//! Text for the admin command `reload` (`stats` has its own dashboard module).

use std::path::Path;

use nudge_proto::v1::ReloadCatalogResponse;

use super::or_dash;

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
    use nudge_proto::v1::CatalogSummary;

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
