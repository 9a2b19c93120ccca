//! Evaluation of generated samples against reference samples: every metric that applies to
//! the system, as one serialisable report, plus the data the plots need.

use crate::error::{Error, Result};
use crate::io::Samples;
use crate::report::{histogram_overlay, scatter_2d, Axes2d, Series};
use diffsamp_energy::{energies_batch, registry::System};
use diffsamp_mcmc::diagnostics::mean_std;
use diffsamp_metrics as m;
use rand::seq::index::sample as sample_indices;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Settings of [`evaluate`].
#[derive(Clone, Debug)]
pub struct EvalOptions {
    /// Samples drawn (seeded, without replacement) from each set; the published protocol uses
    /// 2000 vs 2000. `None` uses min(N_gen, N_ref) rows of each.
    pub n: Option<usize>,
    /// Seed of the subsampling.
    pub seed: u64,
    /// Sinkhorn settings for vector targets; `None` skips Sinkhorn.
    pub sinkhorn: Option<m::SinkhornConfig>,
    /// Bins of the interatomic-distance histograms.
    pub distance_bins: usize,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            n: Some(2000),
            seed: 0,
            sinkhorn: Some(m::SinkhornConfig::default()),
            distance_bins: 100,
        }
    }
}

/// Every figure of an evaluation. `None` where a metric does not apply to the system.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EvalReport {
    pub system: String,
    /// Rows used from each set.
    pub n_used: usize,
    pub n_generated_finite: usize,
    pub n_reference_finite: usize,
    /// Rows dropped at load time because they held NaN/inf.
    pub generated_non_finite_dropped: usize,
    pub reference_non_finite_dropped: usize,
    /// Geometric W2 of the Adjoint Sampling protocol (particle systems).
    pub w2: Option<f64>,
    /// Plain W2 without alignment: sqrt of the exact OT cost with ‖x − y‖² (DEM convention);
    /// for periodic targets with the flat-torus distance Σ min(|Δ|, 2π − |Δ|)².
    pub plain_w2: f64,
    /// Energy W2 = sqrt of the 1-D OT cost between the energy samples (AS convention).
    pub energy_w2: f64,
    /// Its square (DEM convention).
    pub energy_w2_squared: f64,
    pub energy_mean_generated: f64,
    pub energy_std_generated: f64,
    pub energy_mean_reference: f64,
    pub energy_std_reference: f64,
    /// TVD between interatomic-distance histograms (particle systems).
    pub distance_tvd: Option<f64>,
    /// Entropic OT transport cost ⟨P, C⟩ (sampling-benchmark "Sinkhorn"; squared distances).
    pub sinkhorn_cost: Option<f64>,
    /// Debiased Sinkhorn divergence S(gen, ref).
    pub sinkhorn_divergence: Option<f64>,
    pub sinkhorn_epsilon: Option<f64>,
    /// Modes (mixture components) with enough generated samples, out of `n_modes`.
    pub modes_covered: Option<usize>,
    pub n_modes: Option<usize>,
    /// TVD between generated mode weights and uniform.
    pub mode_weight_tvd: Option<f64>,
    /// Backbone-torsion metrics (alanine dipeptide).
    pub torsions: Option<TorsionReport>,
    /// Periodic targets: KL(reference ‖ generated) of the 200-bin histogram on [−π, π] of
    /// each angle (ε = 1e-5, as the torsion KLs).
    #[serde(default)]
    pub kl_angles: Option<Vec<f64>>,
    pub seconds: f64,
}

/// Alanine-dipeptide torsion figures of an evaluation (REFERENCE §5).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TorsionReport {
    /// KL(ref ‖ gen) of the φ marginals (200 bins on [−π, π], ε = 1e-5).
    pub kl_phi: f64,
    /// KL(ref ‖ gen) of the ψ marginals.
    pub kl_psi: f64,
    /// W2 on the flat torus between the (φ, ψ) samples.
    pub w2_phi_psi: f64,
    /// Fraction with φ > 0 (C7ax / αL), generated and reference, with binomial s.e.
    pub phi_positive_generated: f64,
    pub phi_positive_reference: f64,
    pub phi_positive_std_error: f64,
    /// Fraction of D-alanine configurations (improper CA–N–C–CB < 0).
    pub d_fraction_generated: f64,
    pub d_fraction_reference: f64,
    /// The same figures with every generated D configuration replaced by its mirror image
    /// (the energy is mirror-symmetric, so this is the chirality-corrected sample).
    pub kl_phi_l_form: f64,
    pub kl_psi_l_form: f64,
    pub w2_phi_psi_l_form: f64,
    pub phi_positive_generated_l_form: f64,
}

/// Whether `system` is alanine dipeptide (22 atoms × 3, backbone torsions apply).
fn is_alanine(system: &System) -> bool {
    system.energy.name().starts_with("aldp") && system.energy.dim() == m::alanine::DIM
}

