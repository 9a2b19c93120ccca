//! Measurements behind docs/RESULTS.md "PITA": the annealing machinery on a 1-D two-mode
//! mixture (exact vs learned score), and the exact vs Hutchinson divergence of a trained run.
//!
//! ```text
//! cargo run --release -p diffsamp --example pita_checks -- mixture [--steps 3000]
//! cargo run --release -p diffsamp --example pita_checks -- divergence --run runs/lj13_pita_quick
//! cargo run --release -p diffsamp --example pita_checks -- anneal --run runs/lj13_pita_quick --gamma 1
//! cargo run --release -p diffsamp --example pita_checks -- anneal --run runs/lj13_pita_quick --gamma 1 --empirical 0.001
//! cargo run --release -p diffsamp --example pita_checks -- anneal --run runs/lj13_pita_quick --temperature 3 --gamma 1.5 --live
//! cargo run --release -p diffsamp --example pita_checks -- anneal --run runs/lj13_pita_quick --temperature 1.2 --gamma 1.2 --denoise --out s.npy
//! cargo run --release -p diffsamp --example pita_checks -- noise-floor --system lj13 --reference val_split_LJ13-1000.npy
//! cargo run --release -p diffsamp --example pita_checks -- energy-fit --run runs/lj13_pita_quick --samples a.npy,b.npy --temperature 4
//! ```

use anyhow::{bail, Context};
use diffsamp::mcmc::diagnostics::mean_std;
use diffsamp::methods::pita::diagnostics::{EnergyFit, NoiseFloor};
use diffsamp::methods::pita::edm::Edm;
use diffsamp::methods::pita::exact::DiffusedMixture;
use diffsamp::methods::pita::loss::{losses, Batch, LossConfig};
use diffsamp::methods::pita::model::{AtBeta, NetworkConfig, PitaModel};
use diffsamp::methods::pita::smc::{
    anneal, score_and_divergence, Diffused, Divergence, Resampling, SmcConfig, Space,
};
use diffsamp::methods::pita::{PitaConfig, PitaRun};
use diffsamp::nn::{Adam, AdamConfig, Ema, MlpConfig, StateLayout};
use std::path::PathBuf;
use std::time::Instant;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

fn arg(args: &[String], key: &str) -> Option<String> {
    args.iter()
        .position(|a| a == key)
        .and_then(|i| args.get(i + 1).cloned())
}

fn mass_below(x: &Tensor) -> f64 {
    x.lt(0.0)
        .to_kind(Kind::Double)
        .mean(Kind::Double)
        .double_value(&[])
}

