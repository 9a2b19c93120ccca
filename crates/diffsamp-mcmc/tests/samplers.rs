//! Statistical and behavioural tests of the MALA/HMC/PT samplers on small known targets.

mod common;

use common::{chain_batch_mean, AlwaysNan, DoubleWell1d, Gaussian, Springs, Tethered, Walled};
use diffsamp_energy::Energy;
use diffsamp_mcmc::{
    run_reference, Ensemble, EnsembleSpec, InitConfig, Kernel, KernelKind, McmcError, PtConfig,
    ReferenceConfig, Silent,
};

fn plain_init() -> InitConfig {
    InitConfig {
        scale: 1.0,
        min_spacing: 0.0,
        minimise_steps: 0,
        minimise_step: 0.05,
    }
}

/// Mean and covariance of a correlated 5-D Gaussian. 1000 independent chains; standard errors
/// from the spread of per-chain averages across chains (valid under any autocorrelation).
/// Every moment must lie within 4.5 standard errors, and the errors must be small enough for
/// the test to have power (SE of each variance < 4 % of its value).
fn check_gaussian(kernel: KernelKind, seed: u64) {
    let g = Gaussian::five_d();
    let sigma = g.covariance();
    let d = 5;
    let cfg = ReferenceConfig {
        kernel,
        leapfrog_steps: 5,
        n_chains: 1000,
        warmup: 500,
        thinning: 10,
        n_samples: 8000,
        step_size: 0.3,
        seed,
        init: plain_init(),
        ..ReferenceConfig::default()
    };
    let res = run_reference(&g, &cfg, &mut Silent).unwrap();
    assert_eq!(res.samples.len(), 8000 * d);
    let target = cfg.target_accept();
    assert!(
        (res.acceptance[0] - target).abs() < 0.08,
        "{kernel:?}: acceptance {} vs target {target}",
        res.acceptance[0]
    );
    for i in 0..d {
        let (mu, se) = chain_batch_mean(&res.samples, d, cfg.n_chains, |x| x[i]);
        assert!(
            (mu - g.mean[i]).abs() < 4.5 * se,
            "{kernel:?}: mean[{i}] = {mu} ± {se}, want {}",
            g.mean[i]
        );
        for j in i..d {
            let (c, se) = chain_batch_mean(&res.samples, d, cfg.n_chains, |x| {
                (x[i] - g.mean[i]) * (x[j] - g.mean[j])
            });
            let want = sigma[i * d + j];
            assert!(
                (c - want).abs() < 4.5 * se,
                "{kernel:?}: cov[{i},{j}] = {c} ± {se}, want {want}"
            );
            if i == j {
                assert!(
                    se < 0.04 * want,
                    "{kernel:?}: SE {se} too large for var {want}"
                );
            }
        }
    }
}

#[test]
fn mala_recovers_a_correlated_gaussian() {
    check_gaussian(KernelKind::Mala, 11);
}

#[test]
fn hmc_recovers_a_correlated_gaussian() {
    check_gaussian(KernelKind::Hmc, 12);
}

/// Tilted double well with barrier ≈ 10 kT: left-mode weight from quadrature. With parallel
/// tempering both kernels must match it within 5 standard errors (across-chain SE, which must
/// itself be within a factor 2 of the binomial SE of independent draws); swap rates in (0, 1).
fn check_double_well(kernel: KernelKind, seed: u64) -> f64 {
    let dw = DoubleWell1d { h: 10.0, c: 0.5 };
    let p_left = dw.left_weight();
    let cfg = ReferenceConfig {
        kernel,
        leapfrog_steps: 5,
        n_chains: 64,
        warmup: 1000,
        thinning: 40,
        n_samples: 6400,
        step_size: 0.2,
        seed,
        pt: Some(PtConfig {
            n_temps: 8,
            t_max: 30.0,
            swap_every: 1,
        }),
        init: plain_init(),
        ..ReferenceConfig::default()
    };
    let res = run_reference(&dw, &cfg, &mut Silent).unwrap();
    let (p, se) = chain_batch_mean(&res.samples, 1, cfg.n_chains, |x| (x[0] < 0.0) as u8 as f64);
    let n = res.n_samples() as f64;
    let se_binom = (p_left * (1.0 - p_left) / n).sqrt();
    assert!(
        (p - p_left).abs() < 5.0 * se.max(se_binom),
        "{kernel:?}: P(left) = {p} ± {se}, exact {p_left}"
    );
    assert!(
        se < 2.0 * se_binom,
        "{kernel:?}: SE {se} vs binomial {se_binom}"
    );
    assert_eq!(res.swap_rates.len(), 7);
    for (k, r) in res.swap_rates.iter().enumerate() {
        assert!(*r > 0.0 && *r < 1.0, "{kernel:?}: swap rate {k} = {r}");
    }
    p_left
}

