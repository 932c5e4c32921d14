//! The keyed row hash that decides which rows and groups survive bounding.
//!
//! It is Apache Spark's `xxhash64(key, col1, col2, ...)`, computed here bit for bit: XXH64
//! with seed 42 over the first value, each result seeding the next value's hash, nulls
//! skipped, and values encoded as Spark encodes them (integers of up to 32 bits as 4
//! bytes, 64-bit integers and timestamps in microseconds as 8, floating point as its bit
//! pattern with -0.0 folded into 0.0 and NaN canonical, strings as UTF-8, booleans as
//! 0 or 1). The same job on the same data therefore keeps the same rows whether Polars
//! or Spark executes the plan. The result is a signed 64-bit integer, ordered as Spark
//! orders it.
//!
//! XXH64 is not a cryptographic hash, and it need not be one: bounding is private whatever
//! rows it keeps, as long as the choice for one unit depends only on that unit's rows and
//! the key. The secret per-run key keeps the choice unpredictable, so it behaves as a
//! uniform random choice for accuracy.

use polars::prelude::*;

const PRIME_1: u64 = 0x9E37_79B1_85EB_CA87;
const PRIME_2: u64 = 0xC2B2_AE3D_27D4_EB4F;
const PRIME_3: u64 = 0x1656_67B1_9E37_79F9;
const PRIME_4: u64 = 0x85EB_CA77_C2B2_AE63;
const PRIME_5: u64 = 0x27D4_EB2F_1656_67C5;

/// Spark's seed for `xxhash64`.
pub(crate) const SPARK_SEED: u64 = 42;

fn round(accumulator: u64, input: u64) -> u64 {
    accumulator
        .wrapping_add(input.wrapping_mul(PRIME_2))
        .rotate_left(31)
        .wrapping_mul(PRIME_1)
}

fn merge(hash: u64, value: u64) -> u64 {
    (hash ^ round(0, value))
        .wrapping_mul(PRIME_1)
        .wrapping_add(PRIME_4)
}

fn avalanche(mut hash: u64) -> u64 {
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(PRIME_2);
    hash ^= hash >> 29;
    hash = hash.wrapping_mul(PRIME_3);
    hash ^ (hash >> 32)
}

fn read_u64(bytes: &[u8]) -> u64 {
    u64::from_le_bytes(bytes[..8].try_into().expect("eight bytes"))
}

fn read_u32(bytes: &[u8]) -> u64 {
    u64::from(u32::from_le_bytes(
        bytes[..4].try_into().expect("four bytes"),
    ))
}

/// XXH64 of `input` with `seed`.
pub(crate) fn xxh64(input: &[u8], seed: u64) -> u64 {
    let mut rest = input;
    let mut hash = if input.len() >= 32 {
        let mut lanes = [
            seed.wrapping_add(PRIME_1).wrapping_add(PRIME_2),
            seed.wrapping_add(PRIME_2),
            seed,
            seed.wrapping_sub(PRIME_1),
        ];
        while rest.len() >= 32 {
            for (lane, chunk) in lanes.iter_mut().zip(rest.chunks_exact(8)) {
                *lane = round(*lane, read_u64(chunk));
            }
            rest = &rest[32..];
        }
        let mut hash = lanes[0]
            .rotate_left(1)
            .wrapping_add(lanes[1].rotate_left(7))
            .wrapping_add(lanes[2].rotate_left(12))
            .wrapping_add(lanes[3].rotate_left(18));
        for lane in lanes {
            hash = merge(hash, lane);
        }
        hash
    } else {
        seed.wrapping_add(PRIME_5)
    };
    hash = hash.wrapping_add(input.len() as u64);
    while rest.len() >= 8 {
        hash ^= round(0, read_u64(rest));
        hash = hash
            .rotate_left(27)
            .wrapping_mul(PRIME_1)
            .wrapping_add(PRIME_4);
        rest = &rest[8..];
    }
    if rest.len() >= 4 {
        hash ^= read_u32(rest).wrapping_mul(PRIME_1);
        hash = hash
            .rotate_left(23)
            .wrapping_mul(PRIME_2)
            .wrapping_add(PRIME_3);
        rest = &rest[4..];
    }
    for &byte in rest {
        hash ^= u64::from(byte).wrapping_mul(PRIME_5);
        hash = hash.rotate_left(11).wrapping_mul(PRIME_1);
    }
    avalanche(hash)
}

/// Spark's `hashInt`: XXH64 of the 4 little-endian bytes of `value`.
pub(crate) fn hash_int(value: i32, seed: u64) -> u64 {
    xxh64(&value.to_le_bytes(), seed)
}

/// Spark's `hashLong`: XXH64 of the 8 little-endian bytes of `value`.
pub(crate) fn hash_long(value: i64, seed: u64) -> u64 {
    xxh64(&value.to_le_bytes(), seed)
}

fn hash_double(value: f64, seed: u64) -> u64 {
    let bits = if value == 0.0 {
        0
    } else if value.is_nan() {
        0x7ff8_0000_0000_0000
    } else {
        value.to_bits()
    };
    hash_long(i64::from_ne_bytes(bits.to_ne_bytes()), seed)
}

fn hash_float(value: f32, seed: u64) -> u64 {
    let bits = if value == 0.0 {
        0
    } else if value.is_nan() {
        0x7fc0_0000
    } else {
        value.to_bits()
    };
    hash_int(i32::from_ne_bytes(bits.to_ne_bytes()), seed)
}

