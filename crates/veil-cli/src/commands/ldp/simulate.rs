//! `veil ldp simulate`: synthetic clients randomizing known values, to see a protocol's
//! error before any client ships.

use std::process::ExitCode;

use anyhow::{Context, bail};

use veil_ldp::LdpError;

use crate::exit::Classify;
use crate::guard::{Input, refuse_overwrite};
use crate::rng;

use super::{SimulateArgs, Skipped, columns, load_protocol};

pub(super) fn simulate(args: &SimulateArgs) -> anyhow::Result<ExitCode> {
    refuse_overwrite(
        &[("--output", &args.output)],
        &[
            Input::new("--protocol", &args.protocol),
            Input::new("--input", &args.input),
        ],
    )?;
    let built = load_protocol(&args.protocol)?;
    let mut rng = rng::from_optional_seed(args.seed)?;
    let mut reader = columns::open_column(&args.input, &args.column)?;
    let mut writer = columns::ReportWriter::create(&args.output, &built)?;
    let (mut written, mut clamped) = (0_u64, 0_u64);
    let mut skipped = Skipped::default();
    let mut row = 0_u64;
    let numeric = built.oracle().name().is_numeric();
    while let Some(batch) = reader.next_batch()? {
        for index in 0..batch.len() {
            let value = columns::cell(&batch, index);
            row += 1;
            let outcome = match value {
                columns::Value::Null => {
                    if args.strict {
                        bail!("row {row} of column {:?} is null (--strict)", args.column);
                    }
                    skipped.nulls += 1;
                    continue;
                }
                columns::Value::Text(text) => built.randomize_value(text, &mut rng),
                #[allow(clippy::cast_precision_loss)]
                columns::Value::Integer(integer) if numeric => built
                    .randomize_number(integer as f64, &mut rng)
                    .map(|outcome| {
                        clamped += u64::from(outcome.clamped);
                        outcome.report
                    }),
                columns::Value::Integer(integer) => match u32::try_from(integer) {
                    Ok(index) => built.randomize_index(index, &mut rng),
                    Err(_) => Err(LdpError::OutOfDomain {
                        index: u64::try_from(integer).unwrap_or(u64::MAX),
                        size: u64::from(built.domain_size().unwrap_or(0)),
                    }),
                },
                columns::Value::Number(number) => {
                    built.randomize_number(number, &mut rng).map(|numeric| {
                        clamped += u64::from(numeric.clamped);
                        numeric.report
                    })
                }
            };
            match outcome {
                Ok(report) => {
                    writer.push(&report)?;
                    written += 1;
                }
                Err(
                    error @ (LdpError::UnknownValue { .. }
                    | LdpError::OutOfDomain { .. }
                    | LdpError::NotANumber),
                ) => {
                    if args.strict {
                        return Err(error).with_context(|| {
                            format!("row {row} of column {:?} (--strict)", args.column)
                        });
                    }
                    skipped.out_of_domain += 1;
                }
                Err(error) => {
                    return Err(error).usage().with_context(|| {
                        format!(
                            "column {:?} does not fit protocol {}",
                            args.column,
                            args.protocol.display()
                        )
                    });
                }
            }
        }
    }
    writer.finish()?;
    errln!(
        "randomized {written} of {row} rows into {} (oracle {}, epsilon {} per report); skipped {} null and {} outside the domain; clamped {clamped} into the range",
        args.output.display(),
        built.oracle().name(),
        built.epsilon(),
        skipped.nulls,
        skipped.out_of_domain,
    );
    Ok(ExitCode::SUCCESS)
}
