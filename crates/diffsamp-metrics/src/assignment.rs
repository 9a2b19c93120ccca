//! Linear assignment (min-cost perfect matching on a square cost matrix) by shortest augmenting paths.
//!
//! Written here rather than taken from a crate (`lsap` 1.0 was considered: it is a faithful
//! port of SciPy's solver but allocates per call, takes `&Vec<f64>`, and cannot warm-start).
//! The lazy exact OT in [`crate::w2`] re-solves a 2000×2000 problem after raising some
//! entries from lower bounds to exact costs; keeping the dual variables and the still-tight
//! part of the matching between solves turns each re-solve into a few augmentations instead
//! of a full solve. The per-pair particle permutation (n = 4…55) solves millions of tiny
//! problems, so the solver keeps its buffers between calls.
//!
//! Algorithm (Jonker–Volgenant family, dense): dual variables u (rows) and v (columns) with
//! reduced costs c̄_ij = c_ij − u_i − v_j ≥ 0 and c̄ = 0 on matched pairs. Start: v_j =
//! min_i c_ij with greedy matching on column minima, then two passes of JV's augmenting row
//! reduction, then u_i = min_j (c_ij − v_j). Each free row s is then matched by Dijkstra on reduced costs to the nearest free
//! column, and the duals are shifted so the augmented path becomes tight. Complexity O(n³)
//! worst case; much less on random dense problems.

use crate::{MetricsError, Result};

const NONE: usize = usize::MAX;

/// An optimal assignment: row `i` is matched to column `col_for_row[i]`, minimising
/// Σ_i c[i, col_for_row[i]].
#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    /// Matched column of each row (a permutation of `0..n`).
    pub col_for_row: Vec<usize>,
    /// Total cost Σ_i c[i, col_for_row[i]].
    pub cost: f64,
}

/// Solves min_σ Σ_i c[i, σ(i)] over permutations σ for a square cost matrix `cost`
/// (`[n, n]` row-major). Errors when `cost.len() != n²` or an entry is not finite.
///
/// ```
/// let c = [4.0, 1.0, 3.0, 2.0, 0.0, 5.0, 3.0, 2.0, 2.0];
/// let a = diffsamp_metrics::linear_assignment(&c, 3).unwrap();
/// assert_eq!(a.col_for_row, vec![1, 0, 2]);
/// assert_eq!(a.cost, 5.0);
/// ```
pub fn linear_assignment(cost: &[f64], n: usize) -> Result<Assignment> {
    let mut solver = AssignmentSolver::new();
    let total = solver.solve(cost, n)?;
    Ok(Assignment {
        col_for_row: solver.col_for_row().to_vec(),
        cost: total,
    })
}

/// A reusable assignment solver: keeps its buffers (so solving many small problems does not
/// allocate) and the dual variables of the last solve (so the crate can warm-start after cost
/// entries increase).
#[derive(Debug, Clone, Default)]
pub struct AssignmentSolver {
    n: usize,
    u: Vec<f64>,
    v: Vec<f64>,
    col4row: Vec<usize>,
    row4col: Vec<usize>,
    dist: Vec<f64>,
    pred: Vec<usize>,
    todo: Vec<usize>,
    scanned: Vec<usize>,
}

impl AssignmentSolver {
    /// An empty solver; buffers grow on first use.
    pub fn new() -> Self {
        Self::default()
    }

    /// Solves the square problem `cost` (`[n, n]` row-major) from scratch and returns the
    /// optimal total cost; the matching is then [`Self::col_for_row`].
    pub fn solve(&mut self, cost: &[f64], n: usize) -> Result<f64> {
        let expected = n.checked_mul(n).ok_or(MetricsError::InvalidParameter {
            name: "n",
            value: n.to_string(),
            reason: "n² overflows usize",
        })?;
        if cost.len() != expected {
            return Err(MetricsError::ShapeMismatch {
                what: "assignment cost matrix length (n²)",
                expected,
                got: cost.len(),
            });
        }
        crate::data::check_finite("assignment cost matrix", cost)?;
        Ok(self.solve_unchecked(cost, n))
    }

    /// Matched column of each row after the last solve.
    pub fn col_for_row(&self) -> &[usize] {
        &self.col4row[..self.n]
    }

