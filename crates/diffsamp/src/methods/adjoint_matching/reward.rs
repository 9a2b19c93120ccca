//! Rewards r(x) of fine-tuning (the target is p_base(x) exp(λ r(x)) / Z), parsed from a spec:
//!
//! | spec | reward |
//! |---|---|
//! | `linear:W` | r = wᵀx; W is `dim` comma-separated numbers, or one number for every coordinate |
//! | `quadratic:C` or `quadratic:C;k=K` | r = −(K/2)‖x − c‖² (K > 0, default 1); C like W |
//! | `energy:SYSTEM` | r = −E(x) of a registered system (see `diffsamp systems`) |
//! | `boltzmann:SYSTEM` | r = −E(x) + ½‖x‖²: with an N(0, I) base and λ = 1 the tilt is exp(−E) |

use crate::energy::{Energy, EnergyBatch};
use crate::error::{Error, Result};

/// A reward function with its gradient, evaluated in f64 on the host.
pub enum Reward {
    /// r = wᵀx.
    Linear { weights: Vec<f64> },
    /// r = −(k/2)‖x − c‖².
    Quadratic { center: Vec<f64>, curvature: f64 },
    /// r = −E(x).
    Energy { energy: Box<dyn Energy> },
    /// r = −E(x) + ½‖x‖² (sampling exp(−E) by fine-tuning an N(0, I) base).
    Boltzmann { energy: Box<dyn Energy> },
}

impl std::fmt::Debug for Reward {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.spec())
    }
}

fn bad(spec: &str, why: impl Into<String>) -> Error {
    Error::Config {
        key: "reward".into(),
        why: format!("'{spec}': {}", why.into()),
    }
}

/// Parses `a,b,c` (or one number broadcast) into a vector of length `dim`.
fn parse_vector(spec: &str, text: &str, dim: usize) -> Result<Vec<f64>> {
    let values: Vec<f64> = text
        .split(',')
        .map(|v| {
            let v = v.trim();
            v.parse::<f64>()
                .ok()
                .filter(|x| x.is_finite())
                .ok_or_else(|| bad(spec, format!("'{v}' is not a finite number")))
        })
        .collect::<Result<_>>()?;
    match values.len() {
        1 => Ok(vec![values[0]; dim]),
        n if n == dim => Ok(values),
        n => Err(bad(
            spec,
            format!("{n} numbers given, the base model has dimension {dim} (give {dim} or 1)"),
        )),
    }
}

impl Reward {
    /// Parses a reward spec (module docs) for `dim`-dimensional samples.
    pub fn parse(spec: &str, dim: usize) -> Result<Reward> {
        let (kind, arg) = spec.split_once(':').ok_or_else(|| {
            bad(
                spec,
                "expected KIND:ARGS with KIND one of linear, quadratic, energy, boltzmann",
            )
        })?;
        let energy = |name: &str| -> Result<Box<dyn Energy>> {
            let e = crate::energy::by_name(name.trim())?;
            if e.dim() != dim {
                return Err(bad(
                    spec,
                    format!(
                        "system '{}' has dimension {}, the base model {dim}",
                        name.trim(),
                        e.dim()
                    ),
                ));
            }
            Ok(e)
        };
        match kind.trim() {
            "linear" => Ok(Reward::Linear {
                weights: parse_vector(spec, arg, dim)?,
            }),
            "quadratic" => {
                let (c, k) = match arg.split_once(';') {
                    Some((c, k)) => {
                        let k = k
                            .trim()
                            .strip_prefix("k=")
                            .ok_or_else(|| bad(spec, "the curvature is written ';k=VALUE'"))?;
                        let k: f64 = k
                            .trim()
                            .parse()
                            .map_err(|_| bad(spec, format!("curvature '{k}' is not a number")))?;
                        (c, k)
                    }
                    None => (arg, 1.0),
                };
                if !(k.is_finite() && k > 0.0) {
                    return Err(bad(spec, format!("curvature {k} must be finite and > 0")));
                }
                Ok(Reward::Quadratic {
                    center: parse_vector(spec, c, dim)?,
                    curvature: k,
                })
            }
            "energy" => Ok(Reward::Energy {
                energy: energy(arg)?,
            }),
            "boltzmann" => Ok(Reward::Boltzmann {
                energy: energy(arg)?,
            }),
            other => Err(bad(
                spec,
                format!("unknown reward kind '{other}' (linear, quadratic, energy, boltzmann)"),
            )),
        }
    }

