//! L∞ inside each unit–group pair: of a pair's rows, keep the `max_rows` with the smallest
//! keyed hashes.
//!
//! The pair aggregation gathers, per pair, its rows' hashes and each measure's per-row
//! values as lists (a plain gather, which Polars does at the speed of a `head`); the
//! expressions here then read those lists once, flat, and return per pair the sum of the
//! kept rows' values, or the kept values themselves. Sorting each pair's rows by hash in
//! the aggregation gives the same rows but costs a sort per pair, about 40% of the whole
//! scan on the benchmark job (BENCHMARKS.md).

use polars::prelude::*;

/// What an expression of [`kept_in_pairs`] returns per pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kept {
    /// The sum of the kept rows' values (nulls skipped; 0 if none), as `Int64`: exact, for
    /// the release's fixed-point values.
    Sum,
    /// The same in floating point, as `Float64`: for the utility report.
    FloatSum,
    /// The sum of the kept rows' squared values in floating point, as `Float64`.
    FloatSquares,
    /// How many kept rows have a value (not null), as `Float64`.
    FloatCount,
    /// The kept rows' values without nulls, as a list of `Int64`.
    Values,
}

/// Per pair, the values of the rows that L∞ keeps: `values` and `hashes` are list columns
/// of the same pairs, one element per row, in the same order.
pub(crate) fn kept_in_pairs(values: Expr, hashes: Expr, max_rows: u32, kept: Kept) -> Expr {
    let max_rows = usize::try_from(max_rows).unwrap_or(usize::MAX);
    let dtype = match kept {
        Kept::Sum => DataType::Int64,
        Kept::FloatSum | Kept::FloatSquares | Kept::FloatCount => DataType::Float64,
        Kept::Values => DataType::List(Box::new(DataType::Int64)),
    };
    let output = dtype.clone();
    map_multiple(
        move |columns: &mut [Column]| {
            let [values, hashes] = columns else {
                polars_bail!(ComputeError: "L∞ takes a pair's values and hashes");
            };
            let pairs = PairLists::new(values, hashes)?;
            match kept {
                Kept::Sum => pairs.sums(max_rows),
                Kept::FloatSum => pairs.float_sums(max_rows, |value| value),
                Kept::FloatSquares => pairs.float_sums(max_rows, |value| value * value),
                Kept::FloatCount => pairs.float_sums(max_rows, |_| 1.0),
                Kept::Values => pairs.values(max_rows),
            }
        },
        [values, hashes],
        move |_schema: &Schema, fields: &[Field]| {
            let name = fields.first().map_or_else(
                || PlSmallStr::from_static("kept"),
                |field| field.name().clone(),
            );
            Ok(Field::new(name, output.clone()))
        },
    )
}

/// A pair's positions (into its rows) of the `max_rows` rows with the smallest hashes, in
/// no particular order. Rows with equal hashes are interchangeable: the hash covers every
/// column the query reads, so they carry the same values.
fn smallest<'a>(hashes: &[i64], max_rows: usize, scratch: &'a mut Vec<usize>) -> &'a [usize] {
    scratch.clear();
    scratch.extend(0..hashes.len());
    if hashes.len() > max_rows {
        if max_rows == 0 {
            scratch.clear();
        } else {
            scratch.select_nth_unstable_by_key(max_rows - 1, |&row| hashes[row]);
            scratch.truncate(max_rows);
        }
    }
    scratch
}

/// Two list columns of the same pairs, flattened: offsets into one inner array each.
struct PairLists {
    name: PlSmallStr,
    value_offsets: Vec<i64>,
    /// One chunk.
    values: Series,
    hash_offsets: Vec<i64>,
    /// One chunk.
    hashes: Int64Chunked,
}

impl PairLists {
    fn new(values: &Column, hashes: &Column) -> PolarsResult<Self> {
        let (value_offsets, inner) = flatten(values)?;
        let (hash_offsets, hash_inner) = flatten(hashes)?;
        polars_ensure!(
            value_offsets.len() == hash_offsets.len(),
            ComputeError: "L∞: values and hashes of different pairs"
        );
        Ok(Self {
            name: values.name().clone(),
            value_offsets,
            values: inner.rechunk(),
            hash_offsets,
            hashes: hash_inner.i64()?.rechunk().into_owned(),
        })
    }

    fn pairs(&self) -> usize {
        self.value_offsets.len().saturating_sub(1)
    }

