//! `veil noise sample` and `veil noise calibrate`.

use std::io::{BufWriter, Write};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;
use veil_core::sample::{DiscreteGaussian, DiscreteLaplace};
use veil_core::{Delta, Epsilon, L1Sensitivity, L2Sensitivity, Rational, Rho, calibrate};

use crate::exit::{Classify, usage_error};
use crate::rng;

#[derive(Debug, Subcommand)]
pub(crate) enum NoiseCommand {
    /// Print samples of a noise distribution, one integer per line.
    ///
    /// Samples come from Veil's exact integer samplers (no floating point decides a
    /// sample), seeded from the operating system unless --seed is given.
    ///
    /// Examples:
    ///   veil noise sample --mechanism discrete-laplace --scale 5/2 --count 100000
    ///   veil noise sample --mechanism discrete-gaussian --sigma 3 --count 10 --seed 7
    #[command(verbatim_doc_comment)]
    Sample(SampleArgs),

    /// Print the smallest noise that meets a privacy target, as JSON.
    ///
    /// laplace and discrete-laplace: scale = sensitivity / epsilon.
    /// gaussian: σ of the analytic Gaussian mechanism (Balle and Wang 2018) for
    ///   (epsilon, delta), or σ = sensitivity / sqrt(2·rho) for --rho.
    /// discrete-gaussian: σ of the discrete Gaussian (Canonne, Kamath and Steinke 2020),
    ///   which is what Veil releases; the sensitivity must be an integer.
    ///
    /// Examples:
    ///   veil noise calibrate --mechanism gaussian --epsilon 1 --delta 1e-6 --sensitivity 1
    ///   veil noise calibrate --mechanism laplace --epsilon 0.5 --sensitivity 2
    #[command(verbatim_doc_comment)]
    Calibrate(CalibrateArgs),
}

/// A distribution to sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum SampleMechanism {
    /// P(x) ∝ exp(-|x| / scale) on the integers; needs --scale.
    DiscreteLaplace,
    /// P(x) ∝ exp(-x² / 2σ²) on the integers; needs --sigma or --sigma-squared.
    DiscreteGaussian,
}

#[derive(Debug, Args)]
#[command(allow_negative_numbers = true)]
pub(crate) struct SampleArgs {
    /// The distribution.
    #[arg(long)]
    pub(crate) mechanism: SampleMechanism,

    /// Scale of the discrete Laplace: an integer, decimal or fraction (3, 2.5, 5/2), read exactly.
    #[arg(long, value_parser = parse_rational)]
    pub(crate) scale: Option<Rational>,

    /// σ of the discrete Gaussian, read exactly like --scale.
    #[arg(long, value_parser = parse_rational, conflicts_with = "sigma_squared")]
    pub(crate) sigma: Option<Rational>,

    /// σ² of the discrete Gaussian, read exactly like --scale.
    #[arg(long, value_parser = parse_rational)]
    pub(crate) sigma_squared: Option<Rational>,

    /// How many samples to print.
    #[arg(long, default_value_t = 1)]
    pub(crate) count: u64,

    /// Seed the generator for a reproducible run. The output is then NOT private.
    #[arg(long)]
    pub(crate) seed: Option<u64>,
}

/// A mechanism to calibrate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum CalibrateMechanism {
    /// Laplace scale for pure ε-DP.
    Laplace,
    /// The discrete Laplace: the same scale, on integers.
    DiscreteLaplace,
    /// Continuous Gaussian σ for (ε, δ) or ρ-zCDP.
    Gaussian,
    /// Discrete Gaussian σ for (ε, δ) or ρ-zCDP, on integers.
    DiscreteGaussian,
}

#[derive(Debug, Args)]
#[command(allow_negative_numbers = true)]
pub(crate) struct CalibrateArgs {
    /// The mechanism.
    #[arg(long)]
    pub(crate) mechanism: CalibrateMechanism,

