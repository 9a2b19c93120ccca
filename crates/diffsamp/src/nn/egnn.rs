//! E(n)-equivariant graph neural network control for particle systems (REFERENCE §1.6).

use crate::energy::{Molecule, Particles};
use crate::error::{Error, Result};
use crate::nn::layers::{linear, linear_xavier};
use crate::nn::{Control, StateLayout};
use crate::sde::remove_com;
use serde::{Deserialize, Serialize};
use tch::nn::{Linear, Path};
use tch::Tensor;

/// How messages from the n − 1 neighbours are combined (nodes and coordinates alike).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregation {
    /// Σ_{j≠i} (the reference EGNN of the diffusion-sampler literature).
    Sum,
    /// (1/(n−1)) Σ_{j≠i}.
    Mean,
}

/// Settings of [`Egnn`]; the defaults are the synthetic-system network of Adjoint Sampling.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EgnnConfig {
    /// Number of message-passing layers L ≥ 1 (paper: 5).
    pub n_layers: usize,
    /// Width H ≥ 1 of node features and of every MLP (paper: 128).
    pub hidden: usize,
    /// Bound c > 0 of the coordinate messages, φ_x = c · tanh(·) (paper: 3).
    pub coords_range: f64,
    /// Message aggregation (default: sum).
    pub aggregation: Aggregation,
}

impl Default for EgnnConfig {
    fn default() -> Self {
        Self {
            n_layers: 5,
            hidden: 128,
            coords_range: 3.0,
            aggregation: Aggregation::Sum,
        }
    }
}

impl EgnnConfig {
    /// Checks the ranges documented on the fields; errors name the key.
    pub fn validate(&self) -> Result<()> {
        let bad = |key: &str, why: &str| {
            Err(Error::Config {
                key: key.to_string(),
                why: why.to_string(),
            })
        };
        if self.n_layers == 0 {
            return bad("n_layers", "must be at least 1");
        }
        if self.hidden == 0 {
            return bad("hidden", "must be at least 1");
        }
        if !(self.coords_range.is_finite() && self.coords_range > 0.0) {
            return bad("coords_range", "must be positive and finite");
        }
        Ok(())
    }
}

/// One equivariant graph convolution (E_GCL) on the fully connected graph. With
/// d_ij = x_i − x_j, r_ij = ‖d_ij‖², a_ij the squared distance of the network input:
///
/// m_ij = SiLU(W_o SiLU(W_s h_i + W_d h_j + w_r r_ij + w_a a_ij [+ w_b b_ij] + b) + b_o)   (j ≠ i)
/// m_ij ← m_ij · sigmoid(w_att · m_ij + b_att)      (first layer factorised: [h_i, h_j, r, a])
///
/// with b_ij = 1 when atoms i and j of a molecule share a bond, 0 otherwise (molecules only).
/// x_i ← x_i + Agg_j d_ij / (√r_ij + 1) · c tanh(w_x · SiLU(W_x m_ij + b_x))
/// h_i ← h_i + W_n2 SiLU(W_n1 [h_i, Agg_j m_ij] + b_n1) + b_n2
#[derive(Debug)]
struct EgnnLayer {
    edge_src: Linear,
    edge_dst: Linear,
    edge_geom: Linear,
    edge_out: Linear,
    attention: Linear,
    coord_hidden: Linear,
    coord_out: Linear,
    /// Node update (W_n1, W_n2); absent in the last layer, whose h would feed nothing.
    node: Option<(Linear, Linear)>,
}