    /// Calls `each` with every pair's kept rows, as positions in the inner values, in
    /// the order of the pairs.
    fn for_each_pair(
        &self,
        max_rows: usize,
        mut each: impl FnMut(&[usize]) -> PolarsResult<()>,
    ) -> PolarsResult<()> {
        let hashes = self.hashes.downcast_as_array().values().as_slice();
        let mut scratch = Vec::new();
        let mut positions = Vec::new();
        for pair in 0..self.pairs() {
            let start = to_index(self.value_offsets[pair])?;
            let end = to_index(self.value_offsets[pair + 1])?;
            let hash_start = to_index(self.hash_offsets[pair])?;
            let hash_end = to_index(self.hash_offsets[pair + 1])?;
            polars_ensure!(
                end >= start && end - start == hash_end.saturating_sub(hash_start),
                ComputeError: "L∞: a pair has more values than hashes"
            );
            let rows = smallest(&hashes[hash_start..hash_end], max_rows, &mut scratch);
            positions.clear();
            positions.extend(rows.iter().map(|&row| start + row));
            each(&positions)?;
        }
        Ok(())
    }

    /// Calls `each` with every pair's kept values (`None` for null), as `Int64`.
    fn for_each_pair_of_integers(
        &self,
        max_rows: usize,
        mut each: impl FnMut(&mut dyn Iterator<Item = Option<i64>>) -> PolarsResult<()>,
    ) -> PolarsResult<()> {
        let values = self.values.cast(&DataType::Int64)?;
        let values = values.i64()?.downcast_as_array();
        let present = values.validity();
        let values = values.values().as_slice();
        self.for_each_pair(max_rows, |positions| {
            let mut kept = positions.iter().map(|&at| {
                present
                    .is_none_or(|present| present.get_bit(at))
                    .then(|| values[at])
            });
            each(&mut kept)
        })
    }

    fn sums(&self, max_rows: usize) -> PolarsResult<Column> {
        let mut sums = Vec::with_capacity(self.pairs());
        self.for_each_pair_of_integers(max_rows, |kept| {
            let mut sum = 0_i64;
            for value in kept.flatten() {
                sum = sum.checked_add(value).ok_or_else(
                    || polars_err!(ComputeError: "L∞: a pair's sum overflows 64 bits"),
                )?;
            }
            sums.push(sum);
            Ok(())
        })?;
        Ok(Column::new(self.name.clone(), sums))
    }

    /// Per pair, the sum of `term(value)` over the kept rows with a value.
    fn float_sums(&self, max_rows: usize, term: impl Fn(f64) -> f64) -> PolarsResult<Column> {
        let values = self.values.cast(&DataType::Float64)?;
        let values = values.f64()?.downcast_as_array();
        let present = values.validity();
        let values = values.values().as_slice();
        let mut sums = Vec::with_capacity(self.pairs());
        self.for_each_pair(max_rows, |positions| {
            sums.push(
                positions
                    .iter()
                    .filter(|&&at| present.is_none_or(|present| present.get_bit(at)))
                    .map(|&at| term(values[at]))
                    .sum::<f64>(),
            );
            Ok(())
        })?;
        Ok(Column::new(self.name.clone(), sums))
    }

    fn values(&self, max_rows: usize) -> PolarsResult<Column> {
        let mut builder = ListPrimitiveChunkedBuilder::<Int64Type>::new(
            self.name.clone(),
            self.pairs(),
            self.pairs().saturating_mul(max_rows.min(8)),
            DataType::Int64,
        );
        let mut kept_values = Vec::new();
        self.for_each_pair_of_integers(max_rows, |kept| {
            kept_values.clear();
            kept_values.extend(kept.flatten());
            builder.append_slice(&kept_values);
            Ok(())
        })?;
        Ok(builder.finish().into_column())
    }
}

/// A list column as its offsets (one more than its lists; a null list is empty) and its
/// inner values.
fn flatten(column: &Column) -> PolarsResult<(Vec<i64>, Series)> {
    let lists = column.list()?.rechunk();
    let array = lists.downcast_as_array();
    let mut offsets: Vec<i64> = array.offsets().as_slice().to_vec();
    if let Some(validity) = array.validity() {
        for (list, valid) in validity.iter().enumerate() {
            if !valid {
                offsets[list + 1] = offsets[list];
            }
        }
    }
    Ok((offsets, lists.get_inner()))
}

fn to_index(offset: i64) -> PolarsResult<usize> {
    usize::try_from(offset).map_err(|_| polars_err!(ComputeError: "L∞: a negative list offset"))
}

#[cfg(test)]
mod tests {
    use polars::prelude::*;
    use proptest::prelude::*;

    use super::{Kept, kept_in_pairs, smallest};

    fn kept(hashes: &[i64], max_rows: usize) -> Vec<usize> {
        let mut scratch = Vec::new();
        let mut rows = smallest(hashes, max_rows, &mut scratch).to_vec();
        rows.sort_unstable();
        rows
    }

    #[test]
    fn keeps_the_rows_with_the_smallest_signed_hashes() {
        assert_eq!(kept(&[5, -3, 9, 0, i64::MIN, i64::MAX], 3), vec![1, 3, 4]);
        assert_eq!(kept(&[5, -3, 9], 1), vec![1]);
    }

