//! Named systems: energy, and where known its exact sampler, log Z and mode locations.

use crate::{
    DoubleWell, Energy, EnergyError, ExactSampler, ForceFieldEnergy, GaussianMixture,
    HarmonicParticles, LennardJones, LogPartition, ManyWell, PairQuadrature, StudentTMixture,
    TorsionalMolecule, TorusQuadrature, TorusVonMises,
};
use std::sync::OnceLock;

/// Grid points per angle of the quadrature sampler of `aldp-phi-psi` (cells of 1°).
const ALDP_PHI_PSI_GRID: usize = 360;

/// Names of the two angles of `aldp-phi-psi`, in coordinate order: the backbone torsions.
pub const ALDP_PHI_PSI_ANGLES: [&str; 2] = ["φ", "ψ"];

/// Temperature (K) of the registered alanine-dipeptide targets.
pub const ALDP_TEMPERATURE: f64 = 300.0;

/// Names accepted by [`system`] and [`by_name`].
const KNOWN: &[&str] = &[
    "dw4",
    "dw2",
    "lj13",
    "lj55",
    "gmm40",
    "gmm40-fab",
    "gmm40-50",
    "many-well-5",
    "many-well-32",
    "mos50",
    "mos2",
    "aldp",
    "aldp-ff14sb-obc1",
    "aldp-phi-psi",
    "torus-2",
    "harmonic-4",
];

/// The names of all registered systems.
pub fn known_systems() -> &'static [&'static str] {
    KNOWN
}

/// Mode locations of a multimodal target (GMM means, Student-t locations, many-well minima),
/// row-major `[n_modes, dim]`, for mode-coverage metrics.
#[derive(Clone, Debug, PartialEq)]
pub struct Modes {
    /// Number of modes.
    pub n_modes: usize,
    /// Dimension of each mode location.
    pub dim: usize,
    /// Locations, row-major `[n_modes, dim]`.
    pub locations: Vec<f64>,
}

impl Modes {
    /// Location of mode k.
    pub fn get(&self, k: usize) -> &[f64] {
        &self.locations[k * self.dim..(k + 1) * self.dim]
    }
}

/// A registered target with its optional capabilities.
pub struct System {
    /// The energy E(x) (kT units).
    pub energy: Box<dyn Energy>,
    /// Exact i.i.d. sampler of p* ∝ exp(−E), when one exists.
    pub exact: Option<Box<dyn ExactSampler + Send + Sync>>,
    /// log Z = log ∫ exp(−E), when known (0 for the normalised mixtures).
    pub log_z: Option<f64>,
    /// Mode locations, when the target is a mixture / product of wells with few modes.
    pub modes: Option<Modes>,
    /// Names of the coordinates of a periodic target, each an angle in [−π, π) (axis labels
    /// of its plots): (φ, ψ) for `aldp-phi-psi`, (τ₁, τ₂, …) for the others; `None` when the
    /// target is not periodic.
    pub angles: Option<Vec<String>>,
}

/// The default angle names τ₁, τ₂, … of a periodic `energy` (see [`System::angles`]); `None`
/// when it is not periodic.
fn torsion_names(energy: &dyn Energy) -> Option<Vec<String>> {
    const SUB: [char; 10] = ['₀', '₁', '₂', '₃', '₄', '₅', '₆', '₇', '₈', '₉'];
    let sub = |i: usize| -> String {
        i.to_string()
            .bytes()
            .map(|b| SUB[usize::from(b - b'0')])
            .collect()
    };
    energy
        .periodic()
        .then(|| (1..=energy.dim()).map(|i| format!("τ{}", sub(i))).collect())
}

impl std::fmt::Debug for System {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("System")
            .field("name", &self.energy.name())
            .field("dim", &self.energy.dim())
            .field("exact", &self.exact.is_some())
            .field("log_z", &self.log_z)
            .field("modes", &self.modes.as_ref().map(|m| m.n_modes))
            .field("angles", &self.angles)
            .finish()
    }
}

impl System {
    /// The system's name (that of its energy).
    pub fn name(&self) -> &str {
        self.energy.name()
    }

    /// A system with only an energy.
    fn plain(energy: impl Energy + 'static) -> Self {
        Self {
            angles: torsion_names(&energy),
            energy: Box::new(energy),
            exact: None,
            log_z: None,
            modes: None,
        }
    }

    /// A system with energy, exact sampler and log Z from the same (cloned) target.
    fn sampleable<T>(target: T, modes: Option<Modes>) -> Self
    where
        T: Energy + ExactSampler + LogPartition + Clone + Send + Sync + 'static,
    {
        Self {
            log_z: Some(target.log_z()),
            angles: torsion_names(&target),
            exact: Some(Box::new(target.clone())),
            energy: Box::new(target),
            modes,
        }
    }
}

