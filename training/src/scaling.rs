//! Standardization learned on the fitting rows, and folding it back into the
//! weights so the artifact scores raw (serving) feature values.
//!
//! The solver sees `z = (x − m) / s`; it finds `w·z + b`. In raw space that
//! is `Σ (w_i / s_i) x_i + (b − Σ w_i m_i / s_i)`: the same logit for every
//! row, so the artifact stays `nudge.logistic/v1` and serving computes
//! exactly what training scored.

use ndarray::{Array1, Array2, ArrayView2, Axis};

/// Per-column mean and scale of the fitting rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Scaler {
    /// Each column's mean.
    pub mean: Array1<f64>,
    /// Each column's standard deviation (population), or 1 for a column that
    /// does not vary (it then only shifts by its mean).
    pub scale: Array1<f64>,
}

impl Scaler {
    /// Learns mean and standard deviation of each column of `x`.
    pub fn fit(x: ArrayView2<'_, f64>) -> Self {
        let columns = x.ncols();
        if x.nrows() == 0 {
            return Self {
                mean: Array1::zeros(columns),
                scale: Array1::ones(columns),
            };
        }
        let mean = x
            .mean_axis(Axis(0))
            .unwrap_or_else(|| Array1::zeros(columns));
        let scale = x.std_axis(Axis(0), 0.0).mapv(|deviation| {
            if deviation.is_finite() && deviation > 1e-12 {
                deviation
            } else {
                1.0
            }
        });
        Self { mean, scale }
    }

    /// `x` standardized.
    pub fn transform(&self, x: ArrayView2<'_, f64>) -> Array2<f64> {
        (&x - &self.mean) / &self.scale
    }

    /// Raw-space weights and intercept of a model fitted on standardized
    /// columns.
    pub fn fold(&self, weights: &Array1<f64>, intercept: f64) -> (Array1<f64>, f64) {
        let raw = weights / &self.scale;
        let shift = raw.dot(&self.mean);
        (raw, intercept - shift)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn standardizes_with_the_population_deviation_and_a_unit_scale_for_constants() {
        let x = array![
            [1.0, 5.0, 0.0],
            [3.0, 5.0, 1.0],
            [5.0, 5.0, 0.0],
            [7.0, 5.0, 1.0]
        ];
        let scaler = Scaler::fit(x.view());
        assert_eq!(scaler.mean, array![4.0, 5.0, 0.5]);
        assert!((scaler.scale[0] - 5.0_f64.sqrt()).abs() < 1e-12);
        assert_eq!(scaler.scale[1], 1.0, "a constant column keeps scale 1");
        assert_eq!(scaler.scale[2], 0.5);
        let z = scaler.transform(x.view());
        assert!(z.column(0).sum().abs() < 1e-12);
        assert!(z.column(1).iter().all(|value| *value == 0.0));
        assert_eq!(z.column(2).to_vec(), vec![-1.0, 1.0, -1.0, 1.0]);
    }

    #[test]
    fn folded_weights_give_the_same_logit_on_raw_rows() {
        let x = array![[1.0, 10.0], [2.0, 30.0], [4.0, 20.0], [8.0, 50.0]];
        let scaler = Scaler::fit(x.view());
        let weights = array![0.7, -1.3];
        let intercept = 0.25;
        let (raw, raw_intercept) = scaler.fold(&weights, intercept);
        let scaled_logits = scaler.transform(x.view()).dot(&weights) + intercept;
        let raw_logits = x.dot(&raw) + raw_intercept;
        for (scaled, raw) in scaled_logits.iter().zip(&raw_logits) {
            assert!((scaled - raw).abs() < 1e-12, "{scaled} vs {raw}");
        }
        // Hand-computed: mean (3.75, 27.5), std (2.6810..., 14.7902...).
        assert!((raw[0] - 0.7 / 2.680_951_323_690_902).abs() < 1e-12);
    }
}
