//! Alanine dipeptide: chirality of the reference data and units of the Langevin dynamics on the
//! native Amber force field.

use diffsamp_energy::data::{read_npy, shared_data_file};
use diffsamp_energy::ForceFieldEnergy;
use diffsamp_mcmc::langevin::Langevin;
use diffsamp_metrics::alanine;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// The reference set is (almost) pure L-alanine under the convention ζ = CA–N–C–CB > 0, and its
/// mirror image is pure D with (φ, ψ) → (−φ, −ψ).
#[test]
fn reference_samples_are_l_alanine() {
    let reference = read_npy(&shared_data_file("aldp_300K_val_nm.npy").unwrap()).unwrap();
    assert_eq!(reference.row_len(), alanine::DIM);
    let d = alanine::d_fraction(&reference.data).unwrap();
    assert!(
        d.fraction < 0.01,
        "D fraction of the reference {}",
        d.fraction
    );
    let mirrored = alanine::mirror(&reference.data);
    assert!(alanine::d_fraction(&mirrored).unwrap().fraction > 0.99);
    let (phi, phi_m) = (
        alanine::phi(&reference.data).unwrap(),
        alanine::phi(&mirrored).unwrap(),
    );
    for (a, b) in phi.iter().zip(&phi_m).take(100) {
        // φ_mirror = −φ modulo 2π (φ = π maps to itself in (−π, π])
        assert!((a + b).sin().abs() < 1e-9 && (a + b).cos() > 0.0);
    }
    let (back, flipped) = alanine::to_l_form(&mirrored).unwrap();
    assert_eq!(
        flipped,
        reference.rows() - (d.fraction * d.n as f64).round() as usize
    );
    assert!(alanine::d_fraction(&back).unwrap().fraction < 0.01);
    // the reference φ and ψ marginals compared with themselves
    let c = alanine::compare(&reference.data, &reference.data).unwrap();
    assert_eq!((c.kl_phi, c.kl_psi), (0.0, 0.0));
}

/// Units: with E = U/kT (kJ/mol), masses in amu, nm and ps, the kinetic temperature
/// Σ m v² / (N_dof k_B) of a 300 K BAOAB trajectory must average 300 K. Per frame its relative
/// standard deviation is sqrt(2/66); velocity-squared correlations decay within ~1/γ = 1 ps,
/// so 50 ps hold ≳ 50 independent frames, and the s.e. of the mean is
/// ≤ sqrt(2/66)/sqrt(50) ≈ 2.5 %; the test allows 4 s.e. (a unit slip is a factor ≥ 2).
#[test]
fn aldp_langevin_thermalises_at_300k() {
    let t = 300.0;
    let energy = ForceFieldEnergy::aldp(t).unwrap();
    let masses = energy.field().masses().to_vec();
    let lang = Langevin::new(0.001, 1.0, energy.kt(), &masses, 3).unwrap();
    let start = read_npy(&shared_data_file("aldp/X100.npy").unwrap()).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let mut s = lang.init_state(&energy, start.data[..66].to_vec(), 1.0, &mut rng);
    let (equil, frames, stride) = (5_000, 500, 100); // 5 ps + 50 ps
    for _ in 0..equil {
        assert!(lang.step(&energy, 1.0, &mut s, &mut rng));
    }
    let mut kin_t = 0.0;
    for _ in 0..frames {
        for _ in 0..stride {
            assert!(lang.step(&energy, 1.0, &mut s, &mut rng));
        }
        let two_ke: f64 =
            s.v.iter()
                .enumerate()
                .map(|(i, v)| masses[i / 3] * v * v)
                .sum();
        kin_t += two_ke / (66.0 * diffsamp_energy::force_field::GAS_CONSTANT_KJ);
    }
    kin_t /= frames as f64;
    let se = t * (2.0f64 / 66.0).sqrt() / (50.0f64).sqrt();
    assert!(
        (kin_t - t).abs() < 4.0 * se,
        "kinetic T {kin_t} K vs {t} ± {se}"
    );
    // chirality is preserved by the dynamics
    assert_eq!(alanine::d_fraction(&s.x).unwrap().fraction, 0.0);
}