impl EgnnLayer {
    /// A layer of width `h` whose edges carry `edge_features` scalars (2: r and a; 3 with the
    /// bond indicator of a molecule).
    fn new(p: Path, h: usize, edge_features: usize, last: bool) -> Self {
        let edge_fan_in = 2 * h + edge_features;
        Self {
            edge_src: linear(&p / "edge_src", h, h, edge_fan_in, true),
            edge_dst: linear(&p / "edge_dst", h, h, edge_fan_in, false),
            edge_geom: linear(&p / "edge_geom", edge_features, h, edge_fan_in, false),
            edge_out: linear(&p / "edge_out", h, h, h, true),
            attention: linear(&p / "attention", h, 1, h, true),
            coord_hidden: linear(&p / "coord_hidden", h, h, h, true),
            coord_out: linear_xavier(&p / "coord_out", h, 1, 1e-3),
            node: (!last).then(|| {
                (
                    linear(&p / "node_hidden", 2 * h, h, 2 * h, true),
                    linear(&p / "node_out", h, h, h, true),
                )
            }),
        }
    }
}

/// EGNN control v_θ(t, x) for a particle system (REFERENCE §1.6).
///
/// Input: t `[batch]`, x `[batch, n·spatial]` (or `[batch, n, spatial]`); h⁰_i = Embed(t), plus
/// W_z onehot(element_i) for a molecule (whose edges also carry the bond indicator b_ij);
/// edge attribute a_ij = ‖x_i − x_j‖² of the input; L layers of [`EgnnLayer`] on the fully
/// connected graph, all graphs of the batch in `[batch, n, n, H]` tensors; output
/// x^L − x⁰ with its COM removed, shaped like x. E(n)-equivariant in x, invariant to
/// translations, permutation-equivariant.
///
/// Parameters (path segments = field names): `embedding`, `layers.{k}.{edge_src, edge_dst,
/// edge_geom, edge_out, attention, coord_hidden, coord_out, node_hidden, node_out}`; the last
/// layer has no `node_*` (its node update would not reach the output). A molecule adds
/// `atom_embedding` (no bias).
#[derive(Debug)]
pub struct Egnn {
    embedding: Linear,
    atoms: Option<AtomFeatures>,
    layers: Vec<EgnnLayer>,
    particles: Particles,
    neighbours: Neighbours,
    conditions: usize,
    config: EgnnConfig,
}

impl Egnn {
    /// A network for `particles` with parameters under `path`, conditioned on the time alone.
    pub fn new(path: &Path, particles: Particles, config: EgnnConfig) -> Result<Self> {
        Self::with_conditions(path, particles, config, 1)
    }

    /// A network conditioned on `conditions` ≥ 1 scalars per graph (h⁰_i = W c + b, e.g.
    /// c = (noise level, inverse temperature) for PITA); see [`Egnn::forward_conditioned`].
    pub fn with_conditions(
        path: &Path,
        particles: Particles,
        config: EgnnConfig,
        conditions: usize,
    ) -> Result<Self> {
        Self::build(path, particles, config, conditions, None)
    }

    /// A network for the configurations of `layout`: a molecule's atoms (with their elements
    /// and bonds) or identical particles. A plain vector layout is an error.
    pub fn for_layout(
        path: &Path,
        layout: &StateLayout,
        config: EgnnConfig,
        conditions: usize,
    ) -> Result<Self> {
        let points = layout.points.ok_or_else(|| Error::Config {
            key: "network".into(),
            why: "an EGNN needs a particle system or a molecule; use [network.mlp]".into(),
        })?;
        Self::build(path, points, config, conditions, layout.molecule.as_ref())
    }

    /// A network for the atoms of `molecule` (node types = elements, edge feature = bond
    /// indicator), conditioned on `conditions` ≥ 1 scalars per graph.
    pub fn for_molecule(
        path: &Path,
        molecule: &Molecule,
        config: EgnnConfig,
        conditions: usize,
    ) -> Result<Self> {
        Self::build(path, molecule.layout(), config, conditions, Some(molecule))
    }

