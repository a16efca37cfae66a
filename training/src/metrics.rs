//! Evaluation metrics of predicted probabilities against binary outcomes:
//! ROC AUC (ties counted half), log loss, expected calibration error over ten
//! equal-width bins, the reliability bins themselves, ROC points and the
//! cumulative gain / lift curve.

use serde::Serialize;

/// Probabilities are clipped to `[EPSILON, 1 − EPSILON]` for log loss.
const EPSILON: f64 = 1e-15;
/// Bins of the reliability diagram and of the calibration error.
pub const CALIBRATION_BINS: usize = 10;
/// Most points kept of a ROC curve (the report stays small).
const MAX_ROC_POINTS: usize = 200;
/// Points of the gain curve: every 5 % of the rows.
const GAIN_STEPS: usize = 20;

/// The area under the ROC curve: the probability that a random positive
/// scores above a random negative, a tie counting one half (Mann–Whitney with
/// average ranks). `None` without both classes.
pub fn auc(scores: &[f64], labels: &[bool]) -> Option<f64> {
    let positives = labels.iter().filter(|label| **label).count();
    let negatives = labels.len() - positives;
    if positives == 0 || negatives == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|a, b| scores[*a].total_cmp(&scores[*b]));
    // Sum of the positives' ranks (1-based), ties given their average rank.
    let mut rank_sum = 0.0;
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && scores[order[end]] == scores[order[start]] {
            end += 1;
        }
        let average_rank = (start + 1 + end) as f64 / 2.0;
        let tied_positives = order[start..end].iter().filter(|row| labels[**row]).count();
        rank_sum += average_rank * tied_positives as f64;
        start = end;
    }
    let positives = positives as f64;
    let pairs_won = rank_sum - positives * (positives + 1.0) / 2.0;
    Some(pairs_won / (positives * negatives as f64))
}

/// Mean negative log-likelihood (natural log) of the outcomes.
pub fn log_loss(probabilities: &[f64], labels: &[bool]) -> f64 {
    if labels.is_empty() {
        return 0.0;
    }
    let total: f64 = probabilities
        .iter()
        .zip(labels)
        .map(|(probability, label)| {
            let p = probability.clamp(EPSILON, 1.0 - EPSILON);
            if *label { -p.ln() } else { -(1.0 - p).ln() }
        })
        .sum();
    total / labels.len() as f64
}

/// One bin of the reliability diagram.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReliabilityBin {
    /// The bin's lower edge (inclusive).
    pub lower: f64,
    /// The bin's upper edge (exclusive, but 1.0 falls in the last bin).
    pub upper: f64,
    /// Rows whose probability falls in the bin.
    pub rows: usize,
    /// Their mean predicted probability (0 when empty).
    pub mean_predicted: f64,
    /// Their observed positive rate (0 when empty).
    pub observed_rate: f64,
}

/// Rows binned by predicted probability into [`CALIBRATION_BINS`]
/// equal-width bins.
pub fn reliability(probabilities: &[f64], labels: &[bool]) -> Vec<ReliabilityBin> {
    let bins = CALIBRATION_BINS;
    let mut rows = vec![0usize; bins];
    let mut predicted = vec![0.0; bins];
    let mut positives = vec![0usize; bins];
    for (probability, label) in probabilities.iter().zip(labels) {
        let bin = ((probability * bins as f64) as usize).min(bins - 1);
        rows[bin] += 1;
        predicted[bin] += probability;
        positives[bin] += usize::from(*label);
    }
    (0..bins)
        .map(|bin| {
            let count = rows[bin].max(1) as f64;
            ReliabilityBin {
                lower: bin as f64 / bins as f64,
                upper: (bin + 1) as f64 / bins as f64,
                rows: rows[bin],
                mean_predicted: predicted[bin] / count,
                observed_rate: positives[bin] as f64 / count,
            }
        })
        .collect()
}