/// (φ, ψ) pairs `[n, 2]` of alanine-dipeptide configurations `[n, 66]`.
fn phi_psi(x: &[f64]) -> Result<Vec<f64>> {
    let (phi, psi) = (m::alanine::phi(x)?, m::alanine::psi(x)?);
    Ok(phi.iter().zip(&psi).flat_map(|(a, b)| [*a, *b]).collect())
}

fn torsion_report(gen: &[f64], refs: &[f64]) -> Result<TorsionReport> {
    let c = m::alanine::compare(refs, gen)?;
    let ref_angles = phi_psi(refs)?;
    let w2 = m::torus_w2(&phi_psi(gen)?, &ref_angles, 2, m::SizeMismatch::Error)?;
    let (gen_l, _) = m::alanine::to_l_form(gen)?;
    let c_l = m::alanine::compare(refs, &gen_l)?;
    let w2_l = m::torus_w2(&phi_psi(&gen_l)?, &ref_angles, 2, m::SizeMismatch::Error)?;
    Ok(TorsionReport {
        kl_phi_l_form: c_l.kl_phi,
        kl_psi_l_form: c_l.kl_psi,
        w2_phi_psi_l_form: w2_l.w2,
        phi_positive_generated_l_form: c_l.pop_gen.fraction,
        kl_phi: c.kl_phi,
        kl_psi: c.kl_psi,
        w2_phi_psi: w2.w2,
        phi_positive_generated: c.pop_gen.fraction,
        phi_positive_reference: c.pop_ref.fraction,
        phi_positive_std_error: c.pop_gen.std_error.hypot(c.pop_ref.std_error),
        d_fraction_generated: c.d_gen.fraction,
        d_fraction_reference: c.d_ref.fraction,
    })
}

/// Subsampled data behind a report, for plots.
pub struct EvalData {
    pub generated: Vec<f64>,
    pub reference: Vec<f64>,
    pub dim: usize,
    pub energies_generated: Vec<f64>,
    pub energies_reference: Vec<f64>,
}

fn subsample(s: &Samples, n: usize, rng: &mut rand_chacha::ChaCha8Rng) -> Vec<f64> {
    if n >= s.n {
        return s.data[..n.min(s.n) * s.dim].to_vec();
    }
    let mut idx = sample_indices(rng, s.n, n).into_vec();
    idx.sort_unstable();
    idx.iter().flat_map(|&i| s.row(i).iter().copied()).collect()
}

