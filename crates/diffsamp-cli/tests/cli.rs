//! End-to-end checks of the `diffsamp` binary: outputs on good input, named errors on bad input.

mod common;

use common::{diffsamp, s, stderr};
use std::path::{Path, PathBuf};

fn tmp_dir(name: &str) -> PathBuf {
    common::tmp("cli", name)
}

#[test]
fn exact_reference_then_eval_writes_json_and_plots() {
    let d = tmp_dir("exact");
    let (a, b) = (d.join("a.npy"), d.join("b.npy"));
    for (p, seed) in [(&a, "1"), (&b, "2")] {
        let o = diffsamp(&[
            "reference",
            "--system",
            "many-well-5",
            "--n",
            "300",
            "--seed",
            seed,
            "--out",
            s(p),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let json = d.join("m.json");
    let plots = d.join("plots");
    let o = diffsamp(&[
        "eval",
        "--system",
        "many-well-5",
        "--samples",
        s(&a),
        "--reference",
        s(&b),
        "--n",
        "300",
        "--sinkhorn-eps",
        "0.1",
        "--json",
        s(&json),
        "--plots",
        s(&plots),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["n_used"], 300);
    // Two exact sample sets of the same target: all 32 modes appear and the energy W2 is small
    // (its sd at n = 300 is ~0.1 kT for this target).
    assert_eq!(report["modes_covered"], 32);
    assert!(report["energy_w2"].as_f64().unwrap() < 0.5, "{report}");
    assert!(plots.join("energy_histogram.png").exists());
    assert!(plots.join("samples_2d.png").exists());
    std::fs::remove_dir_all(d).ok();
}

#[test]
fn energy_command_writes_energies_and_gradients() {
    let d = tmp_dir("energy");
    let x = d.join("x.npy");
    let o = diffsamp(&[
        "reference",
        "--system",
        "gmm40",
        "--n",
        "10",
        "--out",
        s(&x),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (e, g) = (d.join("e.npy"), d.join("g.npy"));
    let o = diffsamp(&[
        "energy",
        "--system",
        "gmm40",
        "--input",
        s(&x),
        "--out",
        s(&e),
        "--grad",
        s(&g),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let e = diffsamp::io::read_npy(&e).unwrap();
    let g = diffsamp::io::read_npy(&g).unwrap();
    assert_eq!(e.shape, vec![10]);
    assert_eq!(g.shape, vec![10, 2]);
    assert!(e.data.iter().all(|v| v.is_finite()));
    std::fs::remove_dir_all(d).ok();
}

#[test]
fn energy_terms_of_a_force_field_sum_to_its_energy() {
    let d = tmp_dir("terms");
    let x = diffsamp::energy::data::shared_data_file("aldp/X100.npy").unwrap();
    let (e, csv) = (d.join("e.npy"), d.join("terms.csv"));
    let o = diffsamp(&[
        "energy",
        "--system",
        "aldp",
        "--input",
        s(&x),
        "--out",
        s(&e),
        "--terms",
        s(&csv),
        "--temperature",
        "2",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("nonbonded"), "{}", stderr(&o));
    let e = diffsamp::io::read_npy(&e).unwrap();
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("row,bonds,angles,torsions,nonbonded,gb,total")
    );
    let rows: Vec<Vec<f64>> = lines
        .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
        .collect();
    assert_eq!(rows.len(), 100);
    for (r, e) in rows.iter().zip(&e.data) {
        let sum: f64 = r[1..6].iter().sum();
        assert!((sum - e).abs() < 1e-5 * e.abs().max(1.0), "{r:?} vs {e}");
        assert!((r[6] - e).abs() < 1e-5 * e.abs().max(1.0), "{r:?} vs {e}");
    }

    let o = diffsamp(&[
        "energy",
        "--system",
        "dw4",
        "--input",
        s(&x),
        "--out",
        s(&d.join("e2.npy")),
        "--terms",
        s(&csv),
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("--terms") && stderr(&o).contains("'dw4' is not a force field"),
        "{}",
        stderr(&o)
    );
    std::fs::remove_dir_all(d).ok();
}

#[test]
fn bad_input_fails_with_a_named_error() {
    let d = tmp_dir("bad");
    let missing = d.join("missing.npy");
    let o = diffsamp(&[
        "eval",
        "--system",
        "dw4",
        "--samples",
        s(&missing),
        "--reference",
        s(&missing),
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("missing.npy"), "{}", stderr(&o));

    let o = diffsamp(&[
        "reference",
        "--system",
        "no-such-system",
        "--out",
        s(&d.join("x.npy")),
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("no-such-system") && stderr(&o).contains("lj13"),
        "{}",
        stderr(&o)
    );

    // A 2-D sample file given to the 8-D DW-4 system.
    let x = d.join("x2.npy");
    assert!(
        diffsamp(&["reference", "--system", "gmm40", "--n", "5", "--out", s(&x)])
            .status
            .success()
    );
    let o = diffsamp(&[
        "eval",
        "--system",
        "dw4",
        "--samples",
        s(&x),
        "--reference",
        s(&x),
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("x2.npy") && stderr(&o).contains("[5, 2]"),
        "{}",
        stderr(&o)
    );

    let corrupt = d.join("corrupt.npy");
    std::fs::write(&corrupt, b"\x93NUMPY garbage").unwrap();
    let o = diffsamp(&[
        "energy",
        "--system",
        "gmm40",
        "--input",
        s(&corrupt),
        "--out",
        s(&d.join("e.npy")),
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("corrupt.npy"), "{}", stderr(&o));

    let o = diffsamp(&[
        "reference",
        "--system",
        "dw4",
        "--method",
        "exact",
        "--out",
        s(&d.join("y.npy")),
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("no exact sampler"), "{}", stderr(&o));

    let o = diffsamp(&[
        "energy",
        "--system",
        "gmm40",
        "--input",
        s(&x),
        "--out",
        s(&d.join("e.npy")),
        "--temperature=-1",
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).to_lowercase().contains("temperature"),
        "{}",
        stderr(&o)
    );
    std::fs::remove_dir_all(d).ok();
}

#[test]
fn nan_rows_are_dropped_and_counted() {
    let d = tmp_dir("nan");
    let x = d.join("x.npy");
    let mut data: Vec<f64> = (0..40).map(|i| (i as f64 * 0.7).sin() * 3.0).collect();
    data[4] = f64::NAN;
    data[9] = f64::INFINITY;
    diffsamp::io::write_npy(&x, &[20, 2], &data, false).unwrap();
    let json = d.join("m.json");
    let o = diffsamp(&[
        "eval",
        "--system",
        "gmm40",
        "--samples",
        s(&x),
        "--reference",
        s(&x),
        "--n",
        "0",
        "--sinkhorn-eps",
        "0",
        "--json",
        s(&json),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["generated_non_finite_dropped"], 2);
    assert_eq!(report["n_used"], 18);
    std::fs::remove_dir_all(d).ok();
}

#[test]
fn alanine_eval_reports_torsions_chirality_and_a_ramachandran_plot() {
    let d = tmp_dir("aldp");
    let reference = diffsamp::energy::data::shared_data_file("aldp_300K_val_nm.npy").unwrap();
    let arr = diffsamp::io::read_npy(&reference).unwrap();
    assert_eq!(arr.shape, vec![5000, 22, 3]);
    // The mirror image: D-alanine, φ → −φ, same energy.
    let mirrored: Vec<f64> = arr.data.iter().map(|v| -v).collect();
    let mirror_path = d.join("mirrored.npy");
    diffsamp::io::write_npy(&mirror_path, &arr.shape, &mirrored, false).unwrap();
    let run = |samples: &Path, tag: &str| -> serde_json::Value {
        let json = d.join(format!("{tag}.json"));
        let plots = d.join(format!("plots-{tag}"));
        let o = diffsamp(&[
            "eval",
            "--system",
            "aldp",
            "--samples",
            s(samples),
            "--reference",
            s(&reference),
            "--n",
            "500",
            "--sinkhorn-eps",
            "0",
            "--json",
            s(&json),
            "--plots",
            s(&plots),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(plots.join("ramachandran.png").is_file());
        serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap()
    };
    let same = run(&reference, "same");
    let t = &same["torsions"];
    assert_eq!(t["d_fraction_generated"], 0.0);
    assert_eq!(t["d_fraction_reference"], 0.0);
    // Two 500-row subsets of one set: KL is finite-sample noise only.
    assert!(t["kl_phi"].as_f64().unwrap() < 0.5, "{t}");
    let mirror = run(&mirror_path, "mirror");
    let t = &mirror["torsions"];
    assert_eq!(t["d_fraction_generated"], 1.0);
    assert!(t["kl_phi"].as_f64().unwrap() > 2.0, "{t}");
    assert!(t["w2_phi_psi"].as_f64().unwrap() > 1.0, "{t}");
    // Mirrored back to L, the figures are those of the reference subset itself.
    let same_t = &same["torsions"];
    for key in ["kl_phi", "kl_psi", "w2_phi_psi"] {
        let l = t[format!("{key}_l_form")].as_f64().unwrap();
        let raw = same_t[key].as_f64().unwrap();
        assert!((l - raw).abs() < 1e-9, "{key}: {l} vs {raw}");
    }
    // Energies are mirror-symmetric.
    let de = mirror["energy_mean_generated"].as_f64().unwrap()
        - same["energy_mean_generated"].as_f64().unwrap();
    assert!(de.abs() < 1e-3, "{de}");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn molecular_dynamics_reference_for_alanine_dipeptide() {
    let d = tmp_dir("md");
    let cfg = d.join("md.toml");
    std::fs::write(
        &cfg,
        "n_temperatures = 2\nt_max = 1.5\nsteps_per_exchange = 20\nwarmup_rounds = 5\n",
    )
    .unwrap();
    let out = d.join("x.npy");
    let o = diffsamp(&[
        "reference",
        "--system",
        "aldp",
        "--n",
        "30",
        "--seed",
        "3",
        "--config",
        s(&cfg),
        "--out",
        s(&out),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let x = diffsamp::io::read_npy(&out).unwrap();
    assert_eq!(x.shape, vec![30, 22, 3]);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("x.json")).unwrap()).unwrap();
    assert_eq!(summary["method"], "md");
    assert_eq!(
        summary["temperatures_kelvin"][1].as_f64().unwrap().round(),
        450.0
    );
    // 2 replicas × (5 + 30) rounds × 20 steps + the 2 initial evaluations.
    assert_eq!(summary["energy_evals"], 2 * 35 * 20 + 2);
    // 300 K dynamics from an L-alanine frame: a finite energy near the reference's and no
    // chirality flip.
    let e = summary["energy_mean"].as_f64().unwrap();
    assert!(e.is_finite() && (-60.0..0.0).contains(&e), "{e}");
    let phi = diffsamp::metrics::alanine::phi(&x.data).unwrap();
    assert!(phi.iter().all(|f| f.is_finite()));
    let d_frac = diffsamp::metrics::alanine::d_fraction(&x.data).unwrap();
    assert_eq!(d_frac.fraction, 0.0);

    // Molecular dynamics needs a force field; a wrong key is named.
    let o = diffsamp(&[
        "reference",
        "--system",
        "lj13",
        "--method",
        "md",
        "--out",
        s(&out),
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("no force field"), "{}", stderr(&o));
    std::fs::write(&cfg, "n_temps = 2\n").unwrap();
    let o = diffsamp(&[
        "reference",
        "--system",
        "aldp",
        "--config",
        s(&cfg),
        "--out",
        s(&out),
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("n_temps"), "{}", stderr(&o));
    std::fs::remove_dir_all(&d).unwrap();
}
