//! `veil accountant compose` and `veil accountant calibrate`.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;
use veil_accountant::{Component, Method, NoiseFamily, compose, smallest_noise};
use veil_core::{Delta, Epsilon};

use crate::exit::{Classify, usage_error};

#[derive(Debug, Subcommand)]
pub(crate) enum AccountantCommand {
    /// Print the ε of running mechanisms together, at a δ, as JSON.
    ///
    /// Each SPEC is NAME:KEY=VALUE,... with an optional times=N:
    ///   gaussian:sigma=2,sensitivity=1,times=100
    ///   discrete-gaussian:sigma=8,sensitivity=1
    ///   laplace:epsilon=0.1,times=10   (or laplace:scale=4,sensitivity=2)
    ///   discrete-laplace:scale=10,sensitivity=3
    ///   randomized-response:epsilon=1
    ///   subsampled-gaussian:sigma=1.1,rate=0.01,times=10000
    ///   pure:epsilon=1   approx:epsilon=1,delta=1e-8   zcdp:rho=0.1
    ///
    /// Every method returns an upper bound on the true ε; best is the smallest of them.
    ///
    /// Examples:
    ///   veil accountant compose --delta 1e-6 gaussian:sigma=2,sensitivity=1,times=100
    ///   veil accountant compose --delta 1e-6 --method rdp \
    ///       subsampled-gaussian:sigma=1.1,rate=0.01,times=10000
    #[command(verbatim_doc_comment)]
    Compose(ComposeArgs),

    /// Print the smallest noise that keeps `--times` runs within (ε, δ), as JSON.
    ///
    /// gaussian and subsampled-gaussian: σ over the sensitivity (exact for gaussian:
    ///   √times times the analytic Gaussian's σ).
    /// laplace: the scale over the sensitivity.
    /// discrete-gaussian and discrete-laplace: σ or scale in steps, for an integer
    ///   --sensitivity in steps.
    ///
    /// Examples:
    ///   veil accountant calibrate --epsilon 1 --delta 1e-6 --times 100 --mechanism gaussian
    ///   veil accountant calibrate --epsilon 1 --delta 1e-6 --times 12 \
    ///       --mechanism discrete-laplace --sensitivity 3
    #[command(verbatim_doc_comment)]
    Calibrate(CalibrateArgs),
}

/// A composition method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum MethodArg {
    /// The smallest of the bounds below that apply.
    Best,
    /// Privacy loss distributions (tight; Doroshenko et al. 2022).
    Pld,
    /// Rényi DP with the improved conversion.
    Rdp,
    /// zCDP with Canonne–Kamath–Steinke's conversion.
    Zcdp,
    /// Kairouz–Oh–Viswanath optimal composition (identical pure-DP mechanisms).
    Kov,
    /// Basic composition: ε and δ add up.
    Basic,
}

