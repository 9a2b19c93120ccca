//! MLP control network with a Fourier time embedding, for vector targets (GMM, Many-Well, MoS).

use crate::error::{Error, Result};
use crate::nn::layers::{linear, linear_xavier};
use crate::nn::Control;
use serde::{Deserialize, Serialize};
use tch::nn::{Linear, Module, Path};
use tch::Tensor;

/// Settings of [`Mlp`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MlpConfig {
    /// Width H ≥ 1 of the hidden layers.
    pub hidden: usize,
    /// Number of hidden H → H layers after the input layer (≥ 0).
    pub n_layers: usize,
    /// Number F ≥ 1 of Fourier frequencies of the time embedding.
    pub n_frequencies: usize,
    /// Largest frequency f_max > 0 (cycles per unit time); frequencies are geometric from
    /// 1/4 to f_max (a single frequency is f_max).
    pub max_frequency: f64,
    /// Length scale ℓ > 0 of the target: the network sees x / ℓ, so that targets spread over
    /// ±40 (GMM-40) do not start with saturated first-layer units (default 1).
    #[serde(default = "unit_length_scale")]
    pub length_scale: f64,
    /// Angles on the flat torus: the network sees [cos x, sin x] instead of x / ℓ, so that
    /// v_θ is 2π-periodic in every coordinate (set for periodic targets; default false).
    #[serde(default)]
    pub periodic: bool,
}

fn unit_length_scale() -> f64 {
    1.0
}

impl Default for MlpConfig {
    fn default() -> Self {
        Self {
            hidden: 128,
            n_layers: 3,
            n_frequencies: 16,
            max_frequency: 32.0,
            length_scale: 1.0,
            periodic: false,
        }
    }
}

impl MlpConfig {
    /// Checks the ranges documented on the fields; errors name the key.
    pub fn validate(&self) -> Result<()> {
        let bad = |key: &str, why: &str| {
            Err(Error::Config {
                key: key.to_string(),
                why: why.to_string(),
            })
        };
        if self.hidden == 0 {
            return bad("hidden", "must be at least 1");
        }
        if self.n_frequencies == 0 {
            return bad("n_frequencies", "must be at least 1");
        }
        if !(self.max_frequency.is_finite() && self.max_frequency > 0.0) {
            return bad("max_frequency", "must be positive and finite");
        }
        if !(self.length_scale.is_finite() && self.length_scale > 0.0) {
            return bad("length_scale", "must be positive and finite");
        }
        Ok(())
    }

    /// The frequencies f_k, geometric from 1/4 to f_max.
    fn frequencies(&self) -> Vec<f64> {
        let f = self.n_frequencies;
        if f == 1 {
            return vec![self.max_frequency];
        }
        let (lo, hi) = (0.25f64.ln(), self.max_frequency.ln());
        (0..f)
            .map(|k| (lo + (hi - lo) * k as f64 / (f - 1) as f64).exp())
            .collect()
    }
}

/// MLP control v_θ(t, x) for vector targets:
///
/// φ(t) = [sin(2π f_k t), cos(2π f_k t)]_k  `[batch, 2F]`,
/// e(t) = W_t2 SiLU(W_t1 φ(t) + b_t1) + b_t2,
/// z = SiLU(W_in x / ℓ + b_in + e(t))  (periodic: W_in [cos x, sin x]),
/// z ← SiLU(W_k z + b_k) (k = 1..n_layers),
/// v = W_out z + b_out   (W_out Xavier with gain 1e-3, no bias: v ≈ 0 at start).
///
/// Shapes: t `[batch]`, x `[batch, dim]` → `[batch, dim]`. Parameters (path segments = field
/// names): `time_in`, `time_out`, `input`, `layers.{k}`, `output`.
#[derive(Debug)]
pub struct Mlp {
    time_in: Linear,
    time_out: Linear,
    input: Linear,
    layers: Vec<Linear>,
    output: Linear,
    frequencies: Vec<f64>,
    dim: usize,
    conditions: usize,
    config: MlpConfig,
}

impl Mlp {
    /// A network for `dim`-dimensional states with parameters under `path`, conditioned on
    /// the time alone.
    pub fn new(path: &Path, dim: usize, config: MlpConfig) -> Result<Self> {
        Self::with_conditions(path, dim, config, 1)
    }

