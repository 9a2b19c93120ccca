//! FIFO replay buffer of (X_1, a(X_1)) pairs with seeded uniform minibatch sampling.

use crate::error::{Error, Result};
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
/// are evaluated once, before an entry is pushed. Minibatches are drawn uniformly with
/// replacement from the stored entries by the buffer's own seeded RNG. The whole state
/// (entries, ring position, RNG) serialises with serde, so a checkpoint resumes exactly.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayBuffer {
    capacity: usize,
    dim: usize,
    /// Ring storage `[len, dim]`.
    x1: Vec<f32>,
    /// Ring storage `[len, dim]`.
    adjoint: Vec<f32>,
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

    /// Appends the rows of `x1` and `adjoint` (both `[k, dim]`, f64), dropping the oldest
    /// entries beyond capacity.
    pub fn push(&mut self, x1: &[f64], adjoint: &[f64]) -> Result<()> {
        if x1.len() != adjoint.len() || !x1.len().is_multiple_of(self.dim) {
            return Err(Error::Shape(format!(
                "push of x1 ({}) and adjoint ({}) values into a buffer of dimension {}",
                x1.len(),
                adjoint.len(),
                self.dim
            )));
        }
        let d = self.dim;
        for (x, a) in x1.chunks_exact(d).zip(adjoint.chunks_exact(d)) {
            if self.len() < self.capacity {
                self.x1.extend(x.iter().map(|&v| v as f32));
                self.adjoint.extend(a.iter().map(|&v| v as f32));
            } else {
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
        let d = self.dim;
        let mut x1 = Vec::with_capacity(batch * d);
        let mut adjoint = Vec::with_capacity(batch * d);
        for _ in 0..batch {
            let s = self.rng.random_range(0..len);
            x1.extend_from_slice(&self.x1[s * d..(s + 1) * d]);
            adjoint.extend_from_slice(&self.adjoint[s * d..(s + 1) * d]);
        }
        let shape = [batch as i64, d as i64];
        Some(BufferBatch {
            x1: Tensor::from_slice(&x1).view(shape).to_device(device),
            adjoint: Tensor::from_slice(&adjoint).view(shape).to_device(device),
        })
    }

    /// Checks the internal consistency of a deserialised buffer.
    pub fn validate(&self) -> Result<()> {
        let ok = self.capacity > 0
            && self.dim > 0
            && self.x1.len() == self.adjoint.len()
            && self.x1.len().is_multiple_of(self.dim)
            && self.len() <= self.capacity
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
        b.push(&rows(&[1.0, 2.0]), &rows(&[10.0, 20.0])).unwrap();
        assert_eq!(b.len(), 2);
        assert_eq!(b.x1_in_order(), vec![1.0, -1.0, 2.0, -2.0]);
        b.push(&rows(&[3.0, 4.0]), &rows(&[30.0, 40.0])).unwrap();
        assert_eq!(b.len(), 3);
        assert_eq!(b.x1_in_order(), vec![2.0, -2.0, 3.0, -3.0, 4.0, -4.0]);
        assert_eq!(
            b.adjoint_in_order(),
            vec![20.0, -20.0, 30.0, -30.0, 40.0, -40.0]
        );
        // A push larger than the capacity keeps its last `capacity` rows.
        b.push(&rows(&[5.0, 6.0, 7.0, 8.0]), &rows(&[0.0; 4]))
            .unwrap();
        assert_eq!(b.x1_in_order(), vec![6.0, -6.0, 7.0, -7.0, 8.0, -8.0]);
        b.validate().unwrap();
    }

    #[test]
    fn rejects_bad_shapes_and_capacity() {
        let mut b = ReplayBuffer::new(3, 2, 0).unwrap();
        assert!(b.push(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0]).is_err());
        assert!(b.push(&[1.0, 2.0], &[1.0]).is_err());
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
        b.push(&rows(&[1.0, 2.0, 3.0, 4.0]), &rows(&[5.0, 6.0, 7.0, 8.0]))
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
        b.push(&rows(&[9.0]), &rows(&[9.0])).unwrap();
        c.push(&rows(&[9.0]), &rows(&[9.0])).unwrap();
        assert_eq!(b.x1_in_order(), c.x1_in_order());
    }
}
