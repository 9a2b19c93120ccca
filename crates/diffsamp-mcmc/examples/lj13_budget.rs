//! Plain-MCMC baseline for LJ-13: energy evaluations needed to reach a given energy-W2.
//!
//! `cargo run --release -p diffsamp-mcmc --example lj13_budget -- [--out FILE.json]
//! [--temperature T] [--quick] [--seed S] [--seeds K] [--eval-seed S] [--target W2]...
//! [--max-steps N]`
//!
//! Every run draws 2000 samples with the `lj13` preset of
//! [`default_config_for`] (HMC, L = 10 leapfrog steps, dual-averaging step-size adaptation
//! during warm-up, the preset's initialisation: Gaussian draw with min spacing 0.9, then 50
//! descent steps) through [`run_reference`], and reports the library's own evaluation counter
//! (initialisation + warm-up + sampling, every energy+gradient call). Two protocols are swept,
//! because which one is cheaper depends on how long burn-in is compared with decorrelation:
//!
//! - `independent`: 2000 independent chains, `warmup` adapting steps each, then one frozen
//!   step; the sample is the final state of every chain (`thinning = 1`, one sampling round).
//!   Steps per chain = warmup + 1, warmup swept over 0, 10, 20, 30, 50, 70, 100, 150, 200,
//!   300, 500, 1000, 2000 and stopped early (T = 1 only, from 500 steps on) once three
//!   consecutive points have a mean energy-W2 at or below the sampling floor (the largest of
//!   the perfect-sampler scores below).
//! - `thinned`: fewer chains (32, the preset's 128, 500), `warmup` adapting steps, then
//!   ⌈2000 / chains⌉ sampling rounds of `thinning` frozen steps (the last round keeps only the
//!   chains it needs), over the grid warmup ∈ {50, 100, 200, 500} × thinning ∈ {1, 2, 5, 10,
//!   20, 50, 100}. Steps per chain = warmup + rounds·thinning. Samples from one chain are
//!   correlated when the thinning is short; that is part of the honest price and shows up as
//!   a worse energy-W2.
//!
//! Every configuration is run with `--seeds K` seeds (default 3: `--seed S` .. S + K − 1) and
//! reports the mean, standard deviation, maximum and per-seed energy-W2. The `frontier` lists
//! the runs, sorted by evaluations, whose mean energy-W2 improves on every cheaper run;
//! `evals_to_reach` gives, for each target, the cheapest run whose mean energy-W2 over the
//! seeds is ≤ the target, and the cheapest whose every seed is (W2 of 2000 samples is itself
//! noisy, ±20 % near the floor, so a single seed can get lucky).
//!
//! Energy-W2 = sqrt of the exact 1-D OT cost between the two sets of 2000 energies
//! (`diffsamp_metrics::energy_w2::wasserstein2_1d`, AS convention). The reference energies are
//! those `diffsamp eval --n 2000 --seed 0` uses for a 2000-row sample file: the split
//! `val_split_LJ13-1000.npy` (10000 rows) loaded COM-free, and 2000 rows drawn without
//! replacement by `rand::seq::index::sample(ChaCha8Rng::seed_from_u64(eval_seed), 10000,
//! 2000)` (a 2000-row generated set consumes no randomness there, so this is the first draw),
//! energies of the untempered `lj13` energy. The floor (what a perfect sampler of the split
//! would score) is the energy-W2 between that subset and four disjoint random 2000-row subsets
//! of the 8000 rows outside it; the energy-W2 between the five contiguous 2000-row blocks of
//! the file (all ten pairs) is reported too, as a check on order effects in the file.
//!
//! `--temperature T` samples `Tempered(lj13, T)` (∝ exp(−E/T)); energies are always reported
//! in units of the untempered E. The reference split is at T = 1, so for T ≠ 1 the energy-W2
//! against it is not a convergence measure; every row therefore also reports
//! `w2_vs_longest`, the energy-W2 against the longest `independent` run.
//! `--quick` sweeps fewer points (independent up to 500 steps, a 2 × 4 thinned grid on 128
//! chains); `--max-steps N` drops every run with more than N steps per chain.

