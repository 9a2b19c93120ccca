//! Produces the LJ-55 reference with the parallel-tempering preset and reports its diagnostics.
//!
//! `cargo run --release -p diffsamp-mcmc --example lj55_reference [-- [--n N] [--seed S]
//! [--config FILE.toml] [--out samples.npy]]`. Prints energy mean ± std, acceptance and swap
//! rates per temperature, energy autocorrelation times, ESS, split-R̂, energy evaluations and
//! wall time; `--out` writes the samples as a float32 `[n, 165]` .npy (and the energies to
//! `<out>.energies.npy`). Progress goes to stderr.

use diffsamp_energy::LennardJones;
use diffsamp_mcmc::{default_config_for, run_reference, Progress, ReferenceConfig, Stage};
use npyz::WriterBuilder;
use std::io::Write;

fn write_npy(path: &str, data: &[f64], shape: &[u64]) -> std::io::Result<()> {
    let file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut w = npyz::WriteOptions::<f32>::new()
        .default_dtype()
        .shape(shape)
        .writer(file)
        .begin_nd()?;
    w.extend(data.iter().map(|&v| v as f32))?;
    w.finish()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut cfg: ReferenceConfig = default_config_for("lj55")?;
    let (mut n, mut seed, mut out) = (2000usize, 0u64, None::<String>);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--n" => n = val()?.parse()?,
            "--seed" => seed = val()?.parse()?,
            "--config" => cfg = toml::from_str(&std::fs::read_to_string(val()?)?)?,
            "--out" => out = Some(val()?.clone()),
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    cfg.n_samples = n;
    cfg.seed = seed;
    let energy = LennardJones::lj55();
    let mut last = std::time::Instant::now();
    let mut observer = |p: &Progress| {
        let done = p.step == p.total && p.stage == Stage::Sampling;
        if last.elapsed().as_secs_f64() > 5.0 || done {
            last = std::time::Instant::now();
            eprintln!(
                "{:?} {}/{}: acc {:.3}, <E> {:.2}, samples {}, evals {}",
                p.stage, p.step, p.total, p.acceptance, p.mean_energy, p.samples, p.energy_evals
            );
            let _ = std::io::stderr().flush();
        }
    };
    let res = run_reference(&energy, &cfg, &mut observer)?;
    let (m, s) = res.energy_mean_std();
    let d = &res.diagnostics;
    let mut iat = d.energy_iat_steps.clone();
    iat.sort_by(f64::total_cmp);
    println!("== lj55: n = {n}, seed = {seed}, config = {cfg:?}");
    println!(
        "energy mean ± std: {m:.3} ± {s:.3} (standard error of the mean: {:.3} from the \
         per-chain means, {:.3} from min(ESS, n))",
        d.energy_mean_se,
        s / d.energy_ess.min(res.n_samples() as f64).sqrt()
    );
    println!("temperatures: {:.3?}", res.temperatures);
    println!("acceptance per temperature: {:.3?}", res.acceptance);
    println!("swap rates per pair: {:.3?}", res.swap_rates);
    println!(
        "energy IAT (steps) min/median/max over chains: {:.1} / {:.1} / {:.1}; thinning/median IAT {:.2}",
        iat[0],
        iat[iat.len() / 2],
        iat[iat.len() - 1],
        d.thinning_over_iat
    );
    println!(
        "ESS(E) over all sampling steps {:.0}; split-R̂(E) {:.4}; non-finite rejections {}",
        d.energy_ess, d.energy_split_rhat, res.rejected_non_finite
    );
    println!(
        "energy evals {} | wall {:.1} s",
        res.energy_evals, res.wall_seconds
    );
    if let Some(path) = out {
        write_npy(
            &path,
            &res.samples,
            &[res.n_samples() as u64, res.dim as u64],
        )?;
        write_npy(
            &format!("{path}.energies.npy"),
            &res.energies,
            &[res.n_samples() as u64],
        )?;
        println!("wrote {path}");
    }
    Ok(())
}
