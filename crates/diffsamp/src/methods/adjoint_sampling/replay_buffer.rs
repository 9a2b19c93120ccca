//! FIFO replay buffer of (X_1, a(X_1)) pairs with seeded minibatch sampling: uniform (the
//! paper's) or in proportion to a power of each entry's path-space importance weight.

use crate::error::{Error, Result};
use rand::distr::weighted::WeightedIndex;
use rand::distr::Distribution;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::{Device, Tensor};

/// A minibatch drawn from a [`ReplayBuffer`].
#[derive(Debug)]
pub struct BufferBatch {
    /// Terminal samples X_1, `[batch, dim]`, f32.
    pub x1: Tensor,
    /// Their terminal adjoints a(X_1), `[batch, dim]`, f32.
    pub adjoint: Tensor,
}

/// First-in-first-out buffer of the latest `capacity` pairs (X_1, a(X_1)) (REFERENCE §1.5).
///
/// Entries are stored in f32 (the network's precision) in a ring; the energy and its gradient
/// are evaluated once, before an entry is pushed, together with the entry's path-space
/// log-weight log w ([`crate::sde::importance`]). Minibatches are drawn with replacement by the
/// buffer's own seeded RNG, uniformly ([`ReplayBuffer::sample`]) or with probability ∝ w^γ
/// ([`ReplayBuffer::sample_weighted`]). The whole state (entries, ring position, RNG)
/// serialises with serde, so a checkpoint resumes exactly.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayBuffer {
    capacity: usize,
    dim: usize,
    /// Ring storage `[len, dim]`.
    x1: Vec<f32>,
    /// Ring storage `[len, dim]`.
    adjoint: Vec<f32>,
    /// Ring storage `[len]`: log w of each entry (−∞: unknown, e.g. an entry of a checkpoint
    /// written before the buffer kept weights; never drawn by weighted sampling).
    #[serde(default)]
    log_weights: Vec<f64>,
    /// Slot of the oldest entry once full (the next one overwritten).
    head: usize,
    rng: ChaCha8Rng,
}

impl ReplayBuffer {
    /// An empty buffer of `capacity` ≥ 1 entries of dimension `dim` ≥ 1, sampling with an RNG
    /// seeded by `seed`.
    pub fn new(capacity: usize, dim: usize, seed: u64) -> Result<Self> {
        if capacity == 0 {
            return Err(Error::Config {
                key: "buffer_size".into(),
                why: "must be at least 1".into(),
            });
        }
        if dim == 0 {
            return Err(Error::Shape("replay buffer of dimension 0".into()));
        }
        Ok(Self {
            capacity,
            dim,
            x1: Vec::new(),
            adjoint: Vec::new(),
            log_weights: Vec::new(),
            head: 0,
            rng: ChaCha8Rng::seed_from_u64(seed),
        })
    }

    /// Maximum number of entries.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Dimension of one entry.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of stored entries (≤ capacity).
    pub fn len(&self) -> usize {
        self.x1.len() / self.dim
    }

    /// Whether nothing has been pushed yet.
    pub fn is_empty(&self) -> bool {
        self.x1.is_empty()
    }

    /// Appends the rows of `x1` and `adjoint` (both `[k, dim]`, f64) with their log-weights
    /// `log_weights` (`[k]`; a NaN counts as −∞), dropping the oldest entries beyond capacity.
    pub fn push(&mut self, x1: &[f64], adjoint: &[f64], log_weights: &[f64]) -> Result<()> {
        if x1.len() != adjoint.len()
            || !x1.len().is_multiple_of(self.dim)
            || log_weights.len() * self.dim != x1.len()
        {
            return Err(Error::Shape(format!(
                "push of x1 ({}), adjoint ({}) and log-weight ({}) values into a buffer of \
                 dimension {}",
                x1.len(),
                adjoint.len(),
                log_weights.len(),
                self.dim
            )));
        }
        // A buffer restored from a checkpoint without weights: its entries' weights are unknown.
        self.log_weights.resize(self.len(), f64::NEG_INFINITY);
        let d = self.dim;
        for ((x, a), &lw) in x1
            .chunks_exact(d)
            .zip(adjoint.chunks_exact(d))
            .zip(log_weights)
        {
            let lw = if lw.is_nan() { f64::NEG_INFINITY } else { lw };
            if self.len() < self.capacity {
                self.x1.extend(x.iter().map(|&v| v as f32));
                self.adjoint.extend(a.iter().map(|&v| v as f32));
                self.log_weights.push(lw);
            } else {
                self.log_weights[self.head] = lw;
                let slot = self.head * d..(self.head + 1) * d;
                for (dst, &src) in self.x1[slot.clone()].iter_mut().zip(x) {
                    *dst = src as f32;
                }
                for (dst, &src) in self.adjoint[slot].iter_mut().zip(a) {
                    *dst = src as f32;
                }
                self.head = (self.head + 1) % self.capacity;
            }
        }
        Ok(())
    }

