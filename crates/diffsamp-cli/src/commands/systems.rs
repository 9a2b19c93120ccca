//! `diffsamp systems`: the built-in targets and their capabilities.

use diffsamp::energy::registry;

pub fn run() -> anyhow::Result<()> {
    println!(
        "{:<18} {:>5}  {:<10} {:<6} {:>10}",
        "system", "dim", "space", "exact", "log Z"
    );
    for name in registry::known_systems() {
        let s = registry::system(name)?;
        let particles = match (s.energy.particles(), s.energy.molecule()) {
            (Some(p), _) => format!("{}x{}", p.n, p.spatial),
            (None, Some(m)) => format!("{} atoms", m.n_atoms()),
            (None, None) if s.energy.periodic() => "torus".into(),
            (None, None) => "-".into(),
        };
        let log_z = s
            .log_z
            .map(|z| format!("{z:.5}"))
            .unwrap_or_else(|| "-".into());
        println!(
            "{:<18} {:>5}  {:<10} {:<6} {:>10}",
            name,
            s.energy.dim(),
            particles,
            if s.exact.is_some() { "yes" } else { "no" },
            log_z
        );
    }
    Ok(())
}
