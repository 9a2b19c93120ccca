//! PITA's two networks: the denoiser/score network and the energy network of REFERENCE §3.2,
//! both conditioned on the noise level and the inverse temperature.

use crate::energy::Particles;
use crate::error::Result;
pub use crate::methods::adjoint_sampling::config::NetworkConfig;
use crate::methods::pita::edm::Precondition;
use crate::methods::pita::smc::Diffused;
use crate::nn::{Egnn, Mlp, StateLayout};
use crate::sde::remove_com;
use tch::nn::Path;
use tch::Tensor;

/// A network F(c, x) with conditions c = (c_noise, ln β) `[B, 2]`, output shaped like x.
#[derive(Debug)]
pub enum Backbone {
    Mlp(Mlp),
    Egnn(Egnn),
}

impl Backbone {
    /// A network for states of `layout` under `path`.
    pub fn new(path: &Path, config: &NetworkConfig, layout: &StateLayout) -> Result<Self> {
        match config {
            NetworkConfig::Mlp(c) => Ok(Self::Mlp(Mlp::with_conditions(
                path,
                layout.dim,
                c.clone(),
                2,
            )?)),
            NetworkConfig::Egnn(c) => Ok(Self::Egnn(Egnn::for_layout(path, layout, c.clone(), 2)?)),
        }
    }

    /// F(c, x): c `[B, 2]`, x `[B, dim]` → `[B, dim]`.
    pub fn forward(&self, c: &Tensor, x: &Tensor) -> Tensor {
        match self {
            Self::Mlp(m) => m.forward_conditioned(c, x),
            Self::Egnn(e) => e.forward_conditioned(c, x),
        }
    }
}

/// Score network D_s and energy network E_θ (REFERENCE §3.2), with σ_data = 1, h = σ²:
///
/// D_s(x, σ, β) = c_skip x + c_out F_s(c, c_in x),   s = (D_s − x) / h,
/// E_θ(x, σ, β) = ‖x‖² / (2(1 + h)) − σ⁻¹ ⟨F_e(c, c_in x), c_in x⟩,   D_E = x − h ∇_x E_θ,
///
/// with conditions c = (ln σ / 4, ln β). Parameters live under `score` and `energy`.
#[derive(Debug)]
pub struct PitaModel {
    score: Backbone,
    energy: Backbone,
    dim: usize,
    particles: Option<Particles>,
}

impl PitaModel {
    /// Both networks under `root` (`root/score`, `root/energy`) for states of `layout`.
    pub fn new(root: &Path, config: &NetworkConfig, layout: &StateLayout) -> Result<Self> {
        Ok(Self {
            score: Backbone::new(&(root / "score"), config, layout)?,
            energy: Backbone::new(&(root / "energy"), config, layout)?,
            dim: layout.dim,
            particles: layout.points,
        })
    }

    /// State dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Particle layout, if any.
    pub fn particles(&self) -> Option<Particles> {
        self.particles
    }

    /// Removes the centre of mass for particle systems (identity otherwise).
    pub fn project(&self, x: &Tensor) -> Tensor {
        match self.particles {
            Some(p) => remove_com(x, p),
            None => x.shallow_clone(),
        }
    }

    fn conditions(p: &Precondition, beta: &Tensor) -> Tensor {
        Tensor::stack(&[&p.c_noise, &beta.to_kind(p.c_noise.kind()).log()], 1)
    }

    /// D_s(x, σ, β): x `[B, d]`, σ `[B]`, β `[B]` → `[B, d]`.
    pub fn denoise(&self, x: &Tensor, sigma: &Tensor, beta: &Tensor) -> Tensor {
        let p = Precondition::new(sigma);
        let f = self
            .score
            .forward(&Self::conditions(&p, beta), &(x * &p.c_in));
        &p.c_skip * x + &p.c_out * f
    }

    /// s(x, σ, β) = (D_s − x) / h.
    pub fn score(&self, x: &Tensor, sigma: &Tensor, beta: &Tensor) -> Tensor {
        let h = sigma.square().unsqueeze(1);
        (self.denoise(x, sigma, beta) - x) / h
    }

    /// E_θ(x, σ, β) `[B]` (differentiable in x, σ and the parameters).
    pub fn energy(&self, x: &Tensor, sigma: &Tensor, beta: &Tensor) -> Tensor {
        let p = Precondition::new(sigma);
        let xin = x * &p.c_in;
        let f = self.energy.forward(&Self::conditions(&p, beta), &xin);
        let k = x.kind();
        let quad = x.square().sum_dim_intlist(1, false, k) / (p.h.squeeze_dim(1) + 1.0) / 2.0;
        let inner = (f * &xin).sum_dim_intlist(1, false, k) / sigma;
        quad - inner
    }