    /// A network conditioned on `conditions` ≥ 1 scalars per row, each with its own Fourier
    /// features (φ(c) = [φ(c_1), …, φ(c_C)], `[batch, 2FC]`); see [`Mlp::forward_conditioned`].
    pub fn with_conditions(
        path: &Path,
        dim: usize,
        config: MlpConfig,
        conditions: usize,
    ) -> Result<Self> {
        config.validate()?;
        if conditions == 0 {
            return Err(Error::Config {
                key: "conditions".into(),
                why: "an MLP needs at least one conditioning scalar".into(),
            });
        }
        let h = config.hidden;
        let f2 = 2 * config.n_frequencies * conditions;
        let layers_path = path / "layers";
        Ok(Self {
            time_in: linear(path / "time_in", f2, h, f2, true),
            time_out: linear(path / "time_out", h, h, h, true),
            input: {
                let d_in = if config.periodic { 2 * dim } else { dim };
                linear(path / "input", d_in, h, d_in, true)
            },
            layers: (0..config.n_layers)
                .map(|k| linear(&layers_path / k, h, h, h, true))
                .collect(),
            output: linear_xavier(path / "output", h, dim, 1e-3),
            frequencies: config.frequencies(),
            dim,
            conditions,
            config,
        })
    }

    /// The settings this network was built with.
    pub fn config(&self) -> &MlpConfig {
        &self.config
    }

    /// The state dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of conditioning scalars per row.
    pub fn conditions(&self) -> usize {
        self.conditions
    }

    /// Fourier features φ(t) `[batch, 2F]` of t `[batch]`.
    pub fn time_features(&self, t: &Tensor) -> Tensor {
        let freqs: Vec<f32> = self
            .frequencies
            .iter()
            .map(|f| (2.0 * std::f64::consts::PI * f) as f32)
            .collect();
        // In the network's floating kind (f32, or f64 in gradient checks).
        let kind = self.time_in.ws.kind();
        let w = Tensor::from_slice(&freqs)
            .to_device(t.device())
            .to_kind(kind);
        let arg = t.to_kind(kind).unsqueeze(1) * w.unsqueeze(0); // [B, F]
        Tensor::cat(&[arg.sin(), arg.cos()], 1)
    }

    /// v_θ(t, x): t `[batch]`, x `[batch, dim]` → `[batch, dim]`.
    pub fn forward(&self, t: &Tensor, x: &Tensor) -> Tensor {
        self.forward_conditioned(&t.view([-1, 1]), x)
    }

    /// The network with conditions c `[batch, conditions]`, x `[batch, dim]` → `[batch, dim]`.
    pub fn forward_conditioned(&self, c: &Tensor, x: &Tensor) -> Tensor {
        let features: Vec<Tensor> = (0..self.conditions as i64)
            .map(|k| self.time_features(&c.select(1, k)))
            .collect();
        let e = Tensor::cat(&features, 1)
            .apply(&self.time_in)
            .silu()
            .apply(&self.time_out);
        let x = if self.config.periodic {
            Tensor::cat(&[x.cos(), x.sin()], 1)
        } else if self.config.length_scale == 1.0 {
            x.shallow_clone()
        } else {
            x / self.config.length_scale
        };
        let mut z = (x.apply(&self.input) + e).silu();
        for layer in &self.layers {
            z = layer.forward(&z).silu();
        }
        z.apply(&self.output)
    }
}

impl Control for Mlp {
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

    fn small(dim: usize) -> (VarStore, Mlp) {
        let vs = VarStore::new(Device::Cpu);
        let cfg = MlpConfig {
            hidden: 16,
            n_layers: 2,
            n_frequencies: 4,
            max_frequency: 8.0,
            length_scale: 1.0,
            periodic: false,
        };
        let net = Mlp::new(&vs.root(), dim, cfg).unwrap();
        (vs, net)
    }

    #[test]
    fn shapes_and_time_dependence() {
        let _rng = torch_rng();
        let (vs, net) = small(5);
        tch::manual_seed(1);
        let x = Tensor::randn([1, 5], (Kind::Float, Device::Cpu)).repeat([3, 1]);
        let t = Tensor::from_slice(&[0.0f32, 0.5, 1.0]);
        let v = net.forward(&t, &x);
        assert_eq!(v.size(), vec![3, 5]);
        // Fresh: small output (last layer gain 1e-3) that still depends on t.
        assert!(v.abs().max().double_value(&[]) < 0.05);
        let d01 = (v.get(0) - v.get(1)).abs().max().double_value(&[]);
        assert!(d01 > 1e-6, "{d01}");
        randomise(&vs, 2, 0.3);
        let v = net.forward(&t, &x);
        let d12 = (v.get(1) - v.get(2)).abs().max().double_value(&[]);
        assert!(d12 > 1e-2, "{d12}");
        assert_eq!(net.time_features(&t).size(), vec![3, 8]);
    }