/// Trains score + energy networks (MLP) on exact samples of the mixture at β = 1 with the
/// four losses (true energy −log p and score known), then anneals the exact and the learned
/// model by FK-SMC to γ ∈ {2, 0.5}; prints the left-mode mass of each against quadrature.
fn mixture(args: &[String]) -> anyhow::Result<()> {
    let steps: usize = arg(args, "--steps").map_or(Ok(3000), |s| s.parse())?;
    tch::manual_seed(0);
    let m = DiffusedMixture::new(vec![0.3, 0.7], vec![vec![-2.0], vec![2.5]], vec![0.5, 0.8])?;
    let edm = Edm {
        sigma_min: 0.01,
        ..Edm::default()
    };
    let vs = VarStore::new(Device::Cpu);
    let net = NetworkConfig::Mlp(MlpConfig {
        hidden: 64,
        n_layers: 2,
        n_frequencies: 8,
        max_frequency: 4.0,
        length_scale: 2.0,
        periodic: false,
    });
    let model = PitaModel::new(&vs.root(), &net, &StateLayout::vector(1))?;
    let shadow = VarStore::new(Device::Cpu);
    let ema_model = PitaModel::new(&shadow.root(), &net, &StateLayout::vector(1))?;
    let mut ema = Ema::new(shadow, &vs, 0.999)?;
    let mut adam = Adam::new(
        &vs,
        AdamConfig {
            learning_rate: 1e-3,
            ..AdamConfig::default()
        },
    )?;
    let cfg = LossConfig::default();
    let start = Instant::now();
    let b = 256;
    for step in 0..steps {
        let x0 = m.sample(b, Device::Cpu);
        let sig0 = Tensor::full([b], edm.sigma_min, (Kind::Float, Device::Cpu));
        let reduced = tch::no_grad(|| m.energy(&x0, &sig0));
        let target = m.score(&x0, &sig0).detach();
        let batch = Batch {
            beta: Tensor::ones([b], (Kind::Float, Device::Cpu)),
            reduced_energy: reduced,
            target_score: target,
            x0,
        };
        let sigma = edm.training_sigmas(b, (Kind::Float, Device::Cpu));
        let z = Tensor::randn([b, 1], (Kind::Float, Device::Cpu));
        let terms = losses(&model, &cfg, edm.sigma_min, &batch, &sigma, &z);
        adam.zero_grad();
        terms.total.backward();
        adam.clip_grad_norm(0.5);
        adam.step();
        ema.update(&vs, step as u64 + 1);
        if (step + 1) % 500 == 0 {
            eprintln!(
                "step {}: score {:.4} energy-score {:.4} energy-match {:.4}",
                step + 1,
                terms.score,
                terms.energy_score,
                terms.energy_match
            );
        }
    }
    let train_s = start.elapsed().as_secs_f64();
    let learned = AtBeta {
        model: &ema_model,
        beta: 1.0,
    };
    println!("| σ | ΔE exact | ΔE learned | ∂σΔE exact | ∂σΔE learned |");
    println!("|---|---|---|---|---|");
    let modes = Tensor::from_slice(&[-2.0f32, 2.5]).view([2, 1]);
    let delta = |model: &dyn Diffused, sigma: f64| {
        let sig = Tensor::full([2], sigma, (Kind::Float, Device::Cpu));
        let e = tch::no_grad(|| model.energy(&modes, &sig));
        e.double_value(&[0]) - e.double_value(&[1])
    };
    for sigma in [0.01, 0.1, 0.5, 1.0, 2.0, 5.0] {
        let (de, dl) = (delta(&m, sigma), delta(&learned, sigma));
        let h = 1e-3 * sigma;
        let ds =
            |model: &dyn Diffused| (delta(model, sigma + h) - delta(model, sigma - h)) / (2.0 * h);
        println!(
            "| {sigma} | {de:.3} | {dl:.3} | {:.3} | {:.3} |",
            ds(&m),
            ds(&learned)
        );
    }
    println!();
    let variants: [(&str, Option<f64>, f64); 4] = [
        ("no clamp, weights to t = 0.1", None, 0.9),
        ("clamp 0.9, weights to t = 0.1", Some(0.9), 0.9),
        ("clamp 0.9, weights to t = 0.3", Some(0.9), 0.7),
        ("no weights", None, 0.0),
    ];
    println!(
        "| γ | exact p^γ | SMC, exact score | learned: {} |",
        variants.map(|v| v.0).join(" | learned: ")
    );
    println!("|---|---|---|---|---|---|---|");
    for gamma in [2.0, 0.5] {
        let smc = SmcConfig {
            population: 16_000,
            steps: 1000,
            divergence: Divergence::Exact,
            resampling: Resampling::Always,
            clamp_quantile: None,
            chunk: 16_000,
            ..SmcConfig::default()
        };
        let run = |model: &dyn Diffused, smc: &SmcConfig| -> anyhow::Result<f64> {
            tch::manual_seed(11);
            let out = anneal(model, &edm, gamma, Space::cpu(1), smc, |_, _| {})?;
            Ok(mass_below(&out.samples))
        };
        let exact = m.tempered_mass_below(gamma, 0.0)?;
        let a = run(&m, &smc)?;
        let mut row = format!("| {gamma} | {exact:.4} | {a:.4} |");
        for (_, clamp, until) in variants {
            let v = run(
                &learned,
                &SmcConfig {
                    clamp_quantile: clamp,
                    resample_until: until,
                    ..smc.clone()
                },
            )?;
            row += &format!(" {v:.4} |");
        }
        println!("{row}");
    }
    println!(
        "(σ at t = 0.1: {:.3}, at t = 0.3: {:.3})",
        edm.sigma(0.1),
        edm.sigma(0.3)
    );
    println!("(training: {steps} steps, {train_s:.0} s; SMC: 16 000 particles, 1000 steps, exact divergence, no clamping)");
    Ok(())
}

