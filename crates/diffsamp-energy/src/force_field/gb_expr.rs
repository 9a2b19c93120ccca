//! Recognises the `CustomGBForce` expressions of OpenMM's OBC generalized Born model.
//!
//! Each supported expression is a template in which `$` stands for a number; an expression
//! (whitespace removed) is supported iff it matches a template character by character with
//! numbers in the `$` places. Anything else is rejected by the caller with the expression
//! quoted, so an unknown GB variant (OBC2, a salt screening term, ...) is never mistaken
//! for this one.

/// Born-radius integral I, a ParticlePairNoExclusions value. No parameters.
pub(crate) const I_VALUE: &str = "select(step(r+sr2-or1),0.5*(1/L-1/U+0.25*(r-sr2^2/r)*(1/(U^2)-1/(L^2))+0.5*log(L/U)/r),0);U=r+sr2;L=max(or1,D);D=abs(r-sr2)";

/// Born radius B (SingleParticle value): α, γ (tanh(αψ + γψ³), i.e. β = 0) and the offset.
pub(crate) const B_VALUE: &str =
    "1/(1/or-tanh($*psi+$*psi^3)/radius);psi=I*or;radius=or+offset;offset=$";

/// Self term: k, ε_solvent, ε_solute, offset.
pub(crate) const SELF_TERM: &str = "-0.5*$*(1/soluteDielectric-1/solventDielectric)*charge^2/B;solventDielectric=$;soluteDielectric=$;kappa=0;offset=$";

/// ACE surface term: surface-tension factor, probe radius, ε_solvent, ε_solute, offset.
pub(crate) const ACE_TERM: &str = "$*(radius+$)^2*(radius/B)^6;radius=or+offset;solventDielectric=$;soluteDielectric=$;kappa=0;offset=$";

/// Pair term without cutoff: k, ε_solvent, ε_solute, offset.
pub(crate) const PAIR_TERM: &str = "-$*(1/soluteDielectric-1/solventDielectric)*charge1*charge2/f;f=sqrt(r^2+B1*B2*exp(-r^2/(4*B1*B2)));solventDielectric=$;soluteDielectric=$;kappa=0;offset=$";

/// Pair term with cutoff shift: k, shift (1/r_c), ε_solvent, ε_solute, offset.
pub(crate) const PAIR_TERM_CUT: &str = "-$*(1/soluteDielectric-1/solventDielectric)*charge1*charge2*(1/f-$);f=sqrt(r^2+B1*B2*exp(-r^2/(4*B1*B2)));solventDielectric=$;soluteDielectric=$;kappa=0;offset=$";

/// Suffix that OpenMM appends to the energy terms of a cutoff GB force.
pub(crate) const CUTOFF_SUFFIX: &str = ";cutoff=$";

/// The numbers in the `$` places if `expr` (whitespace ignored) matches `template`.
pub(crate) fn match_template(template: &str, expr: &str) -> Option<Vec<f64>> {
    let s: Vec<char> = expr.chars().filter(|c| !c.is_whitespace()).collect();
    let mut pos = 0;
    let mut out = Vec::new();
    for t in template.chars() {
        if t == '$' {
            let start = pos;
            while pos < s.len() {
                let c = s[pos];
                let exp_sign =
                    (c == '+' || c == '-') && pos > start && matches!(s[pos - 1], 'e' | 'E');
                if c.is_ascii_digit() || c == '.' || c == 'e' || c == 'E' || exp_sign {
                    pos += 1;
                } else {
                    break;
                }
            }
            let text: String = s[start..pos].iter().collect();
            out.push(text.parse::<f64>().ok()?);
        } else {
            if s.get(pos) != Some(&t) {
                return None;
            }
            pos += 1;
        }
    }
    (pos == s.len()).then_some(out)
}

/// Matches an energy term, with or without the `;cutoff=X` suffix; returns the numbers and
/// the suffix cutoff if present.
pub(crate) fn match_term(template: &str, expr: &str) -> Option<(Vec<f64>, Option<f64>)> {
    if let Some(v) = match_template(template, expr) {
        return Some((v, None));
    }
    let mut v = match_template(&format!("{template}{CUTOFF_SUFFIX}"), expr)?;
    let c = v.pop()?;
    Some((v, Some(c)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_extract_numbers_and_reject_others() {
        let v = match_template(
            B_VALUE,
            "1/(1/or-tanh(0.8*psi+2.909125*psi^3)/radius);psi=I*or; radius=or+offset; offset=0.009",
        )
        .unwrap();
        assert_eq!(v, vec![0.8, 2.909125, 0.009]);
        // OBC2 has a β ψ² term: not this template.
        assert!(match_template(B_VALUE, "1/(1/or-tanh(1*psi-0.8*psi^2+4.85*psi^3)/radius);psi=I*or; radius=or+offset; offset=0.009").is_none());
        assert!(match_template("a=$", "a=1e-3").unwrap() == vec![1e-3]);
        assert!(match_template("a=$", "a=x").is_none());
        assert!(match_template("a=$", "a=1;b").is_none());
        let (v, c) = match_term("x=$", "x=.5; cutoff=2").unwrap();
        assert_eq!((v, c), (vec![0.5], Some(2.0)));
    }
}
