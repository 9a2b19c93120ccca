//! Measurements behind docs/RESULTS.md "Adjoint Matching": is the lean-adjoint regression
//! target unbiased at the optimum, step by step, on GMM-40 tilted by a quadratic reward?
//!
//! With the exact GMM-40 base velocity and the exact velocity of its closed-form tilt, the
//! optimal residual is known: δ*(t, x) = v_tilt(t, x) − v_base(t, x). Rolling out the optimal
//! process and integrating the lean adjoint along it, the loss target y_k = −σ_k² ã_{k+1} / 2 must
//! satisfy E[y_k | X_k] = δ*(X_k). The check prints, per step, the projection
//! m_k = E⟨y_k, δ*_k⟩ / E‖δ*_k‖² (1 if unbiased) with its standard error, and how heavy the
//! tail of ⟨y_k, δ*_k⟩ is (the share of the sum carried by the largest 1 % of samples).
//! `--scale C` multiplies the GMM-40 means by C (closer, overlapping modes). `mixture-samples`
//! writes exact samples of that mixture (pretraining data for a trained base) and `compare`
//! scores samples against its closed-form tilt.
//!
//! ```text
//! cargo run --release -p diffsamp --example am_checks -- adjoint-bias [--steps 100] [--grid 2] [--n 8192] [--scale 1]
//! cargo run --release -p diffsamp --example am_checks -- mixture-samples --scale 0.25 --out x.npy
//! cargo run --release -p diffsamp --example am_checks -- compare --scale 0.25 --reward SPEC --samples runs/ft/samples.npy
//! ```

use anyhow::{bail, Context};
use diffsamp::methods::adjoint_matching::{
    adjoints, AdjointMethod, IsotropicMixture, Memoryless, Reward,
};
use diffsamp::metrics::sinkhorn::{sinkhorn_divergence, SinkhornConfig};
use diffsamp::sde::{HostNoise, NoiseSource};
use tch::{Device, Kind, Tensor};

fn arg(args: &[String], key: &str) -> Option<String> {
    args.iter()
        .position(|a| a == key)
        .and_then(|i| args.get(i + 1).cloned())
}

fn host(x: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(&x.to_kind(Kind::Double).flatten(0, -1)).expect("host copy")
}

/// GMM-40 with its means multiplied by `--scale` (default 1; component std stays 1).
fn scaled_gmm40(args: &[String]) -> anyhow::Result<IsotropicMixture> {
    let scale: f64 = arg(args, "--scale").map_or(Ok(1.0), |s| s.parse())?;
    let gmm40 = IsotropicMixture::registered("gmm40").context("gmm40 mixture")?;
    let means: Vec<f64> = (0..gmm40.n_components())
        .flat_map(|i| gmm40.mean(i).iter().map(|m| m * scale).collect::<Vec<_>>())
        .collect();
    Ok(IsotropicMixture::new(
        gmm40.weights().to_vec(),
        means,
        gmm40.stds().to_vec(),
        gmm40.dim(),
    )?)
}

fn mean_se(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|a| (a - m).powi(2)).sum::<f64>() / (n - 1.0);
    (m, (var / n).sqrt())
}

/// Exact samples of the scaled GMM-40 as a float32 .npy (pretraining data).
fn mixture_samples(args: &[String]) -> anyhow::Result<()> {
    let n: usize = arg(args, "--n").map_or(Ok(200_000), |s| s.parse())?;
    let out = arg(args, "--out").context("--out FILE.npy")?;
    let m = scaled_gmm40(args)?;
    let x = m.sample(n, &mut rand_chacha_rng(11));
    diffsamp::io::npy::write_npy(std::path::Path::new(&out), &[n, m.dim()], &x, false)?;
    println!("{n} samples of the mixture written to {out}");
    Ok(())
}

