//! Diagnoses the published DW-4 / LJ-13 validation splits against our MCMC references.
//!
//! `cargo run --release -p diffsamp --example split_diagnostics` prints
//! (1) DW-4: the share of configurations with k pair distances below the barrier d = 4, in the
//!     published split and in an MCMC reference of the same size;
//! (2) LJ-13: geometric W2 (AS protocol) between two disjoint 2000-row blocks of the split, and
//!     again after rotating every configuration of the first block by an independent uniformly
//!     random rotation (the metric is not rotation-invariant, so for independent samples of a
//!     rotation-invariant density the two numbers agree up to noise).

use diffsamp::energy::{data::shared_data_file, registry};
use diffsamp::geometry::{random_rotation, rotate};
use diffsamp::io::{load_samples, Samples};
use diffsamp::mcmc::progress::Silent;
use diffsamp::mcmc::reference::{default_config_for, run_reference};
use diffsamp::metrics::{geometric_w2, GeometricW2Config, ParticleLayout};
use rand::SeedableRng;

fn short_pair_shares(x: &[f64], n_rows: usize) -> [f64; 7] {
    let mut counts = [0usize; 7];
    for r in x.chunks_exact(8).take(n_rows) {
        let mut k = 0;
        for i in 0..4 {
            for j in i + 1..4 {
                let (dx, dy) = (r[2 * i] - r[2 * j], r[2 * i + 1] - r[2 * j + 1]);
                k += usize::from((dx * dx + dy * dy).sqrt() < 4.0);
            }
        }
        counts[k] += 1;
    }
    counts.map(|c| c as f64 / n_rows as f64)
}

fn block(s: &Samples, b: usize, n: usize) -> Vec<f64> {
    s.data[b * n * s.dim..(b + 1) * n * s.dim].to_vec()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dw4 = registry::system("dw4")?;
    let split = load_samples(&shared_data_file("val_split_DW4.npy")?, dw4.energy.as_ref())?;
    let mut cfg = default_config_for("dw4")?;
    cfg.n_samples = split.n;
    let ours = run_reference(dw4.energy.as_ref(), &cfg, &mut Silent)?;
    let (a, b) = (
        short_pair_shares(&split.data, split.n),
        short_pair_shares(&ours.samples, ours.n_samples()),
    );
    println!(
        "DW-4: share of configurations with k pairs closer than d = 4 ({} each)",
        split.n
    );
    println!("  k   published split   MCMC (MALA + PT)   binomial s.e.");
    for k in 0..7 {
        if a[k] + b[k] > 0.0 {
            let se = (a[k] * (1.0 - a[k]) / split.n as f64).sqrt();
            println!("  {k}   {:>15.4}   {:>16.4}   {:>13.4}", a[k], b[k], se);
        }
    }

    let lj = registry::system("lj13")?;
    let split = load_samples(
        &shared_data_file("val_split_LJ13-1000.npy")?,
        lj.energy.as_ref(),
    )?;
    let layout = ParticleLayout::new(13, 3);
    let n = 2000;
    let (b0, b1) = (block(&split, 0, n), block(&split, 1, n));
    let w = |x: &[f64], y: &[f64]| {
        geometric_w2(x, y, layout, &GeometricW2Config::default()).map(|r| r.w2)
    };
    let plain = w(&b0, &b1)?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let mut rotated = b0.clone();
    for x in rotated.chunks_exact_mut(39) {
        let r = random_rotation(3, &mut rng).expect("3-D");
        rotate(x, &r, 3);
    }
    let rot = w(&rotated, &b1)?;
    println!(
        "LJ-13 split: W2(block 0, block 1) = {plain:.4}; with block 0 randomly rotated = {rot:.4}"
    );
    Ok(())
}