    /// Target ε (finite, > 0).
    #[arg(long, required_unless_present = "rho")]
    pub(crate) epsilon: Option<f64>,

    /// Target δ in (0, 1), for the Gaussian mechanisms.
    #[arg(long)]
    pub(crate) delta: Option<f64>,

    /// Target ρ (zCDP) for the Gaussian mechanisms, instead of --epsilon and --delta.
    #[arg(long, conflicts_with_all = ["epsilon", "delta"])]
    pub(crate) rho: Option<f64>,

    /// How much one privacy unit can change the query's answer (L1 for Laplace, L2 for Gaussian).
    #[arg(long, default_value_t = 1.0)]
    pub(crate) sensitivity: f64,
}

fn parse_rational(text: &str) -> Result<Rational, String> {
    text.parse::<Rational>().map_err(|error| error.to_string())
}

pub(crate) fn run(command: NoiseCommand) -> anyhow::Result<ExitCode> {
    match command {
        NoiseCommand::Sample(args) => sample(&args),
        NoiseCommand::Calibrate(args) => calibrate(&args),
    }
}

enum Sampler {
    Laplace(DiscreteLaplace),
    Gaussian(DiscreteGaussian),
}

fn sampler(args: &SampleArgs) -> anyhow::Result<Sampler> {
    match args.mechanism {
        SampleMechanism::DiscreteLaplace => {
            if args.sigma.is_some() || args.sigma_squared.is_some() {
                return Err(usage_error(
                    "--sigma and --sigma-squared are for discrete-gaussian; discrete-laplace takes --scale",
                ));
            }
            let scale = args
                .scale
                .ok_or_else(|| usage_error("discrete-laplace needs --scale, e.g. --scale 5/2"))?;
            Ok(Sampler::Laplace(
                DiscreteLaplace::new(scale).usage().context("--scale")?,
            ))
        }
        SampleMechanism::DiscreteGaussian => {
            if args.scale.is_some() {
                return Err(usage_error(
                    "--scale is for discrete-laplace; discrete-gaussian takes --sigma or --sigma-squared",
                ));
            }
            let sigma_squared = match (args.sigma, args.sigma_squared) {
                (Some(sigma), None) => square(sigma)?,
                (None, Some(sigma_squared)) => sigma_squared,
                _ => {
                    return Err(usage_error(
                        "discrete-gaussian needs --sigma (e.g. --sigma 3) or --sigma-squared",
                    ));
                }
            };
            Ok(Sampler::Gaussian(
                DiscreteGaussian::new(sigma_squared)
                    .usage()
                    .context("--sigma")?,
            ))
        }
    }
}

fn square(value: Rational) -> anyhow::Result<Rational> {
    let numer = value.numer().checked_mul(value.numer());
    let denom = value.denom().checked_mul(value.denom());
    match (numer, denom) {
        (Some(numer), Some(denom)) => Rational::new(numer, denom).usage(),
        _ => Err(usage_error(format!(
            "--sigma {value} has too many digits to square exactly; give --sigma-squared"
        ))),
    }
}

fn sample(args: &SampleArgs) -> anyhow::Result<ExitCode> {
    let sampler = sampler(args)?;
    let mut rng = rng::from_optional_seed(args.seed)?;
    let stdout = std::io::stdout();
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    for _ in 0..args.count {
        let value = match &sampler {
            Sampler::Laplace(sampler) => sampler.sample(&mut rng),
            Sampler::Gaussian(sampler) => sampler.sample(&mut rng),
        };
        if let Err(error) = writeln!(out, "{value}") {
            if error.kind() == std::io::ErrorKind::BrokenPipe {
                return Ok(ExitCode::SUCCESS);
            }
            return Err(error).context("writing samples to stdout");
        }
    }
    match out.flush() {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(error).context("writing samples to stdout")
        }
        _ => Ok(ExitCode::SUCCESS),
    }
}

