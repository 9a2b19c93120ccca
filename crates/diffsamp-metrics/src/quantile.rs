//! Empirical quantiles of the finite values of a sample (summaries, clip thresholds, fences).
//!
//! Two conventions over the n sorted finite values v₀ ≤ … ≤ v_{n−1}, with pos = p (n − 1):
//!
//! ```text
//! nearest rank:  Q(p) = v_round(pos)                                  (round half away from 0)
//! interpolated:  Q(p) = v_⌊pos⌋ + (pos − ⌊pos⌋)(v_⌈pos⌉ − v_⌊pos⌋)    (numpy's "linear")
//! ```
//!
//! Non-finite values are left out; p outside [0, 1] is clamped to it.

/// The finite values of `values`, sorted ascending.
pub struct SortedFinite(Vec<f64>);

impl SortedFinite {
    /// Keeps the finite values and sorts them.
    pub fn new(values: impl IntoIterator<Item = f64>) -> Self {
        let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
        v.sort_by(f64::total_cmp);
        Self(v)
    }

    /// How many finite values there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no value was finite.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn position(&self, p: f64) -> Option<f64> {
        (!self.0.is_empty()).then(|| p.clamp(0.0, 1.0) * (self.0.len() - 1) as f64)
    }

    /// The nearest-rank quantile v_round(p (n − 1)); `None` when no value is finite.
    pub fn nearest(&self, p: f64) -> Option<f64> {
        self.position(p).map(|pos| self.0[pos.round() as usize])
    }

    /// The linearly interpolated quantile; `None` when no value is finite.
    pub fn interpolated(&self, p: f64) -> Option<f64> {
        self.position(p).map(|pos| {
            let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
            self.0[lo] + (pos - lo as f64) * (self.0[hi] - self.0[lo])
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_conventions_on_a_known_sample() {
        // 0, 1, 2, 3 with a NaN and an infinity that are left out.
        let s = SortedFinite::new([3.0, f64::NAN, 0.0, 2.0, f64::INFINITY, 1.0]);
        assert_eq!(s.len(), 4);
        assert_eq!(s.interpolated(0.25), Some(0.75));
        assert_eq!(s.interpolated(0.75), Some(2.25));
        // pos = 0.75 rounds to 1, pos = 1.5 rounds away from zero to 2.
        assert_eq!(s.nearest(0.25), Some(1.0));
        assert_eq!(s.nearest(0.5), Some(2.0));
        assert_eq!(s.nearest(0.0), Some(0.0));
        assert_eq!(s.interpolated(1.0), Some(3.0));
        assert_eq!(s.nearest(-1.0), Some(0.0));
        assert_eq!(s.interpolated(2.0), Some(3.0));
    }

    #[test]
    fn no_finite_value_has_no_quantile() {
        let s = SortedFinite::new([f64::NAN, f64::NEG_INFINITY]);
        assert!(s.is_empty());
        assert_eq!(s.nearest(0.5), None);
        assert_eq!(s.interpolated(0.5), None);
    }

    #[test]
    fn the_median_of_an_odd_sample_is_its_middle_value_in_both() {
        let s = SortedFinite::new((0..101).rev().map(f64::from));
        assert_eq!(s.nearest(0.5), Some(50.0));
        assert_eq!(s.interpolated(0.5), Some(50.0));
        assert!((s.interpolated(0.123).unwrap() - 12.3).abs() < 1e-12);
    }
}
