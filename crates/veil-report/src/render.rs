//! Renderings of a report: plain text for the terminal, Markdown, JSON and a
//! self-contained HTML page (charts inlined as SVG, no external resource). Each starts
//! with the report's notice.

use std::fmt::Write as _;

use crate::ReportError;
use crate::chart::Chart;
use crate::format::{percent, short};
use crate::input::DataOrigin;
use crate::output::{AggregateAtEpsilon, QueryReport, Report};
use crate::sweep::nearest;

/// The HTML template (minijinja), embedded.
const HTML_TEMPLATE: &str = include_str!("templates/report.html");

/// How many groups the Markdown and HTML list (all are in the JSON).
const LISTED_GROUPS: usize = 20;

impl Report {
    /// The index of the reference ε in the sweep.
    fn reference_index(&self) -> usize {
        nearest(&self.epsilons, self.reference_epsilon)
    }

    /// A short summary for the terminal.
    #[must_use]
    pub fn to_text(&self) -> String {
        let mut text = String::new();
        let reference = self.reference_index();
        let _ = writeln!(text, "{}", self.notice);
        let _ = writeln!(
            text,
            "Job {}: {}; ε swept: {}; {}",
            self.job,
            self.budget,
            self.epsilons
                .iter()
                .map(|e| short(*e))
                .collect::<Vec<_>>()
                .join(", "),
            if self.trials > 0 {
                format!("{} Monte Carlo trials per ε", self.trials)
            } else {
                "analytic only".to_string()
            }
        );
        for query in &self.queries {
            let _ = writeln!(text);
            let _ = writeln!(
                text,
                "Query {} ({} groups; L0 = {}, L∞ = {}): median relative error (analytic{})",
                query.name,
                query.groups,
                query.bounds.max_groups_per_unit,
                query.bounds.max_rows_per_group,
                if self.trials > 0 {
                    " / Monte Carlo"
                } else {
                    ""
                }
            );
            let width = query
                .aggregates
                .iter()
                .map(|aggregate| aggregate.name.chars().count())
                .max()
                .unwrap_or(0)
                .max(9);
            let mut header = format!("  {:width$}", "aggregate");
            for epsilon in &self.epsilons {
                let _ = write!(header, " {:>13}", format!("ε={}", short(*epsilon)));
            }
            let _ = writeln!(text, "{}", header.trim_end());
            for aggregate in &query.aggregates {
                let mut line = format!("  {:width$}", aggregate.name);
                for at in &aggregate.sweep {
                    let _ = write!(line, " {:>13}", cell(at));
                }
                let _ = writeln!(text, "{}", line.trim_end());
            }
            if let Some(release) = query.release.get(reference) {
                let _ = writeln!(
                    text,
                    "  groups released at ε = {}: {} of {} expected",
                    short(release.epsilon),
                    short(release.expected_groups),
                    query.groups
                );
            }
            for finding in &query.findings {
                let _ = writeln!(text, "  - {finding}");
            }
        }
        text
    }

    /// The report as Markdown.
    #[must_use]
    pub fn to_markdown(&self) -> String {
        let mut md = String::new();
        let reference = self.reference_index();
        let reference_epsilon = short(self.reference_epsilon);
        let _ = writeln!(md, "> **{}**\n", self.notice);
        let _ = writeln!(md, "# Utility report: job `{}`\n", self.job);
        let _ = writeln!(md, "- Data: {}", self.source);
        let _ = writeln!(md, "- Budget: {}", self.budget);
        let _ = writeln!(
            md,
            "- ε swept: {} (reference ε = {reference_epsilon})",
            self.epsilons
                .iter()
                .map(|e| short(*e))
                .collect::<Vec<_>>()
                .join(", ")
        );
        if self.trials > 0 {
            let _ = writeln!(md, "- Monte Carlo: {} trials per ε", self.trials);
        }
        let _ = writeln!(
            md,
            "- Target relative error: {}",
            percent(self.target_error)
        );
        for query in &self.queries {
            query_markdown(&mut md, self, query, reference, &reference_epsilon);
        }
        let _ = writeln!(md, "\n## Method\n");
        for note in &self.method {
            let _ = writeln!(md, "- {note}");
        }
        md
    }

