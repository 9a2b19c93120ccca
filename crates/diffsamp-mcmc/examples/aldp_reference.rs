//! Alanine dipeptide (fab_amber96_obc1, 300 K) by replica-exchange Langevin dynamics (BAOAB,
//! 1 fs, friction 1/ps, no constraints, masses from the System XML), compared with
//! `shared/data/aldp_300K_val_nm.npy`.
//!
//! `cargo run --release -p diffsamp-mcmc --example aldp_reference [-- --samples N]
//!  [--record-every R] [--steps-per-exchange S] [--warmup W] [--temps K] [--t-max T]
//!  [--friction G] [--dt-fs H] [--seed SEED] [--out FILE.npy]`
//! or `... --example aldp_reference -- --eval RUN1.npy,RUN2.npy` to evaluate saved runs pooled.
//!
//! Defaults: 8 temperatures geometric 300–1200 K, an exchange every 100 steps (0.1 ps), the
//! 300 K replica recorded every 5 exchanges (0.5 ps), 200 warm-up exchanges (20 ps), 5000
//! samples. Every replica starts from the first configuration of the force-field fixture
//! `aldp/X100.npy` (an L-alanine MD frame), not from the reference set.
//!
//! Prints KL(ref ‖ gen) of the φ and ψ marginals (200 bins on [−π, π], ε = 1e-5), the φ > 0
//! (C7ax/αL) populations with binomial standard errors, D fractions, swap rates, energy
//! evaluations and wall time.

use diffsamp_energy::data::{read_npy, shared_data_file};
use diffsamp_energy::{Energy, ForceFieldEnergy};
use diffsamp_mcmc::langevin::{run_remd, Langevin, RemdConfig};
use diffsamp_mcmc::parallel_tempering::geometric_ladder;
use diffsamp_metrics::alanine;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut n_samples = 5000usize;
    let mut record_every = 5usize;
    let mut steps_per_exchange = 100usize;
    let mut warmup = 200usize;
    let mut n_temps = 8usize;
    let mut t_max = 4.0f64; // relative: 1200 K
    let mut friction = 1.0f64;
    let mut seed = 0u64;
    let mut dt_fs = 1.0f64;
    let mut out: Option<String> = None;
    let mut eval: Vec<String> = Vec::new();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--samples" => n_samples = val()?.parse()?,
            "--record-every" => record_every = val()?.parse()?,
            "--steps-per-exchange" => steps_per_exchange = val()?.parse()?,
            "--warmup" => warmup = val()?.parse()?,
            "--temps" => n_temps = val()?.parse()?,
            "--t-max" => t_max = val()?.parse::<f64>()? / 300.0,
            "--friction" => friction = val()?.parse()?,
            "--seed" => seed = val()?.parse()?,
            "--dt-fs" => dt_fs = val()?.parse()?,
            "--out" => out = Some(val()?.clone()),
            "--eval" => eval = val()?.split(',').map(str::to_string).collect(),
            s => return Err(format!("unknown argument {s}").into()),
        }
    }
    let t0 = 300.0;
    let energy = ForceFieldEnergy::aldp(t0)?;
    if !eval.is_empty() {
        // evaluate saved runs (concatenated in the order given) instead of simulating
        let mut samples = Vec::new();
        for f in &eval {
            samples.extend(read_npy(std::path::Path::new(f))?.data);
        }
        println!(
            "evaluating {} samples from {eval:?}",
            samples.len() / energy.dim()
        );
        return report(&energy, &samples);
    }
    let lang = Langevin::new(
        1e-3 * dt_fs,
        friction,
        energy.kt(),
        energy.field().masses(),
        3,
    )?;
    let start = read_npy(&shared_data_file("aldp/X100.npy")?)?;
    let x0 = &start.data[..energy.dim()];
    let cfg = RemdConfig {
        temperatures: geometric_ladder(n_temps, t_max),
        steps_per_exchange,
        warmup_rounds: warmup,
        n_samples,
        record_every,
        seed,
    };
    println!(
        "ladder (K): {:?}",
        cfg.temperatures
            .iter()
            .map(|t| (t * t0 * 10.0).round() / 10.0)
            .collect::<Vec<_>>()
    );
    let clock = Instant::now();
    let res = run_remd(
        &energy,
        &lang,
        &cfg,
        x0,
        &mut diffsamp_mcmc::progress::Silent,
    )?;
    let wall = clock.elapsed().as_secs_f64();

    let simulated_ps = (cfg.warmup_rounds + n_samples * record_every) as f64
        * steps_per_exchange as f64
        * lang.dt();
    println!(
        "samples {} (300 K replica, {:.1} ps per replica incl. {:.1} ps warm-up)",
        res.energies.len(),
        simulated_ps,
        cfg.warmup_rounds as f64 * steps_per_exchange as f64 * lang.dt()
    );
    println!(
        "swap rates: {:?}",
        res.swaps
            .rates()
            .iter()
            .map(|r| (r * 1000.0).round() / 1000.0)
            .collect::<Vec<_>>()
    );
    report(&energy, &res.samples)?;
    println!(
        "energy evaluations {} (non-finite steps {}), wall {:.1} s",
        res.energy_evals, res.non_finite, wall
    );
    if let Some(path) = out {
        write_npy_f32(&path, &res.samples, res.energies.len(), energy.dim())?;
        println!("wrote {path}");
    }
    Ok(())
}

