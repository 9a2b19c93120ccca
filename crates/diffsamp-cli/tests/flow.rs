//! `diffsamp flow`: pretraining, fine-tuning, resume, sampling and bad input, end to end.

mod common;

use common::{diffsamp, s, stderr, tmp};
use std::path::{Path, PathBuf};

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

const NET: &str = "[network]\nhidden = 32\nn_layers = 1\nn_frequencies = 4\nmax_frequency = 4.0\n";
const EVAL: &str = "[evaluation]\nfinal_n_samples = 200\node_steps = 20\nsinkhorn_epsilon = 0.1\n";

fn pretrain_config(dir: &Path) -> PathBuf {
    let text = format!(
        "target = \"gmm40\"\nsteps = 20\ncheckpoint_every = 10\nthreads = 1\n{NET}\
         [training]\nbatch_size = 64\nlearning_rate = 1e-3\nseed = 0\n{EVAL}"
    );
    write(dir, "pretrain.toml", &text)
}

fn finetune_config(dir: &Path, base: &Path, iterations: usize) -> PathBuf {
    let text = format!(
        "base = \"{}\"\nreward = \"quadratic:0,0;k=0.01\"\niterations = {iterations}\n\
         checkpoint_every = 2\nthreads = 1\n{NET}\
         [training]\nsteps = 8\nbatch_size = 32\nlearning_rate = 1e-3\nlambda = 1.0\n\
         adjoint = \"lean\"\nclip_quantile = 0.99\nseed = 3\n\
         [training.loss_steps]\nearly = 2\nearly_t_max = 0.725\nlate = 2\n{EVAL}",
        s(base)
    );
    write(dir, &format!("finetune{iterations}.toml"), &text)
}

fn lines(p: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn pretrain_finetune_resume_and_sample() {
    let dir = tmp("flow", "e2e");
    let base = dir.join("base");
    let o = diffsamp(&[
        "flow",
        "pretrain",
        "--config",
        s(&pretrain_config(&dir)),
        "--out",
        s(&base),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    for f in [
        "config.toml",
        "final.json",
        "samples.npy",
        "plots/samples_2d.png",
        "train.jsonl",
    ] {
        assert!(base.join(f).exists(), "{f}");
    }
    assert_eq!(lines(&base.join("train.jsonl")).len(), 2);

    // Fine-tune 4 iterations, then extend to 6: the run resumes at its checkpoint.
    let ft = dir.join("ft");
    let o = diffsamp(&[
        "flow",
        "finetune",
        "--config",
        s(&finetune_config(&dir, &base, 4)),
        "--out",
        s(&ft),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = diffsamp(&["flow", "finetune", "--out", s(&ft), "--iterations", "6"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("resuming at 4 of 6"), "{}", stderr(&o));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ft.join("final.json")).unwrap()).unwrap();
    assert_eq!(report["iteration"], 6);
    assert_eq!(report["reward_evals"], 6 * 32);
    // The base was trained on the registered GMM-40: the exact tilt is reported.
    let tilt = &report["exact_tilt"];
    assert_eq!(tilt["weights_exact"].as_array().unwrap().len(), 40);
    assert!(tilt["sinkhorn_ode"].as_f64().unwrap().is_finite());
    for f in [
        "plots/samples_2d.png",
        "plots/reward_histogram.png",
        "samples.npy",
    ] {
        assert!(ft.join(f).exists(), "{f}");
    }
    let iters: Vec<u64> = lines(&ft.join("train.jsonl"))
        .iter()
        .map(|l| l["iteration"].as_u64().unwrap())
        .collect();
    assert_eq!(iters, [4, 6]);

    // A different run in the same directory is refused.
    let o = diffsamp(&[
        "flow",
        "finetune",
        "--out",
        s(&ft),
        "--reward",
        "linear:1,0",
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("different run"), "{}", stderr(&o));

    let x = dir.join("x.npy");
    for extra in [&[][..], &["--sde"][..]] {
        let mut args = vec![
            "flow",
            "sample",
            "--run",
            s(&ft),
            "--n",
            "50",
            "--out",
            s(&x),
        ];
        args.extend_from_slice(extra);
        let o = diffsamp(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        let arr = diffsamp::io::read_npy(&x).unwrap();
        assert_eq!(arr.shape, vec![50, 2]);
        assert!(arr.data.iter().all(|v| v.is_finite()));
    }
}

#[test]
fn bad_flow_input_is_named() {
    let dir = tmp("flow", "bad");
    let cases: &[(&[&str], &str)] = &[
        (&["--base", "gaussian:0", "--reward", "linear:1"], "base"),
        (
            &["--base", "gaussian:2", "--reward", "cubic:1"],
            "unknown reward kind 'cubic'",
        ),
        (
            &["--base", "gaussian:2", "--reward", "linear:1,2,3"],
            "3 numbers given",
        ),
        (
            &["--base", "gaussian:2", "--reward", "energy:dw4"],
            "dimension 8",
        ),
        (
            &[
                "--base",
                "gaussian:2",
                "--reward",
                "linear:1",
                "--lambda",
                "NaN",
            ],
            "lambda",
        ),
        (
            &["--base", "no/such/run", "--reward", "linear:1"],
            "no/such/run",
        ),
        (
            &["--base", "exact:dw4", "--reward", "linear:1"],
            "closed-form velocity",
        ),
        (
            &[
                "--base",
                "gaussian:2",
                "--reward",
                "quadratic:0;k=1",
                "--lambda",
                "-5",
            ],
            "not normalisable",
        ),
    ];
    for (k, (args, needle)) in cases.iter().enumerate() {
        let out = dir.join(format!("run{k}"));
        let mut all = vec!["flow", "finetune", "--out", s(&out), "--iterations", "1"];
        all.extend_from_slice(args);
        let o = diffsamp(&all);
        assert!(!o.status.success(), "{args:?} succeeded");
        assert!(stderr(&o).contains(needle), "{args:?}: {}", stderr(&o));
    }
    let cfg = write(
        &dir,
        "bad.toml",
        "target = \"gmm40\"\nsteps = 1\nlearning_rat = 1\n",
    );
    let o = diffsamp(&[
        "flow",
        "pretrain",
        "--config",
        s(&cfg),
        "--out",
        s(&dir.join("p")),
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("learning_rat"), "{}", stderr(&o));
    let o = diffsamp(&[
        "flow",
        "pretrain",
        "--target",
        "dw4",
        "--out",
        s(&dir.join("q")),
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("no exact sampler"), "{}", stderr(&o));
    let o = diffsamp(&[
        "flow",
        "sample",
        "--run",
        s(&dir),
        "--out",
        s(&dir.join("x.npy")),
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("not a run directory"), "{}", stderr(&o));
}

#[test]
fn every_shipped_finetune_config_parses_and_validates() {
    let configs = common::shipped_configs(|n| n.starts_with("am_"));
    assert!(!configs.is_empty(), "no Adjoint Matching config shipped");
    for p in configs {
        let text = std::fs::read_to_string(&p).unwrap();
        let c: diffsamp::methods::adjoint_matching::FinetuneConfig =
            diffsamp::methods::adjoint_matching::config::from_toml(&text, &p)
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        c.validate()
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    }
}