/// Evaluates `generated` against `reference` for `system` (both already loaded with
/// [`crate::io::load_samples`], so COM-free for particle systems).
pub fn evaluate(
    system: &System,
    generated: &Samples,
    reference: &Samples,
    opts: &EvalOptions,
) -> Result<(EvalReport, EvalData)> {
    let start = Instant::now();
    let energy = system.energy.as_ref();
    let dim = energy.dim();
    if generated.dim != dim || reference.dim != dim {
        return Err(Error::Shape(format!(
            "system '{}' has dimension {dim}, samples have {} and {}",
            energy.name(),
            generated.dim,
            reference.dim
        )));
    }
    let n = opts
        .n
        .unwrap_or(usize::MAX)
        .min(generated.n)
        .min(reference.n);
    if n == 0 {
        return Err(Error::Shape(
            "nothing to evaluate: a sample set is empty".into(),
        ));
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(opts.seed);
    let gen = subsample(generated, n, &mut rng);
    let refs = subsample(reference, n, &mut rng);
    let e_gen = energies_batch(energy, &gen)?;
    let e_ref = energies_batch(energy, &refs)?;
    let e_gen_f: Vec<f64> = e_gen.iter().copied().filter(|v| v.is_finite()).collect();
    let e_ref_f: Vec<f64> = e_ref.iter().copied().filter(|v| v.is_finite()).collect();
    if e_gen_f.is_empty() || e_ref_f.is_empty() {
        return Err(Error::Shape("every sampled energy is non-finite".into()));
    }
    let ew2 = m::wasserstein2_1d(&e_gen_f, &e_ref_f)?;
    let (mg, sg) = mean_std(&e_gen_f);
    let (mr, sr) = mean_std(&e_ref_f);
    let periodic = energy.periodic();
    let plain = if periodic {
        m::torus_w2(&gen, &refs, dim, m::SizeMismatch::Error)?
    } else {
        m::plain_w2(&gen, &refs, dim, m::SizeMismatch::Error)?
    };

    let (mut w2, mut distance_tvd) = (None, None);
    let (mut sk_cost, mut sk_div, mut sk_eps) = (None, None, None);
    let (mut covered, mut n_modes, mut mode_tvd) = (None, None, None);
    let (mut torsions, mut kl_angles) = (None, None);
    if periodic {
        let column =
            |v: &[f64], j: usize| -> Vec<f64> { v.chunks_exact(dim).map(|r| r[j]).collect() };
        kl_angles = Some(
            (0..dim)
                .map(|j| m::alanine::torsion_kl(&column(&refs, j), &column(&gen, j)))
                .collect::<std::result::Result<Vec<f64>, _>>()?,
        );
    } else if let Some(p) = energy.particles() {
        let layout = m::ParticleLayout::new(p.n, p.spatial);
        w2 = Some(m::geometric_w2(&gen, &refs, layout, &m::GeometricW2Config::default())?.w2);
        distance_tvd =
            Some(m::distance_histogram_tvd(&gen, &refs, layout, opts.distance_bins)?.tvd);
    } else if is_alanine(system) {
        torsions = Some(torsion_report(&gen, &refs)?);
    } else {
        if let Some(cfg) = &opts.sinkhorn {
            let d = m::sinkhorn_divergence(&gen, &refs, dim, cfg)?;
            sk_cost = Some(d.ab.transport_cost);
            sk_div = Some(d.divergence);
            sk_eps = Some(cfg.epsilon);
        }
        if let Some(modes) = &system.modes {
            let c = m::mode_coverage(
                &gen,
                &modes.locations,
                modes.dim,
                &m::ModeCoverageConfig::default(),
            )?;
            covered = Some(c.covered);
            n_modes = Some(modes.n_modes);
            mode_tvd = Some(c.tvd_to_uniform);
        }
    }
    let report = EvalReport {
        system: energy.name().to_string(),
        n_used: n,
        n_generated_finite: generated.n,
        n_reference_finite: reference.n,
        generated_non_finite_dropped: generated.non_finite_dropped,
        reference_non_finite_dropped: reference.non_finite_dropped,
        w2,
        plain_w2: plain.w2,
        energy_w2: ew2.w2,
        energy_w2_squared: ew2.w2_squared,
        energy_mean_generated: mg,
        energy_std_generated: sg,
        energy_mean_reference: mr,
        energy_std_reference: sr,
        distance_tvd,
        sinkhorn_cost: sk_cost,
        sinkhorn_divergence: sk_div,
        sinkhorn_epsilon: sk_eps,
        modes_covered: covered,
        n_modes,
        mode_weight_tvd: mode_tvd,
        torsions,
        kl_angles,
        seconds: start.elapsed().as_secs_f64(),
    };
    let data = EvalData {
        generated: gen,
        reference: refs,
        dim,
        energies_generated: e_gen_f,
        energies_reference: e_ref_f,
    };
    Ok((report, data))
}

impl EvalReport {
    /// The report as aligned `metric  value` lines for a terminal.
    pub fn table(&self) -> String {
        let mut rows: Vec<(String, String)> = vec![
            ("system".into(), self.system.clone()),
            (
                "samples used (gen vs ref)".into(),
                format!("{0} vs {0}", self.n_used),
            ),
            (
                "non-finite rows dropped (gen / ref)".into(),
                format!(
                    "{} / {}",
                    self.generated_non_finite_dropped, self.reference_non_finite_dropped
                ),
            ),
        ];
        let mut add = |k: &str, v: Option<f64>| {
            if let Some(v) = v {
                rows.push((k.to_string(), format!("{v:.4}")));
            }
        };
        add("W2 (aligned, AS protocol)", self.w2);
        if let Some(kls) = &self.kl_angles {
            add("W2 on the torus", Some(self.plain_w2));
            for (j, kl) in kls.iter().enumerate() {
                add(&format!("KL of angle {j} (200 bins)"), Some(*kl));
            }
        } else {
            add("W2 (plain, unaligned)", Some(self.plain_w2));
        }
        add("energy W2", Some(self.energy_w2));
        add("energy W2² (DEM convention)", Some(self.energy_w2_squared));
        add("mean energy generated", Some(self.energy_mean_generated));
        add("mean energy reference", Some(self.energy_mean_reference));
        add("distance histogram TVD", self.distance_tvd);
        add("Sinkhorn cost", self.sinkhorn_cost);
        add("Sinkhorn divergence", self.sinkhorn_divergence);
        add("mode weight TVD", self.mode_weight_tvd);
        if let Some(t) = &self.torsions {
            add("KL(φ)", Some(t.kl_phi));
            add("KL(ψ)", Some(t.kl_psi));
            add("W2 (φ, ψ) on the torus", Some(t.w2_phi_psi));
            rows.push((
                "φ > 0 population gen / ref".into(),
                format!(
                    "{:.4} / {:.4} (± {:.4})",
                    t.phi_positive_generated, t.phi_positive_reference, t.phi_positive_std_error
                ),
            ));
            rows.push((
                "D-alanine fraction gen / ref".into(),
                format!(
                    "{:.4} / {:.4}",
                    t.d_fraction_generated, t.d_fraction_reference
                ),
            ));
            rows.push((
                "D mirrored to L: KL(φ), KL(ψ), W2(φ,ψ), φ>0".into(),
                format!(
                    "{:.4}, {:.4}, {:.4}, {:.4}",
                    t.kl_phi_l_form,
                    t.kl_psi_l_form,
                    t.w2_phi_psi_l_form,
                    t.phi_positive_generated_l_form
                ),
            ));
        }
        if let (Some(c), Some(k)) = (self.modes_covered, self.n_modes) {
            rows.push(("modes covered".into(), format!("{c} / {k}")));
        }
        rows.push(("evaluation time (s)".into(), format!("{:.2}", self.seconds)));
        let w = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        rows.iter()
            .map(|(k, v)| format!("{k:<w$}  {v}\n"))
            .collect()
    }
}

/// The two series of every evaluation plot: generated, then reference.
fn gen_vs_ref<'a>(generated: &'a [f64], reference: &'a [f64]) -> [Series<'a>; 2] {
    [
        Series {
            label: "generated",
            values: generated,
        },
        Series {
            label: "reference",
            values: reference,
        },
    ]
}

