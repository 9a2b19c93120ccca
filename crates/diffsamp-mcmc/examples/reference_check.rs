//! Runs the dw4/lj13 reference presets and compares their energies with the published splits.
//!
//! `cargo run --release -p diffsamp-mcmc --example reference_check [-- SYSTEM... [--n N] [--seed S] [--config FILE.toml]]`
//! (systems default to `dw4 lj13`; `--config` replaces the preset by a TOML `ReferenceConfig`). Prints energy-W2 (sqrt of the 1-D OT cost between equal-size
//! energy samples, i.e. sqrt(mean((sort a − sort b)²))) against each disjoint 2000-row block of
//! the validation split, the split-vs-split floor, mean ± std of the energies, energy
//! evaluations and wall time.

use diffsamp_energy::data::{read_npy, shared_data_file};
use diffsamp_energy::{DoubleWell, Energy, LennardJones};
use diffsamp_mcmc::diagnostics::mean_std;
use diffsamp_mcmc::{default_config_for, run_reference, Silent};

fn energy_w2(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort_by(f64::total_cmp);
    b.sort_by(f64::total_cmp);
    (a.iter()
        .zip(&b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f64>()
        / a.len() as f64)
        .sqrt()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut systems = Vec::new();
    let (mut n, mut seed) = (2000usize, 0u64);
    let mut config_file: Option<String> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--n" => n = it.next().ok_or("--n needs a value")?.parse()?,
            "--seed" => seed = it.next().ok_or("--seed needs a value")?.parse()?,
            "--config" => config_file = Some(it.next().ok_or("--config needs a path")?.clone()),
            s => systems.push(s.to_string()),
        }
    }
    if systems.is_empty() {
        systems = vec!["dw4".into(), "lj13".into()];
    }
    for system in systems {
        let (energy, split): (Box<dyn Energy>, &str) = match system.as_str() {
            "dw4" => (Box::new(DoubleWell::dw4()), "val_split_DW4.npy"),
            "lj13" => (Box::new(LennardJones::lj13()), "val_split_LJ13-1000.npy"),
            other => return Err(format!("no validation split for '{other}'").into()),
        };
        let mut cfg = match &config_file {
            Some(path) => toml::from_str(&std::fs::read_to_string(path)?)?,
            None => default_config_for(&system)?,
        };
        cfg.n_samples = n;
        cfg.seed = seed;
        let res = run_reference(energy.as_ref(), &cfg, &mut Silent)?;

        let val = read_npy(&shared_data_file(split)?)?;
        let d = energy.dim();
        assert_eq!(val.row_len(), d);
        let particles = energy.particles().expect("particle system");
        let val_e: Vec<f64> = val
            .data
            .chunks_exact(d)
            .map(|row| {
                let mut x = row.to_vec();
                particles.remove_com(&mut x);
                energy.energy(&x)
            })
            .collect();
        let blocks: Vec<&[f64]> = val_e.chunks_exact(n).collect();
        let w2s: Vec<f64> = blocks.iter().map(|b| energy_w2(&res.energies, b)).collect();
        let floor: Vec<f64> = blocks.windows(2).map(|w| energy_w2(w[0], w[1])).collect();
        let (m, s) = res.energy_mean_std();
        let (vm, vs) = mean_std(&val_e);
        println!("== {system}: n = {n}, seed = {seed}, config = {cfg:?}");
        println!(
            "energy-W2 vs val blocks of {n}: {:?} (mean {:.3}); val-vs-val floor: {:?}",
            w2s.iter()
                .map(|v| (v * 1000.0).round() / 1000.0)
                .collect::<Vec<_>>(),
            w2s.iter().sum::<f64>() / w2s.len() as f64,
            floor
                .iter()
                .map(|v| (v * 1000.0).round() / 1000.0)
                .collect::<Vec<_>>(),
        );
        println!(
            "energy mean ± std: ours {m:.3} ± {s:.3}, val ({} rows) {vm:.3} ± {vs:.3}",
            val_e.len()
        );
        println!(
            "energy evals {} | wall {:.2} s | acceptance {:?} | swap rates {:?} | non-finite {}",
            res.energy_evals,
            res.wall_seconds,
            res.acceptance,
            res.swap_rates,
            res.rejected_non_finite
        );
        let iat = &res.diagnostics.energy_iat_steps;
        println!(
            "diagnostics: ESS(E) {:.0}, split-R̂ {:.4}, thinning/median IAT {:.2}, IAT range [{:.1}, {:.1}] steps",
            res.diagnostics.energy_ess,
            res.diagnostics.energy_split_rhat,
            res.diagnostics.thinning_over_iat,
            iat.iter().copied().fold(f64::INFINITY, f64::min),
            iat.iter().copied().fold(0.0, f64::max),
        );
    }
    Ok(())
}