    /// Row dual variables u of the last solve (c_ij − u_i − v_j ≥ 0, = 0 on matched pairs).
    pub(crate) fn row_duals(&self) -> &[f64] {
        &self.u[..self.n]
    }

    /// Column dual variables v of the last solve.
    pub(crate) fn col_duals(&self) -> &[f64] {
        &self.v[..self.n]
    }

    /// Cold solve; `cost` must be `n²` finite values.
    pub(crate) fn solve_unchecked(&mut self, cost: &[f64], n: usize) -> f64 {
        debug_assert_eq!(cost.len(), n * n);
        self.resize(n);
        if n == 0 {
            return 0.0;
        }
        self.initialise(cost);
        self.augment_free_rows(cost);
        self.total(cost)
    }

    /// Restores optimality after entries of `cost` were raised (never lowered) since the last
    /// solve on the same `n`: the duals stay feasible, matched pairs that are no longer tight
    /// are released and their rows re-augmented.
    pub(crate) fn reoptimize(&mut self, cost: &[f64]) -> f64 {
        let n = self.n;
        debug_assert_eq!(cost.len(), n * n);
        for i in 0..n {
            let j = self.col4row[i];
            if j == NONE {
                continue;
            }
            let c = cost[i * n + j];
            let slack = c - self.u[i] - self.v[j];
            if slack > 1e-12 * (1.0 + c.abs()) {
                self.col4row[i] = NONE;
                self.row4col[j] = NONE;
            }
        }
        self.augment_free_rows(cost);
        self.total(cost)
    }

    fn resize(&mut self, n: usize) {
        self.n = n;
        self.u.clear();
        self.u.resize(n, 0.0);
        self.v.clear();
        self.v.resize(n, f64::INFINITY);
        self.col4row.clear();
        self.col4row.resize(n, NONE);
        self.row4col.clear();
        self.row4col.resize(n, NONE);
        self.dist.resize(n, 0.0);
        self.pred.resize(n, NONE);
        self.todo.resize(n, 0);
        self.scanned.clear();
    }

    /// Column reduction with greedy matching on column minima, then two passes of at most n
    /// steps of augmenting row reduction (JV): a free row takes its best column j₁ under c_ij − v_j,
    /// lowering v_j₁ by the gap to its second best so the column stays a row minimum, and
    /// evicts j₁'s previous row. Only v is kept during these passes; u is then set to the
    /// row minima u_i = min_j (c_ij − v_j), which makes every assigned pair tight (its column
    /// is a row minimum: other rows only ever lower the v of columns they take).
    fn initialise(&mut self, cost: &[f64]) {
        let n = self.n;
        // v_j = min_i c_ij; `pred` holds the arg-min row for the moment.
        for (i, row) in cost.chunks_exact(n).enumerate() {
            for (j, &c) in row.iter().enumerate() {
                if c < self.v[j] {
                    self.v[j] = c;
                    self.pred[j] = i;
                }
            }
        }
        for j in 0..n {
            let i = self.pred[j];
            if self.col4row[i] == NONE {
                self.col4row[i] = j;
                self.row4col[j] = i;
            }
        }
        if n > 1 {
            for _pass in 0..2 {
                self.augmenting_row_reduction(cost);
            }
        }
        for i in 0..n {
            let row = &cost[i * n..(i + 1) * n];
            self.u[i] = row
                .iter()
                .zip(&self.v)
                .map(|(&c, &vj)| c - vj)
                .fold(f64::INFINITY, f64::min);
        }
    }

    fn augmenting_row_reduction(&mut self, cost: &[f64]) {
        let n = self.n;
        let mut free: Vec<usize> = (0..n).filter(|&i| self.col4row[i] == NONE).collect();
        let mut k = 0;
        // Eviction chains can ping-pong between rows with small gains; capping a pass at n
        // steps keeps the cheap early matches (measured fastest for n = 13…55, dense random)
        // and leaves the rest to the shortest-path phase.
        let mut steps = 0usize;
        let cap = n;
        while k < free.len() && steps < cap {
            steps += 1;
            let i = free[k];
            k += 1;
            let row = &cost[i * n..(i + 1) * n];
            let (mut h1, mut h2) = (f64::INFINITY, f64::INFINITY);
            let (mut j1, mut j2) = (0, NONE);
            for (j, (&c, &vj)) in row.iter().zip(&self.v).enumerate() {
                let h = c - vj;
                if h < h2 {
                    if h < h1 {
                        h2 = h1;
                        j2 = j1;
                        h1 = h;
                        j1 = j;
                    } else {
                        h2 = h;
                        j2 = j;
                    }
                }
            }
            let mut i0 = self.row4col[j1];
            if h1 < h2 {
                self.v[j1] -= h2 - h1;
            } else if i0 != NONE && j2 != NONE {
                j1 = j2;
                i0 = self.row4col[j1];
            }
            if i0 != NONE {
                self.col4row[i0] = NONE;
                // With a strict gap the evicted row is retried at once; on a tie it waits for
                // the next pass (which rebuilds the free list) to avoid cycling.
                if h1 < h2 {
                    k -= 1;
                    free[k] = i0;
                }
            }
            self.row4col[j1] = i;
            self.col4row[i] = j1;
        }
    }