/// Axes of the 2-D scatter of a system's first two coordinates: for a periodic target, its
/// first two angle names ([`System::angles`]) on [−π, π]; fitted to the data otherwise.
fn scatter_axes(system: &System) -> Axes2d<'_> {
    match system.angles.as_deref() {
        Some([x, y, ..]) => Axes2d::angles(x, y),
        _ => Axes2d::default(),
    }
}

/// Writes the evaluation plots into `dir`: energy histogram, interatomic-distance histogram
/// (particle systems), the Ramachandran plot (alanine dipeptide) and a 2-D scatter of the
/// first two coordinates (vector targets; labelled angles on [−π, π] for periodic ones).
pub fn write_plots(dir: &Path, system: &System, data: &EvalData) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let name = system.energy.name();
    let mut written = Vec::new();
    let p = dir.join("energy_histogram.png");
    histogram_overlay(
        &p,
        &format!("{name}: energy"),
        "E (kT)",
        &gen_vs_ref(&data.energies_generated, &data.energies_reference),
        80,
    )?;
    written.push(p);
    if let Some(pl) = system.energy.particles() {
        let layout = m::ParticleLayout::new(pl.n, pl.spatial);
        let dg = m::interatomic_distances(&data.generated, layout)?;
        let dr = m::interatomic_distances(&data.reference, layout)?;
        let p = dir.join("distance_histogram.png");
        histogram_overlay(
            &p,
            &format!("{name}: interatomic distances"),
            "distance",
            &gen_vs_ref(&dg, &dr),
            100,
        )?;
        written.push(p);
    } else if is_alanine(system) {
        let p = dir.join("ramachandran.png");
        let (g, r) = (phi_psi(&data.generated)?, phi_psi(&data.reference)?);
        scatter_2d(
            &p,
            &format!("{name}: Ramachandran (φ, ψ)"),
            &gen_vs_ref(&g, &r),
            None,
            Axes2d::angles("φ", "ψ"),
        )?;
        written.push(p);
    } else if data.dim >= 2 {
        let first2 = |v: &[f64]| -> Vec<f64> {
            v.chunks_exact(data.dim)
                .flat_map(|r| [r[0], r[1]])
                .collect()
        };
        let (g, r) = (first2(&data.generated), first2(&data.reference));
        let marks = system.modes.as_ref().map(|md| {
            md.locations
                .chunks_exact(md.dim)
                .flat_map(|r| [r[0], r[1]])
                .collect::<Vec<f64>>()
        });
        let p = dir.join("samples_2d.png");
        let title = if data.dim == 2 {
            name.to_string()
        } else {
            format!("{name}: coordinates 1-2")
        };
        scatter_2d(
            &p,
            &title,
            &gen_vs_ref(&g, &r),
            marks.as_deref(),
            scatter_axes(system),
        )?;
        written.push(p);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use diffsamp_energy::registry;

    #[test]
    fn periodic_scatters_are_labelled_angles_on_the_torus() {
        let pi = std::f64::consts::PI;
        let aldp = registry::system("aldp-phi-psi").unwrap();
        let a = scatter_axes(&aldp);
        assert_eq!(a.labels, Some(("φ", "ψ")));
        assert_eq!(a.range, Some((-pi, pi)));
        let torus = registry::system("torus-2").unwrap();
        assert_eq!(scatter_axes(&torus), Axes2d::angles("τ₁", "τ₂"));
        let gmm = registry::system("gmm40").unwrap();
        assert_eq!(scatter_axes(&gmm), Axes2d::default());
    }
}