    /// A network for `particles` or, with `molecule`, for its atoms (`particles` must then be
    /// its `[atoms, 3]` layout).
    pub fn build(
        path: &Path,
        particles: Particles,
        config: EgnnConfig,
        conditions: usize,
        molecule: Option<&Molecule>,
    ) -> Result<Self> {
        config.validate()?;
        if let Some(m) = molecule {
            if m.layout() != particles {
                return Err(Error::Config {
                    key: "network".into(),
                    why: format!(
                        "a molecule of {} atoms needs a [{}, 3] layout, not [{}, {}]",
                        m.n_atoms(),
                        m.n_atoms(),
                        particles.n,
                        particles.spatial
                    ),
                });
            }
        }
        if conditions == 0 {
            return Err(Error::Config {
                key: "conditions".into(),
                why: "an EGNN needs at least one conditioning scalar".into(),
            });
        }
        let h = config.hidden;
        let c = conditions;
        let layers_path = path / "layers";
        let atoms = molecule.map(|m| AtomFeatures::new(path, m, h));
        let edge_features = if atoms.is_some() { 3 } else { 2 };
        Ok(Self {
            embedding: linear(path / "embedding", c, h, c, true),
            atoms,
            layers: (0..config.n_layers)
                .map(|k| {
                    EgnnLayer::new(&layers_path / k, h, edge_features, k + 1 == config.n_layers)
                })
                .collect(),
            particles,
            neighbours: Neighbours::new(particles.n as i64, path.device()),
            conditions,
            config,
        })
    }

    /// The settings this network was built with.
    pub fn config(&self) -> &EgnnConfig {
        &self.config
    }

    /// The particle layout.
    pub fn particles(&self) -> Particles {
        self.particles
    }

    /// v_θ(t, x): t `[batch]`, x `[batch, n·spatial]` or `[batch, n, spatial]` → shape of x.
    pub fn forward(&self, t: &Tensor, x: &Tensor) -> Tensor {
        self.forward_conditioned(&t.view([-1, 1]), x)
    }

    /// Number of conditioning scalars per graph.
    pub fn conditions(&self) -> usize {
        self.conditions
    }

    /// The network with conditions c `[batch, conditions]` and x `[batch, n·spatial]` or
    /// `[batch, n, spatial]` → shape of x.
    ///
    /// Pair tensors hold the n − 1 neighbours of each node, `[B, n, n − 1, ·]` (no self pairs).
    pub fn forward_conditioned(&self, c: &Tensor, x: &Tensor) -> Tensor {
        let shape = x.size();
        let (n, s) = (self.particles.n as i64, self.particles.spatial as i64);
        let x0 = x.view([-1, n, s]);
        let b = x0.size()[0];
        let kind = x.kind();
        let neighbours = &self.neighbours;
        let scale = match self.config.aggregation {
            Aggregation::Sum => 1.0,
            Aggregation::Mean => 1.0 / (n - 1).max(1) as f64,
        };
        // a_ij = ‖x_i − x_j‖² of the input, [B, n, n − 1, 1].
        let a = neighbours
            .diff(&x0)
            .square()
            .sum_dim_intlist(-1, true, kind);
        let nc = self.conditions as i64;
        let mut h = c
            .to_kind(kind)
            .view([b, 1, nc])
            .expand([b, n, nc], true)
            .apply(&self.embedding);
        // Static edge features [B, n, n − 1, ·]: a_ij, and b_ij for a molecule.
        let fixed = match &self.atoms {
            Some(atoms) => {
                h = &h + atoms.types.to_kind(kind).apply(&atoms.embedding);
                let bonded = atoms.bonded.to_kind(kind).expand([b, n, n - 1, 1], false);
                Tensor::cat(&[&a, &bonded], -1)
            }
            None => a,
        };
        let mut x = x0.shallow_clone();
        for layer in &self.layers {
            let diff = neighbours.diff(&x); // [B, n, n − 1, s]
            let radial = diff.square().sum_dim_intlist(-1, true, kind); // [B, n, n − 1, 1]

            // First edge layer, factorised: W_s h_i + W_d h_j computed per node, then
            // broadcast (i) / gathered (j) over the pairs.
            let src = h.apply(&layer.edge_src).unsqueeze(2); // [B, n, 1, H]
            let dst = neighbours.gather(&h.apply(&layer.edge_dst)); // [B, n, n − 1, H]
            let geom = Tensor::cat(&[&radial, &fixed], -1).apply(&layer.edge_geom);
            let m = (geom + dst + src).silu().apply(&layer.edge_out).silu();
            let m = &m * m.apply(&layer.attention).sigmoid(); // [B, n, n − 1, H]

            // Coordinates. The 1e-30 keeps √ differentiable when two particles coincide
            // (e.g. X_0 = 0); it changes no representable distance.
            let norm = (&radial + 1e-30).sqrt() + 1.0;
            let phi = m
                .apply(&layer.coord_hidden)
                .silu()
                .apply(&layer.coord_out)
                .tanh()
                * self.config.coords_range;
            let trans = (diff / norm * phi).sum_dim_intlist(2, false, kind);
            // Not in place: x and h are saved for the backward pass.
            x = &x + trans * scale;
            // Nodes: residual update from aggregated messages.
            if let Some((node_hidden, node_out)) = &layer.node {
                let agg = m.sum_dim_intlist(2, false, kind) * scale; // [B, n, H]
                let upd = Tensor::cat(&[&h, &agg], -1)
                    .apply(node_hidden)
                    .silu()
                    .apply(node_out);
                h = &h + upd;
            }
        }
        remove_com(&(x - x0), self.particles).view(shape.as_slice())
    }
}

