//! Flow-matching pretraining of an MLP velocity on samples of a target.

use crate::error::{Error, Result};
use crate::methods::adjoint_matching::flow_matching_loss;
use crate::nn::{checkpoint, Adam, AdamConfig, Mlp, MlpConfig};
use crate::sde::HostNoise;
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::path::Path;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

/// Where training data come from.
pub enum DataSource {
    /// Fresh exact samples every step (an infinite data set).
    Exact(Box<dyn crate::energy::ExactSampler + Send + Sync>),
    /// A fixed sample set `[n, dim]` row-major; minibatches drawn uniformly with replacement.
    Samples(Vec<f64>),
}

/// Settings of the pretraining loop.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PretrainSettings {
    /// Minibatch size (≥ 1).
    pub batch_size: usize,
    /// Adam learning rate (> 0).
    pub learning_rate: f64,
    /// Seed of every random draw (data, X_0, t).
    pub seed: u64,
}

impl Default for PretrainSettings {
    fn default() -> Self {
        Self {
            batch_size: 512,
            learning_rate: 1e-3,
            seed: 0,
        }
    }
}

impl PretrainSettings {
    /// Checks ranges; errors name the key.
    pub fn validate(&self) -> Result<()> {
        if self.batch_size == 0 {
            return Err(Error::Config {
                key: "batch_size".into(),
                why: "must be at least 1".into(),
            });
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return Err(Error::Config {
                key: "learning_rate".into(),
                why: "must be positive and finite".into(),
            });
        }
        Ok(())
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PretrainState {
    settings: PretrainSettings,
    step: usize,
    noise: HostNoise,
}

/// Flow-matching trainer of an [`Mlp`] velocity.
pub struct Pretrainer {
    vs: VarStore,
    net: Mlp,
    optimizer: Adam,
    data: DataSource,
    dim: usize,
    noise: HostNoise,
    settings: PretrainSettings,
    step: usize,
}

impl Pretrainer {
    /// A trainer of a fresh network `network` on `dim`-dimensional data from `data`
    /// (parameters initialised from libtorch's global seed).
    pub fn new(
        data: DataSource,
        dim: usize,
        network: MlpConfig,
        settings: PretrainSettings,
        device: Device,
    ) -> Result<Self> {
        settings.validate()?;
        if let DataSource::Samples(s) = &data {
            if s.is_empty() || !s.len().is_multiple_of(dim) {
                return Err(Error::Shape(format!(
                    "training data: {} numbers do not form rows of dimension {dim}",
                    s.len()
                )));
            }
        }
        let vs = VarStore::new(device);
        let net = Mlp::new(&vs.root(), dim, network)?;
        let optimizer = Adam::new(
            &vs,
            AdamConfig {
                learning_rate: settings.learning_rate,
                ..AdamConfig::default()
            },
        )?;
        Ok(Self {
            noise: HostNoise::seeded(settings.seed),
            vs,
            net,
            optimizer,
            data,
            dim,
            settings,
            step: 0,
        })
    }

    /// The velocity network.
    pub fn network(&self) -> &Mlp {
        &self.net
    }

    /// Its parameters.
    pub fn var_store(&self) -> &VarStore {
        &self.vs
    }

    /// Steps taken.
    pub fn steps_done(&self) -> usize {
        self.step
    }

    fn batch(&mut self) -> Tensor {
        let (b, d) = (self.settings.batch_size, self.dim);
        let rows = match &self.data {
            DataSource::Exact(s) => s.sample(b, self.noise.rng()),
            DataSource::Samples(x) => {
                let n = x.len() / d;
                let rng = self.noise.rng();
                (0..b)
                    .flat_map(|_| {
                        let i = rng.random_range(0..n);
                        x[i * d..(i + 1) * d].iter().copied()
                    })
                    .collect()
            }
        };
        Tensor::from_slice(&rows)
            .to_kind(Kind::Float)
            .view([b as i64, d as i64])
            .to_device(self.vs.device())
    }

    /// One Adam step on the flow-matching loss of a fresh minibatch; returns the loss.
    pub fn step(&mut self) -> f64 {
        let x1 = self.batch();
        let loss = flow_matching_loss(&self.net, &x1, &mut self.noise);
        self.optimizer.backward_step(&loss);
        self.step += 1;
        loss.double_value(&[])
    }

    /// Writes a checkpoint into `dir` (see [`checkpoint`]).
    pub fn save_checkpoint(&self, dir: &Path) -> Result<()> {
        let state = PretrainState {
            settings: self.settings.clone(),
            step: self.step,
            noise: self.noise.clone(),
        };
        checkpoint::save(dir, self.step, &self.vs, &self.optimizer, &state)
    }

    /// Restores a checkpoint of a trainer with the same settings and network.
    pub fn load_checkpoint(&mut self, dir: &Path) -> Result<()> {
        let state: PretrainState = checkpoint::read_state(dir)?;
        if state.settings != self.settings {
            return Err(Error::Format {
                path: dir.join(checkpoint::STATE),
                why: "checkpoint settings differ from this trainer's".into(),
            });
        }
        checkpoint::load_tensors(dir, state.step, &mut self.vs, &mut self.optimizer)?;
        self.step = state.step;
        self.noise = state.noise;
        Ok(())
    }
}

/// A frozen velocity network loaded from a pretraining checkpoint directory.
pub fn load_frozen(
    dir: &Path,
    dim: usize,
    network: MlpConfig,
    device: Device,
) -> Result<(VarStore, Mlp)> {
    #[derive(Deserialize)]
    struct Step {
        step: usize,
    }
    let state: Step = checkpoint::read_state(dir)?;
    let mut vs = VarStore::new(device);
    let net = Mlp::new(&vs.root(), dim, network)?;
    checkpoint::load_weights(dir, state.step, &mut vs)?;
    vs.freeze();
    Ok((vs, net))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::methods::adjoint_matching::{integrate, IsotropicMixture, OdeSolver};
    use crate::nn::layers::testing::torch_rng;
    use crate::sde::NoiseSource;

    struct Mix(IsotropicMixture);
    impl crate::energy::ExactSampler for Mix {
        fn sample(&self, n: usize, rng: &mut dyn rand::RngCore) -> Vec<f64> {
            let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(rng.next_u64());
            self.0.sample(n, &mut r)
        }
    }
    use rand::SeedableRng;

    fn small_net() -> MlpConfig {
        MlpConfig {
            hidden: 64,
            n_layers: 2,
            n_frequencies: 4,
            max_frequency: 4.0,
            length_scale: 1.0,
            periodic: false,
        }
    }

    #[test]
    fn pretraining_learns_a_two_mode_mixture_and_resumes_bit_for_bit() {
        let _g = torch_rng();
        tch::set_num_threads(1);
        tch::manual_seed(0);
        let p = IsotropicMixture::new(vec![0.3, 0.7], vec![-2.0, 0.0, 2.0, 0.0], vec![0.4, 0.4], 2)
            .unwrap();
        let settings = PretrainSettings {
            batch_size: 256,
            learning_rate: 3e-3,
            seed: 1,
        };
        let mut tr = Pretrainer::new(
            DataSource::Exact(Box::new(Mix(p.clone()))),
            2,
            small_net(),
            settings.clone(),
            Device::Cpu,
        )
        .unwrap();
        let first: f64 = (0..20).map(|_| tr.step()).sum::<f64>() / 20.0;
        for _ in 0..1200 {
            tr.step();
        }
        let last: f64 = (0..20).map(|_| tr.step()).sum::<f64>() / 20.0;
        assert!(last < 0.7 * first, "loss {first} -> {last}");
        let mut noise = HostNoise::seeded(2);
        let x0 = noise.standard_normal(&[4000, 2], Kind::Float, Device::Cpu);
        let x = integrate(tr.network(), x0, 50, OdeSolver::Heun);
        let x: Vec<f64> = Vec::try_from(x.to_kind(Kind::Double).flatten(0, -1)).unwrap();
        let f = p.assigned_fractions(&x);
        assert!((f[0] - 0.3).abs() < 0.05, "weights {f:?}");

        let dir = std::env::temp_dir().join(format!("diffsamp-fm-ckpt-{}", std::process::id()));
        tr.save_checkpoint(&dir).unwrap();
        let a: Vec<f64> = (0..3).map(|_| tr.step()).collect();
        let mut other = Pretrainer::new(
            DataSource::Exact(Box::new(Mix(p))),
            2,
            small_net(),
            settings,
            Device::Cpu,
        )
        .unwrap();
        other.load_checkpoint(&dir).unwrap();
        let b: Vec<f64> = (0..3).map(|_| other.step()).collect();
        assert_eq!(a, b);
        let (_vs, frozen) = load_frozen(&dir, 2, small_net(), Device::Cpu).unwrap();
        assert_eq!(frozen.dim(), 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_data_is_refused() {
        let r = Pretrainer::new(
            DataSource::Samples(vec![1.0, 2.0, 3.0]),
            2,
            small_net(),
            PretrainSettings::default(),
            Device::Cpu,
        );
        assert!(matches!(r, Err(Error::Shape(_))));
    }
}
