//! Typing and encoding the feature columns, learned on the fitting rows
//! (every row before the holdout) and applied to every row.
//!
//! A column is numeric if every non-empty fitting cell is a finite number,
//! boolean if every one is true/false (any case), else categorical. The
//! features follow the serving semantics of the feature language, so the
//! service computes the same value for a customer whose attributes are the
//! row's cells:
//!
//! | column | features | an empty cell |
//! |---|---|---|
//! | numeric `x` | `attr(x)` | 0, as `attr` reads a missing attribute |
//! | boolean `x` | `attr(x)` (true 1, false 0) | 0 |
//! | categorical `x` | `is(x,LEVEL)` per kept level, `is_none_of(x,A\|B…)` for the rest | every one 0 |

use super::{Roles, Row};
use crate::Error;
use crate::dataset::{ColumnKind, Dataset};
use nudge_models::features::{FeatureSpec, Term};
use std::collections::{BTreeMap, BTreeSet};

/// How one feature column is encoded.
#[derive(Debug)]
enum Encoding {
    /// `attr(NAME)`: the number.
    Numeric,
    /// `attr(NAME)`: 1 for true, 0 for false.
    Boolean,
    /// One column per kept level, then the "other" bucket if any fitting row
    /// has a level not kept.
    Categorical { levels: Vec<String>, other: bool },
}