/// The quadrature of `aldp-phi-psi` (with its energy), built by the first call and shared by
/// the later ones: its log Z takes a quadrature on a 180² grid of force-field energies, which
/// [`system`] would otherwise repeat on every call. A failed build is not kept, so a later
/// call tries again.
fn aldp_phi_psi_quadrature(
) -> Result<&'static TorusQuadrature<TorsionalMolecule<ForceFieldEnergy>>, EnergyError> {
    static QUADRATURE: OnceLock<TorusQuadrature<TorsionalMolecule<ForceFieldEnergy>>> =
        OnceLock::new();
    if let Some(q) = QUADRATURE.get() {
        return Ok(q);
    }
    let energy =
        crate::torsional::aldp_phi_psi("aldp-phi-psi", ForceFieldEnergy::aldp(ALDP_TEMPERATURE)?)?;
    let q = TorusQuadrature::new(energy, ALDP_PHI_PSI_GRID)?;
    // A concurrent first call may have won the race with an equal quadrature: keep that one.
    Ok(QUADRATURE.get_or_init(|| q))
}

/// The system registered under `name` (see [`known_systems`]); unknown names give
/// [`EnergyError::UnknownSystem`] listing the known ones.
pub fn system(name: &str) -> Result<System, EnergyError> {
    let gmm = |g: GaussianMixture| {
        let modes = Modes {
            n_modes: g.n_components(),
            dim: g.dim(),
            locations: g.means().to_vec(),
        };
        System::sampleable(g, Some(modes))
    };
    let mos = |m: StudentTMixture| {
        let modes = Modes {
            n_modes: m.n_components(),
            dim: m.dim(),
            locations: m.locations().to_vec(),
        };
        System::sampleable(m, Some(modes))
    };
    let many_well = |m: ManyWell| {
        let modes = m.modes().map(|locations| Modes {
            n_modes: locations.len() / m.dim(),
            dim: m.dim(),
            locations,
        });
        System::sampleable(m, modes)
    };
    Ok(match name {
        "dw4" => System::plain(DoubleWell::dw4()),
        "dw2" => System::sampleable(PairQuadrature::new(DoubleWell::dw2(), 12.0, 120_000)?, None),
        "lj13" => System::plain(LennardJones::lj13()),
        "lj55" => System::plain(LennardJones::lj55()),
        "gmm40" => gmm(GaussianMixture::gmm40()),
        "gmm40-fab" => gmm(GaussianMixture::gmm40_fab()),
        "gmm40-50" => gmm(GaussianMixture::gmm40_50()),
        "many-well-5" => many_well(ManyWell::many_well_5()),
        "many-well-32" => many_well(ManyWell::many_well_32()),
        "mos50" => mos(StudentTMixture::mos50()),
        "mos2" => mos(StudentTMixture::mos2()),
        "aldp" => System::plain(ForceFieldEnergy::aldp(ALDP_TEMPERATURE)?),
        "aldp-ff14sb-obc1" => System::plain(ForceFieldEnergy::aldp_ff14sb_obc1(ALDP_TEMPERATURE)?),
        "aldp-phi-psi" => {
            let grid = aldp_phi_psi_quadrature()?;
            System {
                log_z: Some(grid.log_z()),
                exact: Some(Box::new(grid.clone())),
                energy: Box::new(grid.energy().clone()),
                modes: None,
                angles: Some(ALDP_PHI_PSI_ANGLES.map(String::from).to_vec()),
            }
        }
        "torus-2" => System::sampleable(TorusVonMises::torus2(), None),
        "harmonic-4" => System::sampleable(HarmonicParticles::harmonic4(), None),
        _ => {
            return Err(EnergyError::UnknownSystem {
                name: name.to_string(),
                known: KNOWN.join(", "),
            })
        }
    })
}

/// The force field registered under `name` (at the registry's 300 K), for what needs more
/// than an [`Energy`], such as the masses of molecular dynamics; `None` for a system that is
/// no force field. Unknown names are errors as in [`system`].
pub fn force_field(name: &str) -> Result<Option<ForceFieldEnergy>, EnergyError> {
    match name {
        "aldp" => ForceFieldEnergy::aldp(ALDP_TEMPERATURE).map(Some),
        "aldp-ff14sb-obc1" => ForceFieldEnergy::aldp_ff14sb_obc1(ALDP_TEMPERATURE).map(Some),
        _ => system(name).map(|_| None),
    }
}

