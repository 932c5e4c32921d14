//! `veil purposes`: the purposes registry in plain language, for the people it is about.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use veil_core::Compact;

use crate::config::purposes::{self, PurposeEntry, Registry};
use crate::exit::Classify;

/// Summarize every purpose in plain language: what data, why, how long, how private, how
/// to withdraw
///
/// Prints text, or writes a self-contained HTML page (no external resources) with --html.
///
/// Examples:
///   veil purposes --purposes configs/purposes.toml
///   veil purposes --purposes configs/purposes.toml --lang fr --html out/purposes.html
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct PurposesArgs {
    /// The purposes registry.
    #[arg(long)]
    purposes: PathBuf,

    /// Write an HTML page here instead of printing text.
    #[arg(long)]
    html: Option<PathBuf>,

    /// Language of the descriptions (a code used in the registry, e.g. fr); English otherwise.
    #[arg(long, default_value = "en")]
    lang: String,
}

pub(crate) fn run(args: &PurposesArgs) -> anyhow::Result<ExitCode> {
    let registry = purposes::load(&args.purposes).usage()?;
    let missing: Vec<&str> = registry
        .purposes
        .iter()
        .filter(|(_, entry)| args.lang != "en" && !entry.descriptions.contains_key(&args.lang))
        .map(|(name, _)| name.as_str())
        .collect();
    if !missing.is_empty() {
        errln!(
            "note: no {:?} description for purpose {}: shown in English (or the one language given)",
            args.lang,
            missing.join(", ")
        );
    }
    match &args.html {
        Some(path) => {
            if let Some(parent) = path
                .parent()
                .filter(|parent| !parent.as_os_str().is_empty())
            {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("creating {}", parent.display()))?;
            }
            std::fs::write(path, html(&registry, &args.lang))
                .with_context(|| format!("writing {}", path.display()))?;
            errln!("wrote {}", path.display());
        }
        None => out!("{}", text(&registry, &args.lang)),
    }
    Ok(ExitCode::SUCCESS)
}

/// ε in words: how much one person's data can change what anyone sees.
pub(crate) fn epsilon_in_words(epsilon: f64) -> String {
    let strength = if epsilon <= 1.0 {
        "strong protection"
    } else if epsilon <= 4.0 {
        "moderate protection"
    } else if epsilon <= 10.0 {
        "weak protection"
    } else {
        "little protection"
    };
    format!(
        "{strength}: whatever is published is at most {} times more (or less) likely with your data than without it",
        Compact(epsilon.exp())
    )
}

fn duration_in_words(milliseconds: i64) -> String {
    veil_engine::plan::describe_duration(milliseconds)
}

struct Summary {
    name: String,
    what_for: String,
    data: String,
    kept_for: String,
    privacy: String,
    withdraw: String,
}

fn summarize(name: &str, entry: &PurposeEntry, language: &str) -> Summary {
    let privacy = match entry.budget {
        None => "no privacy budget declared: this purpose cannot publish results".to_string(),
        Some(budget) => {
            let period = budget.period_ms.map_or_else(
                || " in total".to_string(),
                |period| format!(" every {}", duration_in_words(period)),
            );
            match (budget.epsilon, budget.rho) {
                (Some(epsilon), _) => {
                    let delta = budget
                        .delta
                        .filter(|delta| *delta > 0.0)
                        .map_or_else(String::new, |delta| format!(", δ = {}", Compact(delta)));
                    format!(
                        "ε = {}{delta}{period}; {}",
                        Compact(epsilon),
                        epsilon_in_words(epsilon)
                    )
                }
                (None, Some(rho)) => format!("ρ = {} (zCDP){period}", Compact(rho)),
                (None, None) => String::new(),
            }
        }
    };
    Summary {
        name: name.to_string(),
        what_for: entry.description(language),
        data: if entry.columns.is_empty() { "only whether you take part".to_string() } else { entry.columns.join(", ") },
        kept_for: entry.retention_ms.map_or_else(|| "no limit declared".to_string(), duration_in_words),
        privacy,
        withdraw: entry.withdraw.clone().unwrap_or_else(|| {
            "You can withdraw your consent at any time; your data is then left out of every later result.".to_string()
        }),
    }
}

fn text(registry: &Registry, language: &str) -> String {
    let mut out = String::new();
    for (name, entry) in &registry.purposes {
        let summary = summarize(name, entry, language);
        let _ = writeln!(out, "{}", summary.name);
        let _ = writeln!(out, "  what for        {}", summary.what_for);
        let _ = writeln!(out, "  data used       {}", summary.data);
        let _ = writeln!(out, "  kept for        {}", summary.kept_for);
        let _ = writeln!(out, "  privacy         {}", summary.privacy);
        let _ = writeln!(out, "  how to withdraw {}", summary.withdraw);
        out.push('\n');
    }
    out
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn html(registry: &Registry, language: &str) -> String {
    let mut body = String::new();
    for (name, entry) in &registry.purposes {
        let summary = summarize(name, entry, language);
        let _ = writeln!(
            body,
            "<section><h2>{}</h2><dl><dt>What for</dt><dd>{}</dd><dt>Data used</dt><dd>{}</dd><dt>Kept for</dt><dd>{}</dd>\
             <dt>Privacy</dt><dd>{}</dd><dt>How to withdraw</dt><dd>{}</dd></dl></section>",
            escape(&summary.name),
            escape(&summary.what_for),
            escape(&summary.data),
            escape(&summary.kept_for),
            escape(&summary.privacy),
            escape(&summary.withdraw)
        );
    }
    format!(
        "<!DOCTYPE html>\n<html lang=\"{}\"><head><meta charset=\"utf-8\"><title>How your data is used</title>\
         <style>body{{font-family:sans-serif;max-width:48rem;margin:2rem auto;padding:0 1rem;line-height:1.5}}\
         section{{border-top:1px solid #ccc;padding:.5rem 0}}dt{{font-weight:bold;margin-top:.5rem}}dd{{margin-left:1rem}}</style>\
         </head><body><h1>How your data is used</h1>\n<p>Each purpose below uses only the data listed, only for as long as stated, \
         and only if you agreed. Results are published with differential privacy: noise is added so that no result reveals \
         whether any one person took part.</p>\n{body}</body></html>\n",
        escape(language)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::purposes::PurposeBudget;

    #[test]
    fn extreme_budgets_are_summarized_in_a_few_characters() {
        // ε = 700 printed e^ε as 305 digits, ε = 1e308 itself as 309.
        assert!(
            epsilon_in_words(700.0).len() < 150,
            "{}",
            epsilon_in_words(700.0)
        );
        assert!(epsilon_in_words(700.0).contains("1.014e304 times"));
        let entry = PurposeEntry {
            descriptions: std::collections::BTreeMap::new(),
            columns: Vec::new(),
            retention_ms: None,
            budget: Some(PurposeBudget {
                epsilon: Some(1e308),
                delta: Some(2.2e-308),
                rho: None,
                period_ms: None,
            }),
            withdraw: None,
        };
        let summary = summarize("research", &entry, "en");
        assert!(
            summary
                .privacy
                .starts_with("ε = 1e308, δ = 2.2e-308 in total"),
            "{}",
            summary.privacy
        );
        assert!(summary.privacy.len() < 200, "{}", summary.privacy);
    }
}