/// The node and edge types of a molecule's atoms.
#[derive(Debug)]
struct AtomFeatures {
    /// W_z: one-hot element → H, no bias (parameter `atom_embedding`).
    embedding: Linear,
    /// One-hot element of every atom over the molecule's distinct elements, `[n, K]`.
    types: Tensor,
    /// b_ij in the [`Neighbours`] pair order, `[1, n, n − 1, 1]`.
    bonded: Tensor,
}

impl AtomFeatures {
    fn new(path: &Path, molecule: &Molecule, h: usize) -> Self {
        let elements = molecule.elements();
        let k = elements.len();
        let n = molecule.n_atoms();
        let mut types = vec![0f32; n * k];
        for (i, z) in molecule.atomic_numbers().iter().enumerate() {
            let t = elements
                .binary_search(z)
                .expect("elements() lists every atom's element");
            types[i * k + t] = 1.0;
        }
        let bonded: Vec<f32> = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| if molecule.bonded(i, j) { 1.0 } else { 0.0 })
            .collect();
        let device = path.device();
        Self {
            embedding: linear(path / "atom_embedding", k, h, k, false),
            types: Tensor::from_slice(&types)
                .view([n as i64, k as i64])
                .to_device(device),
            bonded: Tensor::from_slice(&bonded)
                .view([1, n as i64, n as i64 - 1, 1])
                .to_device(device),
        }
    }
}

/// The fully connected graph without self loops: node i's neighbours are j ≠ i, in order.
#[derive(Debug)]
struct Neighbours {
    n: i64,
    /// Flat `[n (n − 1)]` indices j of the pairs (i, j), row-major in i.
    index: Tensor,
}

impl Neighbours {
    fn new(n: i64, device: tch::Device) -> Self {
        let index: Vec<i64> = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i))
            .collect();
        Self {
            n,
            index: Tensor::from_slice(&index).to_device(device),
        }
    }

    /// Per-node values `[B, n, F]` → the neighbours' values `[B, n, n − 1, F]`.
    fn gather(&self, v: &Tensor) -> Tensor {
        let size = v.size();
        v.index_select(1, &self.index)
            .view([size[0], self.n, self.n - 1, size[2]])
    }

    /// d_ij = x_i − x_j: `[B, n, s]` → `[B, n, n − 1, s]`.
    fn diff(&self, x: &Tensor) -> Tensor {
        x.unsqueeze(2) - self.gather(x)
    }
}

