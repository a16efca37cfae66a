//! The embedded demo: a B2B SaaS trial, retention and expansion scenario that
//! `nudge serve` starts on when given no catalog or model.

/// The demo catalog (TOML).
pub const CATALOG_TOML: &str = include_str!("../demo/catalog.toml");
/// The demo model artifact (JSON): trained by the learning loop on the
/// simulator (`models/demo/regenerate.sh`, see `models/demo/README.md`).
pub const MODEL_JSON: &str = include_str!("../demo/model.json");
/// The version of [`MODEL_JSON`], as decisions, the decision log and the
/// registry name it.
pub const MODEL_VERSION: &str = "demo-2026-12";
