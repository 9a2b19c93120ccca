//! Shared helpers for the unit tests: seeded RNGs, finite differences, random rotations.

use crate::Energy;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

/// Seeded test RNG.
pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// `n` i.i.d. N(mean, scale²) draws.
pub fn normal_vec(rng: &mut impl Rng, n: usize, mean: f64, scale: f64) -> Vec<f64> {
    (0..n)
        .map(|_| mean + scale * rng.sample::<f64, _>(StandardNormal))
        .collect()
}

/// Central finite difference of E along coordinate i with step h.
pub fn fd_component(e: &dyn Energy, x: &[f64], i: usize, h: f64) -> f64 {
    let mut xp = x.to_vec();
    let mut xm = x.to_vec();
    xp[i] += h;
    xm[i] -= h;
    (e.energy(&xp) - e.energy(&xm)) / (2.0 * h)
}

/// Asserts that the analytic gradient matches central differences (h = 1e-5):
/// |g_fd − g| ≤ rtol · max(1, ‖g‖_∞) per coordinate, and that `energy` equals the energy
/// returned by `energy_grad`.
pub fn assert_grad_fd(e: &dyn Energy, x: &[f64], rtol: f64) {
    let mut g = vec![f64::NAN; x.len()];
    let e0 = e.energy_grad(x, &mut g);
    let e1 = e.energy(x);
    assert!(
        (e0 - e1).abs() <= 1e-12 * (1.0 + e0.abs()),
        "{}: energy_grad returned {e0}, energy returned {e1}",
        e.name()
    );
    let scale = g.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    for (i, gi) in g.iter().enumerate() {
        let fd = fd_component(e, x, i, 1e-5);
        assert!(
            (fd - gi).abs() <= rtol * scale,
            "{}: d/dx{i}: analytic {gi} vs finite difference {fd} (scale {scale})",
            e.name()
        );
    }
}

/// A Haar-ish random orthogonal matrix (Gram–Schmidt of a Gaussian matrix), row-major
/// `[k, k]`, with determinant +1.
pub fn random_rotation(rng: &mut impl Rng, k: usize) -> Vec<f64> {
    let mut q = normal_vec(rng, k * k, 0.0, 1.0);
    for r in 0..k {
        for p in 0..r {
            let dot: f64 = (0..k).map(|c| q[r * k + c] * q[p * k + c]).sum();
            for c in 0..k {
                q[r * k + c] -= dot * q[p * k + c];
            }
        }
        let norm: f64 = (0..k).map(|c| q[r * k + c].powi(2)).sum::<f64>().sqrt();
        for c in 0..k {
            q[r * k + c] /= norm;
        }
    }
    if det(&q, k) < 0.0 {
        q[..k].iter_mut().for_each(|v| *v = -*v);
    }
    q
}

fn det(q: &[f64], k: usize) -> f64 {
    match k {
        1 => q[0],
        2 => q[0] * q[3] - q[1] * q[2],
        3 => {
            q[0] * (q[4] * q[8] - q[5] * q[7]) - q[1] * (q[3] * q[8] - q[5] * q[6])
                + q[2] * (q[3] * q[7] - q[4] * q[6])
        }
        _ => unimplemented!("test rotations only in 1-3 dimensions"),
    }
}

/// Applies the `[k, k]` matrix `r` to every particle of `x` (`[n, k]`): x_i ← R x_i.
pub fn rotate(x: &[f64], r: &[f64], k: usize) -> Vec<f64> {
    x.chunks_exact(k)
        .flat_map(|p| (0..k).map(move |a| (0..k).map(|b| r[a * k + b] * p[b]).sum::<f64>()))
        .collect()
}

/// Reorders the particles of `x` (`[n, k]`) by `perm`: particle i of the result is particle
/// perm[i] of `x`.
pub fn permute(x: &[f64], perm: &[usize], k: usize) -> Vec<f64> {
    perm.iter()
        .flat_map(|&j| x[j * k..(j + 1) * k].iter().copied())
        .collect()
}

/// A random permutation of 0..n (Fisher–Yates).
pub fn random_permutation(rng: &mut impl Rng, n: usize) -> Vec<usize> {
    let mut p: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = rng.random_range(0..=i);
        p.swap(i, j);
    }
    p
}

/// Composite Simpson rule on [a, b] with `n` (even) intervals.
pub fn simpson(f: impl Fn(f64) -> f64, a: f64, b: f64, n: usize) -> f64 {
    assert!(n % 2 == 0);
    let h = (b - a) / n as f64;
    let mut s = f(a) + f(b);
    for i in 1..n {
        let w = if i % 2 == 1 { 4.0 } else { 2.0 };
        s += w * f(a + i as f64 * h);
    }
    s * h / 3.0
}