/// Expected calibration error: the row-weighted mean of |mean predicted −
/// observed rate| over the reliability bins.
pub fn calibration_error(bins: &[ReliabilityBin]) -> f64 {
    let total: usize = bins.iter().map(|bin| bin.rows).sum();
    if total == 0 {
        return 0.0;
    }
    bins.iter()
        .map(|bin| bin.rows as f64 * (bin.mean_predicted - bin.observed_rate).abs())
        .sum::<f64>()
        / total as f64
}

/// One point of the ROC curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RocPoint {
    /// False positive rate at this threshold.
    pub fpr: f64,
    /// True positive rate at this threshold.
    pub tpr: f64,
}

/// The ROC curve from (0, 0) to (1, 1), one point per distinct score
/// (thinned to at most a couple of hundred points). Empty without both
/// classes.
pub fn roc(scores: &[f64], labels: &[bool]) -> Vec<RocPoint> {
    let positives = labels.iter().filter(|label| **label).count() as f64;
    let negatives = labels.len() as f64 - positives;
    if positives == 0.0 || negatives == 0.0 {
        return Vec::new();
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|a, b| scores[*b].total_cmp(&scores[*a]));
    let mut points = vec![RocPoint { fpr: 0.0, tpr: 0.0 }];
    let (mut true_positives, mut false_positives) = (0.0, 0.0);
    for (position, row) in order.iter().enumerate() {
        if labels[*row] {
            true_positives += 1.0;
        } else {
            false_positives += 1.0;
        }
        let last_of_tie = order
            .get(position + 1)
            .is_none_or(|next| scores[*next] != scores[*row]);
        if last_of_tie {
            points.push(RocPoint {
                fpr: false_positives / negatives,
                tpr: true_positives / positives,
            });
        }
    }
    thin(points, MAX_ROC_POINTS)
}

/// At most about `limit` of `points`, evenly spaced, first and last kept.
fn thin<T: Copy>(points: Vec<T>, limit: usize) -> Vec<T> {
    if points.len() <= limit {
        return points;
    }
    let step = points.len().div_ceil(limit);
    let last = points.len() - 1;
    points
        .iter()
        .enumerate()
        .filter(|(position, _)| position % step == 0 || *position == last)
        .map(|(_, point)| *point)
        .collect()
}

/// One point of the cumulative gain curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct GainPoint {
    /// The fraction of rows contacted, highest scores first.
    pub fraction: f64,
    /// The fraction of all positives among them.
    pub gain: f64,
    /// `gain / fraction`: how many times better than contacting at random.
    pub lift: f64,
}

/// Cumulative gain and lift at every 5 % of the rows, highest scores first.
/// Empty without a positive.
pub fn gain(scores: &[f64], labels: &[bool]) -> Vec<GainPoint> {
    let positives = labels.iter().filter(|label| **label).count();
    if positives == 0 {
        return Vec::new();
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|a, b| scores[*b].total_cmp(&scores[*a]));
    let mut cumulative = Vec::with_capacity(order.len() + 1);
    cumulative.push(0usize);
    for row in &order {
        let last = cumulative.last().copied().unwrap_or(0);
        cumulative.push(last + usize::from(labels[*row]));
    }
    (1..=GAIN_STEPS)
        .map(|step| {
            let fraction = step as f64 / GAIN_STEPS as f64;
            let rows = ((order.len() as f64) * fraction).round() as usize;
            let gain = cumulative[rows.min(order.len())] as f64 / positives as f64;
            GainPoint {
                fraction,
                gain,
                lift: gain / fraction,
            }
        })
        .collect()
}

