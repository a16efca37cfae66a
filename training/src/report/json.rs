//! `report.json`: the [`Report`] as pretty JSON.

use super::Report;
use crate::Error;

/// The report as pretty-printed JSON, ending in a newline.
pub fn to_json(report: &Report) -> Result<String, Error> {
    let mut text = serde_json::to_string_pretty(report)?;
    text.push('\n');
    Ok(text)
}