/// Exact vs Hutchinson divergence of a trained run's score at several noise levels, on noised
/// buffer samples of the target temperature: bias, spread and time of each.
fn divergence(args: &[String]) -> anyhow::Result<()> {
    let dir = PathBuf::from(arg(args, "--run").context("--run DIR is needed")?);
    let cfg = PitaConfig::load(&dir.join("config.toml"))?;
    let edm = cfg.edm.clone();
    let run = PitaRun::open(cfg, &dir)?;
    let buffer = run.buffer();
    let d = buffer.dim;
    let beta_min = buffer.beta.iter().copied().fold(f64::INFINITY, f64::min);
    let beta_max = buffer.beta.iter().copied().fold(0.0, f64::max);
    let rows: Vec<usize> = (0..buffer.len())
        .filter(|&i| buffer.beta[i] == beta_max)
        .take(256)
        .collect();
    if rows.is_empty() {
        bail!("empty buffer in {}", dir.display());
    }
    let x: Vec<f64> = rows
        .iter()
        .flat_map(|&i| buffer.x[i * d..(i + 1) * d].iter().copied())
        .collect();
    let n = rows.len() as i64;
    let x0 = edm.to_model(
        &Tensor::from_slice(&x)
            .view([n, d as i64])
            .to_kind(Kind::Float),
    );
    let model = AtBeta {
        model: run.ema_model(),
        beta: beta_max,
    };
    println!(
        "run {} (β from {beta_min:.3} to {beta_max:.3}), {n} samples at β = {beta_max:.3}, d = {d}",
        dir.display()
    );
    println!("| σ | mean exact ∇·s | Hutchinson bias | Hutchinson s.d. | exact ms/sample | Hutchinson ms/sample |");
    println!("|---|---|---|---|---|---|");
    tch::manual_seed(3);
    for sigma in [0.05, 0.2, 1.0, 5.0] {
        let xs = run
            .ema_model()
            .project(&(&x0 + Tensor::randn([n, d as i64], (Kind::Float, Device::Cpu)) * sigma));
        let sig = Tensor::full([n], sigma, (Kind::Float, Device::Cpu));
        let t = Instant::now();
        let (_, exact) = score_and_divergence(&model, &xs, &sig, Divergence::Exact);
        let te = t.elapsed().as_secs_f64() * 1e3 / n as f64;
        let probes = 16;
        let t = Instant::now();
        let mut errs = Vec::new();
        for _ in 0..probes {
            let (_, h) = score_and_divergence(&model, &xs, &sig, Divergence::Hutchinson);
            errs.push(h - &exact);
        }
        let th = t.elapsed().as_secs_f64() * 1e3 / (n as f64 * probes as f64);
        let e = Tensor::stack(&errs, 0).to_kind(Kind::Double);
        let bias = e.mean(Kind::Double).double_value(&[]);
        let sd = e.std(true).double_value(&[]);
        let se = sd / ((n * probes) as f64).sqrt();
        let mean_exact = exact
            .to_kind(Kind::Double)
            .mean(Kind::Double)
            .double_value(&[]);
        println!(
            "| {sigma} | {mean_exact:.2} | {bias:.3} ± {se:.3} | {sd:.2} | {te:.2} | {th:.2} |"
        );
    }
    Ok(())
}

