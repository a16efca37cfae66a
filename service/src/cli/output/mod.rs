//! Human-readable text rendering of every client response, for a person at a
//! terminal. Each function returns the text (without a trailing newline) so it
//! can be tested; `run` prints it.
//!
//! - `decide`: the decision, with rationale and what was not served.
//! - `acks`: the one-sentence answers to `track`, `outcome`, `consent`,
//!   `suppress`, `unsuppress` and `forget`.
//! - `profile`: a customer's profile, section by section.
//! - `admin`: `reload` and `export`.
//! - `stats`: the `stats` dashboard, from two snapshots and the time between.
//! - `simulate`: the tallies of a `nudge simulate` run.
//!
//! This file holds the table layout and small formats they share.

mod acks;
mod admin;
mod decide;
mod profile;
mod simulate;
mod stats;

use super::names::consent_state_name;

pub use acks::{consent, forget, outcome, suppress, track, unsuppress};
pub use admin::{export, reload};
pub use decide::decide;
pub use profile::profile;
pub use simulate::simulate;
pub use stats::{live_footer, stats};

/// Column alignment in a [`table`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Align {
    Left,
    Right,
}

use Align::{Left, Right};

/// Lays out a table: a header line, then one line per row, each starting with
/// `indent`, columns two spaces apart, trailing spaces trimmed.
fn table(headers: &[(&str, Align)], rows: &[Vec<String>], indent: &str) -> Vec<String> {
    let mut widths: Vec<usize> = headers.iter().map(|(h, _)| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::from(indent);
        for (i, ((cell, width), (_, align))) in cells.iter().zip(&widths).zip(headers).enumerate() {
            if i > 0 {
                out.push_str("  ");
            }
            let pad = width.saturating_sub(cell.chars().count());
            match align {
                Left => {
                    out.push_str(cell);
                    out.push_str(&" ".repeat(pad));
                }
                Right => {
                    out.push_str(&" ".repeat(pad));
                    out.push_str(cell);
                }
            }
        }
        out.trim_end().to_owned()
    };
    let mut lines = vec![line(headers.iter().map(|(h, _)| *h).collect())];
    lines.extend(
        rows.iter()
            .map(|row| line(row.iter().map(String::as_str).collect())),
    );
    lines
}

/// `text`, or `-` if it is empty.
fn or_dash(text: &str) -> &str {
    if text.is_empty() { "-" } else { text }
}

/// `1 decision`, `0 decisions`, `3 decisions`.
fn plural(count: u64, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}

/// A consent state in words: `opted in`, `opted out`, `unset`.
fn consent_words(code: i32) -> String {
    consent_state_name(code).replace('_', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns() {
        let lines = table(
            &[("A", Left), ("NUM", Right)],
            &[
                vec!["long_name".into(), "1".into()],
                vec!["x".into(), "100".into()],
            ],
            "",
        );
        assert_eq!(
            lines,
            vec!["A          NUM", "long_name    1", "x          100"]
        );
    }
}
