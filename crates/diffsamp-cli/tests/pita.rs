//! `diffsamp pita` end to end: the ladder's run directory, kill-and-resume of a real process
//! (bit-identical to an uninterrupted run), config errors named before anything is written.

mod common;

use common::{diffsamp, s, stderr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn tmp_dir(name: &str) -> PathBuf {
    common::tmp("pita", name)
}

/// A DW-4 ladder 3 → 2 → 1 small enough for a test (one thread: bit-reproducible).
fn tiny_config() -> String {
    r#"
system = "dw4"
temperatures = [3.0, 2.0, 1.0]
seed = 5
threads = 1
final_resample_clamp = 0.5
[network.egnn]
n_layers = 1
hidden = 8
coords_range = 3.0
aggregation = "sum"
[edm]
sigma_min = 0.05
sigma_max = 20.0
rho = 7.0
p_mean = -1.2
p_std = 1.2
[initial.mcmc]
kernel = "mala"
n_chains = 16
warmup = 20
thinning = 2
n_samples = 64
step_size = 0.05
[training]
steps_first = 12
steps_per_stage = 6
batch_size = 16
learning_rate = 1e-3
grad_clip = 0.5
ema_decay = 0.9
checkpoint_every = 3
log_every = 1
[smc]
population = 48
steps = 20
divergence = "exact"
resampling = "ess"
ess_threshold = 0.5
resample_until = 0.9
clamp_quantile = 0.9
chunk = 16
[evaluation]
reference = "val_split_DW4.npy"
n_samples = 40
tempered_references = true
"#
    .to_string()
}

fn write_config(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("run.toml");
    std::fs::write(&p, text).unwrap();
    p
}

/// Writes `text` as the config, runs `diffsamp pita` into `dir/name`, asserts that it
/// succeeded and returns the run directory and the command's stderr.
fn run_pita(dir: &Path, name: &str, text: &str) -> (PathBuf, String) {
    let cfg = write_config(dir, text);
    let out = dir.join(name);
    let o = diffsamp(&["pita", "--config", s(&cfg), "--out", s(&out)]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    (out, err)
}

/// The run's `final.json`.
fn final_json(run: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(run.join("final.json")).unwrap()).unwrap()
}

fn lines(p: &Path) -> usize {
    std::fs::read_to_string(p).map_or(0, |t| t.lines().count())
}

/// Every train.jsonl line reports the gradient norm of each network (so both parameter groups
/// were found) and their joint norm.
fn assert_norms_of_both_networks_logged(run: &Path) {
    let text = std::fs::read_to_string(run.join("train.jsonl")).unwrap();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let (s_norm, e_norm, joint) = (
            v["grad_norm_score"].as_f64().unwrap(),
            v["grad_norm_energy"].as_f64().unwrap(),
            v["grad_norm"].as_f64().unwrap(),
        );
        assert!(s_norm > 0.0 && e_norm > 0.0, "{line}");
        assert!(
            (s_norm.hypot(e_norm) - joint).abs() <= 1e-9 * joint,
            "{line}"
        );
    }
}

