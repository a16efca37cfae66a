//! The time-ordered split: the oldest rows train, the rows just before the
//! holdout choose the L2 strength, the newest rows are the holdout that is
//! evaluated once. Never shuffled: the model is judged on rows from after
//! the ones it learned from, as it will be used.

use crate::Error;
use serde::Serialize;
use std::ops::Range;

/// Row ranges of the three slices, in time order: `train`, then
/// `validation`, then `holdout`, covering every row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Split {
    /// The oldest rows: fit each candidate L2 strength.
    pub train: Range<usize>,
    /// The rows just before the holdout: choose the L2 strength.
    pub validation: Range<usize>,
    /// The newest rows: evaluated once, with the final model.
    pub holdout: Range<usize>,
}

/// Checks that a fraction lies strictly between 0 and 1.
pub fn check_fraction(option: &'static str, fraction: f64) -> Result<(), Error> {
    if fraction.is_finite() && fraction > 0.0 && fraction < 1.0 {
        Ok(())
    } else {
        Err(Error::BadOption {
            option,
            value: fraction.to_string(),
            reason: "must be a fraction strictly between 0 and 1",
        })
    }
}

/// `fraction` of `rows`, rounded to the nearest row.
fn part(rows: usize, fraction: f64) -> usize {
    ((rows as f64) * fraction).round().min(rows as f64) as usize
}

/// How many of `rows` come before the holdout (training plus validation):
/// the rows the final model is fitted on, and the rows a source learns its
/// column encoding from.
pub fn fitting_rows(rows: usize, holdout: f64) -> usize {
    rows - part(rows, holdout)
}

impl Split {
    /// The split of `rows` time-ordered rows: the last `holdout` fraction is
    /// the holdout, the last `validation` fraction of the rest is the
    /// validation slice. A slice may come out empty; [`Split::check`] says so.
    pub fn new(rows: usize, holdout: f64, validation: f64) -> Result<Self, Error> {
        check_fraction("--holdout", holdout)?;
        check_fraction("--validation", validation)?;
        let fitting = fitting_rows(rows, holdout);
        let train = fitting - part(fitting, validation);
        Ok(Self {
            train: 0..train,
            validation: train..fitting,
            holdout: fitting..rows,
        })
    }

    /// The rows the final model is fitted on: training and validation.
    pub fn fitting(&self) -> Range<usize> {
        self.train.start..self.validation.end
    }

    /// Refuses a split whose slices cannot fit or evaluate a model: each
    /// slice needs a row of each class.
    pub fn check(&self, labels: &[bool]) -> Result<(), Error> {
        for (slice, range) in [
            ("training", &self.train),
            ("validation", &self.validation),
            ("holdout", &self.holdout),
        ] {
            let rows = range.len();
            let positives = labels[range.clone()].iter().filter(|label| **label).count();
            let reason = if rows == 0 {
                "is empty"
            } else if positives == 0 || positives == rows {
                "has one class only"
            } else {
                continue;
            };
            return Err(Error::BadSlice {
                slice,
                rows,
                positives,
                reason,
            });
        }
        Ok(())
    }
}

/// At most `most` rows of `range`, evenly spaced and in time order: all of
/// them when there are no more than `most`, else row
/// `start + ⌊i · len / most⌋` for `i` in `0..most` — the first row, then
/// about every `len / most`-th. Deterministic (no random draw): the same
/// rows for the same range and limit. A grid fitted on them spans the whole
/// training period, as the final fit does.
pub fn evenly_spaced(range: Range<usize>, most: usize) -> Vec<usize> {
    let rows = range.len();
    if rows <= most {
        return range.collect();
    }
    (0..most)
        .map(|index| range.start + index * rows / most)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evenly_spaced_rows_are_deterministic_in_order_and_span_the_range() {
        assert_eq!(evenly_spaced(10..15, 5), vec![10, 11, 12, 13, 14]);
        assert_eq!(evenly_spaced(10..15, 100), vec![10, 11, 12, 13, 14]);
        assert_eq!(evenly_spaced(0..10, 4), vec![0, 2, 5, 7]);
        for (range, most) in [(0..640_000, 200_000), (17..1_003, 999), (5..1_000_005, 3)] {
            let rows = evenly_spaced(range.clone(), most);
            assert_eq!(rows, evenly_spaced(range.clone(), most), "deterministic");
            assert_eq!(rows.len(), most.min(range.len()));
            assert_eq!(rows.first(), Some(&range.start));
            assert!(
                rows.windows(2).all(|pair| pair[0] < pair[1]),
                "in time order"
            );
            assert!(rows.iter().all(|row| range.contains(row)));
            // The last row is within one step of the end.
            let step = range.len().div_ceil(most);
            assert!(rows.last().is_some_and(|last| range.end - last <= step));
        }
    }

    #[test]
    fn the_defaults_give_64_16_20() {
        let split = Split::new(100, 0.2, 0.2).expect("valid fractions");
        assert_eq!(split.train, 0..64);
        assert_eq!(split.validation, 64..80);
        assert_eq!(split.holdout, 80..100);
        assert_eq!(split.fitting(), 0..80);
        assert_eq!(fitting_rows(100, 0.2), 80);
    }

    #[test]
    fn slices_cover_every_row_in_order_at_the_edges() {
        for rows in 0..50 {
            for (holdout, validation) in [(0.2, 0.2), (0.01, 0.5), (0.99, 0.99), (0.5, 0.01)] {
                let split = Split::new(rows, holdout, validation).expect("valid");
                assert_eq!(split.train.start, 0);
                assert_eq!(split.train.end, split.validation.start);
                assert_eq!(split.validation.end, split.holdout.start);
                assert_eq!(split.holdout.end, rows);
            }
        }
        // Too few rows: a slice comes out empty, and `check` names it.
        let split = Split::new(10, 0.01, 0.2).expect("valid");
        assert!(split.holdout.is_empty());
        let labels: Vec<bool> = (0..10).map(|row| row % 2 == 0).collect();
        let error = split.check(&labels).expect_err("no holdout");
        assert!(
            error.to_string().contains("holdout slice (0 rows"),
            "{error}"
        );
    }

    #[test]
    fn fractions_outside_zero_one_are_refused() {
        for bad in [0.0, 1.0, -0.1, 1.5, f64::NAN] {
            let error = Split::new(10, bad, 0.2).expect_err("refused").to_string();
            assert!(error.starts_with("--holdout"), "{error}");
            assert!(Split::new(10, 0.2, bad).is_err());
        }
    }

    #[test]
    fn a_slice_with_one_class_is_refused_by_name() {
        let split = Split::new(10, 0.2, 0.2).expect("valid");
        // 8 rows before the holdout; round(8 × 0.2) = 2 of them validate.
        assert_eq!(split.validation, 6..8);
        let mut labels = vec![
            true, false, true, false, true, false, true, false, false, false,
        ];
        let error = split.check(&labels).expect_err("holdout all negative");
        assert_eq!(
            error.to_string(),
            "the holdout slice (2 rows, 0 positive) has one class only; it needs both classes: more rows, or a different --holdout / --validation"
        );
        labels[9] = true;
        split.check(&labels).expect("every slice has both classes");
        labels[6] = false;
        let error = split.check(&labels).expect_err("validation all negative");
        assert!(
            error.to_string().starts_with("the validation slice"),
            "{error}"
        );
    }
}