    /// The report as pretty JSON (everything, for machines); non-finite numbers are `null`.
    ///
    /// # Errors
    /// [`ReportError::Template`] if serialisation fails (a bug).
    pub fn to_json(&self) -> Result<String, ReportError> {
        serde_json::to_string_pretty(self).map_err(|e| ReportError::Template {
            template: "report.json",
            reason: e.to_string(),
        })
    }

    /// A self-contained HTML page: styles inline, charts inlined as SVG, no script and no
    /// external resource.
    ///
    /// # Errors
    /// [`ReportError::Template`] if the template fails to render (a bug).
    pub fn to_html(&self, charts: &[Chart]) -> Result<String, ReportError> {
        let failure = |e: minijinja::Error| ReportError::Template {
            template: "report.html",
            reason: e.to_string(),
        };
        let mut environment = minijinja::Environment::new();
        environment.add_filter("pct", |value: Option<f64>| {
            percent(value.unwrap_or(f64::NAN))
        });
        environment.add_filter("num", |value: Option<f64>| short(value.unwrap_or(f64::NAN)));
        environment.add_filter("signed", |value: Option<f64>| {
            signed_percent(value.unwrap_or(f64::NAN))
        });
        environment
            .add_template("report.html", HTML_TEMPLATE)
            .map_err(failure)?;
        let template = environment.get_template("report.html").map_err(failure)?;
        let context = minijinja::context! {
            report => minijinja::Value::from(minijinja::value::Serde(self)),
            reference => self.reference_index(),
            charts => minijinja::Value::from(minijinja::value::Serde(charts)),
            listed => LISTED_GROUPS,
            tuning_notice => TUNING_NOTICE,
        };
        template.render(context).map_err(failure)
    }
}

fn cell(at: &AggregateAtEpsilon) -> String {
    match at.empirical {
        Some(empirical) => format!(
            "{} / {}",
            percent(at.analytic.median_relative),
            percent(empirical.median_relative)
        ),
        None => percent(at.analytic.median_relative),
    }
}

fn signed_percent(value: f64) -> String {
    if !value.is_finite() {
        return "n/a".into();
    }
    if value.abs() < 5e-5 {
        return "0%".into();
    }
    let text = percent(value.abs());
    if value < 0.0 {
        format!("−{text}")
    } else {
        format!("+{text}")
    }
}

/// One query's section of the Markdown report.
fn query_markdown(
    md: &mut String,
    report: &Report,
    query: &QueryReport,
    reference: usize,
    reference_epsilon: &str,
) {
    let _ = writeln!(md);
    let group_by = if query.group_by.is_empty() {
        "all rows".to_string()
    } else {
        query.group_by.join(", ")
    };
    let _ = writeln!(md, "## Query `{}` (group by {group_by})\n", query.name);
    let groups = if report.origin == DataOrigin::AnalyticOnly {
        format!(
            "{} illustrative group sizes (no data was read)",
            query.groups
        )
    } else {
        format!("{} groups in the data", query.groups)
    };
    let _ = writeln!(
        md,
        "Bounds: max_groups_per_unit = {}, max_rows_per_group = {}; {groups}.\n",
        query.bounds.max_groups_per_unit, query.bounds.max_rows_per_group
    );
    if !query.findings.is_empty() {
        let _ = writeln!(md, "### Findings\n");
        for finding in &query.findings {
            let _ = writeln!(md, "- {finding}");
        }
        let _ = writeln!(md);
    }
    sweep_markdown(md, report, query);
    decomposition_markdown(md, query, reference, reference_epsilon);
    errors_markdown(md, query, reference, reference_epsilon);
    release_markdown(md, query);
    slices_markdown(md, query, reference, reference_epsilon, false);
    if query.segment.is_some() {
        slices_markdown(md, query, reference, reference_epsilon, true);
    }
    contributions_markdown(md, query);
    tuning_markdown(md, query);
    groups_markdown(md, query, &report.epsilons);
}

