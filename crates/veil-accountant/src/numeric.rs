//! Directed rounding for privacy arithmetic: losses round up, noise rounds down.

/// Relative margin added to every computed ε (and every ρ, δ) to cover the floating-point
/// error of `exp`, `log`, `erfc` and sums, all far below it.
pub const NUMERIC_MARGIN: f64 = 1e-12;

/// `value` plus [`NUMERIC_MARGIN`] (relative), then one ulp up.
pub(crate) fn pad_up(value: f64) -> f64 {
    (value + value.abs() * NUMERIC_MARGIN).next_up()
}

/// `numer / denom` rounded up (checked exactly with a fused multiply-add).
pub(crate) fn div_up(numer: f64, denom: f64) -> f64 {
    let quotient = numer / denom;
    if quotient.mul_add(denom, -numer) >= 0.0 {
        quotient
    } else {
        quotient.next_up()
    }
}

/// `numer / denom` rounded down.
pub(crate) fn div_down(numer: f64, denom: f64) -> f64 {
    let quotient = numer / denom;
    if quotient.mul_add(denom, -numer) <= 0.0 {
        quotient
    } else {
        quotient.next_down()
    }
}

/// `a + b` rounded up: exact when representable (checked with the two-sum error term).
pub(crate) fn add_up(a: f64, b: f64) -> f64 {
    let sum = a + b;
    let virtual_b = sum - a;
    let error = (a - (sum - virtual_b)) + (b - virtual_b);
    if error > 0.0 { sum.next_up() } else { sum }
}

/// `a · b` rounded up (checked exactly with a fused multiply-add).
pub(crate) fn mul_up(a: f64, b: f64) -> f64 {
    let product = a * b;
    if a.mul_add(b, -product) > 0.0 {
        product.next_up()
    } else {
        product
    }
}

/// `a · b` rounded down.
pub(crate) fn mul_down(a: f64, b: f64) -> f64 {
    let product = a * b;
    if a.mul_add(b, -product) < 0.0 {
        product.next_down()
    } else {
        product
    }
}

/// `ln(e^a + e^b)` without overflow.
pub(crate) fn log_add(a: f64, b: f64) -> f64 {
    if a == f64::NEG_INFINITY {
        return b;
    }
    if b == f64::NEG_INFINITY {
        return a;
    }
    let (high, low) = if a >= b { (a, b) } else { (b, a) };
    high + (low - high).exp().ln_1p()
}

/// `ln((1 - q) + q·e^z)` for `q` in `(0, 1]`, without overflow or cancellation.
pub(crate) fn log_mix(q: f64, z: f64) -> f64 {
    if z > 0.0 {
        z + (q + (1.0 - q) * (-z).exp()).ln()
    } else {
        (q * z.exp_m1()).ln_1p()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directed_division_brackets_the_quotient() {
        for (numer, denom) in [(1.0, 3.0), (2.0, 0.3), (1.0, 0.1), (7.0, 7.0)] {
            let up = div_up(numer, denom);
            let down = div_down(numer, denom);
            assert!(up.mul_add(denom, -numer) >= 0.0);
            assert!(down.mul_add(denom, -numer) <= 0.0);
            assert!(up >= down);
        }
    }

    #[test]
    fn log_mix_matches_the_direct_formula() {
        for (q, z) in [(0.01, 3.0), (0.5, -2.0), (1.0, 0.7), (0.2, 1e-9)] {
            let direct = ((1.0 - q) + q * f64::exp(z)).ln();
            assert!((log_mix(q, z) - direct).abs() < 1e-12, "{q} {z}");
        }
        assert!(log_mix(0.01, 2000.0).is_finite());
        assert!((log_add(1000.0, 1000.0) - (1000.0 + 2f64.ln())).abs() < 1e-12);
    }
}