    fn augment_free_rows(&mut self, cost: &[f64]) {
        for s in 0..self.n {
            if self.col4row[s] == NONE {
                self.augment(cost, s);
            }
        }
    }

    /// Dijkstra from free row `s` on reduced costs to the nearest free column, dual update,
    /// augmentation along the shortest path.
    fn augment(&mut self, cost: &[f64], s: usize) {
        let n = self.n;
        let Self {
            u,
            v,
            col4row,
            row4col,
            dist,
            pred,
            todo,
            scanned,
            ..
        } = self;
        for (k, t) in todo.iter_mut().enumerate() {
            *t = k;
        }
        scanned.clear();
        let row_s = &cost[s * n..(s + 1) * n];
        let us = u[s];
        for j in 0..n {
            dist[j] = row_s[j] - us - v[j];
            pred[j] = s;
        }
        let mut n_todo = n;
        let mut i = s;
        let mut d_i = 0.0;
        let sink = loop {
            let mut lowest = f64::INFINITY;
            let mut best = NONE;
            if i == s {
                for (k, &j) in todo[..n_todo].iter().enumerate() {
                    let d = dist[j];
                    if d < lowest || (d == lowest && row4col[j] == NONE) {
                        lowest = d;
                        best = k;
                    }
                }
            } else {
                let row_i = &cost[i * n..(i + 1) * n];
                let base = d_i - u[i];
                for (k, &j) in todo[..n_todo].iter().enumerate() {
                    let r = base + row_i[j] - v[j];
                    if r < dist[j] {
                        dist[j] = r;
                        pred[j] = i;
                    }
                    let d = dist[j];
                    if d < lowest || (d == lowest && row4col[j] == NONE) {
                        lowest = d;
                        best = k;
                    }
                }
            }
            // Finite costs always leave a finite minimum; NaN cannot reach here (checked).
            debug_assert!(best != NONE);
            let j = todo[best];
            n_todo -= 1;
            todo[best] = todo[n_todo];
            scanned.push(j);
            if row4col[j] == NONE {
                break j;
            }
            i = row4col[j];
            d_i = lowest;
        };
        let delta = dist[sink];
        u[s] += delta;
        for &j in scanned.iter() {
            let shift = delta - dist[j];
            if j != sink {
                u[row4col[j]] += shift;
            }
            v[j] -= shift;
        }
        let mut j = sink;
        loop {
            let i = pred[j];
            row4col[j] = i;
            let next = col4row[i];
            col4row[i] = j;
            if i == s {
                break;
            }
            j = next;
        }
    }