#[test]
fn mala_with_tempering_gets_double_well_weights() {
    let p_left = check_double_well(KernelKind::Mala, 3);
    assert!((p_left - 0.73).abs() < 0.02, "exact weight {p_left}");
}

#[test]
fn hmc_with_tempering_gets_double_well_weights() {
    check_double_well(KernelKind::Hmc, 4);
}

/// Without tempering the same budget is stuck in the starting modes: the weight is wrong by
/// many standard errors (this is what gives the test above its power).
#[test]
fn double_well_without_tempering_is_visibly_wrong() {
    let dw = DoubleWell1d { h: 10.0, c: 0.5 };
    let p_left = dw.left_weight();
    let cfg = ReferenceConfig {
        n_chains: 64,
        warmup: 1000,
        thinning: 40,
        n_samples: 6400,
        step_size: 0.2,
        seed: 3,
        init: plain_init(),
        ..ReferenceConfig::default()
    };
    let res = run_reference(&dw, &cfg, &mut Silent).unwrap();
    let n = res.n_samples() as f64;
    let p = res.samples.iter().filter(|&&x| x < 0.0).count() as f64 / n;
    let se_binom = (p_left * (1.0 - p_left) / n).sqrt();
    assert!(
        (p - p_left).abs() > 5.0 * se_binom,
        "P(left) = {p}, exact {p_left}"
    );
}

/// Every replica of every chain stays in the zero-COM subspace after every step, for both
/// kernels with tempering, although the energy's gradient has a COM component.
#[test]
fn particle_chains_stay_at_zero_com() {
    let e = Springs { n: 5 };
    let p = e.particles().unwrap();
    for kind in [KernelKind::Mala, KernelKind::Hmc] {
        let spec = EnsembleSpec {
            kernel: Kernel::new(kind, 5),
            temperatures: vec![1.0, 2.0, 4.0],
            swap_every: 1,
            n_chains: 8,
            step_size: 0.1,
            target_accept: kind.default_target_accept(),
            init: InitConfig {
                min_spacing: 0.5,
                ..InitConfig::default()
            },
            seed: 5,
        };
        let mut ens = Ensemble::new(&e, spec).unwrap();
        let mut accepted = 0;
        for step in 0..300 {
            if step == 150 {
                ens.end_warmup();
            }
            ens.run(1);
            for c in ens.chains() {
                for r in &c.replicas {
                    let com = p.com(&r.state.x);
                    assert!(
                        com.iter().all(|v| v.abs() < 1e-10),
                        "{kind:?} step {step}: COM {com:?}"
                    );
                    accepted += r.stats.accepted;
                }
            }
        }
        assert!(accepted > 0);
        let swaps = ens.swap_stats();
        assert!(swaps.accepts.iter().sum::<u64>() > 0);
    }
}

/// Particles tethered with unequal springs: the gradient has a COM component, so the MH ratio
/// is only right if it uses the projected gradient (the subspace proposal). Per-particle
/// covariances must match the subspace Gaussian's within 4.5 across-chain standard errors.
fn check_tethered(kernel: KernelKind, seed: u64) {
    let e = Tethered {
        weights: vec![0.5, 1.0, 2.0, 4.0],
        spatial: 2,
    };
    let c = e.subspace_covariance();
    let (n, s) = (4, 2);
    let cfg = ReferenceConfig {
        kernel,
        leapfrog_steps: 5,
        n_chains: 1000,
        warmup: 500,
        thinning: 10,
        n_samples: 8000,
        step_size: 0.3,
        seed,
        init: InitConfig {
            min_spacing: 0.0,
            minimise_steps: 0,
            ..InitConfig::default()
        },
        ..ReferenceConfig::default()
    };
    let res = run_reference(&e, &cfg, &mut Silent).unwrap();
    for i in 0..n {
        for j in i..n {
            for k in 0..s {
                let (v, se) = chain_batch_mean(&res.samples, n * s, cfg.n_chains, |x| {
                    x[i * s + k] * x[j * s + k]
                });
                let want = c[i * n + j];
                assert!(
                    (v - want).abs() < 4.5 * se,
                    "{kernel:?}: cov(x{i}, x{j}) axis {k} = {v} ± {se}, want {want}"
                );
            }
        }
    }
}

