//! A CSV of customer rows → a [`Dataset`]: one row per customer (or per
//! customer and action), a binary label column, and every other column a
//! customer attribute that becomes features the service computes the same
//! way at serving time.
//!
//! - `mod.rs`: reading — the header and the roles of its columns, each row
//!   checked (field count, label, time, action, NaN/inf cells) with its line,
//!   rows put in time order.
//! - `encode.rs`: the feature columns typed and encoded on the rows before
//!   the holdout — numeric and boolean as `attr(NAME)`, categorical as
//!   `is(NAME,LEVEL)` per kept level plus `is_none_of(NAME,…)` — and the
//!   per-action bias `action(ID)`.
//!
//! Nothing is skipped silently: a bad row is an error naming its line and
//! column.

mod encode;

use crate::dataset::{ColumnKind, ColumnSummary, Dataset};
use crate::progress::{Event, Progress};
use crate::{Error, split};
use nudge_models::features::{FeatureSpec, Term};
use std::path::Path;

/// Rows between two "rows read" progress events.
const PROGRESS_EVERY: u64 = 100_000;

/// How to read a CSV: which columns play which role, and how categorical
/// columns are encoded.
#[derive(Debug, Clone)]
pub struct CsvOptions {
    /// The binary outcome column (0/1, true/false or yes/no).
    pub label: String,
    /// A row identifier column, not a feature.
    pub id: Option<String>,
    /// A time column (RFC 3339, or integer seconds since the epoch) that
    /// orders the rows; without it the file's order is the time order.
    pub time: Option<String>,
    /// The action id of each row: each action gets a bias feature
    /// `action(ID)`, and the report per-action metrics.
    pub action: Option<String>,
    /// Columns left out entirely.
    pub ignore: Vec<String>,
    /// Most levels of a categorical column kept as their own feature; the
    /// rest share the "other" bucket.
    pub max_levels: usize,
    /// Fewest fitting rows a level needs to be kept.
    pub min_level_count: usize,
    /// The holdout fraction: column types and levels are learned from the
    /// rows before it only.
    pub holdout: f64,
}

impl CsvOptions {
    /// Options for `label` with the defaults: 20 levels of at least 5 rows,
    /// a 20 % holdout.
    pub fn new(label: &str) -> Self {
        Self {
            label: label.to_owned(),
            id: None,
            time: None,
            action: None,
            ignore: Vec::new(),
            max_levels: 20,
            min_level_count: 5,
            holdout: 0.2,
        }
    }
}

/// One data row as read: its line, its label, time and action, and its
/// feature cells (in feature-column order, trimmed), each also parsed as a
/// number once.
#[derive(Debug)]
struct Row {
    line: u64,
    label: bool,
    time: Option<i64>,
    action: Option<String>,
    /// One record rather than a string per cell: two allocations per row.
    cells: ::csv::StringRecord,
    /// Each cell as a (finite) number, NaN when it is not one (or empty):
    /// encoding reads these instead of parsing every cell again.
    numbers: Vec<f64>,
}

impl Row {
    /// The feature cell at `index` (empty if missing, which reading rules out).
    fn cell(&self, index: usize) -> &str {
        self.cells.get(index).unwrap_or_default()
    }

    /// The feature cell at `index` as a number, NaN when it is not one.
    fn number(&self, index: usize) -> f64 {
        self.numbers.get(index).copied().unwrap_or(f64::NAN)
    }
}

/// The columns' roles, by position in the header.
#[derive(Debug)]
struct Roles {
    label: usize,
    time: Option<usize>,
    action: Option<usize>,
    /// Positions of the feature columns.
    features: Vec<usize>,
    /// Every column's summary, features' filled in by encoding.
    columns: Vec<ColumnSummary>,
}

/// Reads the CSV file at `path`.
pub fn read_path(
    path: &Path,
    options: &CsvOptions,
    progress: &mut dyn Progress,
) -> Result<Dataset, Error> {
    let file = std::fs::File::open(path).map_err(|source| Error::Io {
        action: "cannot read",
        path: path.to_owned(),
        source,
    })?;
    let name = path.display().to_string();
    read(std::io::BufReader::new(file), &name, options, progress)
}