    #[test]
    fn gradients_reach_every_parameter() {
        let _rng = torch_rng();
        let (vs, net) = small(3);
        let x = Tensor::randn([4, 3], (Kind::Float, Device::Cpu));
        let t = Tensor::from_slice(&[0.1f32, 0.2, 0.3, 0.4]);
        let loss = (net.forward(&t, &x) - 1.0).square().mean(Kind::Float);
        loss.backward();
        for (name, p) in vs.variables() {
            assert!(p.grad().defined(), "{name}");
        }
    }

    #[test]
    fn parameter_names_are_pinned() {
        let (vs, _net) = small(2);
        assert_eq!(
            names(&vs),
            [
                "input.bias",
                "input.weight",
                "layers.0.bias",
                "layers.0.weight",
                "layers.1.bias",
                "layers.1.weight",
                "output.weight",
                "time_in.bias",
                "time_in.weight",
                "time_out.bias",
                "time_out.weight",
            ]
        );
    }

    #[test]
    fn frequencies_are_geometric() {
        let cfg = MlpConfig {
            n_frequencies: 3,
            max_frequency: 4.0,
            ..MlpConfig::default()
        };
        let f = cfg.frequencies();
        assert!((f[0] - 0.25).abs() < 1e-12 && (f[1] - 1.0).abs() < 1e-12);
        assert!((f[2] - 4.0).abs() < 1e-12);
        let bad = MlpConfig {
            n_frequencies: 0,
            ..MlpConfig::default()
        };
        assert!(matches!(bad.validate(), Err(Error::Config { key, .. }) if key == "n_frequencies"));
        let bad = MlpConfig {
            length_scale: 0.0,
            periodic: false,
            ..MlpConfig::default()
        };
        assert!(matches!(bad.validate(), Err(Error::Config { key, .. }) if key == "length_scale"));
    }

    #[test]
    fn the_length_scale_divides_the_input() {
        let _rng = torch_rng();
        tch::manual_seed(4);
        let (vs, net) = small(3);
        randomise(&vs, 5, 0.5);
        let vs2 = VarStore::new(Device::Cpu);
        let scaled = Mlp::new(
            &vs2.root(),
            3,
            MlpConfig {
                length_scale: 20.0,
                periodic: false,
                ..net.config().clone()
            },
        )
        .unwrap();
        let mut vs2 = vs2;
        vs2.copy(&vs).unwrap();
        let t = Tensor::from_slice(&[0.1f32, 0.7]);
        let x = Tensor::randn([2, 3], (Kind::Float, Device::Cpu)) * 20.0;
        let a = scaled.forward(&t, &x);
        let b = net.forward(&t, &(&x / 20.0));
        assert!(a.allclose(&b, 1e-6, 1e-6, false));
    }

    #[test]
    fn a_periodic_network_is_2pi_periodic_in_every_coordinate() {
        let _rng = torch_rng();
        tch::manual_seed(6);
        let vs = VarStore::new(Device::Cpu);
        let cfg = MlpConfig {
            hidden: 16,
            n_layers: 1,
            periodic: true,
            ..MlpConfig::default()
        };
        let net = Mlp::new(&vs.root(), 2, cfg).unwrap();
        randomise(&vs, 7, 0.5);
        let t = Tensor::from_slice(&[0.1f64, 0.7, 0.3]).to_kind(Kind::Float);
        let x = Tensor::randn([3, 2], (Kind::Float, Device::Cpu)) * 2.0;
        let a = net.forward(&t, &x);
        let shift = Tensor::from_slice(&[std::f32::consts::TAU, -2.0 * std::f32::consts::TAU]);
        let b = net.forward(&t, &(&x + shift.unsqueeze(0)));
        assert!(
            a.abs().max().double_value(&[]) > 1e-3,
            "a non-trivial output"
        );
        assert!(a.allclose(&b, 1e-4, 1e-4, false), "{a} vs {b}");
    }
}