use diffsamp_energy::data::{read_npy, shared_data_file};
use diffsamp_energy::{energies_batch, registry, Energy, Tempered};
use diffsamp_mcmc::diagnostics::mean_std;
use diffsamp_mcmc::{default_config_for, run_reference, ReferenceConfig, Silent};
use diffsamp_metrics::energy_w2::wasserstein2_1d;
use rand::seq::index::sample as sample_indices;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::fmt::Write as _;
use std::time::Instant;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

const N_SAMPLES: usize = 2000;
const SPLIT: &str = "val_split_LJ13-1000.npy";

/// One configuration of the sweep, run with every seed.
struct Row {
    protocol: &'static str,
    n_chains: usize,
    warmup: usize,
    thinning: usize,
    steps_per_chain: usize,
    /// Largest evaluation count over the seeds (they differ only by early minimiser stops).
    energy_evals: u64,
    /// Mean over seeds of the energy-W2, its standard deviation and maximum.
    energy_w2: f64,
    energy_w2_std: f64,
    energy_w2_max: f64,
    energy_w2_per_seed: Vec<f64>,
    /// Means over seeds.
    mean_energy: f64,
    std_energy: f64,
    acceptance: f64,
    mean_step_size: f64,
    /// Wall seconds of one run (mean over seeds).
    wall_seconds: f64,
    /// Sample energies of the first seed.
    energies: Vec<f64>,
    /// Mean over seeds of the energy-W2 against the longest independent run (first seed).
    w2_vs_longest: f64,
    all_energies: Vec<Vec<f64>>,
}