fn calibrate(args: &CalibrateArgs) -> anyhow::Result<ExitCode> {
    let output = match args.mechanism {
        CalibrateMechanism::Laplace | CalibrateMechanism::DiscreteLaplace => {
            if args.delta.is_some() || args.rho.is_some() {
                return Err(usage_error(
                    "the Laplace mechanism is pure ε-DP: give --epsilon only",
                ));
            }
            let epsilon = epsilon(args)?;
            let sensitivity = L1Sensitivity::new(args.sensitivity)
                .usage()
                .context("--sensitivity")?;
            let scale = calibrate::laplace_scale(sensitivity, epsilon)
                .usage()
                .context("--sensitivity")?;
            // The discrete mechanism's scale is exact; print the value Veil would use.
            let scale = if args.mechanism == CalibrateMechanism::DiscreteLaplace {
                integer_sensitivity(args.sensitivity)?;
                veil_core::mechanism::LaplaceMechanism::new(sensitivity, epsilon)
                    .usage()?
                    .scale()
                    .to_f64_up()
            } else {
                scale
            };
            json!({
                "mechanism": mechanism_name(args.mechanism),
                "scale": scale,
                "epsilon": epsilon.get(),
                "sensitivity": sensitivity.get(),
            })
        }
        CalibrateMechanism::Gaussian | CalibrateMechanism::DiscreteGaussian => {
            let sensitivity = L2Sensitivity::new(args.sensitivity)
                .usage()
                .context("--sensitivity")?;
            let discrete = args.mechanism == CalibrateMechanism::DiscreteGaussian;
            if discrete {
                integer_sensitivity(args.sensitivity)?;
            }
            if let Some(rho) = args.rho {
                let rho = Rho::new(rho).usage().context("--rho")?;
                let sigma = calibrate::zcdp_sigma(sensitivity, rho)
                    .usage()
                    .context("--sensitivity")?;
                json!({
                    "mechanism": mechanism_name(args.mechanism),
                    "sigma": sigma,
                    "rho": rho.get(),
                    "sensitivity": sensitivity.get(),
                })
            } else {
                let epsilon = epsilon(args)?;
                let delta = args.delta.ok_or_else(|| {
                    usage_error("the Gaussian mechanism needs --delta (or --rho for zCDP)")
                })?;
                let delta = Delta::new(delta).usage().context("--delta")?;
                let sigma = if discrete {
                    calibrate::discrete_gaussian_sigma(sensitivity, epsilon, delta)
                } else {
                    calibrate::analytic_gaussian_sigma(sensitivity, epsilon, delta)
                };
                let sigma = sigma.usage().context("--delta")?;
                json!({
                    "mechanism": mechanism_name(args.mechanism),
                    "sigma": sigma,
                    "epsilon": epsilon.get(),
                    "delta": delta.get(),
                    "sensitivity": sensitivity.get(),
                })
            }
        }
    };
    outln!("{output}");
    Ok(ExitCode::SUCCESS)
}

fn epsilon(args: &CalibrateArgs) -> anyhow::Result<Epsilon> {
    let value = args
        .epsilon
        .ok_or_else(|| usage_error("--epsilon is required"))?;
    Epsilon::new(value).usage().context("--epsilon")
}

fn integer_sensitivity(value: f64) -> anyhow::Result<()> {
    if L1Sensitivity::new(value)
        .ok()
        .and_then(L1Sensitivity::as_integer)
        .is_some_and(|steps| steps > 0)
    {
        Ok(())
    } else {
        Err(usage_error(format!(
            "--sensitivity {value}: discrete mechanisms need a positive integer (measure it in grid steps)"
        )))
    }
}

fn mechanism_name(mechanism: CalibrateMechanism) -> &'static str {
    match mechanism {
        CalibrateMechanism::Laplace => "laplace",
        CalibrateMechanism::DiscreteLaplace => "discrete-laplace",
        CalibrateMechanism::Gaussian => "gaussian",
        CalibrateMechanism::DiscreteGaussian => "discrete-gaussian",
    }
}