/// Samples (`--samples`, e.g. a fine-tuning run's samples.npy) against the closed-form tilt of
/// the scaled GMM-40: largest mode-weight error and mean reward in combined standard errors.
fn compare(args: &[String]) -> anyhow::Result<()> {
    let path = arg(args, "--samples").context("--samples FILE.npy")?;
    let spec = arg(args, "--reward").context("--reward SPEC")?;
    let lambda: f64 = arg(args, "--lambda").map_or(Ok(1.0), |s| s.parse())?;
    let base = scaled_gmm40(args)?;
    let reward = Reward::parse(&spec, base.dim())?;
    let Some(tilt) = base.tilt(&reward, lambda)? else {
        bail!("the reward {spec} has no closed-form tilt (linear or quadratic)");
    };
    let x = diffsamp::io::npy::read_npy(std::path::Path::new(&path))?;
    if x.shape.len() != 2 || x.shape[1] != base.dim() {
        bail!("{path}: shape {:?}, expected [n, {}]", x.shape, base.dim());
    }
    // At least two independent exact sets of the samples' size (the Sinkhorn floor below).
    let n_exact = 100_000.max(2 * x.shape[0]);
    let exact = tilt.sample(n_exact, &mut rand_chacha_rng(12));
    let (got, want) = (
        tilt.assigned_fractions(&x.data),
        tilt.assigned_fractions(&exact),
    );
    let max_err = got
        .iter()
        .zip(&want)
        .map(|(g, w)| (g - w).abs())
        .fold(0.0, f64::max);
    let ((mg, sg), (me, se)) = (
        mean_se(&reward.batch(&x.data)?.0),
        mean_se(&reward.batch(&exact)?.0),
    );
    println!(
        "{path}: n = {}, max mode-weight error {max_err:.4}; mean reward {mg:.4} ± {sg:.4} vs \
         exact tilt {me:.4} ± {se:.4} ({n_exact} samples): {:.2} s.e.",
        x.shape[0],
        (mg - me) / (sg * sg + se * se).sqrt()
    );
    // Sinkhorn divergence (ε = 0.01, as the fine-tuning report) against as many exact samples,
    // beside the floor of two independent exact sets of that size.
    let (n, d) = (x.shape[0], base.dim());
    let cfg = SinkhornConfig {
        epsilon: 0.01,
        ..SinkhornConfig::default()
    };
    let ours = sinkhorn_divergence(&x.data, &exact[..n * d], d, &cfg)?.divergence;
    let floor = sinkhorn_divergence(&exact[n * d..2 * n * d], &exact[..n * d], d, &cfg)?.divergence;
    println!("Sinkhorn divergence (ε = 0.01) to {n} exact samples: {ours:.3} (exact vs exact: {floor:.3})");
    Ok(())
}

