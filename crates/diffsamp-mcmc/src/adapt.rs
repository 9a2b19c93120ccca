//! Step-size adaptation by dual averaging (Nesterov 2009; Hoffman & Gelman 2014, §3.2.1).

/// Shrinkage γ of the dual-averaging iterate.
pub const DA_GAMMA: f64 = 0.05;
/// Offset t₀ that damps the first iterations.
pub const DA_T0: f64 = 10.0;
/// Exponent κ of the iterate-averaging weight t^{−κ}.
pub const DA_KAPPA: f64 = 0.75;

/// Dual averaging on log ε toward a target mean acceptance δ:
///
/// H̄_t = (1 − 1/(t + t₀)) H̄_{t−1} + (δ − α_t)/(t + t₀)
/// log ε_t = μ − (√t / γ) H̄_t,          μ = log(10 ε₀)
/// log ε̄_t = t^{−κ} log ε_t + (1 − t^{−κ}) log ε̄_{t−1}
///
/// ε_t is used during warm-up; ε̄ (the averaged iterate) is frozen afterwards.
#[derive(Clone, Debug, PartialEq)]
pub struct DualAveraging {
    target: f64,
    mu: f64,
    h_bar: f64,
    log_eps: f64,
    log_eps_bar: f64,
    t: u64,
}

impl DualAveraging {
    /// Starts from step size `eps0` toward mean acceptance `target` ∈ (0, 1).
    pub fn new(eps0: f64, target: f64) -> Self {
        DualAveraging {
            target,
            mu: (10.0 * eps0).ln(),
            h_bar: 0.0,
            log_eps: eps0.ln(),
            log_eps_bar: eps0.ln(),
            t: 0,
        }
    }

    /// Feeds the acceptance probability α_t of the last step; returns the step size ε_t to
    /// use next.
    pub fn update(&mut self, accept_prob: f64) -> f64 {
        self.t += 1;
        let t = self.t as f64;
        let eta = 1.0 / (t + DA_T0);
        self.h_bar = (1.0 - eta) * self.h_bar + eta * (self.target - accept_prob);
        // Bounded so that a hopeless start (every proposal non-finite) cannot underflow.
        self.log_eps = (self.mu - t.sqrt() / DA_GAMMA * self.h_bar).clamp(-60.0, 20.0);
        let w = t.powf(-DA_KAPPA);
        self.log_eps_bar = w * self.log_eps + (1.0 - w) * self.log_eps_bar;
        self.log_eps.exp()
    }

    /// The averaged step size ε̄ to freeze after warm-up (ε₀ if never updated).
    pub fn final_step_size(&self) -> f64 {
        self.log_eps_bar.exp()
    }

    /// Number of updates so far.
    pub fn iterations(&self) -> u64 {
        self.t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With acceptance exp(−ε) the fixed point for δ = 0.6 is ε* = −ln 0.6.
    #[test]
    fn converges_on_a_deterministic_acceptance_curve() {
        let mut da = DualAveraging::new(0.01, 0.6);
        let mut eps: f64 = 0.01;
        for _ in 0..5000 {
            eps = da.update((-eps).exp());
        }
        let want = -(0.6f64).ln();
        assert!(
            (da.final_step_size() - want).abs() < 1e-2 * want,
            "{}",
            da.final_step_size()
        );
        assert!((eps - want).abs() < 5e-2 * want);
    }
}