    /// (E_θ, ∇_x E_θ) at x. With `create_graph`, ∇_x E_θ stays differentiable in the
    /// parameters (and in x, σ): the double backward of the energy-score loss.
    pub fn energy_and_grad(
        &self,
        x: &Tensor,
        sigma: &Tensor,
        beta: &Tensor,
        create_graph: bool,
    ) -> (Tensor, Tensor) {
        let x = if x.requires_grad() {
            x.shallow_clone()
        } else {
            x.detach().set_requires_grad(true)
        };
        let e = self.energy(&x, sigma, beta);
        let g = Tensor::run_backward(&[e.sum(e.kind())], &[&x], create_graph, create_graph);
        let g = g.into_iter().next().expect("one input, one gradient");
        (e, g)
    }

    /// D_E(x) = x − h ∇_x E_θ, differentiable in the parameters (double backward).
    pub fn energy_denoise(&self, x: &Tensor, sigma: &Tensor, beta: &Tensor) -> Tensor {
        let (_, g) = self.energy_and_grad(x, sigma, beta, true);
        x - sigma.square().unsqueeze(1) * g
    }
}

/// The diffused density of a [`PitaModel`] at one inverse temperature β, as the annealing
/// SMC sees it.
pub struct AtBeta<'a> {
    pub model: &'a PitaModel,
    pub beta: f64,
}

impl AtBeta<'_> {
    fn betas(&self, x: &Tensor) -> Tensor {
        Tensor::full([x.size()[0]], self.beta, (x.kind(), x.device()))
    }
}

impl Diffused for AtBeta<'_> {
    fn score(&self, x: &Tensor, sigma: &Tensor) -> Tensor {
        self.model.score(x, sigma, &self.betas(x))
    }
    fn energy(&self, x: &Tensor, sigma: &Tensor) -> Tensor {
        self.model.energy(x, sigma, &self.betas(x))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::layers::testing::{randomise, torch_rng};
    use crate::nn::{MlpConfig, StateLayout};
    use tch::nn::VarStore;
    use tch::{Device, Kind};

    fn mlp_model(dim: usize) -> (VarStore, PitaModel) {
        let mut vs = VarStore::new(Device::Cpu);
        let cfg = NetworkConfig::Mlp(MlpConfig {
            hidden: 16,
            n_layers: 1,
            n_frequencies: 3,
            max_frequency: 2.0,
            length_scale: 1.0,
            periodic: false,
        });
        let m = PitaModel::new(&vs.root(), &cfg, &StateLayout::vector(dim)).unwrap();
        randomise(&vs, 5, 0.4);
        vs.double();
        (vs, m)
    }

    #[test]
    fn energy_gradient_matches_finite_differences() {
        let _rng = torch_rng();
        let (_vs, m) = mlp_model(3);
        tch::manual_seed(1);
        let x = Tensor::randn([4, 3], (Kind::Double, Device::Cpu));
        let sigma = Tensor::from_slice(&[0.1f64, 0.5, 1.0, 3.0]);
        let beta = Tensor::from_slice(&[1.0f64, 0.5, 0.25, 1.0]);
        let (_, g) = m.energy_and_grad(&x, &sigma, &beta, false);
        for i in 0..4 {
            for k in 0..3 {
                let eps = 1e-6;
                let xp = x.copy();
                let _ = xp.get(i).get(k).g_add_scalar_(eps);
                let xm = x.copy();
                let _ = xm.get(i).get(k).g_add_scalar_(-eps);
                let fd = (m.energy(&xp, &sigma, &beta) - m.energy(&xm, &sigma, &beta))
                    .double_value(&[i])
                    / (2.0 * eps);
                let an = g.double_value(&[i, k]);
                assert!(
                    (fd - an).abs() < 1e-6 * an.abs().max(1.0),
                    "{i},{k}: {fd} vs {an}"
                );
            }
        }
    }

    #[test]
    fn untrained_denoisers_are_the_skip_connection_at_large_noise() {
        let _rng = torch_rng();
        let (_vs, m) = mlp_model(2);
        let x = Tensor::from_slice(&[3.0f64, -1.0]).view([1, 2]);
        let sigma = Tensor::from_slice(&[1e3f64]);
        let beta = Tensor::from_slice(&[1.0f64]);
        // σ → ∞: c_skip → 0, c_out → 1, D_E → x − h x/(1 + h) − … ≈ O(1) (bounded).
        let d = m.denoise(&x, &sigma, &beta);
        let de = m.energy_denoise(&x, &sigma, &beta);
        assert!(d.abs().max().double_value(&[]) < 10.0);
        assert!(de.abs().max().double_value(&[]) < 10.0);
    }
}