/// Types and encodes every row; `fitting` is how many of the time-ordered
/// `rows` come before the holdout.
pub(super) fn encode(
    file: &str,
    header: &[String],
    mut roles: Roles,
    rows: Vec<Row>,
    fitting: usize,
    options: &super::CsvOptions,
) -> Result<Dataset, Error> {
    let fitting_rows = &rows[..fitting];
    // Row by row (each row's cells lie together in memory): which columns
    // stay numeric, or boolean, over the fitting rows, and the empty cells
    // of every row.
    let columns = roles.features.len();
    let mut numeric = vec![true; columns];
    let mut boolean = vec![true; columns];
    let mut missing = vec![0_usize; columns];
    for (position, row) in rows.iter().enumerate() {
        let in_fitting = position < fitting;
        for index in 0..columns {
            let cell = row.cell(index);
            if cell.is_empty() {
                missing[index] += 1;
            } else if in_fitting {
                numeric[index] &= !row.number(index).is_nan();
                boolean[index] = boolean[index] && parse_bool(cell).is_some();
            }
        }
    }
    // Level counts of the other columns, over the fitting rows.
    let categorical: Vec<usize> = (0..columns)
        .filter(|index| !numeric[*index] && !boolean[*index])
        .collect();
    let mut level_counts: Vec<BTreeMap<&str, usize>> = vec![BTreeMap::new(); categorical.len()];
    for row in fitting_rows {
        for (counts, &index) in level_counts.iter_mut().zip(&categorical) {
            let cell = row.cell(index);
            if !cell.is_empty() {
                *counts.entry(cell).or_default() += 1;
            }
        }
    }
    let mut level_counts = level_counts.into_iter();

    let mut encodings = Vec::with_capacity(columns);
    let mut features: Vec<String> = Vec::new();
    for (index, &position) in roles.features.iter().enumerate() {
        let name = &header[position];
        let summary = &mut roles.columns[position];
        summary.missing = missing[index];
        let encoding = if numeric[index] {
            summary.kind = ColumnKind::Numeric;
            Encoding::Numeric
        } else if boolean[index] {
            summary.kind = ColumnKind::Boolean;
            Encoding::Boolean
        } else {
            summary.kind = ColumnKind::Categorical;
            let counts = level_counts.next().unwrap_or_default();
            let mut by_frequency: Vec<(&str, usize)> = counts.into_iter().collect();
            // Most frequent first; equal counts by name (the map's order).
            by_frequency.sort_by_key(|(_, count)| std::cmp::Reverse(*count));
            let levels: Vec<String> = by_frequency
                .iter()
                .filter(|(level, count)| {
                    *count >= options.min_level_count && is_writable_level(name, level)
                })
                .take(options.max_levels)
                .map(|(level, _)| (*level).to_owned())
                .collect();
            let other_levels = by_frequency.len() - levels.len();
            summary.levels = levels.clone();
            summary.other_levels = Some(other_levels);
            Encoding::Categorical {
                other: other_levels > 0 && !levels.is_empty(),
                levels,
            }
        };
        let column_features = feature_names(name, &encoding);
        summary.features = column_features.clone();
        features.extend(column_features);
        encodings.push(encoding);
    }
    // Per-action bias: one feature per action of the fitting rows.
    let actions: Vec<String> = match roles.action {
        Some(position) => {
            let ids: BTreeSet<&str> = fitting_rows
                .iter()
                .filter_map(|row| row.action.as_deref())
                .collect();
            let actions: Vec<String> = ids.into_iter().map(str::to_owned).collect();
            roles.columns[position].features =
                actions.iter().map(|id| format!("action({id})")).collect();
            actions
        }
        None => Vec::new(),
    };
    features.extend(actions.iter().map(|id| format!("action({id})")));
    if features.is_empty() {
        return Err(Error::NoFeatures {
            file: file.to_owned(),
        });
    }

    let mut x = ndarray::Array2::zeros((rows.len(), features.len()));
    for (mut out, row) in x.rows_mut().into_iter().zip(&rows) {
        let mut column = 0;
        for ((index, &position), encoding) in roles.features.iter().enumerate().zip(&encodings) {
            let cell = row.cell(index);
            let bad = |reason: &str| Error::BadCell {
                file: file.to_owned(),
                line: row.line,
                column: header[position].clone(),
                value: cell.to_owned(),
                reason: reason.to_owned(),
            };
            match encoding {
                Encoding::Numeric => {
                    if !cell.is_empty() {
                        let number = row.number(index);
                        if number.is_nan() {
                            return Err(bad(
                                "is not a number (the column is numeric in the rows before the holdout)",
                            ));
                        }
                        out[column] = number;
                    }
                    column += 1;
                }
                Encoding::Boolean => {
                    if !cell.is_empty() {
                        let flag = parse_bool(cell).ok_or_else(|| {
                            bad("is not true or false (the column is boolean in the rows before the holdout)")
                        })?;
                        out[column] = if flag { 1.0 } else { 0.0 };
                    }
                    column += 1;
                }
                Encoding::Categorical { levels, other } => {
                    if !cell.is_empty() {
                        match levels.iter().position(|level| level == cell) {
                            Some(level) => out[column + level] = 1.0,
                            None if *other => out[column + levels.len()] = 1.0,
                            None => {}
                        }
                    }
                    column += levels.len() + usize::from(*other);
                }
            }
        }
        if let Some(action) = &row.action
            && let Some(index) = actions.iter().position(|id| id == action)
        {
            out[column + index] = 1.0;
        }
    }

    let has_actions = roles.action.is_some();
    let has_times = roles.time.is_some();
    let mut y = Vec::with_capacity(rows.len());
    let mut times = Vec::with_capacity(rows.len());
    let mut action_ids = Vec::with_capacity(rows.len());
    for row in rows {
        y.push(row.label);
        times.push(row.time.unwrap_or_default());
        action_ids.push(row.action.unwrap_or_default());
    }
    Ok(Dataset {
        source: file.to_owned(),
        features,
        x,
        y,
        times: has_times.then_some(times),
        action_ids: has_actions.then_some(action_ids),
        propensities: None,
        columns: roles.columns,
        choices: Err("no off-policy evaluation: these rows carry no logged selection probabilities (a CSV); train from the decision log with --events for IPS/SNIPS/DR".to_owned()),
    })
}

/// The features of one column, in column order.
fn feature_names(name: &str, encoding: &Encoding) -> Vec<String> {
    match encoding {
        Encoding::Numeric | Encoding::Boolean => vec![format!("attr({name})")],
        Encoding::Categorical { levels, other } => {
            let mut names: Vec<String> = levels
                .iter()
                .map(|level| format!("is({name},{level})"))
                .collect();
            if *other {
                names.push(format!("is_none_of({name},{})", levels.join("|")));
            }
            names
        }
    }
}

/// Whether `level` can be written in `is(NAME,LEVEL)` and in the
/// `is_none_of` list and read back unchanged; a level that cannot goes to
/// the "other" bucket, which a customer with that value also lands in.
fn is_writable_level(name: &str, level: &str) -> bool {
    !level.contains('|')
        && FeatureSpec::parse(&format!("is({name},{level})")).is_ok_and(|spec| {
            spec.terms()
                == [Term::Is {
                    name: name.to_owned(),
                    value: level.to_owned(),
                }]
        })
}

/// true/false in any case.
fn parse_bool(text: &str) -> Option<bool> {
    if text.eq_ignore_ascii_case("true") {
        Some(true)
    } else if text.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}