impl Control for Egnn {
    fn control(&self, t: &Tensor, x: &Tensor) -> Tensor {
        self.forward(t, x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::layers::testing::{names, randomise, torch_rng};
    use tch::nn::VarStore;
    use tch::{Device, Kind};

    fn small(n: usize, spatial: usize, aggregation: Aggregation) -> (VarStore, Egnn) {
        let vs = VarStore::new(Device::Cpu);
        let cfg = EgnnConfig {
            n_layers: 2,
            hidden: 16,
            coords_range: 3.0,
            aggregation,
        };
        let net = Egnn::new(&vs.root(), Particles { n, spatial }, cfg).unwrap();
        randomise(&vs, 1, 0.3);
        (vs, net)
    }

    /// A random orthogonal matrix with determinant −1 (rotation + reflection), `[s, s]`.
    fn random_reflection(s: i64) -> Tensor {
        let g = Tensor::randn([s, s], (Kind::Double, Device::Cpu));
        let (q, _) = Tensor::linalg_qr(&g, "reduced");
        let det = q.det().double_value(&[]);
        let flip = Tensor::from_slice(&[if det > 0.0 { -1.0 } else { 1.0 }, 1.0, 1.0]);
        (q * flip.narrow(0, 0, s)).to_kind(Kind::Float)
    }

    fn max_abs(a: &Tensor) -> f64 {
        a.abs().max().double_value(&[])
    }

    #[test]
    fn output_has_shape_and_zero_com() {
        let _rng = torch_rng();
        let (_vs, net) = small(5, 3, Aggregation::Sum);
        tch::manual_seed(2);
        let x = Tensor::randn([4, 15], (Kind::Float, Device::Cpu));
        let t = Tensor::from_slice(&[0.0f32, 0.3, 0.6, 1.0]);
        let v = net.forward(&t, &x);
        assert_eq!(v.size(), vec![4, 15]);
        let com = v.view([4, 5, 3]).mean_dim(1, false, None);
        assert!(max_abs(&com) < 1e-6);
        assert!(
            max_abs(&v) > 1e-2,
            "randomised network should give O(1) output"
        );
        let v3 = net.forward(&t, &x.view([4, 5, 3]));
        assert_eq!(v3.size(), vec![4, 5, 3]);
    }

    #[test]
    fn equivariant_to_rotation_and_reflection() {
        let _rng = torch_rng();
        for (s, agg) in [(3, Aggregation::Sum), (2, Aggregation::Mean)] {
            let (_vs, net) = small(6, s as usize, agg);
            tch::manual_seed(3);
            let x = Tensor::randn([3, 6, s], (Kind::Float, Device::Cpu));
            let t = Tensor::from_slice(&[0.1f32, 0.5, 0.9]);
            let q = random_reflection(s);
            let v = net.forward(&t, &x);
            let v_rot = net.forward(&t, &x.matmul(&q));
            let err = max_abs(&(v.matmul(&q) - &v_rot));
            assert!(err < 1e-4 * max_abs(&v).max(1.0), "spatial {s}: {err}");
        }
    }

    #[test]
    fn equivariant_to_permutation_and_invariant_to_translation() {
        let _rng = torch_rng();
        let (_vs, net) = small(7, 3, Aggregation::Sum);
        tch::manual_seed(4);
        let x = Tensor::randn([2, 7, 3], (Kind::Float, Device::Cpu));
        let t = Tensor::from_slice(&[0.2f32, 0.7]);
        let v = net.forward(&t, &x);
        let perm = Tensor::from_slice(&[3i64, 0, 6, 1, 5, 2, 4]);
        let v_perm = net.forward(&t, &x.index_select(1, &perm));
        assert!(max_abs(&(v.index_select(1, &perm) - &v_perm)) < 1e-4);
        let shift = Tensor::from_slice(&[5.0f32, -3.0, 2.0]).view([1, 1, 3]);
        let v_shift = net.forward(&t, &(&x + shift));
        assert!(max_abs(&(v - v_shift)) < 1e-4);
    }

    #[test]
    fn fresh_network_is_near_zero_and_gradients_reach_every_parameter() {
        let _rng = torch_rng();
        let vs = VarStore::new(Device::Cpu);
        let cfg = EgnnConfig {
            n_layers: 2,
            hidden: 8,
            ..EgnnConfig::default()
        };
        let net = Egnn::new(&vs.root(), Particles { n: 4, spatial: 2 }, cfg).unwrap();
        tch::manual_seed(5);
        let x = Tensor::randn([3, 8], (Kind::Float, Device::Cpu));
        let t = Tensor::from_slice(&[0.0f32, 0.5, 1.0]);
        let v = net.forward(&t, &x);
        // Last coordinate layer has gain 1e-3: v = O(1e-3 · L · (n−1) · c).
        assert!(max_abs(&v) < 0.1);
        let loss = (v - 1.0).square().mean(Kind::Float);
        loss.backward();
        for (name, p) in vs.variables() {
            let g = p.grad();
            assert!(g.defined(), "{name} has no gradient");
            let finite = g.isfinite().all().int64_value(&[]) == 1;
            assert!(finite, "{name} has a non-finite gradient");
        }
    }

    #[test]
    fn factorised_first_edge_layer_equals_the_concatenated_linear_map() {
        let _rng = torch_rng();
        let (_vs, net) = small(5, 3, Aggregation::Sum);
        let layer = &net.layers[0];
        let (b, n, hdim) = (2, 5, 16);
        let h = Tensor::randn([b, n, hdim], (Kind::Float, Device::Cpu));
        let x = Tensor::randn([b, n, 3], (Kind::Float, Device::Cpu));
        let x_in = Tensor::randn([b, n, 3], (Kind::Float, Device::Cpu));
        // Factorised, as in forward().
        let nb = &net.neighbours;
        let radial = nb.diff(&x).square().sum_dim_intlist(-1, true, Kind::Float);
        let a = nb
            .diff(&x_in)
            .square()
            .sum_dim_intlist(-1, true, Kind::Float);
        let fact = Tensor::cat(&[&radial, &a], -1).apply(&layer.edge_geom)
            + nb.gather(&h.apply(&layer.edge_dst))
            + h.apply(&layer.edge_src).unsqueeze(2);
        // Dense: W [h_i, h_j, r_ij, a_ij] + b on every pair j ≠ i.
        let w = Tensor::cat(
            &[&layer.edge_src.ws, &layer.edge_dst.ws, &layer.edge_geom.ws],
            1,
        ); // [H, 2H + 2]
        let h_i = h.unsqueeze(2).expand([b, n, n - 1, hdim], false);
        let h_j = nb.gather(&h);
        let input = Tensor::cat(&[h_i, h_j, radial, a], -1);
        let dense = input.matmul(&w.tr()) + layer.edge_src.bs.as_ref().unwrap();
        assert_eq!(fact.size(), vec![b, n, n - 1, hdim]);
        assert!((fact - dense).abs().max().double_value(&[]) < 1e-5);
        // Neighbour order: node 2's neighbours are 0, 1, 3, 4.
        let idx: Vec<i64> = Vec::try_from(&nb.index).unwrap();
        assert_eq!(&idx[8..12], &[0, 1, 3, 4]);
    }

    #[test]
    fn coincident_particles_give_zero_output_and_finite_gradients() {
        // X_0 = 0: all particles at the origin, every pair distance 0.
        let vs = VarStore::new(Device::Cpu);
        let cfg = EgnnConfig {
            n_layers: 2,
            hidden: 8,
            ..EgnnConfig::default()
        };
        let net = Egnn::new(&vs.root(), Particles { n: 4, spatial: 3 }, cfg).unwrap();
        let x = Tensor::zeros([2, 12], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let t = Tensor::zeros([2], (Kind::Float, Device::Cpu));
        let v = net.forward(&t, &x);
        assert_eq!(v.abs().max().double_value(&[]), 0.0);
        (v.sum(Kind::Float) + (&x * 1.0).sum(Kind::Float)).backward();
        for (name, p) in vs.variables() {
            let g = p.grad();
            assert!(g.defined(), "{name}");
            assert_eq!(g.isfinite().all().int64_value(&[]), 1, "{name}");
        }
        assert_eq!(x.grad().isfinite().all().int64_value(&[]), 1);
    }

    #[test]
    fn parameter_names_are_pinned() {
        let vs = VarStore::new(Device::Cpu);
        let cfg = EgnnConfig {
            n_layers: 2,
            hidden: 4,
            ..EgnnConfig::default()
        };
        let _net = Egnn::new(&vs.root(), Particles { n: 3, spatial: 3 }, cfg).unwrap();
        let edge_and_coord = |k: usize| {
            [
                "attention.bias",
                "attention.weight",
                "coord_hidden.bias",
                "coord_hidden.weight",
                "coord_out.weight",
                "edge_dst.weight",
                "edge_geom.weight",
                "edge_out.bias",
                "edge_out.weight",
                "edge_src.bias",
                "edge_src.weight",
            ]
            .map(|n| format!("layers.{k}.{n}"))
        };
        let mut expected = vec!["embedding.bias".to_string(), "embedding.weight".into()];
        expected.extend(edge_and_coord(0));
        expected.extend(
            [
                "node_hidden.bias",
                "node_hidden.weight",
                "node_out.bias",
                "node_out.weight",
            ]
            .map(|n| format!("layers.0.{n}")),
        );
        expected.extend(edge_and_coord(1));
        assert_eq!(names(&vs), expected);
        assert_eq!(vs.variables()["layers.0.node_hidden.weight"].size(), [4, 8]);
        assert_eq!(vs.variables()["layers.1.edge_geom.weight"].size(), [4, 2]);
        let total: i64 = vs.variables().values().map(|v| v.numel() as i64).sum();
        // embedding 4+4; edge/coord per layer (16+4)+16+8+(16+4)+(4+1)+(16+4)+4 = 93;
        // node (32+4)+(16+4) = 56.
        assert_eq!(total, 8 + 93 + 56 + 93);
    }

    /// Methanol: C O H H H H with the methyl hydrogens 2, 3, 4 and the hydroxyl hydrogen 5.
    fn methanol() -> Molecule {
        Molecule::new(
            vec![6, 8, 1, 1, 1, 1],
            &[[0, 1], [0, 2], [0, 3], [0, 4], [1, 5]],
        )
        .unwrap()
    }

    fn small_molecule_net(molecule: &Molecule, seed: i64) -> (VarStore, Egnn) {
        let vs = VarStore::new(Device::Cpu);
        let cfg = EgnnConfig {
            n_layers: 2,
            hidden: 16,
            ..EgnnConfig::default()
        };
        let net = Egnn::for_molecule(&vs.root(), molecule, cfg, 1).unwrap();
        randomise(&vs, seed, 0.3);
        (vs, net)
    }

    #[test]
    fn molecule_network_is_equivariant_under_rotations_translations_and_automorphisms() {
        let _rng = torch_rng();
        let mol = methanol();
        let (_vs, net) = small_molecule_net(&mol, 6);
        tch::manual_seed(7);
        let x = Tensor::randn([3, 6, 3], (Kind::Float, Device::Cpu));
        let t = Tensor::from_slice(&[0.1f32, 0.5, 0.9]);
        let v = net.forward(&t, &x);
        assert!(max_abs(&v) > 1e-2);
        let com = v.mean_dim(1, false, None);
        assert!(max_abs(&com) < 1e-6);
        let q = random_reflection(3);
        let v_rot = net.forward(&t, &x.matmul(&q));
        assert!(max_abs(&(v.matmul(&q) - v_rot)) < 1e-4 * max_abs(&v).max(1.0));
        let shift = Tensor::from_slice(&[1.0f32, -2.0, 0.5]).view([1, 1, 3]);
        assert!(max_abs(&(&v - net.forward(&t, &(&x + shift)))) < 1e-4);
        // Swapping two methyl hydrogens maps the molecule onto itself.
        let perm = Tensor::from_slice(&[0i64, 1, 3, 2, 4, 5]);
        let v_perm = net.forward(&t, &x.index_select(1, &perm));
        assert!(max_abs(&(v.index_select(1, &perm) - v_perm)) < 1e-4);
    }

    #[test]
    fn molecule_network_sees_elements_and_bonds() {
        let _rng = torch_rng();
        let mol = methanol();
        let (vs, net) = small_molecule_net(&mol, 8);
        tch::manual_seed(9);
        let x = Tensor::randn([2, 6, 3], (Kind::Float, Device::Cpu));
        let t = Tensor::from_slice(&[0.3f32, 0.8]);
        let v = net.forward(&t, &x);
        // Swapping the carbon and the oxygen, or a methyl with the hydroxyl hydrogen, is no
        // automorphism: the output is not the permuted one.
        for perm in [[1i64, 0, 2, 3, 4, 5], [0, 1, 5, 3, 4, 2]] {
            let perm = Tensor::from_slice(&perm);
            let v_perm = net.forward(&t, &x.index_select(1, &perm));
            let err = max_abs(&(v.index_select(1, &perm) - v_perm));
            assert!(err > 1e-3, "{perm:?}: {err}");
        }
        // The same elements with other bonds (the OH hydrogen moved onto the carbon), under
        // the same parameters, give another output.
        let other = Molecule::new(
            vec![6, 8, 1, 1, 1, 1],
            &[[0, 1], [0, 2], [0, 3], [0, 4], [0, 5]],
        )
        .unwrap();
        let mut vs2 = VarStore::new(Device::Cpu);
        let net2 = Egnn::for_molecule(&vs2.root(), &other, net.config().clone(), 1).unwrap();
        vs2.copy(&vs).unwrap();
        assert!(max_abs(&(v - net2.forward(&t, &x))) > 1e-3);
    }

    #[test]
    fn molecule_parameters_and_gradients() {
        let mol = methanol();
        let vs = VarStore::new(Device::Cpu);
        let cfg = EgnnConfig {
            n_layers: 2,
            hidden: 4,
            ..EgnnConfig::default()
        };
        let net = Egnn::for_molecule(&vs.root(), &mol, cfg, 2).unwrap();
        let vars = vs.variables();
        assert_eq!(vars["atom_embedding.weight"].size(), [4, 3], "H, C, O");
        assert!(!vars.contains_key("atom_embedding.bias"));
        assert_eq!(vars["layers.0.edge_geom.weight"].size(), [4, 3]);
        let x = Tensor::randn([3, 18], (Kind::Float, Device::Cpu));
        let c = Tensor::randn([3, 2], (Kind::Float, Device::Cpu));
        let v = net.forward_conditioned(&c, &x);
        assert_eq!(v.size(), [3, 18]);
        (v - 1.0).square().sum(Kind::Float).backward();
        for (name, p) in vs.variables() {
            assert!(p.grad().defined(), "{name} has no gradient");
        }
        // A layout that is not the molecule's is refused.
        let vs = VarStore::new(Device::Cpu);
        let wrong = Particles { n: 5, spatial: 3 };
        let err = Egnn::build(&vs.root(), wrong, EgnnConfig::default(), 1, Some(&mol)).unwrap_err();
        assert!(err.to_string().contains("6 atoms"), "{err}");
    }

    #[test]
    fn config_validation_names_the_key() {
        let cfg = EgnnConfig {
            hidden: 0,
            ..EgnnConfig::default()
        };
        match cfg.validate() {
            Err(Error::Config { key, .. }) => assert_eq!(key, "hidden"),
            other => panic!("{other:?}"),
        }
        let parsed: EgnnConfig =
            toml::from_str("n_layers = 5\nhidden = 128\ncoords_range = 3.0\naggregation = \"sum\"")
                .unwrap();
        assert_eq!(parsed, EgnnConfig::default());
    }
}