/// Folds one column into the running hashes, as Spark's `xxhash64` does for one argument.
fn fold_column(hashes: &mut [u64], column: &Column) -> PolarsResult<()> {
    let series = column.as_materialized_series();
    macro_rules! fold {
        ($values:expr, $hash:expr) => {
            for (hash, value) in hashes.iter_mut().zip($values.iter()) {
                if let Some(value) = value {
                    *hash = $hash(value, *hash);
                }
            }
        };
    }
    match series.dtype() {
        DataType::Boolean => fold!(series.bool()?, |v: bool, seed| hash_int(i32::from(v), seed)),
        DataType::Int8 => fold!(series.i8()?, |v: i8, seed| hash_int(i32::from(v), seed)),
        DataType::Int16 => fold!(series.i16()?, |v: i16, seed| hash_int(i32::from(v), seed)),
        DataType::Int32 => fold!(series.i32()?, hash_int),
        DataType::UInt8 => fold!(series.u8()?, |v: u8, seed| hash_int(i32::from(v), seed)),
        DataType::UInt16 => fold!(series.u16()?, |v: u16, seed| hash_int(i32::from(v), seed)),
        DataType::UInt32 => fold!(series.u32()?, |v: u32, seed| hash_long(i64::from(v), seed)),
        DataType::Int64 => fold!(series.i64()?, hash_long),
        DataType::UInt64 => {
            fold!(series.u64()?, |v: u64, seed| hash_long(
                i64::from_ne_bytes(v.to_ne_bytes()),
                seed
            ))
        }
        DataType::Float32 => fold!(series.f32()?, hash_float),
        DataType::Float64 => fold!(series.f64()?, hash_double),
        DataType::String => fold!(series.str()?, |v: &str, seed| xxh64(v.as_bytes(), seed)),
        DataType::Date => {
            let days = series.cast(&DataType::Int32)?;
            fold!(days.i32()?, hash_int);
        }
        DataType::Datetime(unit, _) => {
            // Spark keeps timestamps in microseconds.
            let multiplier: i64 = match unit {
                TimeUnit::Milliseconds => 1_000,
                TimeUnit::Microseconds | TimeUnit::Nanoseconds => 1,
            };
            let raw = series.cast(&DataType::Int64)?;
            let nanos = matches!(unit, TimeUnit::Nanoseconds);
            fold!(raw.i64()?, |v: i64, seed| {
                let micros = if nanos {
                    v.div_euclid(1_000)
                } else {
                    v.saturating_mul(multiplier)
                };
                hash_long(micros, seed)
            });
        }
        _ => {
            // Other types (categoricals, decimals) hash their text form, as Spark hashes
            // a string column read from the same file.
            let text = series.cast(&DataType::String)?;
            fold!(text.str()?, |v: &str, seed| xxh64(v.as_bytes(), seed));
        }
    }
    Ok(())
}

/// An expression computing `xxhash64(key, columns...)` per row, as an `Int64`.
pub(crate) fn keyed_hash(columns: &[String], key: u64) -> Expr {
    let inputs: Vec<Expr> = columns.iter().map(|name| col(name.as_str())).collect();
    let seed = hash_long(i64::from_ne_bytes(key.to_ne_bytes()), SPARK_SEED);
    map_multiple(
        move |columns: &mut [Column]| {
            let height = columns.first().map_or(0, Column::len);
            let mut hashes = vec![seed; height];
            for column in columns.iter() {
                fold_column(&mut hashes, column)?;
            }
            let signed: Vec<i64> = hashes
                .into_iter()
                .map(|hash| i64::from_ne_bytes(hash.to_ne_bytes()))
                .collect();
            Ok(Column::new(PlSmallStr::from_static("hash"), signed))
        },
        inputs,
        |_schema: &Schema, _fields: &[Field]| {
            Ok(Field::new(PlSmallStr::from_static("hash"), DataType::Int64))
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xxh64_matches_the_reference_vectors() {
        // Reference values of the XXH64 specification (xxhash's sanity checks).
        assert_eq!(xxh64(b"", 0), 0xEF46_DB37_51D8_E999);
        assert_eq!(xxh64(b"a", 0), 0xD24E_C4F1_A98C_6E5B);
        assert_eq!(xxh64(b"abc", 0), 0x44BC_2CF5_AD77_0999);
        assert_eq!(
            xxh64(b"Nobody inspects the spammish repetition", 0),
            0xFBCE_A83C_8A37_8BF1
        );
        assert_eq!(xxh64(b"xxhash", 20141025), 0xB559_B98D_844E_0635);
    }

    #[test]
    fn spark_encodings() {
        // Spark: SELECT xxhash64(0), xxhash64(1L), xxhash64('') with seed 42.
        assert_eq!(hash_int(0, SPARK_SEED), xxh64(&[0, 0, 0, 0], 42));
        assert_eq!(
            hash_long(1, SPARK_SEED),
            xxh64(&[1, 0, 0, 0, 0, 0, 0, 0], 42)
        );
        assert_eq!(hash_double(-0.0, 7), hash_double(0.0, 7));
        assert_eq!(hash_double(f64::NAN, 7), hash_double(-f64::NAN, 7));
    }
}