    /// Storage slots from oldest to newest.
    fn slots_in_order(&self) -> impl Iterator<Item = usize> + '_ {
        let len = self.len();
        let start = if len == self.capacity { self.head } else { 0 };
        (0..len).map(move |k| (start + k) % len.max(1))
    }

    /// The stored X_1 rows, oldest first, `[len, dim]`.
    pub fn x1_in_order(&self) -> Vec<f32> {
        let d = self.dim;
        self.slots_in_order()
            .flat_map(|s| self.x1[s * d..(s + 1) * d].iter().copied())
            .collect()
    }

    /// The stored adjoint rows, oldest first, `[len, dim]`.
    pub fn adjoint_in_order(&self) -> Vec<f32> {
        let d = self.dim;
        self.slots_in_order()
            .flat_map(|s| self.adjoint[s * d..(s + 1) * d].iter().copied())
            .collect()
    }

    /// `batch` entries drawn uniformly with replacement, as f32 tensors on `device`; `None`
    /// when the buffer is empty or `batch` is 0.
    pub fn sample(&mut self, batch: usize, device: Device) -> Option<BufferBatch> {
        let len = self.len();
        if len == 0 || batch == 0 {
            return None;
        }
        let slots: Vec<usize> = (0..batch).map(|_| self.rng.random_range(0..len)).collect();
        Some(self.gather(&slots, device))
    }

    /// `batch` entries drawn with replacement with probability ∝ min(w^γ, √n · mean w^γ) over
    /// the n stored entries (γ = `power` > 0), as f32 tensors on `device`; `None` when the
    /// buffer is empty or `batch` is 0. Entries of weight zero (log w = −∞) are never drawn;
    /// when every entry has weight zero the draw is uniform.
    ///
    /// With log w_i = log p̃(X_1^i) − log q_i(path i), each entry's weight is an unbiased
    /// estimate of Z whatever control drew it, so the weights of entries from different epochs
    /// are on one scale and with γ = 1 the reweighted buffer follows the target. The cap at
    /// √n times the mean is truncated importance sampling (Ionides 2008): one path far in a
    /// tail the sampler misses would otherwise fill whole minibatches; the cap's bias vanishes
    /// as n grows.
    pub fn sample_weighted(
        &mut self,
        batch: usize,
        power: f64,
        device: Device,
    ) -> Option<BufferBatch> {
        if self.is_empty() || batch == 0 {
            return None;
        }
        let Some(probs) = self.replay_probabilities(power) else {
            return self.sample(batch, device);
        };
        let index = WeightedIndex::new(&probs).expect("weights are finite with a positive maximum");
        let slots: Vec<usize> = (0..batch).map(|_| index.sample(&mut self.rng)).collect();
        Some(self.gather(&slots, device))
    }

    /// The unnormalised draw probabilities of [`ReplayBuffer::sample_weighted`] per storage
    /// slot; `None` when no entry has a known positive weight.
    fn replay_probabilities(&self, power: f64) -> Option<Vec<f64>> {
        let len = self.len();
        let known = &self.log_weights[..self.log_weights.len().min(len)];
        let top = known.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if !top.is_finite() {
            return None;
        }
        let mut probs: Vec<f64> = known.iter().map(|&lw| (power * (lw - top)).exp()).collect();
        probs.resize(len, 0.0);
        let cap = (len as f64).sqrt() * probs.iter().sum::<f64>() / len as f64;
        probs.iter_mut().for_each(|p| *p = p.min(cap));
        Some(probs)
    }

    /// The effective sample size (Σp)² / Σp² of the draw probabilities p of
    /// [`ReplayBuffer::sample_weighted`] as a fraction of the stored entries (0 when no entry
    /// has a known weight).
    pub fn ess_fraction(&self, power: f64) -> f64 {
        let Some(probs) = self.replay_probabilities(power) else {
            return 0.0;
        };
        let (s1, s2) = probs
            .iter()
            .fold((0.0, 0.0), |(s1, s2), &p| (s1 + p, s2 + p * p));
        s1 * s1 / s2 / probs.len() as f64
    }

    /// The entries in storage slots `slots` as a minibatch on `device`.
    fn gather(&self, slots: &[usize], device: Device) -> BufferBatch {
        let d = self.dim;
        let batch = slots.len();
        let mut x1 = Vec::with_capacity(batch * d);
        let mut adjoint = Vec::with_capacity(batch * d);
        for &s in slots {
            x1.extend_from_slice(&self.x1[s * d..(s + 1) * d]);
            adjoint.extend_from_slice(&self.adjoint[s * d..(s + 1) * d]);
        }
        let shape = [batch as i64, d as i64];
        BufferBatch {
            x1: Tensor::from_slice(&x1).view(shape).to_device(device),
            adjoint: Tensor::from_slice(&adjoint).view(shape).to_device(device),
        }
    }

    /// Checks the internal consistency of a deserialised buffer.
    pub fn validate(&self) -> Result<()> {
        let ok = self.capacity > 0
            && self.dim > 0
            && self.x1.len() == self.adjoint.len()
            && self.x1.len().is_multiple_of(self.dim)
            && self.len() <= self.capacity
            && self.log_weights.len() <= self.len()
            && (self.head == 0 || (self.len() == self.capacity && self.head < self.capacity));
        if ok {
            Ok(())
        } else {
            Err(Error::Shape(format!(
                "inconsistent replay buffer state (capacity {}, dim {}, {} / {} values, head {})",
                self.capacity,
                self.dim,
                self.x1.len(),
                self.adjoint.len(),
                self.head
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(v: &[f64]) -> Vec<f64> {
        v.iter().flat_map(|&x| [x, -x]).collect()
    }

    #[test]
    fn keeps_the_latest_entries_in_fifo_order() {
        let mut b = ReplayBuffer::new(3, 2, 0).unwrap();
        assert!(b.is_empty());
        b.push(&rows(&[1.0, 2.0]), &rows(&[10.0, 20.0]), &[0.0; 2])
            .unwrap();
        assert_eq!(b.len(), 2);
        assert_eq!(b.x1_in_order(), vec![1.0, -1.0, 2.0, -2.0]);
        b.push(&rows(&[3.0, 4.0]), &rows(&[30.0, 40.0]), &[0.0; 2])
            .unwrap();
        assert_eq!(b.len(), 3);
        assert_eq!(b.x1_in_order(), vec![2.0, -2.0, 3.0, -3.0, 4.0, -4.0]);
        assert_eq!(
            b.adjoint_in_order(),
            vec![20.0, -20.0, 30.0, -30.0, 40.0, -40.0]
        );
        // A push larger than the capacity keeps its last `capacity` rows.
        b.push(&rows(&[5.0, 6.0, 7.0, 8.0]), &rows(&[0.0; 4]), &[0.0; 4])
            .unwrap();
        assert_eq!(b.x1_in_order(), vec![6.0, -6.0, 7.0, -7.0, 8.0, -8.0]);
        b.validate().unwrap();
    }

    #[test]
    fn rejects_bad_shapes_and_capacity() {
        let mut b = ReplayBuffer::new(3, 2, 0).unwrap();
        assert!(b.push(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0], &[0.0]).is_err());
        assert!(b.push(&[1.0, 2.0], &[1.0], &[0.0]).is_err());
        assert!(b.push(&[1.0, 2.0], &[1.0, 2.0], &[0.0, 0.0]).is_err());
        assert!(matches!(
            ReplayBuffer::new(0, 2, 0),
            Err(Error::Config { key, .. }) if key == "buffer_size"
        ));
        assert!(b.sample(4, Device::Cpu).is_none());
    }

    #[test]
    fn samples_pairs_uniformly_and_reproducibly() {
        let mut b = ReplayBuffer::new(4, 2, 7).unwrap();
        b.push(
            &rows(&[0.0, 1.0, 2.0, 3.0]),
            &rows(&[0.0, 10.0, 20.0, 30.0]),
            &[0.0; 4],
        )
        .unwrap();
        let mut c = b.clone();
        let s = b.sample(4000, Device::Cpu).unwrap();
        let t = c.sample(4000, Device::Cpu).unwrap();
        assert!(s.x1.equal(&t.x1) && s.adjoint.equal(&t.adjoint));
        assert_eq!(s.x1.size(), vec![4000, 2]);
        // Pairs stay together: adjoint = 10 · x1.
        assert!((&s.adjoint - &s.x1 * 10.0).abs().max().double_value(&[]) < 1e-6);
        // Uniform: each of the 4 entries ≈ 1000 times (s.d. ≈ 27).
        let x: Vec<f32> = Vec::try_from(&s.x1.select(1, 0)).unwrap();
        for k in 0..4 {
            let count = x.iter().filter(|&&v| v == k as f32).count();
            assert!((count as i64 - 1000).abs() < 150, "entry {k}: {count}");
        }
    }

    #[test]
    fn state_round_trips_through_serde() {
        let mut b = ReplayBuffer::new(3, 2, 1).unwrap();
        b.push(
            &rows(&[1.0, 2.0, 3.0, 4.0]),
            &rows(&[5.0, 6.0, 7.0, 8.0]),
            &[0.0, -1.0, -2.0, -3.0],
        )
        .unwrap();
        b.sample(5, Device::Cpu);
        let json = serde_json::to_string(&b).unwrap();
        let mut c: ReplayBuffer = serde_json::from_str(&json).unwrap();
        c.validate().unwrap();
        assert_eq!(b.x1_in_order(), c.x1_in_order());
        let (s, t) = (
            b.sample(6, Device::Cpu).unwrap(),
            c.sample(6, Device::Cpu).unwrap(),
        );
        assert!(s.x1.equal(&t.x1));
        // Further pushes land in the same slots.
        b.push(&rows(&[9.0]), &rows(&[9.0]), &[0.5]).unwrap();
        c.push(&rows(&[9.0]), &rows(&[9.0]), &[0.5]).unwrap();
        assert_eq!(b.x1_in_order(), c.x1_in_order());
        let (s, t) = (
            b.sample_weighted(6, 1.0, Device::Cpu).unwrap(),
            c.sample_weighted(6, 1.0, Device::Cpu).unwrap(),
        );
        assert!(s.x1.equal(&t.x1));
    }

    /// Counts of each x1 value (entries are 0, 1, 2, ...) among the first coordinates drawn.
    fn counts(batch: &BufferBatch, n_entries: usize) -> Vec<usize> {
        let x: Vec<f32> = Vec::try_from(&batch.x1.select(1, 0)).unwrap();
        (0..n_entries)
            .map(|k| x.iter().filter(|&&v| v == k as f32).count())
            .collect()
    }

    #[test]
    fn weighted_sampling_draws_in_proportion_to_a_power_of_the_weights() {
        let mut b = ReplayBuffer::new(4, 2, 3).unwrap();
        let w: [f64; 4] = [1.0, 2.0, 3.0, 4.0];
        let log_w: Vec<f64> = w.iter().map(|v| v.ln() + 100.0).collect();
        b.push(&rows(&[0.0, 1.0, 2.0, 3.0]), &rows(&[0.0; 4]), &log_w)
            .unwrap();
        let n = 20_000;
        for power in [1.0, 0.5] {
            let p: Vec<f64> = w.iter().map(|v| v.powf(power)).collect();
            let total: f64 = p.iter().sum();
            let c = counts(&b.sample_weighted(n, power, Device::Cpu).unwrap(), 4);
            for (k, (&count, &pk)) in c.iter().zip(&p).enumerate() {
                let (mean, var) = (
                    n as f64 * pk / total,
                    n as f64 * pk / total * (1.0 - pk / total),
                );
                let z = (count as f64 - mean) / var.sqrt();
                assert!(z.abs() < 5.0, "γ {power}, entry {k}: {count} vs {mean:.0}");
            }
        }
        let ess = b.ess_fraction(1.0);
        assert!((ess - 100.0 / (30.0 * 4.0)).abs() < 1e-12, "{ess}");
        assert!((b.ess_fraction(0.0) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn one_huge_weight_is_capped_at_root_n_times_the_mean() {
        // 100 entries: one of weight 1000 (uncapped it would be drawn 91 % of the time), 99 of
        // weight 1.
        let mut b = ReplayBuffer::new(100, 2, 9).unwrap();
        let x: Vec<f64> = (0..100).map(|k| k as f64).collect();
        let mut log_w = vec![0.0; 100];
        log_w[0] = 1000f64.ln();
        b.push(&rows(&x), &rows(&[0.0; 100]), &log_w).unwrap();
        // mean = (1000 + 99) / 100 = 10.99, cap = 10 · 10.99 = 109.9: P(entry 0) = 109.9 / 208.9.
        let p0 = 109.9 / 208.9;
        let n = 20_000;
        let c = counts(&b.sample_weighted(n, 1.0, Device::Cpu).unwrap(), 100);
        let se = (p0 * (1.0 - p0) / n as f64).sqrt();
        let f0 = c[0] as f64 / n as f64;
        assert!((f0 - p0).abs() < 5.0 * se, "{f0} vs {p0}");
        let ess = b.ess_fraction(1.0);
        let expect = 208.9f64.powi(2) / (109.9f64.powi(2) + 99.0) / 100.0;
        assert!((ess - expect).abs() < 1e-9, "{ess} vs {expect}");
    }

    #[test]
    fn weight_zero_entries_are_never_drawn_and_all_zero_falls_back_to_uniform() {
        let mut b = ReplayBuffer::new(3, 2, 5).unwrap();
        b.push(
            &rows(&[0.0, 1.0, 2.0]),
            &rows(&[0.0; 3]),
            &[f64::NEG_INFINITY, f64::NAN, 0.0],
        )
        .unwrap();
        assert_eq!(
            counts(&b.sample_weighted(500, 1.0, Device::Cpu).unwrap(), 3),
            [0, 0, 500]
        );
        let mut u = ReplayBuffer::new(3, 2, 5).unwrap();
        u.push(
            &rows(&[0.0, 1.0, 2.0]),
            &rows(&[0.0; 3]),
            &[f64::NEG_INFINITY; 3],
        )
        .unwrap();
        let c = counts(&u.sample_weighted(3000, 1.0, Device::Cpu).unwrap(), 3);
        // Uniform: 1000 each, s.d. ≈ 26.
        assert!(c.iter().all(|&k| (k as i64 - 1000).abs() < 130), "{c:?}");
        assert_eq!(u.ess_fraction(1.0), 0.0);
    }

    #[test]
    fn a_checkpoint_without_weights_loads_and_its_entries_count_as_unknown() {
        let mut b = ReplayBuffer::new(3, 2, 1).unwrap();
        b.push(&rows(&[0.0, 1.0]), &rows(&[0.0; 2]), &[0.0; 2])
            .unwrap();
        let mut json: serde_json::Value = serde_json::to_value(&b).unwrap();
        json.as_object_mut().unwrap().remove("log_weights");
        let mut old: ReplayBuffer = serde_json::from_value(json).unwrap();
        old.validate().unwrap();
        old.push(&rows(&[2.0]), &rows(&[0.0]), &[0.0]).unwrap();
        old.validate().unwrap();
        // Only the entry pushed after the restore has a known weight.
        assert_eq!(
            counts(&old.sample_weighted(200, 1.0, Device::Cpu).unwrap(), 3),
            [0, 0, 200]
        );
    }
}