    /// The canonical spec of this reward (parses back to the same reward).
    pub fn spec(&self) -> String {
        let list = |v: &[f64]| {
            v.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        match self {
            Reward::Linear { weights } => format!("linear:{}", list(weights)),
            Reward::Quadratic { center, curvature } => {
                format!("quadratic:{};k={curvature}", list(center))
            }
            Reward::Energy { energy } => format!("energy:{}", energy.name()),
            Reward::Boltzmann { energy } => format!("boltzmann:{}", energy.name()),
        }
    }

    /// Whether evaluating this reward costs a target-energy evaluation (counted as such).
    pub fn is_energy(&self) -> bool {
        matches!(self, Reward::Energy { .. } | Reward::Boltzmann { .. })
    }

    /// r(x) and ∇r(x) of one point x `[dim]`.
    pub fn value_and_grad(&self, x: &[f64]) -> Result<(f64, Vec<f64>)> {
        let (r, g) = self.batch(x)?;
        Ok((r[0], g))
    }

    /// r and ∇r of every row of `x` (`[n, dim]` row-major); energies in parallel.
    pub fn batch(&self, x: &[f64]) -> Result<(Vec<f64>, Vec<f64>)> {
        match self {
            Reward::Linear { weights } => {
                let d = weights.len();
                check(x, d)?;
                let r = x
                    .chunks_exact(d)
                    .map(|row| row.iter().zip(weights).map(|(a, b)| a * b).sum())
                    .collect();
                let g = x
                    .chunks_exact(d)
                    .flat_map(|_| weights.iter().copied())
                    .collect();
                Ok((r, g))
            }
            Reward::Quadratic { center, curvature } => {
                let d = center.len();
                check(x, d)?;
                let mut r = Vec::with_capacity(x.len() / d);
                let mut g = Vec::with_capacity(x.len());
                for row in x.chunks_exact(d) {
                    let mut s = 0.0;
                    for (a, c) in row.iter().zip(center) {
                        s += (a - c) * (a - c);
                        g.push(-curvature * (a - c));
                    }
                    r.push(-0.5 * curvature * s);
                }
                Ok((r, g))
            }
            Reward::Energy { energy } => {
                let b = EnergyBatch::evaluate(energy.as_ref(), x)?;
                Ok((
                    b.energies.iter().map(|e| -e).collect(),
                    b.grads.iter().map(|g| -g).collect(),
                ))
            }
            Reward::Boltzmann { energy } => {
                let b = EnergyBatch::evaluate(energy.as_ref(), x)?;
                let d = energy.dim();
                let r = b
                    .energies
                    .iter()
                    .zip(x.chunks_exact(d))
                    .map(|(e, row)| -e + 0.5 * row.iter().map(|v| v * v).sum::<f64>())
                    .collect();
                let g = b.grads.iter().zip(x).map(|(g, v)| -g + v).collect();
                Ok((r, g))
            }
        }
    }
}

fn check(x: &[f64], d: usize) -> Result<()> {
    if !x.len().is_multiple_of(d) {
        return Err(Error::Shape(format!(
            "reward of dimension {d} given {} numbers",
            x.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fd_check(r: &Reward, x: &[f64]) {
        let (_, g) = r.value_and_grad(x).unwrap();
        for i in 0..x.len() {
            let h = 1e-6;
            let mut p = x.to_vec();
            p[i] += h;
            let mut m = x.to_vec();
            m[i] -= h;
            let fd =
                (r.value_and_grad(&p).unwrap().0 - r.value_and_grad(&m).unwrap().0) / (2.0 * h);
            assert!(
                (fd - g[i]).abs() < 1e-5 * (1.0 + fd.abs()),
                "{r:?} ∂{i}: {fd} vs {}",
                g[i]
            );
        }
    }

    #[test]
    fn gradients_match_finite_differences() {
        for spec in [
            "linear:1,-2",
            "quadratic:0.5,-1;k=3",
            "energy:gmm40",
            "boltzmann:gmm40",
        ] {
            let r = Reward::parse(spec, 2).unwrap();
            fd_check(&r, &[0.3, -1.7]);
        }
        let r = Reward::parse("boltzmann:many-well-5", 5).unwrap();
        fd_check(&r, &[1.0, -0.2, 0.4, 0.1, -0.9]);
    }

    #[test]
    fn values_are_the_documented_formulas() {
        let r = Reward::parse("quadratic:1;k=2", 2).unwrap();
        assert_eq!(r.value_and_grad(&[2.0, 1.0]).unwrap().0, -1.0);
        let r = Reward::parse("linear:3", 2).unwrap();
        assert_eq!(r.value_and_grad(&[2.0, 1.0]).unwrap().0, 9.0);
        let g = crate::energy::by_name("gmm40").unwrap();
        let x = [3.0, 4.0];
        let e = crate::energy::energies_batch(g.as_ref(), &x).unwrap()[0];
        let r = Reward::parse("boltzmann:gmm40", 2).unwrap();
        assert!((r.value_and_grad(&x).unwrap().0 - (-e + 12.5)).abs() < 1e-12);
    }

    #[test]
    fn specs_round_trip() {
        for spec in ["linear:1,-2", "quadratic:0.5,-1;k=3", "energy:gmm40"] {
            assert_eq!(Reward::parse(spec, 2).unwrap().spec(), spec);
        }
    }

    #[test]
    fn bad_specs_name_the_problem() {
        let msg = |spec: &str, dim| Reward::parse(spec, dim).unwrap_err().to_string();
        assert!(msg("linear", 2).contains("KIND:ARGS"));
        assert!(msg("linear:1,2,3", 2).contains("3 numbers given"));
        assert!(msg("linear:1,x", 2).contains("'x' is not a finite number"));
        assert!(msg("linear:nan", 2).contains("not a finite number"));
        assert!(msg("quadratic:0;k=-1", 2).contains("must be finite and > 0"));
        assert!(msg("quadratic:0;c=1", 2).contains(";k=VALUE"));
        assert!(msg("cubic:1", 2).contains("unknown reward kind 'cubic'"));
        assert!(msg("energy:nosuch", 2).contains("nosuch"));
        assert!(msg("energy:dw4", 2).contains("dimension 8"));
    }
}