fn w2(a: &[f64], b: &[f64]) -> Res<f64> {
    Ok(wasserstein2_1d(a, b)?.w2)
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// Runs one configuration with every seed and scores it against the reference energies.
fn run_one(
    energy: &dyn Energy,
    base: &dyn Energy,
    protocol: &'static str,
    cfg: &ReferenceConfig,
    seeds: &[u64],
    ref_e: &[f64],
) -> Res<Row> {
    let (mut w2s, mut means, mut stds, mut accs, mut eps, mut walls) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    let mut evals = 0u64;
    let mut all_energies = Vec::new();
    for &seed in seeds {
        let cfg = ReferenceConfig {
            seed,
            ..cfg.clone()
        };
        let start = Instant::now();
        let res = run_reference(energy, &cfg, &mut Silent)?;
        walls.push(start.elapsed().as_secs_f64());
        // Untempered E of the samples (equals res.energies at T = 1).
        let energies = energies_batch(base, &res.samples)?;
        w2s.push(w2(&energies, ref_e)?);
        let (m, s) = mean_std(&energies);
        means.push(m);
        stds.push(s);
        accs.push(res.acceptance[0]);
        eps.push(mean(&res.step_sizes));
        evals = evals.max(res.energy_evals);
        all_energies.push(energies);
    }
    let (w2_mean, w2_std) = mean_std(&w2s);
    let row = Row {
        protocol,
        n_chains: cfg.n_chains,
        warmup: cfg.warmup,
        thinning: cfg.thinning,
        steps_per_chain: cfg.warmup + cfg.sampling_rounds() * cfg.thinning,
        energy_evals: evals,
        energy_w2: w2_mean,
        energy_w2_std: w2_std,
        energy_w2_max: w2s.iter().copied().fold(0.0, f64::max),
        energy_w2_per_seed: w2s,
        mean_energy: mean(&means),
        std_energy: mean(&stds),
        acceptance: mean(&accs),
        mean_step_size: mean(&eps),
        wall_seconds: mean(&walls),
        energies: all_energies[0].clone(),
        w2_vs_longest: f64::NAN,
        all_energies,
    };
    eprintln!(
        "{:<11} chains {:>4} warmup {:>5} thin {:>4} steps/chain {:>5} evals {:>10} W2 {:>7.4} ± {:.4} (max {:.4}) <E> {:>9.4} acc {:.3} eps {:.4} {:.1} s/run",
        row.protocol,
        row.n_chains,
        row.warmup,
        row.thinning,
        row.steps_per_chain,
        row.energy_evals,
        row.energy_w2,
        row.energy_w2_std,
        row.energy_w2_max,
        row.mean_energy,
        row.acceptance,
        row.mean_step_size,
        row.wall_seconds
    );
    Ok(row)
}

fn json_num(v: f64) -> String {
    if v.is_finite() {
        format!("{}", (v * 1e5).round() / 1e5)
    } else {
        "null".into()
    }
}

fn json_nums(v: &[f64]) -> String {
    let items: Vec<String> = v.iter().map(|x| json_num(*x)).collect();
    format!("[{}]", items.join(", "))
}

fn row_json(r: &Row) -> String {
    format!(
        "{{\"protocol\": \"{}\", \"n_chains\": {}, \"warmup\": {}, \"thinning\": {}, \
         \"steps_per_chain\": {}, \"energy_evals\": {}, \"energy_w2\": {}, \
         \"energy_w2_std\": {}, \"energy_w2_max\": {}, \"energy_w2_per_seed\": {}, \"mean_energy\": {}, \"std_energy\": {}, \
         \"acceptance\": {}, \"mean_step_size\": {}, \"wall_seconds\": {}, \"w2_vs_longest\": {}}}",
        r.protocol,
        r.n_chains,
        r.warmup,
        r.thinning,
        r.steps_per_chain,
        r.energy_evals,
        json_num(r.energy_w2),
        json_num(r.energy_w2_std),
        json_num(r.energy_w2_max),
        json_nums(&r.energy_w2_per_seed),
        json_num(r.mean_energy),
        json_num(r.std_energy),
        json_num(r.acceptance),
        json_num(r.mean_step_size),
        json_num((r.wall_seconds * 1000.0).round() / 1000.0),
        json_num(r.w2_vs_longest),
    )
}

fn rows_json(rows: &[&Row], indent: &str) -> String {
    let items: Vec<String> = rows
        .iter()
        .map(|r| format!("{indent}  {}", row_json(r)))
        .collect();
    format!("[\n{}\n{indent}]", items.join(",\n"))
}

fn main() -> Res<()> {
    let wall = Instant::now();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut out: Option<String> = None;
    let mut temperature = 1.0f64;
    let mut quick = false;
    let mut seed = 0u64;
    let mut n_seeds = 3u64;
    let mut eval_seed = 0u64;
    let mut targets: Vec<f64> = Vec::new();
    let mut max_steps: Option<usize> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--out" => out = Some(val()?.clone()),
            "--temperature" => temperature = val()?.parse()?,
            "--quick" => quick = true,
            "--seed" => seed = val()?.parse()?,
            "--seeds" => n_seeds = val()?.parse()?,
            "--eval-seed" => eval_seed = val()?.parse()?,
            "--target" => targets.push(val()?.parse()?),
            "--max-steps" => max_steps = Some(val()?.parse()?),
            other => return Err(format!("unknown argument '{other}'").into()),
        }
    }
    if n_seeds == 0 {
        return Err("--seeds must be ≥ 1".into());
    }
    let seeds: Vec<u64> = (seed..seed + n_seeds).collect();
    if targets.is_empty() {
        targets = vec![5.0, 2.0, 1.0, 0.7, 0.5, 0.4];
    }

    let base = registry::by_name("lj13")?;
    let tempered = Tempered::new(registry::by_name("lj13")?, temperature)?;
    let energy: &dyn Energy = &tempered;
    let dim = base.dim();
    let particles = base.particles().ok_or("lj13 is a particle system")?;

    // Reference energies: the split (COM-free), the eval subset, and the floor.
    let val = read_npy(&shared_data_file(SPLIT)?)?;
    if val.row_len() != dim || val.rows() < 5 * N_SAMPLES {
        return Err(format!("{SPLIT}: shape {:?}, expected [≥10000, {dim}]", val.shape).into());
    }
    // As `load_samples`: rows with NaN/inf dropped, COM removed.
    let mut val_x: Vec<f64> = val
        .data
        .chunks_exact(dim)
        .filter(|r| r.iter().all(|v| v.is_finite()))
        .flatten()
        .copied()
        .collect();
    particles.remove_com_batch(&mut val_x);
    let val_e_all = energies_batch(base.as_ref(), &val_x)?;
    let n_val = val_e_all.len();
    let mut rng = ChaCha8Rng::seed_from_u64(eval_seed);
    let mut idx = sample_indices(&mut rng, n_val, N_SAMPLES).into_vec();
    idx.sort_unstable();
    let ref_e: Vec<f64> = idx.iter().map(|&i| val_e_all[i]).collect();
    let mut in_ref = vec![false; n_val];
    idx.iter().for_each(|&i| in_ref[i] = true);
    let mut rest: Vec<usize> = (0..n_val).filter(|&i| !in_ref[i]).collect();
    // A perfect sampler's score: the subset against disjoint random 2000-row subsets of
    // the other rows (seeded shuffle of the complement, cut into blocks).
    rest.shuffle(&mut ChaCha8Rng::seed_from_u64(eval_seed ^ 0x5eed));
    let floor_vs_ref: Vec<f64> = rest
        .chunks_exact(N_SAMPLES)
        .map(|b| {
            let e: Vec<f64> = b.iter().map(|&i| val_e_all[i]).collect();
            w2(&ref_e, &e)
        })
        .collect::<Res<_>>()?;
    let floor_max = floor_vs_ref.iter().copied().fold(0.0, f64::max);
    let (floor_mean, floor_std) = mean_std(&floor_vs_ref);
    let blocks: Vec<&[f64]> = val_e_all.chunks_exact(N_SAMPLES).collect();
    let mut floor_blocks = Vec::new();
    for i in 0..blocks.len() {
        for j in i + 1..blocks.len() {
            floor_blocks.push(w2(blocks[i], blocks[j])?);
        }
    }
    let (ref_mean, ref_std) = mean_std(&ref_e);
    eprintln!(
        "reference: {n_val} rows, eval subset <E> {ref_mean:.4} ± {ref_std:.4}; floor vs subset {floor_vs_ref:.4?} (mean {floor_mean:.4} ± {floor_std:.4}, max {floor_max:.4}); contiguous block pairs {floor_blocks:.4?}"
    );
    if temperature != 1.0 {
        eprintln!(
            "warning: T = {temperature} ≠ 1, the reference split is at T = 1; see w2_vs_longest"
        );
    }

    let preset = default_config_for("lj13")?;
    let mk = |n_chains: usize, warmup: usize, thinning: usize| ReferenceConfig {
        n_chains,
        warmup,
        thinning,
        n_samples: N_SAMPLES,
        ..preset.clone()
    };

    // Protocol A: independent chains, final state.
    let mut indep_steps: Vec<usize> = if quick {
        vec![0, 20, 50, 70, 100, 200, 500]
    } else {
        vec![0, 10, 20, 30, 50, 70, 100, 150, 200, 300, 500, 1000, 2000]
    };
    if let Some(m) = max_steps {
        indep_steps.retain(|&s| s <= m);
    }
    let mut indep: Vec<Row> = Vec::new();
    let mut below = 0;
    for &w in &indep_steps {
        let row = run_one(
            energy,
            base.as_ref(),
            "independent",
            &mk(N_SAMPLES, w, 1),
            &seeds,
            &ref_e,
        )?;
        below = if row.energy_w2 <= floor_max {
            below + 1
        } else {
            0
        };
        indep.push(row);
        if below >= 3 && w >= 500 && temperature == 1.0 {
            eprintln!("independent: three consecutive points at the floor, stopping");
            break;
        }
    }

    // Protocol B: fewer chains (32, the preset's 128, 500) with warm-up and thinning.
    let (chain_counts, warmups, thinnings): (Vec<usize>, Vec<usize>, Vec<usize>) = if quick {
        (vec![preset.n_chains], vec![100, 500], vec![1, 5, 20, 100])
    } else {
        (
            vec![32, preset.n_chains, 500],
            vec![50, 100, 200, 500],
            vec![1, 2, 5, 10, 20, 50, 100],
        )
    };
    let mut thinned: Vec<Row> = Vec::new();
    for &c in &chain_counts {
        for &w in &warmups {
            for &t in &thinnings {
                let cfg = mk(c, w, t);
                if max_steps.is_some_and(|m| cfg.warmup + cfg.sampling_rounds() * t > m) {
                    continue;
                }
                thinned.push(run_one(
                    energy,
                    base.as_ref(),
                    "thinned",
                    &cfg,
                    &seeds,
                    &ref_e,
                )?);
            }
        }
    }

    // Energy-W2 against the longest independent run (a reference-free convergence check).
    let longest = indep
        .iter()
        .max_by_key(|r| r.steps_per_chain)
        .map(|r| r.energies.clone())
        .ok_or("no independent run")?;
    for r in indep.iter_mut().chain(thinned.iter_mut()) {
        let v: Vec<f64> = r
            .all_energies
            .iter()
            .map(|e| w2(e, &longest))
            .collect::<Res<_>>()?;
        r.w2_vs_longest = mean(&v);
    }

    let mut all: Vec<&Row> = indep.iter().chain(thinned.iter()).collect();
    all.sort_by(|a, b| {
        a.energy_evals
            .cmp(&b.energy_evals)
            .then(a.energy_w2.total_cmp(&b.energy_w2))
    });
    let mut frontier: Vec<&Row> = Vec::new();
    for r in &all {
        if frontier.last().is_none_or(|f| r.energy_w2 < f.energy_w2) {
            frontier.push(r);
        }
    }
    // Cheapest run whose mean energy-W2 (and, separately, whose worst seed) is ≤ the target.
    let cheapest = |t: f64, key: fn(&Row) -> f64| -> String {
        match all.iter().find(|r| key(r) <= t) {
            Some(r) => format!(
                "{{\"energy_evals\": {}, \"protocol\": \"{}\", \"n_chains\": {}, \"warmup\": {}, \"thinning\": {}, \"energy_w2\": {}, \"energy_w2_max\": {}}}",
                r.energy_evals,
                r.protocol,
                r.n_chains,
                r.warmup,
                r.thinning,
                json_num(r.energy_w2),
                json_num(r.energy_w2_max)
            ),
            None => "null".into(),
        }
    };
    let reach: Vec<String> = targets
        .iter()
        .map(|&t| {
            format!(
                "    {{\"target_w2\": {}, \"mean_over_seeds\": {}, \"every_seed\": {}}}",
                json_num(t),
                cheapest(t, |r| r.energy_w2),
                cheapest(t, |r| r.energy_w2_max)
            )
        })
        .collect();

    let preset_desc = format!(
        "lj13 preset: {:?} L={} step_size0={} target_accept={} init={:?}",
        preset.kernel,
        preset.leapfrog_steps,
        preset.step_size,
        preset.target_accept(),
        preset.init
    );
    let mut j = String::new();
    writeln!(j, "{{")?;
    writeln!(j, "  \"system\": \"lj13\",")?;
    writeln!(j, "  \"temperature\": {},", json_num(temperature))?;
    writeln!(
        j,
        "  \"seeds\": {},",
        json_nums(&seeds.iter().map(|&s| s as f64).collect::<Vec<_>>())
    )?;
    writeln!(j, "  \"quick\": {quick},")?;
    writeln!(j, "  \"n_samples\": {N_SAMPLES},")?;
    writeln!(j, "  \"sampler\": \"{}\",", preset_desc.replace('"', "'"))?;
    writeln!(
        j,
        "  \"reference\": {{\"file\": \"{SPLIT}\", \"rows\": {n_val}, \"subset\": \"rand::seq::index::sample(ChaCha8Rng::seed_from_u64({eval_seed}), {n_val}, {N_SAMPLES}), as diffsamp eval --n {N_SAMPLES} --seed {eval_seed}\", \"mean_energy\": {}, \"std_energy\": {}}},",
        json_num(ref_mean),
        json_num(ref_std)
    )?;
    writeln!(
        j,
        "  \"floor\": {{\"subset_vs_disjoint_random_subsets\": {}, \"contiguous_block_pairs\": {}, \"mean\": {}, \"std\": {}, \"max\": {}}},",
        json_nums(&floor_vs_ref),
        json_nums(&floor_blocks),
        json_num(floor_mean),
        json_num(floor_std),
        json_num(floor_max)
    )?;
    writeln!(
        j,
        "  \"independent\": {},",
        rows_json(&indep.iter().collect::<Vec<_>>(), "  ")
    )?;
    writeln!(
        j,
        "  \"thinned\": {},",
        rows_json(&thinned.iter().collect::<Vec<_>>(), "  ")
    )?;
    writeln!(j, "  \"frontier\": {},", rows_json(&frontier, "  "))?;
    writeln!(j, "  \"evals_to_reach\": [\n{}\n  ],", reach.join(",\n"))?;
    writeln!(
        j,
        "  \"total_wall_seconds\": {}",
        json_num((wall.elapsed().as_secs_f64() * 10.0).round() / 10.0)
    )?;
    writeln!(j, "}}")?;
    print!("{j}");
    if let Some(p) = out {
        let p = std::path::Path::new(&p);
        if let Some(d) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(d)?;
        }
        std::fs::write(p, &j)?;
        eprintln!("table -> {}", p.display());
    }
    Ok(())
}