impl MethodArg {
    fn method(self) -> Method {
        match self {
            Self::Best => Method::Best,
            Self::Pld => Method::Pld,
            Self::Rdp => Method::Rdp,
            Self::Zcdp => Method::Zcdp,
            Self::Kov => Method::Kov,
            Self::Basic => Method::Basic,
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct ComposeArgs {
    /// The δ at which to report ε, in [0, 1) (0 only for pure-DP mechanisms).
    #[arg(long)]
    pub(crate) delta: f64,

    /// How to compose.
    #[arg(long, value_enum, default_value_t = MethodArg::Best)]
    pub(crate) method: MethodArg,

    /// Mechanisms, e.g. gaussian:sigma=2,sensitivity=1,times=100.
    #[arg(required = true, value_name = "SPEC")]
    pub(crate) specs: Vec<String>,
}

/// A mechanism family to calibrate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum CalibrateMechanism {
    /// σ of the Gaussian.
    Gaussian,
    /// Scale of the Laplace.
    Laplace,
    /// σ of the discrete Gaussian, in steps.
    DiscreteGaussian,
    /// Scale of the discrete Laplace, in steps.
    DiscreteLaplace,
    /// σ of the Poisson-subsampled Gaussian; needs --rate.
    SubsampledGaussian,
}

#[derive(Debug, Args)]
pub(crate) struct CalibrateArgs {
    /// Target ε after all runs (finite, > 0).
    #[arg(long)]
    pub(crate) epsilon: f64,

    /// Target δ in [0, 1) (> 0 for the Gaussians).
    #[arg(long, default_value_t = 0.0)]
    pub(crate) delta: f64,

    /// How many times the mechanism runs on the same data.
    #[arg(long, default_value_t = 1)]
    pub(crate) times: u64,

    /// The mechanism.
    #[arg(long)]
    pub(crate) mechanism: CalibrateMechanism,

    /// The query's sensitivity (an integer number of steps for the discrete mechanisms).
    #[arg(long, default_value_t = 1.0)]
    pub(crate) sensitivity: f64,

    /// The sampling rate in (0, 1], for subsampled-gaussian.
    #[arg(long)]
    pub(crate) rate: Option<f64>,
}

pub(crate) fn run(command: AccountantCommand) -> anyhow::Result<ExitCode> {
    match command {
        AccountantCommand::Compose(args) => compose_command(&args),
        AccountantCommand::Calibrate(args) => calibrate_command(&args),
    }
}

fn compose_command(args: &ComposeArgs) -> anyhow::Result<ExitCode> {
    let delta = Delta::new(args.delta).usage().context("--delta")?;
    let components = args
        .specs
        .iter()
        .map(|spec| spec.parse::<Component>().usage())
        .collect::<anyhow::Result<Vec<_>>>()?;
    let method = args.method.method();
    let composition = compose(&components, delta, method).usage()?;
    let mut output = json!({
        "epsilon": composition.epsilon.get(),
        "delta": composition.delta.get(),
        "method": method.name(),
    });
    if method == Method::Best {
        output["tightest"] = json!(composition.method.name());
    }
    outln!("{output}");
    Ok(ExitCode::SUCCESS)
}

fn calibrate_command(args: &CalibrateArgs) -> anyhow::Result<ExitCode> {
    let epsilon = Epsilon::new(args.epsilon).usage().context("--epsilon")?;
    let delta = Delta::new(args.delta).usage().context("--delta")?;
    if args.rate.is_some() && args.mechanism != CalibrateMechanism::SubsampledGaussian {
        return Err(usage_error(
            "--rate is only for --mechanism subsampled-gaussian",
        ));
    }
    let steps = || -> anyhow::Result<u64> {
        let value = args.sensitivity;
        if value >= 1.0 && value.fract() == 0.0 && value < 2f64.powi(53) {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let steps = value as u64;
            Ok(steps)
        } else {
            Err(usage_error(format!(
                "--sensitivity {}: discrete mechanisms need a positive integer (measure it in grid steps)",
                veil_core::RoundTrip(value)
            )))
        }
    };
    if !(args.sensitivity.is_finite() && args.sensitivity > 0.0) {
        return Err(usage_error(format!(
            "--sensitivity {} must be finite and > 0",
            veil_core::RoundTrip(args.sensitivity)
        )));
    }
    let (family, name, per_sensitivity) = match args.mechanism {
        CalibrateMechanism::Gaussian => (NoiseFamily::Gaussian, "sigma", true),
        CalibrateMechanism::Laplace => (NoiseFamily::Laplace, "scale", true),
        CalibrateMechanism::DiscreteGaussian => (
            NoiseFamily::DiscreteGaussian {
                sensitivity: steps()?,
            },
            "sigma",
            false,
        ),
        CalibrateMechanism::DiscreteLaplace => (
            NoiseFamily::DiscreteLaplace {
                sensitivity: steps()?,
            },
            "scale",
            false,
        ),
        CalibrateMechanism::SubsampledGaussian => (
            NoiseFamily::SubsampledGaussian {
                sampling_rate: args.rate.ok_or_else(|| {
                    usage_error("subsampled-gaussian needs --rate, e.g. --rate 0.01")
                })?,
            },
            "sigma",
            true,
        ),
    };
    let noise = smallest_noise(family, epsilon, delta, args.times).usage()?;
    // Ratios are per unit of sensitivity; scale them up, rounding toward more noise.
    let noise = if per_sensitivity {
        (noise * args.sensitivity).next_up()
    } else {
        noise
    };
    let mut output = json!({
        "mechanism": args.mechanism.to_possible_value().map(|v| v.get_name().to_string()),
        "epsilon": epsilon.get(),
        "delta": delta.get(),
        "times": args.times,
        "sensitivity": args.sensitivity,
    });
    output[name] = json!(noise);
    if let Some(rate) = args.rate {
        output["rate"] = json!(rate);
    }
    outln!("{output}");
    Ok(ExitCode::SUCCESS)
}