/// The positive share of `labels` (0 when empty).
pub fn base_rate(labels: &[bool]) -> f64 {
    if labels.is_empty() {
        return 0.0;
    }
    labels.iter().filter(|label| **label).count() as f64 / labels.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn auc_counts_pairs_and_ties_as_half() {
        // Positives 0.8, 0.4; negatives 0.4, 0.1. Pairs: (0.8 > 0.4) 1,
        // (0.8 > 0.1) 1, (0.4 = 0.4) ½, (0.4 > 0.1) 1 → 3.5 / 4.
        let scores = [0.8, 0.4, 0.4, 0.1];
        let labels = [true, true, false, false];
        assert_eq!(auc(&scores, &labels), Some(0.875));
        // Perfect, inverted, and all tied.
        assert_eq!(auc(&[0.9, 0.1], &[true, false]), Some(1.0));
        assert_eq!(auc(&[0.1, 0.9], &[true, false]), Some(0.0));
        assert_eq!(auc(&[0.5; 4], &[true, false, true, false]), Some(0.5));
        assert_eq!(auc(&[0.5, 0.6], &[true, true]), None, "one class: no AUC");
    }

    #[test]
    fn log_loss_matches_the_hand_computed_mean() {
        let loss = log_loss(&[0.9, 0.2, 0.5], &[true, false, true]);
        let expected = (-(0.9_f64.ln()) - 0.8_f64.ln() - 0.5_f64.ln()) / 3.0;
        assert!(close(loss, expected), "{loss} vs {expected}");
        // Certain and wrong is large but finite.
        let clipped = log_loss(&[0.0], &[true]);
        assert!(clipped.is_finite() && clipped > 30.0);
    }

    #[test]
    fn calibration_error_weights_each_bin_by_its_rows() {
        // Bin 1 (0.1–0.2): 0.15, 0.15 with one positive → |0.15 − 0.5| = 0.35.
        // Bin 9 (0.9–1.0): 0.95, 1.0 both positive → |0.975 − 1| = 0.025.
        let probabilities = [0.15, 0.15, 0.95, 1.0];
        let labels = [true, false, true, true];
        let bins = reliability(&probabilities, &labels);
        assert_eq!(bins.len(), 10);
        assert_eq!(bins[1].rows, 2);
        assert!(close(bins[1].observed_rate, 0.5));
        assert_eq!(bins[9].rows, 2, "1.0 falls in the last bin");
        assert!(close(bins[9].mean_predicted, 0.975));
        let ece = calibration_error(&bins);
        assert!(close(ece, (2.0 * 0.35 + 2.0 * 0.025) / 4.0), "{ece}");
        assert_eq!(calibration_error(&reliability(&[], &[])), 0.0);
    }

    #[test]
    fn roc_runs_from_origin_to_one_one_with_ties_as_one_step() {
        let points = roc(&[0.8, 0.4, 0.4, 0.1], &[true, true, false, false]);
        let pairs: Vec<(f64, f64)> = points.iter().map(|p| (p.fpr, p.tpr)).collect();
        assert_eq!(pairs, vec![(0.0, 0.0), (0.0, 0.5), (0.5, 1.0), (1.0, 1.0)]);
        assert!(roc(&[0.1], &[true]).is_empty());
        let many: Vec<f64> = (0..10_000).map(|n| n as f64).collect();
        let labels: Vec<bool> = (0..10_000).map(|n| n % 3 == 0).collect();
        let thinned = roc(&many, &labels);
        assert!(thinned.len() <= 202, "{}", thinned.len());
        assert_eq!(thinned.last().map(|p| (p.fpr, p.tpr)), Some((1.0, 1.0)));
    }

    #[test]
    fn gain_is_the_share_of_positives_in_the_top_rows() {
        // 20 rows, 2 positives with the two highest scores.
        let scores: Vec<f64> = (0..20).map(f64::from).collect();
        let labels: Vec<bool> = (0..20).map(|n| n >= 18).collect();
        let points = gain(&scores, &labels);
        assert_eq!(points.len(), 20);
        assert!(close(points[0].fraction, 0.05));
        assert!(
            close(points[0].gain, 0.5),
            "top 5 % = 1 row, 1 of 2 positives"
        );
        assert!(close(points[0].lift, 10.0));
        assert!(close(points[1].gain, 1.0));
        assert!(close(points[19].gain, 1.0) && close(points[19].lift, 1.0));
        assert!(close(base_rate(&labels), 0.1));
    }
}