    #[test]
    fn a_pair_within_the_bound_keeps_every_row() {
        assert_eq!(kept(&[5, -3, 9], 3), vec![0, 1, 2]);
        assert_eq!(kept(&[5, -3, 9], 100), vec![0, 1, 2]);
        assert_eq!(kept(&[], 2), Vec::<usize>::new());
    }

    #[test]
    fn a_zero_bound_keeps_nothing() {
        assert_eq!(kept(&[5, -3, 9], 0), Vec::<usize>::new());
    }

    /// Pairs as `(hash, value)` rows, each pair's rows listed in the order of the frame.
    fn pairs_frame(pairs: &[Vec<(i64, Option<i64>)>]) -> DataFrame {
        let mut pair = Vec::new();
        let mut hashes = Vec::new();
        let mut values = Vec::new();
        for (index, rows) in pairs.iter().enumerate() {
            for &(hash, value) in rows {
                pair.push(i64::try_from(index).unwrap());
                hashes.push(hash);
                values.push(value);
            }
        }
        df!["pair" => pair, "hash" => hashes, "value" => values].unwrap()
    }

    /// The reference: sort each pair's rows by hash, keep the first `max_rows`.
    fn by_sorting(rows: &[(i64, Option<i64>)], max_rows: usize) -> Vec<Option<i64>> {
        let mut rows = rows.to_vec();
        rows.sort_by_key(|&(hash, _)| hash);
        rows.truncate(max_rows);
        rows.into_iter().map(|(_, value)| value).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Through Polars' group-by, as the scan runs it: the sum and the kept values of
        /// every pair are those of its `max_rows` rows with the smallest hashes, so no
        /// pair ever keeps more than `max_rows` rows (duplicate hashes included).
        #[test]
        fn the_kept_rows_are_the_smallest_hashes_of_each_pair(
            hashes in proptest::collection::vec(proptest::collection::vec(-4_i64..4, 1..12), 1..20),
            values_by_hash in proptest::collection::vec(
                proptest::option::weighted(0.8, -50_i64..50),
                8,
            ),
            max_rows in 0_u32..6,
        ) {
            // A row's hash covers every column the query reads, so rows with equal hashes
            // carry equal values (and which of them is kept cannot matter).
            let pairs: Vec<Vec<(i64, Option<i64>)>> = hashes
                .iter()
                .map(|rows| {
                    rows.iter()
                        .map(|&hash| (hash, values_by_hash[usize::try_from(hash + 4).unwrap()]))
                        .collect()
                })
                .collect();
            let frame = pairs_frame(&pairs)
                .lazy()
                .group_by_stable([col("pair")])
                .agg([col("hash"), col("value")])
                .select([
                    col("pair"),
                    kept_in_pairs(col("value"), col("hash"), max_rows, Kept::Sum).alias("sum"),
                    kept_in_pairs(col("value"), col("hash"), max_rows, Kept::Values).alias("kept"),
                    kept_in_pairs(col("value"), col("hash"), max_rows, Kept::FloatSum)
                        .alias("float_sum"),
                    kept_in_pairs(col("value"), col("hash"), max_rows, Kept::FloatSquares)
                        .alias("float_squares"),
                    kept_in_pairs(col("value"), col("hash"), max_rows, Kept::FloatCount)
                        .alias("float_count"),
                ])
                .collect()
                .unwrap();
            let sums = frame.column("sum").unwrap().i64().unwrap().clone();
            let kept = frame.column("kept").unwrap().list().unwrap().clone();
            let float_sums = frame.column("float_sum").unwrap().f64().unwrap().clone();
            let float_squares = frame.column("float_squares").unwrap().f64().unwrap().clone();
            let float_counts = frame.column("float_count").unwrap().f64().unwrap().clone();
            for (index, rows) in pairs.iter().enumerate() {
                let expected = by_sorting(rows, usize::try_from(max_rows).unwrap());
                let expected_sum: i64 = expected.iter().flatten().sum();
                prop_assert_eq!(sums.get(index), Some(expected_sum));
                #[allow(clippy::cast_precision_loss)]
                let expected_float = expected_sum as f64;
                prop_assert_eq!(float_sums.get(index), Some(expected_float));
                #[allow(clippy::cast_precision_loss)]
                let squares = expected.iter().flatten().map(|value| (value * value) as f64).sum::<f64>();
                prop_assert_eq!(float_squares.get(index), Some(squares));
                #[allow(clippy::cast_precision_loss)]
                let count = expected.iter().flatten().count() as f64;
                prop_assert_eq!(float_counts.get(index), Some(count));
                let mut got: Vec<i64> = kept
                    .get_as_series(index)
                    .unwrap()
                    .i64()
                    .unwrap()
                    .into_no_null_iter()
                    .collect();
                let mut expected: Vec<i64> = expected.into_iter().flatten().collect();
                got.sort_unstable();
                expected.sort_unstable();
                prop_assert!(got.len() <= usize::try_from(max_rows).unwrap());
                prop_assert_eq!(got, expected);
            }
        }
    }
}