/// The median relative error of every aggregate at every swept ε.
fn sweep_markdown(md: &mut String, report: &Report, query: &QueryReport) {
    let _ = writeln!(
        md,
        "### Median relative error by ε ({})\n",
        if report.trials > 0 {
            "analytic / Monte Carlo"
        } else {
            "analytic"
        }
    );
    let mut header = "| aggregate |".to_string();
    let mut rule = "|---|".to_string();
    for epsilon in &report.epsilons {
        let _ = write!(header, " ε = {} |", short(*epsilon));
        rule.push_str("---|");
    }
    let _ = writeln!(md, "{header}\n{rule}");
    for aggregate in &query.aggregates {
        let mut row = format!("| {} |", aggregate.name);
        for at in &aggregate.sweep {
            let _ = write!(row, " {} |", cell(at));
        }
        let _ = writeln!(md, "{row}");
    }
}

/// Where the error comes from at the reference ε, and the bias of bounding.
fn decomposition_markdown(
    md: &mut String,
    query: &QueryReport,
    reference: usize,
    reference_epsilon: &str,
) {
    let _ = writeln!(
        md,
        "\n### Where the error comes from (ε = {reference_epsilon})\n"
    );
    let _ = writeln!(
        md,
        "Shares of the expected squared error, and the mean relative bias of bounding (the same at every ε).\n"
    );
    let _ = writeln!(
        md,
        "| aggregate | clamping | L∞ rows | L0 groups | noise | selection | bias: clamping | bias: L∞ | bias: L0 |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|");
    for aggregate in &query.aggregates {
        if let Some(at) = aggregate.sweep.get(reference) {
            let parts = at.decomposition;
            let bias = aggregate.bias;
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                aggregate.name,
                percent(parts.clamping),
                percent(parts.linf),
                percent(parts.l0),
                percent(parts.noise),
                percent(parts.selection),
                signed_percent(bias.clamping),
                signed_percent(bias.linf),
                signed_percent(bias.l0),
            );
        }
    }
}

/// Every error statistic at the reference ε, analytic and Monte Carlo.
fn errors_markdown(
    md: &mut String,
    query: &QueryReport,
    reference: usize,
    reference_epsilon: &str,
) {
    let _ = writeln!(md, "\n### Errors at ε = {reference_epsilon}\n");
    let _ = writeln!(
        md,
        "| aggregate | method | noise std | median abs | p90 abs | RMSE | median rel | p90 rel | RMSE rel |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|");
    for aggregate in &query.aggregates {
        if let Some(at) = aggregate.sweep.get(reference) {
            let mut rows = vec![("analytic", at.analytic)];
            if let Some(empirical) = at.empirical {
                rows.push(("Monte Carlo", empirical));
            }
            for (method, stats) in rows {
                let _ = writeln!(
                    md,
                    "| {} | {method} | {} | {} | {} | {} | {} | {} | {} |",
                    aggregate.name,
                    short(at.noise_std),
                    short(stats.median_abs),
                    short(stats.p90_abs),
                    short(stats.rmse),
                    percent(stats.median_relative),
                    percent(stats.p90_relative),
                    percent(stats.rmse_relative),
                );
            }
        }
    }
}

/// The groups released at each ε, expected and simulated.
fn release_markdown(md: &mut String, query: &QueryReport) {
    let _ = writeln!(md, "\n### Groups released\n");
    let _ = writeln!(md, "| ε | expected | Monte Carlo | rows in lost groups |");
    let _ = writeln!(md, "|---|---|---|---|");
    for release in &query.release {
        let _ = writeln!(
            md,
            "| {} | {} of {} | {} | {} |",
            short(release.epsilon),
            short(release.expected_groups),
            query.groups,
            release
                .empirical_groups
                .map_or_else(|| "—".to_string(), short),
            percent(release.rows_lost)
        );
    }
}