fn adjoint_bias(args: &[String]) -> anyhow::Result<()> {
    let steps: usize = arg(args, "--steps").map_or(Ok(100), |s| s.parse())?;
    let grid: f64 = arg(args, "--grid").map_or(Ok(2.0), |s| s.parse())?;
    let n: usize = arg(args, "--n").map_or(Ok(8192), |s| s.parse())?;
    let spec = arg(args, "--reward").unwrap_or_else(|| "quadratic:0,0;k=0.002".into());
    let scale: f64 = arg(args, "--scale").map_or(Ok(1.0), |s| s.parse())?;
    let base = scaled_gmm40(args)?;
    let reward = Reward::parse(&spec, base.dim())?;
    let Some(tilt) = base.tilt(&reward, 1.0)? else {
        bail!("the reward {spec} has no closed-form tilt (linear or quadratic)");
    };
    let schedule = Memoryless::with_grid(steps, grid)?;
    let v_base = |t: &Tensor, x: &Tensor| base.velocity(t, x);
    let optimal = |t: &Tensor, x: &Tensor| tilt.velocity(t, x) - base.velocity(t, x);
    let mut noise = HostNoise::seeded(0);
    let chunk = 1024.min(n);
    let mut sums = vec![(0.0f64, 0.0f64, 0.0f64); steps + 1]; // Σ p, Σ p², Σ ‖δ*‖²
    let mut per_step: Vec<Vec<f64>> = vec![Vec::new(); steps + 1];
    let mut rewards = Vec::new();
    for _ in 0..n.div_ceil(chunk) {
        let x0 = noise.standard_normal(
            &[chunk as i64, base.dim() as i64],
            Kind::Double,
            Device::Cpu,
        );
        let traj = schedule.rollout(&v_base, Some(&optimal), x0, &mut noise);
        let x1 = host(&traj.states[steps]);
        let (r, g) = reward.batch(&x1)?;
        rewards.extend(r);
        let terminal = -Tensor::from_slice(&g).view([chunk as i64, base.dim() as i64]);
        let adj = adjoints(
            AdjointMethod::Lean,
            &schedule,
            &v_base,
            &optimal,
            &traj,
            terminal,
        );
        for k in 0..steps {
            let x = &traj.states[k];
            let d = tch::no_grad(|| optimal(&schedule.time_tensor(k, x), x));
            let s2 = schedule.sigma(k).powi(2);
            let y: Tensor = &adj[k + 1] * (-0.5 * s2);
            let p = host(&(&y * &d).sum_dim_intlist([1].as_slice(), false, Kind::Double));
            let dd = host(
                &d.square()
                    .sum_dim_intlist([1].as_slice(), false, Kind::Double),
            );
            let e = &mut sums[k];
            for (pi, di) in p.iter().zip(&dd) {
                e.0 += pi;
                e.1 += pi * pi;
                e.2 += di;
            }
            per_step[k].extend(p);
        }
    }
    let m = rewards.len() as f64;
    let mean_r = rewards.iter().sum::<f64>() / m;
    let sd_r = (rewards.iter().map(|r| (r - mean_r).powi(2)).sum::<f64>() / (m - 1.0)).sqrt();
    let exact = tilt.sample(20_000, &mut rand_chacha_rng(1));
    let (r_exact, _) = reward.batch(&exact)?;
    let mean_exact = r_exact.iter().sum::<f64>() / r_exact.len() as f64;
    println!(
        "optimal rollout (K = {steps}, grid power {grid}): mean reward {mean_r:.4} ± {:.4}; \
         exact tilt {mean_exact:.4} (20 000 samples)",
        sd_r / m.sqrt()
    );
    println!("GMM-40 means × {scale}, reward {spec}");
    println!("k\tt_k\tm_k (target ã_(k+1))\ts.e.\ttop-1% share");
    for k in 0..steps {
        let (sp, sp2, sd) = sums[k];
        if sd <= 0.0 {
            continue;
        }
        let mk = sp / sd;
        let var = sp2 / m - (sp / m).powi(2);
        let se = (var / m).sqrt() / (sd / m);
        let mut v: Vec<f64> = per_step[k].iter().map(|p| p.abs()).collect();
        v.sort_by(|a, b| b.total_cmp(a));
        let top = v[..(v.len() / 100).max(1)].iter().sum::<f64>() / v.iter().sum::<f64>();
        println!("{k}\t{:.4}\t{mk:.3}\t{se:.3}\t{top:.3}", schedule.time(k));
    }
    Ok(())
}

fn rand_chacha_rng(seed: u64) -> rand_chacha::ChaCha8Rng {
    use rand::SeedableRng;
    rand_chacha::ChaCha8Rng::seed_from_u64(seed)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    tch::set_num_threads(1);
    match args.first().map(String::as_str) {
        Some("adjoint-bias") => adjoint_bias(&args[1..]),
        Some("mixture-samples") => mixture_samples(&args[1..]),
        Some("compare") => compare(&args[1..]),
        _ => bail!(
            "usage: am_checks adjoint-bias [--steps K] [--grid P] [--n N] [--reward SPEC] \
             [--scale C] | mixture-samples --out F [--n N] [--scale C] | compare --samples F \
             --reward SPEC [--lambda L] [--scale C]"
        ),
    }
}