/// Anneals a run's EMA model by `--gamma` (1: no temperature change) from the first buffer
/// samples' temperature (or `--temperature T`) and compares the samples' energies with the
/// buffer's at that temperature (γ = 1 tests the model alone, without annealing). `--drift score|energy` samples
/// with one network's score alone and no weights; `--live` uses the last-step weights;
/// `--denoise` ends with one Tweedie step from σ_min.
fn resample_check(args: &[String]) -> anyhow::Result<()> {
    let dir = PathBuf::from(arg(args, "--run").context("--run DIR is needed")?);
    let gamma: f64 = arg(args, "--gamma").map_or(Ok(1.0), |s| s.parse())?;
    let cfg = PitaConfig::load(&dir.join("config.toml"))?;
    let system = diffsamp::energy::registry::system(&cfg.system)?;
    let mut smc = cfg.smc.clone();
    smc.population = arg(args, "--n").map_or(Ok(500), |s| s.parse())?;
    smc.chunk = smc.population;
    if let Some(k) = arg(args, "--steps") {
        smc.steps = k.parse()?;
    }
    // `--denoise`: the final Tweedie step (`smc.denoise`).
    if args.iter().any(|a| a == "--denoise") {
        smc.denoise = true;
    }
    if let Some(d) = arg(args, "--drift") {
        // A check of one network alone: its reverse SDE, without weights.
        smc.drift = serde_json::from_value(serde_json::Value::String(d))?;
        smc.resample_until = 0.0;
    }
    let edm = cfg.edm.clone();
    let run = PitaRun::open(cfg, &dir)?;
    let buffer = run.buffer();
    // `--temperature T`: start from the model at β = 1/T (default: the first buffer samples').
    let beta = match arg(args, "--temperature") {
        Some(t) => 1.0 / t.parse::<f64>()?,
        None => buffer.beta[0],
    };
    let at_beta = |b: f64| (b - beta).abs() < 1e-9 * beta;
    let d = buffer.dim;
    // `--live`: the last-step weights instead of the EMA ones.
    let live = args.iter().any(|a| a == "--live");
    let network = AtBeta {
        model: if live {
            run.live_model()
        } else {
            run.ema_model()
        },
        beta,
    };
    // `--empirical S`: the exact diffused density of the buffer's samples at β (a mixture of
    // N(x_i, S² I) over them) in place of the networks — a check of the sampler alone.
    let empirical = match arg(args, "--empirical") {
        Some(s) => {
            let std: f64 = s.parse()?;
            let means = (0..buffer.len())
                .filter(|&i| at_beta(buffer.beta[i]))
                .map(|i| {
                    let row = Tensor::from_slice(&buffer.x[i * d..(i + 1) * d]);
                    Vec::<f64>::try_from(edm.to_model(&row))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let k = means.len();
            Some(DiffusedMixture::new(vec![1.0; k], means, vec![std; k])?)
        }
        None => None,
    };
    let model: &dyn Diffused = match &empirical {
        Some(m) => m,
        None => &network,
    };
    if empirical.is_some() {
        smc.chunk = smc.chunk.min(100);
    }
    tch::manual_seed(5);
    let space = Space {
        dim: d,
        particles: run.ema_model().particles(),
        device: Device::Cpu,
    };
    let out = anneal(model, &edm, gamma, space, &smc, |_, _| {})?;
    let x = Vec::<f64>::try_from(edm.to_system(&out.samples).to_kind(Kind::Double).view([-1]))?;
    // `--out FILE.npy`: the samples, for `diffsamp eval`.
    if let Some(path) = arg(args, "--out") {
        diffsamp::io::write_npy(std::path::Path::new(&path), &[x.len() / d, d], &x, false)?;
    }
    let e = diffsamp::energy::energies_batch(system.energy.as_ref(), &x)?;
    let stats = |v: &[f64]| {
        let mut s = v.to_vec();
        s.sort_by(f64::total_cmp);
        if s.is_empty() {
            return "none".to_string();
        }
        format!(
            "({:.1}, {:.1}, {:.1})",
            s[s.len() / 10],
            s[s.len() / 2],
            s[9 * s.len() / 10]
        )
    };
    let buf: Vec<f64> = (0..buffer.len())
        .filter(|&i| at_beta(buffer.beta[i]))
        .map(|i| buffer.energy[i])
        .collect();
    println!(
        "run {}, β {beta:.3} → {:.3} (γ {gamma}), {} particles, {} steps, drift {:?}, {}",
        dir.display(),
        beta * gamma,
        smc.population,
        smc.steps,
        smc.drift,
        match (&empirical, live) {
            (Some(_), _) => "exact score of the buffer's empirical distribution",
            (None, true) => "live weights",
            (None, false) => "EMA weights",
        }
    );
    println!(
        "energy quantiles (10 %, 50 %, 90 %): model {}, buffer at β {}",
        stats(&e),
        stats(&buf)
    );
    Ok(())
}

/// How the run's learned energy at σ_min tracks the true one: E_θ(x, σ_min) of the EMA model
/// at β = 1/T (`--temperature T`, default the first buffer temperature; `--live` for the
/// last-step weights) on the rows of each `--samples` file (comma-separated .npy paths),
/// against the true energy in units of kT, βU(x). Prints each file's means and, pooled over
/// all files, the least-squares slope of E_θ on βU: 1 where the model spaces configurations
/// as the target does, below 1 where it is too flat (its annealed targets then too hot).
fn energy_fit(args: &[String]) -> anyhow::Result<()> {
    let dir = PathBuf::from(arg(args, "--run").context("--run DIR is needed")?);
    let files = arg(args, "--samples").context("--samples A.npy[,B.npy...] is needed")?;
    let cfg = PitaConfig::load(&dir.join("config.toml"))?;
    let system = diffsamp::energy::registry::system(&cfg.system)?;
    let edm = cfg.edm.clone();
    let sigma_min = edm.sigma_min;
    let run = PitaRun::open(cfg, &dir)?;
    let beta = match arg(args, "--temperature") {
        Some(t) => 1.0 / t.parse::<f64>()?,
        None => run.buffer().beta[0],
    };
    let live = args.iter().any(|a| a == "--live");
    let model = if live {
        run.live_model()
    } else {
        run.ema_model()
    };
    let d = model.dim();
    let network = AtBeta { model, beta };
    println!(
        "run {}, β {beta:.3}, {} weights, E_θ at σ_min = {sigma_min}",
        dir.display(),
        if live { "live" } else { "EMA" }
    );
    println!("| samples | n | mean βU | mean E_θ | slope of E_θ on βU within the file |");
    println!("|---|---|---|---|---|");
    let mut fits = Vec::new();
    for path in files.split(',') {
        let a = diffsamp::io::read_npy(std::path::Path::new(path))?;
        if a.data.len() % d != 0 {
            bail!("{path}: {} values are not rows of {d}", a.data.len());
        }
        let n = a.data.len() / d;
        let u: Vec<f64> = diffsamp::energy::energies_batch(system.energy.as_ref(), &a.data)?
            .iter()
            .map(|e| e * beta)
            .collect();
        let x = network.model.project(
            &edm.to_model(&Tensor::from_slice(&a.data).view([n as i64, d as i64]))
                .to_kind(Kind::Float),
        );
        let fit = EnergyFit::new(&network, &x, sigma_min, &u)?;
        let (mu, me) = fit.means();
        println!(
            "| {path} | {} | {mu:.2} | {me:.2} | {:.3} |",
            fit.beta_u.len(),
            fit.slope
        );
        fits.push(fit);
    }
    println!(
        "pooled slope of E_θ on βU: {:.3}",
        EnergyFit::pooled(&fits).slope
    );
    Ok(())
}

/// The energy cost of the last noise level: exact samples of `--reference` (a file in the
/// shared data directory) plus COM-free N(0, σ² I) noise, against disjoint clean rows of the
/// same file (`--n` each, default 2000): energy-W2 and mean energy for each σ of `--sigmas`.
/// A reverse SDE that stops at σ_min without denoising cannot do better than its row.
fn noise_floor(args: &[String]) -> anyhow::Result<()> {
    use rand::SeedableRng;
    let name = arg(args, "--system").context("--system NAME is needed")?;
    let file = arg(args, "--reference").context("--reference FILE.npy is needed")?;
    let n: usize = arg(args, "--n").map_or(Ok(2000), |s| s.parse())?;
    let sigmas: Vec<f64> = arg(args, "--sigmas")
        .unwrap_or_else(|| "0,0.01,0.02,0.03,0.05".into())
        .split(',')
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    let system = diffsamp::energy::registry::system(&name)?;
    let energy = system.energy.as_ref();
    let path = diffsamp::io::resolve_data_file(&file, "--reference")?;
    let data = diffsamp::io::read_npy(&path)?;
    let d = energy.dim();
    if data.data.len() % d != 0 || data.data.len() / d < 2 * n {
        bail!("{file}: need at least {} rows of {d} values", 2 * n);
    }
    let (noisy_rows, clean_rows) = data.data[..2 * n * d].split_at(n * d);
    let clean = diffsamp::energy::energies_batch(energy, clean_rows)?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    println!("{name}, {n} noised rows of {file} against {n} clean ones (mean energy of the clean: {:.2})", mean_std(&clean).0);
    println!("| σ | energy-W2 | mean energy |");
    println!("|---|---|---|");
    for sigma in sigmas {
        let f = NoiseFloor::measure(energy, noisy_rows, &clean, sigma, &mut rng)?;
        println!("| {sigma} | {:.2} | {:.2} |", f.energy_w2, f.mean_energy);
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("mixture") => mixture(&args),
        Some("divergence") => divergence(&args),
        Some("anneal") => resample_check(&args),
        Some("energy-fit") => energy_fit(&args),
        Some("noise-floor") => noise_floor(&args),
        _ => bail!(
            "usage: pita_checks mixture [--steps N] | divergence --run DIR | anneal --run DIR [--gamma G] [--n N] [--steps K] [--drift D] [--live] [--empirical STD] [--denoise] [--out FILE.npy] | energy-fit --run DIR --samples A.npy[,B.npy] [--temperature T] [--live] | noise-floor --system S --reference FILE.npy [--n N] [--sigmas A,B]"
        ),
    }
}