#[test]
fn clipping_per_network_trains_and_differs_from_the_joint_clip() {
    let d = tmp_dir("clip");
    // A bound far below the energy network's gradient norm: the joint clip shrinks the score
    // network's gradient too, the per-network clip does not.
    let joint = tiny_config()
        .replace("grad_clip = 0.5", "grad_clip = 0.01")
        .replace(
            "temperatures = [3.0, 2.0, 1.0]",
            "temperatures = [2.0, 1.0]",
        );
    let per = joint.replace(
        "grad_clip = 0.01",
        "grad_clip = 0.01\nclip_per_network = true",
    );
    let mut finals = Vec::new();
    for (name, text) in [("joint", &joint), ("per", &per)] {
        let (out, _) = run_pita(&d, name, text);
        assert_norms_of_both_networks_logged(&out);
        finals.push(std::fs::read(out.join("samples.npy")).unwrap());
    }
    assert_ne!(finals[0], finals[1], "the clipping mode changed nothing");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn sample_draws_fresh_samples_from_a_finished_ladder() {
    let d = tmp_dir("sample");
    let text = tiny_config().replace(
        "temperatures = [3.0, 2.0, 1.0]",
        "temperatures = [2.0, 1.0]",
    );
    let (out, _) = run_pita(&d, "run", &text);
    let draw = |seed: &str, name: &str| {
        let path = d.join(name);
        let o = diffsamp(&[
            "sample",
            "--run",
            s(&out),
            "--n",
            "30",
            "--steps",
            "10",
            "--seed",
            seed,
            "--out",
            s(&path),
        ]);
        let err = stderr(&o);
        assert!(o.status.success(), "{err}");
        assert!(err.contains("30 samples of dw4 at T = 1"), "{err}");
        assert!(err.contains("30 energy evaluations"), "{err}");
        // Weights stop at 90 % of the steps; the line still counts all of them.
        assert!(err.contains("10 steps, 9 of them weighted"), "{err}");
        std::fs::read(path).unwrap()
    };
    let a = draw("0", "a.npy");
    let header = String::from_utf8_lossy(&a[..128]).into_owned();
    assert!(header.contains("(30, 4, 2"), "{header}");
    assert_eq!(a, draw("0", "b.npy"), "the same seed drew other samples");
    assert_ne!(a, draw("1", "c.npy"), "another seed drew the same samples");
    let o = diffsamp(&[
        "sample",
        "--run",
        s(&out),
        "--out",
        s(&d.join("w.npy")),
        "--log-weights",
        s(&d.join("lw.npy")),
    ]);
    assert!(!o.status.success() && stderr(&o).contains("--log-weights"));
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn pita_writes_the_run_directory() {
    let d = tmp_dir("run");
    let (out, _) = run_pita(&d, "run", &tiny_config());
    for f in [
        "config.toml",
        "train.jsonl",
        "metrics.jsonl",
        "samples.npy",
        "samples_T3.npy",
        "samples_T2.npy",
        "samples_T1.npy",
        "final.json",
        "plots/energy_by_temperature.png",
        "plots/energy_histogram.png",
        "plots/distance_histogram.png",
        "plots/ess.png",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    assert_eq!(lines(&out.join("train.jsonl")), 18);
    assert_eq!(lines(&out.join("metrics.jsonl")), 2);
    assert_norms_of_both_networks_logged(&out);
    // Each stage logs the ESS of its 18 weighted steps (resample_until 0.9 of 20), whose
    // minimum and mean are the stage's summary.
    let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    for line in metrics.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let ess: Vec<f64> = v["ess"]
            .as_array()
            .unwrap_or_else(|| panic!("no per-step ESS in {line}"))
            .iter()
            .map(|e| e.as_f64().unwrap())
            .collect();
        assert_eq!(ess.len(), 18, "{line}");
        assert!(ess.iter().all(|e| *e > 0.0 && *e <= 1.0), "{line}");
        let min = ess.iter().copied().fold(1.0, f64::min);
        let mean = ess.iter().sum::<f64>() / 18.0;
        assert_eq!(min, v["ess_min"].as_f64().unwrap(), "{line}");
        assert!(
            (mean - v["ess_mean"].as_f64().unwrap()).abs() < 1e-12,
            "{line}"
        );
    }
    let fin = final_json(&out);
    assert_eq!(fin["training_steps"], 18);
    assert_eq!(fin["n_samples"], 48);
    assert_eq!(fin["stages"].as_array().unwrap().len(), 2);
    assert_eq!(fin["stages"][1]["temperature"], 1.0);
    // Each temperature against its reference: MCMC at T = 3, 2, the split at T = 1.
    let checks = fin["per_temperature"].as_array().unwrap();
    assert_eq!(checks.len(), 3);
    assert_eq!(checks[0]["reference"], "mcmc");
    assert_eq!(checks[2]["reference"], "file");
    assert!(out.join("reference_T3.npy").is_file() && out.join("plots/energy_T2.png").is_file());
    let w2 = fin["evaluation"]["w2"].as_f64().unwrap();
    assert!(w2.is_finite() && w2 > 0.0, "{w2}");
    // MCMC (init + warm-up + sampling) plus one evaluation per buffer sample of each stage.
    let evals = fin["energy_evals"].as_u64().unwrap();
    assert!(evals > 2 * 48, "{evals}");
    let samples = std::fs::read(out.join("samples.npy")).unwrap();
    let header = String::from_utf8_lossy(&samples[..128]).into_owned();
    assert!(header.contains("(48, 4, 2"), "{header}");
    // Running again on the finished directory redoes nothing and reports the same result.
    let again = diffsamp(&["pita", "--out", s(&out)]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(lines(&out.join("train.jsonl")), 18);
    // A changed evaluation table re-evaluates the finished run; a changed ladder is refused.
    let other = write_config(
        &d,
        &tiny_config().replace("n_samples = 40", "n_samples = 30"),
    );
    let o = diffsamp(&["pita", "--config", s(&other), "--out", s(&out)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let fin = final_json(&out);
    assert_eq!(fin["evaluation"]["n_used"], 30);
    // A reference sampler of its own redraws the tempered references (recorded beside them);
    // running again with the same one reuses them.
    let cached = std::fs::read(out.join("reference_T3.npy")).unwrap();
    let own = tiny_config()
        + "[evaluation.reference_mcmc]\nn_chains = 8\nwarmup = 40\nthinning = 3\nstep_size = 0.05\n";
    let other = write_config(&d, &own);
    let o = diffsamp(&["pita", "--config", s(&other), "--out", s(&out)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let redrawn = std::fs::read(out.join("reference_T3.npy")).unwrap();
    assert_ne!(cached, redrawn, "the tempered reference was not redrawn");
    let record = std::fs::read_to_string(out.join("reference_T3.json")).unwrap();
    assert!(
        record.contains("reference_mcmc") && record.contains("\"warmup\": 40"),
        "{record}"
    );
    let o = diffsamp(&["pita", "--config", s(&other), "--out", s(&out)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        redrawn,
        std::fs::read(out.join("reference_T3.npy")).unwrap()
    );
    let other = write_config(
        &d,
        &tiny_config().replace("[3.0, 2.0, 1.0]", "[4.0, 2.0, 1.0]"),
    );
    let o = diffsamp(&["pita", "--config", s(&other), "--out", s(&out)]);
    assert!(
        !o.status.success() && stderr(&o).contains("different run"),
        "{}",
        stderr(&o)
    );
    std::fs::remove_dir_all(&d).unwrap();
}

/// β of every logged batch, by stage.
fn batch_betas(run: &Path) -> Vec<(usize, f64)> {
    std::fs::read_to_string(run.join("train.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["stage"].as_u64().unwrap() as usize,
                v["batch_beta"].as_f64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn batches_come_from_the_current_temperature_or_from_all() {
    let d = tmp_dir("batches");
    let all = tiny_config().replace("tempered_references = true", "tempered_references = false");
    let current = all.replace(
        "batch_size = 16",
        "batch_size = 16\nbatches_from = \"current\"",
    );
    let betas = [1.0 / 3.0, 0.5, 1.0];
    let mut runs = Vec::new();
    for (name, text) in [("all", &all), ("current", &current)] {
        let (out, _) = run_pita(&d, name, text);
        runs.push(batch_betas(&out));
    }
    // Stage 0 has one temperature either way.
    for (stage, b) in runs.iter().flatten().filter(|(s, _)| *s == 0) {
        assert!((b - betas[*stage]).abs() < 1e-12, "{b}");
    }
    // Later stages: exactly the stage's β with "current"; a mix of earlier ones with "all"
    // (16 draws from a buffer of 64 + 48 (+ 48) samples: all at one β has probability
    // (64/112)^16 ≈ 1.3·10⁻⁴ per batch at stage 1, less later; the seed is fixed).
    for &(stage, b) in runs[1].iter().filter(|(s, _)| *s > 0) {
        assert!((b - betas[stage]).abs() < 1e-12, "stage {stage}: β {b}");
    }
    for &(stage, b) in runs[0].iter().filter(|(s, _)| *s > 0) {
        assert!(b > betas[0] && b < betas[stage], "stage {stage}: β {b}");
    }
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn the_energy_fence_drops_the_high_energy_tail_of_each_stage() {
    let d = tmp_dir("fence");
    // k = 0 puts the fence at the third quartile: about a quarter of each stage is dropped
    // (fewer where resampling duplicated samples at the quartile).
    let text = tiny_config()
        .replace(
            "final_resample_clamp = 0.5",
            "final_resample = false\nfinal_energy_fence = 0.0",
        )
        .replace("tempered_references = true", "tempered_references = false");
    let (out, err) = run_pita(&d, "run", &text);
    assert!(err.contains("above the energy fence dropped"), "{err}");
    let fin = final_json(&out);
    for stage in fin["stages"].as_array().unwrap() {
        let (fenced, added) = (
            stage["fenced"].as_u64().unwrap(),
            stage["added"].as_u64().unwrap(),
        );
        assert!((1..=12).contains(&fenced), "{stage}");
        assert_eq!(fenced + added, 48, "{stage}");
    }
    let kept = 48 - fin["stages"][1]["fenced"].as_u64().unwrap();
    assert_eq!(fin["n_samples"].as_u64().unwrap(), kept);
    let samples = std::fs::read(out.join("samples_T1.npy")).unwrap();
    let header = String::from_utf8_lossy(&samples[..128]).into_owned();
    assert!(header.contains(&format!("({kept}, 4, 2")), "{header}");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_killed_ladder_resumes_and_ends_exactly_where_an_uninterrupted_one_does() {
    let d = tmp_dir("kill");
    let (straight, _) = run_pita(&d, "straight", &tiny_config());
    let cfg = write_config(&d, &tiny_config());

    let resumed = d.join("resumed");
    // Kill in the first stage's training, right after it, and in the second stage.
    for kill_after_steps in [2, 12, 15] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_diffsamp"))
            .args(["pita", "--config", s(&cfg), "--out", s(&resumed)])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        while lines(&resumed.join("train.jsonl")) < kill_after_steps
            && child.try_wait().unwrap().is_none()
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(2));
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run finished before it could be killed"
        );
        child.kill().unwrap();
        child.wait().unwrap();
    }
    assert!(!resumed.join("final.json").exists());
    let o = diffsamp(&["pita", "--config", s(&cfg), "--out", s(&resumed)]);
    assert!(o.status.success(), "{}", stderr(&o));
    for f in ["samples.npy", "samples_T2.npy", "train.jsonl"] {
        let a = std::fs::read_to_string(straight.join(f)).ok();
        let b = std::fs::read_to_string(resumed.join(f)).ok();
        if f.ends_with(".jsonl") {
            // Same losses, step by step (wall times differ).
            let losses = |t: Option<String>| -> Vec<f64> {
                t.unwrap()
                    .lines()
                    .map(|l| {
                        serde_json::from_str::<serde_json::Value>(l).unwrap()["loss"]
                            .as_f64()
                            .unwrap()
                    })
                    .collect()
            };
            assert_eq!(losses(a), losses(b));
        } else {
            let a = std::fs::read(straight.join(f)).unwrap();
            let b = std::fs::read(resumed.join(f)).unwrap();
            assert!(a == b, "{f}: the resumed run differs from the straight one");
        }
    }
    std::fs::remove_dir_all(&d).unwrap();
}

/// Standard deviation of all coordinates of a stage's samples.
fn coordinate_spread(path: &Path) -> f64 {
    let x = diffsamp::io::read_npy(path).unwrap().data;
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    (x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt()
}

/// `edm.data_scale = s`: the networks see x / s, and the samples come back in the system's
/// units. Barely trained, the model's annealed samples spread about as its N(0, I)-like
/// prior end does in its own units, so the first stage's samples spread about s = 3 times
/// wider than with s = 1 (measured 2.78); without the conversion back they spread alike
/// (measured 0.93). Tolerance: ratio within [2, 4.5]. The scaling of the training batches
/// (x / s, and s ∇_x log p for the target score) does not show this early.
#[test]
fn the_model_works_in_units_of_data_scale_and_samples_come_back_in_the_systems() {
    let d = tmp_dir("scale");
    let base = tiny_config()
        .replace("final_resample_clamp = 0.5", "final_resample = false")
        .replace("tempered_references = true", "tempered_references = false");
    let (one, _) = run_pita(&d, "one", &base);
    let scaled = base.replace("sigma_max = 20.0", "sigma_max = 20.0\ndata_scale = 3.0");
    let (three, _) = run_pita(&d, "three", &scaled);
    let (a, b) = (
        coordinate_spread(&one.join("samples_T2.npy")),
        coordinate_spread(&three.join("samples_T2.npy")),
    );
    let ratio = b / a;
    assert!(
        (2.0..4.5).contains(&ratio),
        "spreads {a} and {b}: ratio {ratio}"
    );
    let cfg = std::fs::read_to_string(three.join("config.toml")).unwrap();
    assert!(cfg.contains("data_scale = 3.0"), "{cfg}");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn bad_configs_fail_before_anything_is_written_and_name_the_key() {
    let d = tmp_dir("bad");
    let base = tiny_config();
    let cases: Vec<(String, &str)> = vec![
        (
            base.replace("[3.0, 2.0, 1.0]", "[3.0, 3.0, 1.0]"),
            "temperatures",
        ),
        (
            base.replace("[3.0, 2.0, 1.0]", "[3.0, 2.0]"),
            "temperatures",
        ),
        (base.replace("[3.0, 2.0, 1.0]", "[1.0]"), "temperatures"),
        (
            base.replace("population = 48", "population = 1"),
            "smc.population",
        ),
        (
            base.replace("final_resample_clamp = 0.5", "final_resample_clamp = 1.5"),
            "final_resample_clamp",
        ),
        (
            base.replace(
                "final_resample_clamp = 0.5",
                "final_resample_clamp = 0.5\nfinal_energy_fence = -1.0",
            ),
            "final_energy_fence",
        ),
        (
            base.replace("batch_size = 16", "batch_size = 16\nbatches_from = \"newest\""),
            "batches_from",
        ),
        (
            base.replace(
                "log_every = 1",
                "log_every = 1\n[training.loss]\ntarget_score_form = \"instead\"",
            ),
            "target_score_form",
        ),
        (
            base.replace("ema_decay = 0.9", "ema_decay = 1.0"),
            "training.ema_decay",
        ),
        (
            base.replace("sigma_max = 20.0", "sigma_max = 0.01"),
            "edm.sigma_max",
        ),
        (
            base.replace("sigma_max = 20.0", "sigma_max = 20.0\ndata_scale = 0.0"),
            "edm.data_scale",
        ),
        (
            base.replace("val_split_DW4.npy", "missing.npy"),
            "evaluation.reference",
        ),
        (
            base.replace("system = \"dw4\"", "system = \"gmm40\""),
            "network",
        ),
        (
            base.replace("system = \"dw4\"", "system = \"nope\""),
            "system",
        ),
        (
            base.replace("system = \"dw4\"", "system = \"torus-2\"").replace(
                "[network.egnn]\nn_layers = 1\nhidden = 8\ncoords_range = 3.0\naggregation = \"sum\"",
                "[network.mlp]\nhidden = 8\nn_layers = 1\nn_frequencies = 2\nmax_frequency = 1.0",
            ),
            "torus of angles",
        ),
        (base.replace("seed = 5", "seed = 5\nsteps = 3"), "steps"),
        (
            base.replace(
                "step_size = 0.05",
                "step_size = 0.05\n[initial.mcmc.pt]\nn_temps = 2\nt_max = 2.0\nswap_every = 1",
            ),
            "initial.mcmc.pt",
        ),
        (
            base.replace("[initial.mcmc]", "[initial.md]\n[initial.mcmc]"),
            "initial",
        ),
        (
            base.clone() + "[evaluation.reference_mcmc]\nwarmup = 10\nchains = 4\n",
            "unknown field `chains`",
        ),
        (
            base.clone() + "[evaluation.reference_mcmc]\nthinning = 0\n",
            "evaluation.reference_mcmc",
        ),
        (
            base.clone()
                + "[evaluation.reference_mcmc]\n[evaluation.reference_mcmc.pt]\nn_temps = 2\nt_max = 2.0\nswap_every = 1\n",
            "evaluation.reference_mcmc.pt",
        ),
        (
            base.replace(
                "[initial.mcmc]\nkernel = \"mala\"\nn_chains = 16\nwarmup = 20\nthinning = 2\nn_samples = 64\nstep_size = 0.05",
                "[initial.md]\nn_temperatures = 1",
            ),
            "initial.md",
        ),
    ];
    for (i, (text, key)) in cases.iter().enumerate() {
        let cfg = d.join(format!("bad{i}.toml"));
        std::fs::write(&cfg, text).unwrap();
        let out = d.join(format!("out{i}"));
        let o = diffsamp(&["pita", "--config", s(&cfg), "--out", s(&out)]);
        assert!(!o.status.success(), "case {i} ({key}) was accepted");
        let err = stderr(&o);
        assert!(err.contains(key), "case {i}: '{key}' not named in: {err}");
        assert!(
            !out.join("checkpoint").exists(),
            "case {i} wrote a checkpoint"
        );
    }
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn alanine_dipeptide_ladder_starts_from_molecular_dynamics_and_reports_torsions() {
    let d = tmp_dir("aldp");
    let text = tiny_config()
        .replace("system = \"dw4\"", "system = \"aldp\"")
        .replace("temperatures = [3.0, 2.0, 1.0]", "temperatures = [4.0, 1.0]")
        .replace("coords_range = 3.0", "coords_range = 10.0")
        .replace("sigma_min = 0.05", "sigma_min = 0.01")
        .replace("sigma_max = 20.0", "sigma_max = 5.0")
        .replace(
            "[initial.mcmc]\nkernel = \"mala\"\nn_chains = 16\nwarmup = 20\nthinning = 2\nn_samples = 64\nstep_size = 0.05",
            "[initial.md]\nn_temperatures = 1\nsteps_per_exchange = 10\nwarmup_rounds = 5\nn_samples = 64",
        )
        .replace("val_split_DW4.npy", "aldp_300K_val_nm.npy")
        .replace("tempered_references = true", "tempered_references = false");
    let (out, _) = run_pita(&d, "run", &text);
    let fin = final_json(&out);
    let t = &fin["evaluation"]["torsions"];
    assert!(t["kl_phi"].as_f64().unwrap().is_finite(), "{t}");
    assert!(out.join("plots/ramachandran.png").is_file());
    // 1200 K Langevin: 1 + (5 + 64) × 10 evaluations, then one per buffer sample (64 + 48).
    assert_eq!(fin["energy_evals"], 1 + 69 * 10 + 64 + 48);
    let x0 = diffsamp::io::read_npy(&out.join("samples_T4.npy")).unwrap();
    assert_eq!(x0.shape, vec![64, 22, 3]);
    // Hot MD keeps the molecule intact and L-handed.
    let d_frac = diffsamp::metrics::alanine::d_fraction(&x0.data).unwrap();
    assert_eq!(d_frac.fraction, 0.0);
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn every_shipped_pita_config_parses_and_validates() {
    let configs = common::shipped_configs(|n| n.contains("_pita"));
    assert!(!configs.is_empty(), "no PITA config shipped");
    for p in configs {
        diffsamp::methods::pita::PitaConfig::load(&p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    }
}