fn slices_markdown(
    md: &mut String,
    query: &QueryReport,
    reference: usize,
    reference_epsilon: &str,
    segments: bool,
) {
    let Some(first) = query
        .aggregates
        .first()
        .and_then(|a| a.sweep.get(reference))
    else {
        return;
    };
    let slices = if segments {
        &first.by_segment
    } else {
        &first.by_size
    };
    if slices.is_empty() {
        return;
    }
    let title = if segments {
        format!(
            "By {} (ε = {reference_epsilon})",
            query.segment.as_deref().unwrap_or("segment")
        )
    } else {
        format!("By group size (ε = {reference_epsilon})")
    };
    let _ = writeln!(md, "\n### {title}\n");
    let _ = writeln!(
        md,
        "Median relative error (analytic) and, in parentheses, the mean probability that a group is released.\n"
    );
    let mut header = "| aggregate |".to_string();
    let mut rule = "|---|".to_string();
    for slice in slices {
        let _ = write!(header, " {} ({} groups) |", slice.label, slice.groups);
        rule.push_str("---|");
    }
    let _ = writeln!(md, "{header}\n{rule}");
    for aggregate in &query.aggregates {
        let Some(at) = aggregate.sweep.get(reference) else {
            continue;
        };
        let mut row = format!("| {} |", aggregate.name);
        for slice in if segments {
            &at.by_segment
        } else {
            &at.by_size
        } {
            let _ = write!(
                row,
                " {} (p = {}) |",
                percent(slice.median_relative),
                short(slice.release_probability)
            );
        }
        let _ = writeln!(md, "{row}");
    }
}

fn contributions_markdown(md: &mut String, query: &QueryReport) {
    let c = &query.contributions;
    let _ = writeln!(md, "\n### Contributions\n");
    let _ = writeln!(
        md,
        "- Units in more than {} groups: {}; unit–group pairs with more than {} rows: {}.",
        query.bounds.max_groups_per_unit,
        percent(c.units_over_l0),
        query.bounds.max_rows_per_group,
        percent(c.pairs_over_linf)
    );
    let _ = writeln!(
        md,
        "- Rows dropped by L∞: {}; then by L0: {}.",
        percent(c.rows_dropped_by_linf),
        percent(c.rows_dropped_by_l0)
    );
    for (title, histogram, unit) in [
        ("groups per unit", &c.groups_per_unit, "units"),
        ("rows per unit and group", &c.rows_per_group, "pairs"),
    ] {
        if histogram.is_empty() {
            continue;
        }
        let total: u64 = histogram.iter().map(|(_, count)| count).sum();
        let buckets = log2_buckets(histogram);
        let _ = writeln!(md, "\n| {title} | {unit} | share |\n|---|---|---|");
        for (label, count) in buckets {
            #[allow(clippy::cast_precision_loss)]
            let share = count as f64 / total.max(1) as f64;
            let _ = writeln!(md, "| {label} | {count} | {} |", percent(share));
        }
    }
    for (column, quantiles) in &query.value_quantiles {
        let bounds = query
            .aggregates
            .iter()
            .find(|aggregate| aggregate.column.as_deref() == Some(column))
            .and_then(|aggregate| aggregate.bounds);
        let values: Vec<String> = quantiles
            .iter()
            .map(|(level, value)| format!("p{} = {}", short(level * 100.0), short(*value)))
            .collect();
        let _ = writeln!(
            md,
            "\n- Column `{column}`{}: {}.",
            bounds.map_or_else(String::new, |[lower, upper]| format!(
                " (bounds [{}, {}])",
                short(lower),
                short(upper)
            )),
            values.join(", ")
        );
    }
}

