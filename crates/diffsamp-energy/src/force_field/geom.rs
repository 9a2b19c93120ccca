//! Small 3-vector helpers shared by the force-field terms (positions are `[n, 3]` rows).

/// Position of particle `i` in a flat `[n, 3]` configuration.
#[inline]
pub(crate) fn pos(x: &[f64], i: usize) -> [f64; 3] {
    [x[3 * i], x[3 * i + 1], x[3 * i + 2]]
}

/// a − b.
#[inline]
pub(crate) fn sub(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

/// a · b.
#[inline]
pub(crate) fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

/// a × b.
#[inline]
pub(crate) fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

/// s · a.
#[inline]
pub(crate) fn scale(s: f64, a: [f64; 3]) -> [f64; 3] {
    [s * a[0], s * a[1], s * a[2]]
}

/// grad[i] += g.
#[inline]
pub(crate) fn add_to(grad: &mut [f64], i: usize, g: [f64; 3]) {
    grad[3 * i] += g[0];
    grad[3 * i + 1] += g[1];
    grad[3 * i + 2] += g[2];
}

/// Adds the gradient of a pair term f(r), r = |x_i − x_j|, given df/dr and d = x_i − x_j.
#[inline]
pub(crate) fn add_pair(grad: &mut [f64], i: usize, j: usize, d: [f64; 3], r: f64, dfdr: f64) {
    let g = scale(dfdr / r, d);
    add_to(grad, i, g);
    add_to(grad, j, scale(-1.0, g));
}
