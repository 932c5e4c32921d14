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
//! Spark's `xxhash64` skips null arguments, so `(null, "x")` and `("x", null)` would hash
//! alike and rows that differ only in where their nulls are would tie. Veil's keyed hash
//! therefore appends one more argument per 62 columns: a `BIGINT` whose bit `j` says that
//! column `j` is null ([`null_masks`]; Spark SQL computes the same sum of `IF(c IS NULL,
//! 2^j, 0)`). Distinct rows then hash alike only by a collision of XXH64 itself.
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
pub(crate) fn fold_column(hashes: &mut [u64], column: &Column) -> PolarsResult<()> {
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

/// How many columns one null mask covers (its bits 0..62, so the mask stays a positive
/// `BIGINT`).
pub const NULL_MASK_COLUMNS: usize = 62;

/// Per row, the null masks of `columns`: one per [`NULL_MASK_COLUMNS`] columns, bit `j` set
/// where the chunk's column `j` is null.
fn null_masks(columns: &[Column], height: usize) -> Vec<Vec<i64>> {
    columns
        .chunks(NULL_MASK_COLUMNS)
        .map(|chunk| {
            let mut masks = vec![0_i64; height];
            for (bit, column) in chunk.iter().enumerate() {
                if column.null_count() == 0 {
                    continue;
                }
                let nulls = column.is_null();
                for (mask, null) in masks.iter_mut().zip(nulls.iter()) {
                    if null == Some(true) {
                        *mask |= 1 << bit;
                    }
                }
            }
            masks
        })
        .collect()
}

/// An expression computing `xxhash64(key, columns..., null masks...)` per row, as an
/// `Int64` (see the module's documentation for the masks).
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
            for masks in null_masks(columns, height) {
                for (hash, mask) in hashes.iter_mut().zip(masks) {
                    *hash = hash_long(mask, *hash);
                }
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

    /// `hash` as Spark prints it: a signed `BIGINT`.
    fn signed(hash: u64) -> i64 {
        i64::from_ne_bytes(hash.to_ne_bytes())
    }

    /// `xxhash64(args...)` of Spark, from the values of its arguments as Spark encodes them.
    fn chained(values: &[&dyn Fn(u64) -> u64]) -> i64 {
        signed(values.iter().fold(SPARK_SEED, |seed, hash| hash(seed)))
    }

    #[test]
    fn matches_spark_4_0_1() {
        // Every expected value below came from Apache Spark 4.0.1 (`SELECT xxhash64(...)`,
        // session time zone UTC). The argument is in each line's comment.
        let seed = SPARK_SEED;
        // Integers up to 32 bits (INT, SMALLINT, TINYINT, BOOLEAN) hash as 4 bytes.
        assert_eq!(signed(hash_int(0, seed)), 3_614_696_996_920_510_707); // 0
        assert_eq!(signed(hash_int(1, seed)), -6_698_625_589_789_238_999); // 1
        assert_eq!(signed(hash_int(-1, seed)), 2_017_008_487_422_258_757); // -1
        assert_eq!(signed(hash_int(i32::MAX, seed)), 1_508_894_993_788_531_228); // 2147483647
        assert_eq!(signed(hash_int(-3, seed)), 1_399_955_818_750_051_488); // CAST(-3 AS SMALLINT)
        assert_eq!(signed(hash_int(1, seed)), -6_698_625_589_789_238_999); // true, CAST(1 AS TINYINT)
        assert_eq!(signed(hash_int(0, seed)), 3_614_696_996_920_510_707); // false
        // BIGINT hashes as 8 bytes.
        assert_eq!(signed(hash_long(0, seed)), -5_252_525_462_095_825_812); // 0L
        assert_eq!(signed(hash_long(1, seed)), -7_001_672_635_703_045_582); // 1L
        assert_eq!(signed(hash_long(-1, seed)), 3_858_142_552_250_413_010); // -1L
        assert_eq!(
            signed(hash_long(i64::MAX, seed)),
            -3_246_596_055_638_297_850
        ); // 9223372036854775807L
        assert_eq!(
            signed(hash_long(i64::MIN, seed)),
            -8_619_748_838_626_508_300
        ); // -9223372036854775808L
        // DOUBLE: the bit pattern, -0.0 as 0.0, every NaN as the canonical NaN.
        assert_eq!(signed(hash_double(0.0, seed)), -5_252_525_462_095_825_812); // 0.0D
        assert_eq!(signed(hash_double(-0.0, seed)), -5_252_525_462_095_825_812); // -0.0D
        assert_eq!(signed(hash_double(1.5, seed)), 7_738_255_526_519_901_366); // 1.5D
        assert_eq!(
            signed(hash_double(f64::NAN, seed)),
            -3_127_944_061_524_951_246
        ); // CAST('NaN' AS DOUBLE)
        assert_eq!(
            signed(hash_double(-f64::NAN, seed)),
            -3_127_944_061_524_951_246
        ); // -CAST('NaN' AS DOUBLE)
        assert_eq!(
            signed(hash_double(f64::INFINITY, seed)),
            5_810_986_238_603_807_492
        ); // CAST('Infinity' AS DOUBLE)
        // FLOAT: likewise on 4 bytes.
        assert_eq!(signed(hash_float(0.0, seed)), 3_614_696_996_920_510_707); // CAST(0.0 AS FLOAT)
        assert_eq!(signed(hash_float(-0.0, seed)), 3_614_696_996_920_510_707); // CAST(-0.0 AS FLOAT)
        assert_eq!(signed(hash_float(1.5, seed)), 6_163_473_420_726_370_430); // CAST(1.5 AS FLOAT)
        assert_eq!(
            signed(hash_float(f32::NAN, seed)),
            2_692_338_816_207_849_720
        ); // CAST('NaN' AS FLOAT)
        // STRING: its UTF-8 bytes.
        assert_eq!(signed(xxh64(b"", seed)), -7_444_071_767_201_028_348); // ''
        assert_eq!(signed(xxh64(b"a", seed)), -8_582_455_328_737_087_284); // 'a'
        assert_eq!(signed(xxh64(b"US", seed)), -3_707_808_605_746_212_292); // 'US'
        assert_eq!(
            signed(xxh64(
                "héllo wörld, a string longer than thirty-two bytes".as_bytes(),
                seed
            )),
            3_369_997_412_423_673_485
        );
        // DATE: days since the epoch, as an INT.
        assert_eq!(signed(hash_int(20_758, seed)), 1_391_242_290_048_298_484); // DATE'2026-11-01'
        assert_eq!(signed(hash_int(-1, seed)), 2_017_008_487_422_258_757); // DATE'1969-12-31'
        // TIMESTAMP and TIMESTAMP_NTZ: microseconds since the epoch, as a BIGINT.
        let midnight = 1_793_491_200_000_000;
        assert_eq!(
            signed(hash_long(midnight, seed)),
            -1_217_557_802_511_265_276
        ); // TIMESTAMP'2026-11-01 00:00:00'
        assert_eq!(
            signed(hash_long(midnight + 45_296_789_000, seed)),
            -7_425_689_224_305_468_255
        ); // TIMESTAMP'2026-11-01 12:34:56.789', and the same TIMESTAMP_NTZ
        // Several arguments chain: each hash seeds the next; a null is skipped.
        assert_eq!(signed(seed), 42); // CAST(NULL AS BIGINT)
        assert_eq!(
            chained(&[&|seed| hash_long(1, seed)]),
            -7_001_672_635_703_045_582
        ); // (CAST(NULL AS STRING), 1L) and (1L, CAST(NULL AS STRING))
        assert_eq!(
            chained(&[
                &|seed| hash_long(42, seed),
                &|seed| hash_long(7, seed),
                &|seed| xxh64(b"FR", seed),
                &|seed| hash_double(12.5, seed),
            ]),
            -3_642_664_338_805_451_727
        ); // (42L, 7L, 'FR', 12.5D)
        assert_eq!(
            chained(&[
                &|seed| hash_long(-6_917_529_027_641_081_856, seed),
                &|seed| hash_long(123_456_789, seed),
                &|seed| xxh64(b"DE", seed),
            ]),
            5_369_016_045_046_166_707
        ); // (-6917529027641081856L, 123456789L, 'DE')
    }

    /// Regression: the hash skipped nulls, so a unit's groups `(null, "x")` and `("x", null)`
    /// hashed alike and which one L0 kept could depend on other rows.
    #[test]
    fn nulls_in_different_columns_hash_differently() {
        let frame = df!(
            "unit" => [Some(1_i64), Some(1)],
            "a" => [None, Some("x")],
            "b" => [Some("x"), None],
        )
        .unwrap();
        let columns = ["unit".to_string(), "a".to_string(), "b".to_string()];
        let hashes = frame
            .lazy()
            .select([keyed_hash(&columns, 7).alias("hash")])
            .collect()
            .unwrap();
        let hashes: Vec<Option<i64>> = hashes
            .column("hash")
            .unwrap()
            .i64()
            .unwrap()
            .iter()
            .collect();
        assert_ne!(hashes[0], hashes[1]);
        // Without nulls the mask is 0: `xxhash64(key, 1L, 'x', 'y', 0L)`, as Spark computes it.
        let seed = hash_long(7, SPARK_SEED);
        let expected = hash_long(0, xxh64(b"y", xxh64(b"x", hash_long(1, seed))));
        let frame = df!("unit" => [1_i64], "a" => ["x"], "b" => ["y"]).unwrap();
        let hashes = frame
            .lazy()
            .select([keyed_hash(&columns, 7).alias("hash")])
            .collect()
            .unwrap();
        assert_eq!(
            hashes.column("hash").unwrap().i64().unwrap().get(0),
            Some(i64::from_ne_bytes(expected.to_ne_bytes()))
        );
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