/// The energy registered under `name` (see [`system`]).
pub fn by_name(name: &str) -> Result<Box<dyn Energy>, EnergyError> {
    system(name).map(|s| s.energy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::rng;

    #[test]
    fn every_known_name_resolves_to_itself() {
        for &name in known_systems() {
            let s = system(name).unwrap();
            assert_eq!(s.name(), name);
            assert_eq!(by_name(name).unwrap().name(), name);
            if let Some(m) = &s.modes {
                assert_eq!(m.dim, s.energy.dim(), "{name}");
                assert_eq!(m.locations.len(), m.n_modes * m.dim, "{name}");
            }
            if let Some(sampler) = &s.exact {
                let xs = sampler.sample(3, &mut rng(60));
                assert_eq!(xs.len(), 3 * s.energy.dim(), "{name}");
                assert!(xs.iter().all(|v| v.is_finite()));
            }
        }
    }

    #[test]
    fn capabilities_per_system() {
        let dims = [
            ("dw4", 8, false),
            ("dw2", 4, true),
            ("lj13", 39, false),
            ("lj55", 165, false),
            ("gmm40", 2, true),
            ("gmm40-fab", 2, true),
            ("gmm40-50", 50, true),
            ("many-well-5", 5, true),
            ("many-well-32", 32, true),
            ("mos50", 50, true),
            ("mos2", 2, true),
            ("aldp", 66, false),
            ("aldp-ff14sb-obc1", 66, false),
            ("aldp-phi-psi", 2, true),
            ("torus-2", 2, true),
            ("harmonic-4", 8, true),
        ];
        for (name, dim, exact) in dims {
            let s = system(name).unwrap();
            assert_eq!(s.energy.dim(), dim, "{name}");
            assert_eq!(s.exact.is_some(), exact, "{name}");
            assert_eq!(s.log_z.is_some(), exact, "{name}");
            assert_eq!(
                s.energy.particles().is_some(),
                name.starts_with("dw") || name.starts_with("lj") || name == "harmonic-4"
            );
            assert_eq!(
                s.energy.periodic(),
                name == "torus-2" || name == "aldp-phi-psi"
            );
            assert_eq!(
                s.angles.as_ref().map(Vec::len),
                s.energy.periodic().then_some(dim),
                "{name}"
            );
        }
        let angles = |name| system(name).unwrap().angles.unwrap();
        assert_eq!(angles("aldp-phi-psi"), ["φ", "ψ"]);
        assert_eq!(angles("torus-2"), ["τ₁", "τ₂"]);
        assert_eq!(system("gmm40").unwrap().modes.unwrap().n_modes, 40);
        assert_eq!(system("mos50").unwrap().modes.unwrap().n_modes, 10);
        assert_eq!(system("many-well-5").unwrap().modes.unwrap().n_modes, 32);
        assert!(system("many-well-32").unwrap().modes.is_none());
        assert_eq!(system("gmm40-50").unwrap().log_z, Some(0.0));
        let lz = system("many-well-32").unwrap().log_z.unwrap();
        assert!((lz - 164.6957).abs() < 1e-4);
    }

    #[test]
    fn default_angle_names_count_in_subscripts() {
        let t = TorusVonMises::new("t12", vec![1.0; 12], vec![0.0; 12], vec![1; 12]).unwrap();
        let names = torsion_names(&t).unwrap();
        assert_eq!(names.len(), 12);
        assert_eq!((names[0].as_str(), names[11].as_str()), ("τ₁", "τ₁₂"));
        assert_eq!(torsion_names(&DoubleWell::dw4()), None);
    }

    #[test]
    fn aldp_phi_psi_is_built_once_with_an_unchanged_log_z() {
        let (a, b) = (
            system("aldp-phi-psi").unwrap(),
            system("aldp-phi-psi").unwrap(),
        );
        // Later calls share the first one's quadrature instead of repeating it.
        let q = aldp_phi_psi_quadrature().unwrap();
        assert!(std::ptr::eq(q, aldp_phi_psi_quadrature().unwrap()));
        // The cached log Z is bit for bit that of a quadrature built from scratch.
        let energy = crate::torsional::aldp_phi_psi(
            "aldp-phi-psi",
            ForceFieldEnergy::aldp(ALDP_TEMPERATURE).unwrap(),
        )
        .unwrap();
        let x = [0.3, -1.2];
        let fresh = TorusQuadrature::new(energy.clone(), ALDP_PHI_PSI_GRID).unwrap();
        for s in [&a, &b] {
            assert_eq!(s.log_z.map(f64::to_bits), Some(fresh.log_z().to_bits()));
            assert_eq!(s.energy.energy(&x).to_bits(), energy.energy(&x).to_bits());
        }
    }

    #[test]
    fn force_fields_are_the_molecules() {
        for name in known_systems() {
            let ff = force_field(name).unwrap();
            let cartesian = name.starts_with("aldp") && *name != "aldp-phi-psi";
            assert_eq!(ff.is_some(), cartesian, "{name}");
            if let Some(ff) = ff {
                assert_eq!(ff.name(), *name);
                assert!(ff.molecule().is_some());
            }
        }
        assert!(force_field("nope").is_err());
    }

    #[test]
    fn unknown_name_lists_known_ones() {
        let e = system("lj14").unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, EnergyError::UnknownSystem { .. }));
        assert!(
            msg.contains("lj14") && msg.contains("many-well-32") && msg.contains("dw4"),
            "{msg}"
        );
        assert!(by_name("").is_err());
    }
}