/// Histogram rows in buckets 1, 2, 3–4, 5–8, … (log 2).
pub(crate) fn log2_buckets(histogram: &[(u64, u64)]) -> Vec<(String, u64)> {
    let mut buckets: Vec<(u64, u64, u64)> = Vec::new();
    for &(value, count) in histogram {
        let (low, high) = if value <= 2 {
            (value, value)
        } else {
            let upper = value.next_power_of_two();
            (upper / 2 + 1, upper)
        };
        match buckets.iter_mut().find(|(l, h, _)| *l == low && *h == high) {
            Some(bucket) => bucket.2 += count,
            None => buckets.push((low, high, count)),
        }
    }
    buckets.sort_unstable();
    buckets
        .into_iter()
        .map(|(low, high, count)| {
            let label = if low == high {
                low.to_string()
            } else {
                format!("{low}–{high}")
            };
            (label, count)
        })
        .collect()
}

/// What the tuning section says first: its suggestions are not private.
pub(crate) const TUNING_NOTICE: &str = "Not private: these bounds are read off the data's true contributions, so copying them into the job lets the data choose its own bounds outside the budget. On real data, prefer `\"auto\"` (chosen privately, from a charged share of ε) or bounds set without looking.";

fn tuning_markdown(md: &mut String, query: &QueryReport) {
    let Some(tuning) = &query.tuning else {
        return;
    };
    let _ = writeln!(md, "\n### Tuning\n");
    let _ = writeln!(md, "{TUNING_NOTICE}\n");
    let _ = writeln!(md, "Objective: {}.\n", tuning.objective);
    if !tuning.per_epsilon.is_empty() {
        let _ = writeln!(
            md,
            "| ε | job's bounds | best L0 | best L∞ | value bounds | best |"
        );
        let _ = writeln!(md, "|---|---|---|---|---|---|");
        for tuned in &tuning.per_epsilon {
            let bounds: Vec<String> = tuned
                .value_bounds
                .iter()
                .map(|(column, [lower, upper])| {
                    format!("{column} [{}, {}]", short(*lower), short(*upper))
                })
                .collect();
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} |",
                short(tuned.epsilon),
                percent(tuned.current),
                tuned.best.contribution.max_groups_per_unit,
                tuned.best.contribution.max_rows_per_group,
                if bounds.is_empty() {
                    "—".to_string()
                } else {
                    bounds.join(", ")
                },
                percent(tuned.best_objective)
            );
        }
    }
    let target = &tuning.target;
    let _ = writeln!(
        md,
        "\nTarget {}: {}; bounding alone leaves {}.",
        percent(target.target),
        target.epsilon_at_job_bounds.map_or_else(
            || "not reached by any ε up to 100 at the job's bounds".to_string(),
            |epsilon| format!("reached from ε ≈ {} at the job's bounds", short(epsilon))
        ),
        percent(target.bias_floor)
    );
}

fn groups_markdown(md: &mut String, query: &QueryReport, epsilons: &[f64]) {
    if query.group_release.is_empty() {
        return;
    }
    let mut order: Vec<usize> = (0..query.group_release.len()).collect();
    order.sort_by(|a, b| {
        query.group_release[*b]
            .units
            .total_cmp(&query.group_release[*a].units)
    });
    let listed = order.len().min(LISTED_GROUPS);
    let _ = writeln!(
        md,
        "\n### Release probability per group ({listed} largest of {}; all in report.json)\n",
        order.len()
    );
    let mut header = "| group | units | units after bounding |".to_string();
    let mut rule = "|---|---|---|".to_string();
    for epsilon in epsilons {
        let _ = write!(header, " ε = {} |", short(*epsilon));
        rule.push_str("---|");
    }
    let _ = writeln!(md, "{header}\n{rule}");
    for &index in order.iter().take(LISTED_GROUPS) {
        let group = &query.group_release[index];
        let key: Vec<String> = group
            .key
            .iter()
            .map(|value| value.clone().unwrap_or_else(|| "(null)".into()))
            .collect();
        let mut row = format!(
            "| {} | {} | {} |",
            if key.is_empty() {
                "(all rows)".to_string()
            } else {
                key.join(", ")
            },
            short(group.units),
            short(group.bounded_units)
        );
        for probability in &group.release_probability {
            let _ = write!(row, " {} |", short(*probability));
        }
        let _ = writeln!(md, "{row}");
    }
}
