//! Numbers in words: the report's (and the CLI's) one way to print a share and a number,
//! so a figure reads the same in a table, a chart, a finding and `veil explain`.

/// A share as a percentage with two significant digits (`0.123` → `12%`), `n/a` when not
/// finite.
#[must_use]
pub fn percent(value: f64) -> String {
    if !value.is_finite() {
        return "n/a".into();
    }
    let percent = value * 100.0;
    if percent >= 10.0 {
        format!("{percent:.0}%")
    } else if percent >= 1.0 {
        format!("{percent:.1}%")
    } else {
        format!("{percent:.2}%")
    }
}

/// A number with about three significant digits (`1234.5` → `1235`, `0.01234` →
/// `0.0123`, `1.5e7` → `1.50e7`), `n/a` when not finite.
#[must_use]
pub fn short(value: f64) -> String {
    if value == 0.0 {
        return "0".into();
    }
    if !value.is_finite() {
        return "n/a".into();
    }
    let magnitude = value.abs().log10().floor();
    if (-3.0..6.0).contains(&magnitude) {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let decimals = (2.0 - magnitude).max(0.0) as usize;
        let text = format!("{value:.decimals$}");
        if text.contains('.') {
            text.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            text
        }
    } else {
        format!("{value:.2e}")
    }
}