/// Prints the torsion metrics of `samples` (`[n, 66]`) against the 300 K reference.
fn report(energy: &ForceFieldEnergy, samples: &[f64]) -> Result<(), Box<dyn std::error::Error>> {
    let reference = read_npy(&shared_data_file("aldp_300K_val_nm.npy")?)?;
    let cmp = alanine::compare(&reference.data, samples)?;
    println!("KL(ref||gen) phi: {:.4}", cmp.kl_phi);
    println!("KL(ref||gen) psi: {:.4}", cmp.kl_psi);
    println!(
        "phi>0 population: gen {:.4} ± {:.4}, ref {:.4} ± {:.4}, z = {:.2}",
        cmp.pop_gen.fraction,
        cmp.pop_gen.std_error,
        cmp.pop_ref.fraction,
        cmp.pop_ref.std_error,
        cmp.pop_gen.z_score(&cmp.pop_ref)
    );
    let flags: Vec<bool> = alanine::phi(samples)?.iter().map(|&f| f > 0.0).collect();
    let batched = alanine::Population::from_flags_batched(&flags, 20)?;
    println!(
        "phi>0 population, batch-means s.e. (20 contiguous batches): gen {:.4} ± {:.4}",
        batched.fraction, batched.std_error
    );
    println!(
        "D fraction: gen {:.4}, ref {:.4}",
        cmp.d_gen.fraction, cmp.d_ref.fraction
    );
    // Finite-sample floors of the torsion KL: the two halves of the reference against each
    // other, and the two halves of the generated run (both at half the sample size, so they
    // overestimate the floor of the full-size comparison).
    let half = |xs: &[f64]| xs.len() / alanine::DIM / 2 * alanine::DIM;
    let (ra, rb) = reference.data.split_at(half(&reference.data));
    let (ga, gb) = samples.split_at(half(samples));
    let (fr, fg) = (alanine::compare(ra, rb)?, alanine::compare(ga, gb)?);
    println!(
        "KL floors (half vs half): reference phi {:.4} psi {:.4}; generated phi {:.4} psi {:.4}",
        fr.kl_phi, fr.kl_psi, fg.kl_phi, fg.kl_psi
    );
    println!(
        "phi>0 population by half of the run: {:.4}, {:.4}",
        fg.pop_ref.fraction, fg.pop_gen.fraction
    );
    let mean_e = |xs: &[f64]| {
        let mut g = vec![0.0; energy.dim()];
        let e: f64 = xs
            .chunks_exact(energy.dim())
            .map(|r| energy.energy_grad(r, &mut g))
            .sum();
        e / (xs.len() / energy.dim()) as f64
    };
    println!(
        "mean E/kT: gen {:.3}, ref {:.3}",
        mean_e(samples),
        mean_e(&reference.data)
    );
    Ok(())
}

/// Writes `[n, 22, 3]` float32 little-endian `.npy`.
fn write_npy_f32(path: &str, data: &[f64], n: usize, dim: usize) -> std::io::Result<()> {
    let mut header = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': ({n}, {}, 3), }}",
        dim / 3
    );
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    for v in data {
        bytes.extend_from_slice(&(*v as f32).to_le_bytes());
    }
    std::fs::write(path, bytes)
}