    fn total(&self, cost: &[f64]) -> f64 {
        let n = self.n;
        (0..n).map(|i| cost[i * n + self.col4row[i]]).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn brute_force(cost: &[f64], n: usize) -> f64 {
        fn rec(cost: &[f64], n: usize, row: usize, used: &mut Vec<bool>, acc: f64) -> f64 {
            if row == n {
                return acc;
            }
            let mut best = f64::INFINITY;
            for j in 0..n {
                if !used[j] {
                    used[j] = true;
                    best = best.min(rec(cost, n, row + 1, used, acc + cost[row * n + j]));
                    used[j] = false;
                }
            }
            best
        }
        rec(cost, n, 0, &mut vec![false; n], 0.0)
    }

    fn is_permutation(p: &[usize]) -> bool {
        let mut seen = vec![false; p.len()];
        p.iter()
            .all(|&j| j < p.len() && !std::mem::replace(&mut seen[j], true))
    }

    #[test]
    fn hand_checked_3x3_and_4x4() {
        // Rows: worker, columns: job. Optimum 1 + 2 + 2 = 5 (by inspection of all 6).
        let c = [4.0, 1.0, 3.0, 2.0, 0.0, 5.0, 3.0, 2.0, 2.0];
        let a = linear_assignment(&c, 3).unwrap();
        assert_eq!(a.col_for_row, vec![1, 0, 2]);
        assert_eq!(a.cost, 5.0);
        // Greedy on rows would take (0,0)=1 then be forced into 100s; optimum is the
        // anti-diagonal 2+2+2+2 = 8.
        let c = [
            1.0, 100.0, 100.0, 2.0, //
            100.0, 1.0, 2.0, 100.0, //
            100.0, 2.0, 1.0, 100.0, //
            2.0, 100.0, 100.0, 100.0,
        ];
        let a = linear_assignment(&c, 4).unwrap();
        assert_eq!(a.col_for_row, vec![3, 1, 2, 0]);
        assert_eq!(a.cost, 2.0 + 1.0 + 1.0 + 2.0);
    }

    #[test]
    fn matches_brute_force_on_random_6x6() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for trial in 0..200 {
            let n = 6;
            // Mix continuous and small-integer costs (ties stress the tie handling).
            let c: Vec<f64> = (0..n * n)
                .map(|_| {
                    if trial % 2 == 0 {
                        rng.random::<f64>() * 10.0 - 3.0
                    } else {
                        rng.random_range(0..4) as f64
                    }
                })
                .collect();
            let a = linear_assignment(&c, n).unwrap();
            assert!(is_permutation(&a.col_for_row));
            let recomputed: f64 = (0..n).map(|i| c[i * n + a.col_for_row[i]]).sum();
            assert!((recomputed - a.cost).abs() < 1e-12);
            let bf = brute_force(&c, n);
            assert!(
                (a.cost - bf).abs() < 1e-9,
                "trial {trial}: {} vs {bf}",
                a.cost
            );
        }
    }

    #[test]
    fn duals_certify_optimality_on_random_200() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let n = 200;
        let c: Vec<f64> = (0..n * n).map(|_| rng.random::<f64>()).collect();
        let mut s = AssignmentSolver::new();
        let total = s.solve(&c, n).unwrap();
        assert!(is_permutation(s.col_for_row()));
        let (u, v) = (s.row_duals(), s.col_duals());
        // Weak duality: Σu + Σv ≤ any assignment cost; equality certifies optimality.
        let dual: f64 = u.iter().sum::<f64>() + v.iter().sum::<f64>();
        assert!((dual - total).abs() < 1e-9, "{dual} vs {total}");
        for i in 0..n {
            for j in 0..n {
                assert!(c[i * n + j] - u[i] - v[j] > -1e-9);
            }
        }
    }

    #[test]
    fn warm_start_after_increases_matches_cold_solve() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let n = 120;
        let mut c: Vec<f64> = (0..n * n).map(|_| rng.random::<f64>()).collect();
        let mut warm = AssignmentSolver::new();
        warm.solve(&c, n).unwrap();
        for _round in 0..5 {
            // Raise every matched entry and a random tenth of the others.
            for i in 0..n {
                let j = warm.col_for_row()[i];
                c[i * n + j] += rng.random::<f64>();
            }
            for x in c.iter_mut() {
                if rng.random::<f64>() < 0.1 {
                    *x += rng.random::<f64>();
                }
            }
            let w = warm.reoptimize(&c);
            let cold = linear_assignment(&c, n).unwrap().cost;
            assert!((w - cold).abs() < 1e-9, "{w} vs {cold}");
            assert!(is_permutation(warm.col_for_row()));
        }
    }

    #[test]
    fn rejects_bad_input() {
        assert!(matches!(
            linear_assignment(&[1.0; 5], 2),
            Err(MetricsError::ShapeMismatch {
                expected: 4,
                got: 5,
                ..
            })
        ));
        assert!(matches!(
            linear_assignment(&[1.0, f64::NAN, 0.0, 1.0], 2),
            Err(MetricsError::NonFinite { index: 1, .. })
        ));
        assert_eq!(linear_assignment(&[], 0).unwrap().cost, 0.0);
    }
}