/// Reads a CSV from `reader`; `name` names it in errors and the report.
pub fn read<R: std::io::Read>(
    reader: R,
    name: &str,
    options: &CsvOptions,
    progress: &mut dyn Progress,
) -> Result<Dataset, Error> {
    split::check_fraction("--holdout", options.holdout)?;
    if options.max_levels == 0 {
        return Err(Error::BadOption {
            option: "--max-levels",
            value: "0".to_owned(),
            reason: "must be at least 1",
        });
    }
    let mut csv = ::csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(reader);
    let csv_error = |error: ::csv::Error| Error::Csv {
        file: name.to_owned(),
        line: error.position().map_or(1, ::csv::Position::line),
        reason: error.to_string(),
    };
    let header: Vec<String> = csv
        .headers()
        .map_err(csv_error)?
        .iter()
        .map(str::to_owned)
        .collect();
    if header.iter().all(|column| column.trim().is_empty()) {
        return Err(Error::Empty {
            file: name.to_owned(),
            reason: "the file is empty: no header line",
        });
    }
    let roles = roles(name, &header, options)?;
    let mut rows = Vec::new();
    let mut record = ::csv::StringRecord::new();
    while csv.read_record(&mut record).map_err(csv_error)? {
        let line = record.position().map_or(0, ::csv::Position::line);
        rows.push(row(name, &header, &roles, &record, line)?);
        if (rows.len() as u64).is_multiple_of(PROGRESS_EVERY) {
            progress.report(&Event::RowsRead {
                rows: rows.len() as u64,
            });
        }
    }
    if rows.is_empty() {
        return Err(Error::Empty {
            file: name.to_owned(),
            reason: "the file has a header but no data row",
        });
    }
    progress.report(&Event::RowsRead {
        rows: rows.len() as u64,
    });
    // Stable: equal times keep the file's order.
    if roles.time.is_some() {
        rows.sort_by_key(|row| row.time);
    }
    let fitting = split::fitting_rows(rows.len(), options.holdout);
    encode::encode(name, &header, roles, rows, fitting, options)
}

/// The role of every header column; the named ones must exist, and every
/// feature column's name must be writable as a customer attribute.
fn roles(file: &str, header: &[String], options: &CsvOptions) -> Result<Roles, Error> {
    for (position, column) in header.iter().enumerate() {
        if header[..position].contains(column) {
            return Err(Error::BadColumn {
                file: file.to_owned(),
                column: column.clone(),
                reason: "appears twice in the header".to_owned(),
            });
        }
    }
    let find = |column: &str, role: &'static str| {
        header
            .iter()
            .position(|name| name == column)
            .ok_or_else(|| Error::MissingColumn {
                file: file.to_owned(),
                column: column.to_owned(),
                role,
                header: header.join(", "),
            })
    };
    let label = find(&options.label, "label")?;
    let id = options.id.as_deref().map(|c| find(c, "id")).transpose()?;
    let time = options
        .time
        .as_deref()
        .map(|c| find(c, "time"))
        .transpose()?;
    let action = options
        .action
        .as_deref()
        .map(|c| find(c, "action"))
        .transpose()?;
    let ignored = options
        .ignore
        .iter()
        .map(|c| find(c, "ignored"))
        .collect::<Result<Vec<_>, _>>()?;
    let named = [
        (Some(label), "label"),
        (id, "id"),
        (time, "time"),
        (action, "action"),
    ];
    for (position, (first, first_role)) in named.iter().enumerate() {
        for (second, second_role) in &named[position + 1..] {
            if first.is_some() && first == second {
                return Err(Error::BadColumn {
                    file: file.to_owned(),
                    column: header[first.unwrap_or_default()].clone(),
                    reason: format!(
                        "is named as both the {first_role} and the {second_role} column"
                    ),
                });
            }
        }
    }
    let mut features = Vec::new();
    let mut columns = Vec::new();
    for (position, name) in header.iter().enumerate() {
        let kind = if position == label {
            ColumnKind::Label
        } else if Some(position) == id {
            ColumnKind::Id
        } else if Some(position) == time {
            ColumnKind::Time
        } else if Some(position) == action {
            ColumnKind::Action
        } else if ignored.contains(&position) {
            ColumnKind::Ignored
        } else {
            if !is_attribute_name(name) {
                return Err(Error::BadColumn {
                    file: file.to_owned(),
                    column: name.clone(),
                    reason: "cannot be a customer attribute in a feature spec (it must be non-empty, without spaces around it and without , * or |): rename it, or leave it out with --ignore".to_owned(),
                });
            }
            features.push(position);
            ColumnKind::Numeric
        };
        columns.push(ColumnSummary {
            name: name.clone(),
            kind,
            missing: 0,
            levels: Vec::new(),
            other_levels: None,
            features: Vec::new(),
        });
    }
    if features.is_empty() {
        return Err(Error::NoFeatures {
            file: file.to_owned(),
        });
    }
    Ok(Roles {
        label,
        time,
        action,
        features,
        columns,
    })
}

