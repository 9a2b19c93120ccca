//! `diffsamp train` / `diffsamp sample` end to end: the run directory, kill-and-resume of a real
//! process, config errors that name the key before anything is written.

mod common;

use common::{diffsamp, s, stderr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn tmp_dir(name: &str) -> PathBuf {
    common::tmp("train", name)
}

/// A DW-4 run small enough for a test: one thread, so that runs are bit-reproducible.
fn tiny_config(epochs: usize) -> String {
    format!(
        r#"
system = "dw4"
epochs = {epochs}
checkpoint_every = 2
threads = 1
[network.egnn]
n_layers = 1
hidden = 8
coords_range = 3.0
aggregation = "sum"
[training]
nfe = 10
samples_per_epoch = 32
steps_per_epoch = 4
batch_size = 16
buffer_size = 256
learning_rate = 1e-3
grad_clip = 100.0
seed = 3
[training.schedule]
sigma_min = 1e-3
sigma_max = 1.5
[evaluation]
reference = "val_split_DW4.npy"
every = 3
n_samples = 40
final_n_samples = 60
min_resampled_ess = 1.0
"#
    )
}

fn write_config(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("run.toml");
    std::fs::write(&p, text).unwrap();
    p
}

fn lines(p: &Path) -> usize {
    std::fs::read_to_string(p).map_or(0, |t| t.lines().count())
}

#[test]
fn train_writes_the_run_directory_and_sample_draws_from_it() {
    let d = tmp_dir("full");
    let cfg = write_config(&d, &tiny_config(6));
    let run = d.join("run");
    let o = diffsamp(&["train", "--config", s(&cfg), "--out", s(&run)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let first_stdout = o.stdout.clone();
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(table.contains("W2 (aligned, AS protocol)"), "{table}");
    for f in [
        "config.toml",
        "checkpoint/trainer_state.json",
        "samples.npy",
        "final.json",
        "plots/energy_histogram.png",
        "plots/distance_histogram.png",
        "log_weights.npy",
        "plots/resampled/energy_histogram.png",
    ] {
        assert!(run.join(f).is_file(), "missing {f}");
    }
    assert_eq!(lines(&run.join("epochs.jsonl")), 6);
    // Evaluations at epoch 3 and the final one at 6.
    assert_eq!(lines(&run.join("metrics.jsonl")), 2);
    let fin: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("final.json")).unwrap()).unwrap();
    assert_eq!(fin["energy_evals"], 6 * 32);
    assert!(fin["report"]["w2"].as_f64().unwrap() > 0.0);
    assert_eq!(fin["report"]["n_used"], 60);
    // The importance weights of the 60 final samples, and the resampled set's evaluation.
    let w = &fin["importance"]["weights"];
    assert_eq!(w["n"], 60);
    let ess = w["ess_fraction"].as_f64().unwrap();
    assert!(ess > 0.0 && ess <= 1.0, "{w}");
    assert!(w["elbo"].as_f64().unwrap() <= w["log_z_estimate"].as_f64().unwrap());
    assert_eq!(fin["importance"]["resampled"]["n_used"], 60);
    assert_eq!(
        diffsamp::io::read_npy(&run.join("log_weights.npy"))
            .unwrap()
            .shape,
        vec![60]
    );
    assert!(table.contains("importance-resampled samples"), "{table}");
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    assert!(
        metrics.lines().all(|l| l.contains("\"ess_fraction\"")),
        "{metrics}"
    );

    let out = d.join("fresh.npy");
    let o = diffsamp(&[
        "sample",
        "--run",
        s(&run),
        "--n",
        "25",
        "--out",
        s(&out),
        "--steps",
        "20",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let arr = diffsamp::io::read_npy(&out).unwrap();
    assert_eq!(arr.shape, vec![25, 4, 2]);
    assert!(arr.data.iter().all(|v| v.is_finite()));

    // The same draw with its importance log-weights, then evaluated after resampling.
    let (out_w, weights) = (d.join("weighted.npy"), d.join("log_w.npy"));
    let o = diffsamp(&[
        "sample",
        "--run",
        s(&run),
        "--n",
        "25",
        "--out",
        s(&out_w),
        "--steps",
        "20",
        "--log-weights",
        s(&weights),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("importance weights: ESS"),
        "{}",
        stderr(&o)
    );
    assert_eq!(diffsamp::io::read_npy(&out_w).unwrap().data, arr.data);
    let lw = diffsamp::io::read_npy(&weights).unwrap();
    assert_eq!(lw.shape, vec![25]);
    assert!(lw.data.iter().all(|v| v.is_finite()));
    let reference = diffsamp::io::resolve_data_file("val_split_DW4.npy", "reference").unwrap();
    let eval = |w: &Path| {
        diffsamp(&[
            "eval",
            "--system",
            "dw4",
            "--samples",
            s(&out_w),
            "--reference",
            s(&reference),
            "--n",
            "25",
            "--log-weights",
            s(w),
        ])
    };
    let o = eval(&weights);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("evaluating the resampled set"),
        "{}",
        stderr(&o)
    );
    // Weights of another sample set (60 rows for 25 samples) are refused, naming the file.
    let o = eval(&run.join("log_weights.npy"));
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("log_weights.npy") && stderr(&o).contains("[25]"),
        "{}",
        stderr(&o)
    );

    // Running the finished command again does no work and reports the same figures.
    let again = diffsamp(&["train", "--config", s(&cfg), "--out", s(&run)]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(
        String::from_utf8_lossy(&again.stdout),
        String::from_utf8_lossy(&first_stdout)
    );
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn alanine_dipeptide_trains_with_the_atom_type_egnn_and_reports_torsions() {
    let d = tmp_dir("aldp");
    let text = tiny_config(2)
        .replace("system = \"dw4\"", "system = \"aldp\"")
        .replace("coords_range = 3.0", "coords_range = 50.0")
        .replace("samples_per_epoch = 32", "samples_per_epoch = 8")
        .replace("grad_clip = 100.0", "grad_clip = 1000.0")
        .replace("sigma_max = 1.5", "sigma_max = 0.1")
        .replace("val_split_DW4.npy", "aldp_300K_val_nm.npy");
    let cfg = write_config(&d, &text);
    let run = d.join("run");
    let o = diffsamp(&["train", "--config", s(&cfg), "--out", s(&run)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(table.contains("KL(φ)"), "{table}");
    assert!(run.join("plots/ramachandran.png").is_file());
    let samples = diffsamp::io::read_npy(&run.join("samples.npy")).unwrap();
    assert_eq!(samples.shape, vec![60, 22, 3]);
    // Every sample has zero centre of mass (the sampler lives in the COM-free subspace).
    for x in samples.data.chunks_exact(66) {
        for a in 0..3 {
            let c: f64 = x.iter().skip(a).step_by(3).sum::<f64>() / 22.0;
            assert!(c.abs() < 1e-4, "{c}");
        }
    }
    let fin: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("final.json")).unwrap()).unwrap();
    let t = &fin["report"]["torsions"];
    assert!(t["kl_phi"].as_f64().unwrap().is_finite(), "{t}");
    assert!(t["w2_phi_psi"].as_f64().unwrap() > 0.0, "{t}");
    // The network has the molecule's atom embedding (H, C, N, O) and bond edge feature: the
    // shapes in the safetensors header of the saved weights.
    let weights = std::fs::read_dir(run.join("checkpoint"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("weights-")
        })
        .unwrap();
    let bytes = std::fs::read(weights).unwrap();
    let len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + len]).unwrap();
    assert_eq!(
        header["atom_embedding.weight"]["shape"],
        serde_json::json!([8, 4])
    );
    assert_eq!(
        header["layers.0.edge_geom.weight"]["shape"],
        serde_json::json!([8, 3])
    );
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_killed_run_resumes_and_ends_exactly_where_an_uninterrupted_run_does() {
    let d = tmp_dir("kill");
    let epochs = 12;
    let cfg = write_config(&d, &tiny_config(epochs));
    let straight = d.join("straight");
    let o = diffsamp(&["train", "--config", s(&cfg), "--out", s(&straight)]);
    assert!(o.status.success(), "{}", stderr(&o));

    let resumed = d.join("resumed");
    // Kill at several points: before the first checkpoint, mid-run, late.
    for kill_after_epochs in [1, 5, 9] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_diffsamp"))
            .args(["train", "--config", s(&cfg), "--out", s(&resumed)])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        while lines(&resumed.join("epochs.jsonl")) < kill_after_epochs
            && child.try_wait().unwrap().is_none()
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(2));
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run finished before it could be killed"
        );
        child.kill().unwrap(); // SIGKILL: no chance to clean up
        child.wait().unwrap();
    }
    assert!(!resumed.join("final.json").exists());
    let o = diffsamp(&["train", "--config", s(&cfg), "--out", s(&resumed)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(lines(&resumed.join("epochs.jsonl")), epochs);
    let a = std::fs::read(straight.join("samples.npy")).unwrap();
    let b = std::fs::read(resumed.join("samples.npy")).unwrap();
    assert!(
        a == b,
        "resumed run's final samples differ from the straight run's"
    );
    let losses = |p: &Path| -> Vec<f64> {
        std::fs::read_to_string(p.join("epochs.jsonl"))
            .unwrap()
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["loss"]
                    .as_f64()
                    .unwrap()
            })
            .collect()
    };
    assert_eq!(losses(&straight), losses(&resumed));
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn the_resampled_evaluation_is_skipped_below_the_ess_threshold() {
    let d = tmp_dir("ess");
    let text = tiny_config(2).replace("min_resampled_ess = 1.0", "min_resampled_ess = 1e9");
    let cfg = write_config(&d, &text);
    let run = d.join("run");
    let o = diffsamp(&["train", "--config", s(&cfg), "--out", s(&run)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let fin: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("final.json")).unwrap()).unwrap();
    assert_eq!(fin["importance"]["weights"]["n"], 60);
    assert!(fin["importance"]["resampled"].is_null(), "{fin}");
    assert!(!run.join("plots/resampled").exists());
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(
        table.contains("importance-resampled samples: not evaluated"),
        "{table}"
    );
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn bad_configs_fail_before_training_and_name_the_key() {
    let d = tmp_dir("bad");
    let base = tiny_config(2);
    let cases = [
        (base.replace("hidden = 8", "hidden = 8\nwidth = 4"), "width"),
        (
            base.replace("batch_size = 16", "batch_size = \"many\""),
            "batch_size",
        ),
        (
            base.replace("batch_size = 16", "batch_size = 0"),
            "training.batch_size",
        ),
        (
            base.replace("sigma_max = 1.5", "sigma_max = 1e-4"),
            "training.schedule.sigma_max",
        ),
        (
            base.replace("val_split_DW4.npy", "missing_split.npy"),
            "evaluation.reference",
        ),
        (base.replace("\"dw4\"", "\"lj7\""), "system"),
        (
            base.replace("min_resampled_ess = 1.0", "min_resampled_ess = -1.0"),
            "evaluation.min_resampled_ess",
        ),
        (base.replace("nfe = 10", "nfe = 1"), "training.nfe"),
        (
            base.replace("threads = 1", "threads = 1\ndevice = \"tpu\""),
            "device",
        ),
        // The project links the CPU libtorch (scripts/bootstrap.sh): no CUDA device exists.
        (
            base.replace("threads = 1", "threads = 1\ndevice = \"cuda:0\""),
            "device",
        ),
    ];
    for (i, (text, key)) in cases.iter().enumerate() {
        let cfg = write_config(&d, text);
        let run = d.join(format!("run{i}"));
        let o = diffsamp(&["train", "--config", s(&cfg), "--out", s(&run)]);
        assert!(!o.status.success(), "case {key} succeeded");
        let err = stderr(&o);
        assert!(err.contains(key), "case {key}: {err}");
        assert!(!err.contains("panicked"), "{err}");
        assert!(!run.exists(), "case {key}: the run directory was created");
    }
    // A run directory holding another run is refused, and left as it was.
    let run = d.join("taken");
    let cfg = write_config(&d, &base);
    assert!(diffsamp(&["train", "--config", s(&cfg), "--out", s(&run)])
        .status
        .success());
    let other = write_config(&d, &base.replace("seed = 3", "seed = 4"));
    let o = diffsamp(&["train", "--config", s(&other), "--out", s(&run)]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("different run"), "{}", stderr(&o));
    // Sampling from something that is not a run directory names the problem.
    let o = diffsamp(&["sample", "--run", s(&d), "--out", s(&d.join("x.npy"))]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("not a run directory"), "{}", stderr(&o));
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn every_shipped_config_parses_and_validates() {
    let configs = common::shipped_configs(|n| n.ends_with("_as") || n.ends_with("_as_quick"));
    assert!(
        configs.len() >= 12,
        "found only {} AS configs",
        configs.len()
    );
    for p in configs {
        diffsamp::methods::adjoint_sampling::AsConfig::load(&p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    }
}

#[test]
fn a_torus_target_is_learned_by_the_wrapped_sde() {
    let d = tmp_dir("torus");
    let shipped = common::shipped_configs(|n| n == "torus2_as_quick");
    let text = std::fs::read_to_string(&shipped[0])
        .unwrap()
        .replace("epochs = 100", "epochs = 60\nthreads = 1")
        .replace("every = 25", "every = 1000");
    // A network that does not see angles as angles is refused, naming the key.
    let flat = write_config(&d, &text.replace("periodic = true", "periodic = false"));
    let o = diffsamp(&["train", "--config", s(&flat), "--out", s(&d.join("flat"))]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("network.mlp.periodic"),
        "{}",
        stderr(&o)
    );

    let cfg = write_config(&d, &text);
    let run = d.join("run");
    let o = diffsamp(&["train", "--config", s(&cfg), "--out", s(&run)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let x = diffsamp::io::read_npy(&run.join("samples.npy")).unwrap();
    assert_eq!(x.shape, vec![2000, 2]);
    let pi = std::f64::consts::PI;
    // float32 file: −π rounds to −π_f32, 1e-7 below −π.
    assert!(x.data.iter().all(|v| v.abs() <= pi + 1e-6));
    // torus-2: half of τ₂'s mass in the mode across the wrap at ±π, and
    // E[cos(τ₁ − 1)] = I₁(2)/I₀(2) = 0.6978. Tolerances: 4 binomial / sample standard errors
    // of 2000 draws (0.045, 0.045 for cos with sd ≤ 0.7) plus 0.03 for the learned control.
    let n = x.shape[0] as f64;
    let far = x
        .data
        .chunks_exact(2)
        .filter(|r| r[1].abs() > pi / 2.0)
        .count() as f64
        / n;
    assert!((far - 0.5).abs() < 0.075, "mass at ±π: {far}");
    let c = x
        .data
        .chunks_exact(2)
        .map(|r| (r[0] - 1.0).cos())
        .sum::<f64>()
        / n;
    assert!((c - 0.6978).abs() < 0.075, "E cos(τ₁ − 1) = {c}");
    // The wrapped-normal importance weights estimate the known log Z.
    let fin: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("final.json")).unwrap()).unwrap();
    let w = &fin["importance"]["weights"];
    let (est, se, exact) = (
        w["log_z_estimate"].as_f64().unwrap(),
        w["log_z_std_error"].as_f64().unwrap(),
        w["log_z_exact"].as_f64().unwrap(),
    );
    assert!(
        (est - exact).abs() < 5.0 * se + 0.01,
        "log Z {est} ± {se} vs {exact}"
    );
    assert!(w["ess_fraction"].as_f64().unwrap() > 0.5, "{w}");
    let kl = fin["report"]["kl_angles"].as_array().unwrap();
    assert_eq!(kl.len(), 2);
    assert!(run.join("plots/samples_2d.png").is_file());
    // No molecule behind these angles: --cartesian is refused with the reason.
    let o = diffsamp(&[
        "sample",
        "--run",
        s(&run),
        "--n",
        "2",
        "--out",
        s(&d.join("a.npy")),
        "--cartesian",
        s(&d.join("c.npy")),
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("no Cartesian embedding"),
        "{}",
        stderr(&o)
    );
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn torsional_alanine_samples_map_to_conformers_with_those_torsions() {
    let d = tmp_dir("aldp_tors");
    let shipped = common::shipped_configs(|n| n == "aldp_phi_psi_as_quick");
    let text = std::fs::read_to_string(&shipped[0]).unwrap();
    // The shipped config runs on one thread and trains the log-variance term (also here: one
    // term per epoch on the 32 new paths).
    assert!(text.contains("threads = 1") && text.contains("log_variance_weight"));
    let text = text
        .replace("epochs = 400", "epochs = 3")
        .replace("samples_per_epoch = 256", "samples_per_epoch = 32")
        .replace("steps_per_epoch = 50", "steps_per_epoch = 4")
        .replace("final_n_samples = 2000", "final_n_samples = 100");
    let cfg = write_config(&d, &text);
    let run = d.join("run");
    let o = diffsamp(&["train", "--config", s(&cfg), "--out", s(&run)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (angles, conf) = (d.join("a.npy"), d.join("c.npy"));
    let o = diffsamp(&[
        "sample",
        "--run",
        s(&run),
        "--n",
        "20",
        "--out",
        s(&angles),
        "--cartesian",
        s(&conf),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let a = diffsamp::io::read_npy(&angles).unwrap();
    let c = diffsamp::io::read_npy(&conf).unwrap();
    assert_eq!(
        (a.shape.clone(), c.shape.clone()),
        (vec![20, 2], vec![20, 22, 3])
    );
    // φ and ψ of each conformer are the sampled angles (float32 files: 1e-4).
    let phi = diffsamp::metrics::alanine::phi(&c.data).unwrap();
    let psi = diffsamp::metrics::alanine::psi(&c.data).unwrap();
    for (i, r) in a.data.chunks_exact(2).enumerate() {
        for (got, want) in [(phi[i], r[0]), (psi[i], r[1])] {
            let dd = (got - want).rem_euclid(std::f64::consts::TAU);
            assert!(dd.min(std::f64::consts::TAU - dd) < 1e-4, "{got} vs {want}");
        }
    }
    // The Cartesian files of the reference read as angles: evaluation against the MD split.
    let o = diffsamp(&[
        "eval",
        "--system",
        "aldp-phi-psi",
        "--samples",
        s(&angles),
        "--reference",
        s(&diffsamp::energy::data::shared_data_file("aldp_300K_val_nm.npy").unwrap()),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("W2 on the torus"));
    std::fs::remove_dir_all(&d).unwrap();
}