#[test]
fn mala_samples_the_zero_com_restriction() {
    check_tethered(KernelKind::Mala, 21);
}

#[test]
fn hmc_samples_the_zero_com_restriction() {
    check_tethered(KernelKind::Hmc, 22);
}

fn repro_config() -> ReferenceConfig {
    ReferenceConfig {
        kernel: KernelKind::Hmc,
        leapfrog_steps: 3,
        n_chains: 6,
        warmup: 50,
        thinning: 5,
        n_samples: 40,
        step_size: 0.1,
        seed: 42,
        pt: Some(PtConfig {
            n_temps: 3,
            t_max: 3.0,
            swap_every: 2,
        }),
        init: InitConfig {
            min_spacing: 0.5,
            ..InitConfig::default()
        },
        ..ReferenceConfig::default()
    }
}

fn run_in_pool(threads: usize, cfg: &ReferenceConfig) -> diffsamp_mcmc::ReferenceResult {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| run_reference(&Springs { n: 4 }, cfg, &mut Silent).unwrap())
}

#[test]
fn same_seed_same_samples_whatever_the_thread_count() {
    let cfg = repro_config();
    let a = run_in_pool(1, &cfg);
    let b = run_in_pool(2, &cfg);
    let c = run_in_pool(2, &cfg);
    assert_eq!(a.samples, b.samples);
    assert_eq!(a.energies, b.energies);
    assert_eq!(a.step_sizes, b.step_sizes);
    assert_eq!(a.energy_evals, b.energy_evals);
    assert_eq!(b.samples, c.samples);
    let other = run_in_pool(2, &ReferenceConfig { seed: 43, ..cfg });
    assert_ne!(a.samples, other.samples);
}

#[test]
fn mala_reproducible_too() {
    let cfg = ReferenceConfig {
        kernel: KernelKind::Mala,
        pt: None,
        ..repro_config()
    };
    assert_eq!(run_in_pool(1, &cfg).samples, run_in_pool(2, &cfg).samples);
}

/// Energy evaluations are counted exactly: init (1 per replica, no descent) + L per replica
/// step.
#[test]
fn energy_evaluations_are_counted() {
    let cfg = ReferenceConfig {
        init: InitConfig {
            minimise_steps: 0,
            ..repro_config().init
        },
        ..repro_config()
    };
    let res = run_reference(&Springs { n: 4 }, &cfg, &mut Silent).unwrap();
    let replicas = (cfg.n_chains * 3) as u64;
    let steps = (cfg.warmup + cfg.sampling_rounds() * cfg.thinning) as u64;
    // Non-finite trajectories stop early, so this is an upper bound reached without them.
    assert_eq!(res.rejected_non_finite, 0);
    assert_eq!(res.energy_evals, replicas + replicas * steps * 3);
}

#[test]
fn non_finite_proposals_are_rejections_not_errors() {
    let cfg = ReferenceConfig {
        n_chains: 20,
        warmup: 200,
        thinning: 5,
        n_samples: 400,
        step_size: 1.0,
        init: InitConfig {
            scale: 0.1,
            ..plain_init()
        },
        ..ReferenceConfig::default()
    };
    let res = run_reference(&Walled, &cfg, &mut Silent).unwrap();
    assert!(res.rejected_non_finite > 0);
    assert!(res.samples.iter().all(|x| x.abs() < 1.0));
    assert!(res.energies.iter().all(|e| e.is_finite()));
}

#[test]
fn nan_at_initialisation_is_an_error() {
    let err = run_reference(&AlwaysNan, &ReferenceConfig::default(), &mut Silent).unwrap_err();
    assert!(
        matches!(err, McmcError::NonFiniteInit { chain: 0, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("always-nan"), "{err}");
}

#[test]
fn observer_sees_both_stages() {
    use diffsamp_mcmc::{Progress, Stage};
    let mut seen = Vec::new();
    let mut obs = |p: &Progress| seen.push((p.stage, p.step, p.total, p.samples));
    let cfg = ReferenceConfig {
        pt: None,
        ..repro_config()
    };
    run_reference(&Springs { n: 4 }, &cfg, &mut obs).unwrap();
    assert_eq!(seen.first().unwrap().0, Stage::Warmup);
    assert_eq!(*seen.last().unwrap(), (Stage::Sampling, 35, 35, 40));
}