/// Whether `name` can be written as the attribute of `attr(NAME)` and read
/// back unchanged.
fn is_attribute_name(name: &str) -> bool {
    !name.contains('|')
        && FeatureSpec::parse(&format!("attr({name})")).is_ok_and(|spec| {
            spec.terms()
                == [Term::Attr {
                    name: name.to_owned(),
                }]
        })
}

/// Checks one record and keeps what training needs of it.
fn row(
    file: &str,
    header: &[String],
    roles: &Roles,
    record: &::csv::StringRecord,
    line: u64,
) -> Result<Row, Error> {
    if record.len() != header.len() {
        return Err(Error::FieldCount {
            file: file.to_owned(),
            line,
            found: record.len(),
            expected: header.len(),
        });
    }
    let cell = |position: usize| record.get(position).unwrap_or_default();
    let bad = |position: usize, reason: &str| Error::BadCell {
        file: file.to_owned(),
        line,
        column: header[position].clone(),
        value: cell(position).to_owned(),
        reason: reason.to_owned(),
    };
    let label = parse_label(cell(roles.label)).ok_or_else(|| {
        bad(
            roles.label,
            "is not a binary label (use 0/1, true/false or yes/no)",
        )
    })?;
    let time = roles
        .time
        .map(|position| {
            parse_time(cell(position)).ok_or_else(|| {
                bad(
                    position,
                    "is not a time (RFC 3339 such as 2026-11-23T12:00:00Z, or whole seconds since 1970)",
                )
            })
        })
        .transpose()?;
    let action = roles
        .action
        .map(|position| {
            let id = cell(position).trim();
            let writable = FeatureSpec::parse(&format!("action({id})"))
                .is_ok_and(|spec| spec.terms() == [Term::Action { id: id.to_owned() }]);
            if writable {
                Ok(id.to_owned())
            } else {
                Err(bad(
                    position,
                    "is not an action id (it must be non-empty, without spaces around it and without , or *)",
                ))
            }
        })
        .transpose()?;
    let mut cells =
        ::csv::StringRecord::with_capacity(record.as_slice().len(), roles.features.len());
    let mut numbers = Vec::with_capacity(roles.features.len());
    for &position in &roles.features {
        let text = cell(position).trim();
        numbers.push(match text.parse::<f64>() {
            Ok(number) if number.is_finite() => number,
            Ok(_) => return Err(bad(position, "is not a finite number")),
            Err(_) => f64::NAN,
        });
        cells.push_field(text);
    }
    Ok(Row {
        line,
        label,
        time,
        action,
        cells,
        numbers,
    })
}

/// A binary label: 1/0, true/false, yes/no (any case).
fn parse_label(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" => Some(true),
        "0" | "false" | "no" => Some(false),
        _ => None,
    }
}

/// A time in milliseconds since the epoch: RFC 3339, or whole seconds.
fn parse_time(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<i64>() {
        return seconds.checked_mul(1_000);
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|time| time.timestamp_millis())
}

#[cfg(test)]
mod tests;
