use std::num::NonZeroUsize;

use super::*;

fn every_type(rows: usize) -> Table {
    let row = |i: usize| i64::try_from(i).expect("small");
    let lists: U32Lists = (0..rows)
        .map(|i| match i % 3 {
            0 => None,
            1 => Some(&[][..]),
            _ => Some(&[1_u32, 5, u32::MAX][..]),
        })
        .collect();
    Table::new(vec![
        Column::new(
            "flag",
            Values::Bool(
                (0..rows)
                    .map(|i| (i % 4 != 0).then_some(i % 2 == 0))
                    .collect(),
            ),
        ),
        Column::new(
            "level",
            Values::I16(
                (0..rows)
                    .map(|i| (i % 5 != 0).then_some(i16::try_from(i).expect("small") - 3))
                    .collect(),
            ),
        ),
        Column::new(
            "bucket",
            Values::I32(
                (0..rows)
                    .map(|i| Some(i32::try_from(i).expect("small") * -7))
                    .collect(),
            ),
        ),
        Column::new(
            "user",
            Values::I64(
                (0..rows)
                    .map(|i| (i % 7 != 0).then_some(row(i) * i64::from(i32::MAX)))
                    .collect(),
            ),
        ),
        Column::new(
            "value",
            Values::U32(
                (0..rows)
                    .map(|i| Some(u32::MAX - u32::try_from(i).expect("small")))
                    .collect(),
            ),
        ),
        Column::new(
            "id",
            Values::U64(
                (0..rows)
                    .map(|i| (i != 1).then_some(u64::MAX - i as u64))
                    .collect(),
            ),
        ),
        Column::new(
            "ratio",
            Values::F32((0..rows).map(|i| Some(i as f32 / 3.0)).collect()),
        ),
        Column::new(
            "amount",
            Values::F64(
                (0..rows)
                    .map(|i| (i % 3 != 2).then_some(i as f64 * 1e300))
                    .collect(),
            ),
        ),
        Column::new(
            "country",
            Values::Text(
                (0..rows)
                    .map(|i| (i % 6 != 5).then(|| format!("it's, \"Ω\" {i}")))
                    .collect(),
            ),
        ),
        Column::new(
            "report",
            Values::Binary(
                (0..rows)
                    .map(|i| {
                        (i % 2 == 0).then(|| vec![0xff, 0, u8::try_from(i % 256).expect("byte")])
                    })
                    .collect(),
            ),
        ),
        Column::new("ones", Values::ListU32(lists)),
        Column::new(
            "day",
            Values::Date(
                (0..rows)
                    .map(|i| Some(20_700 + i32::try_from(i).expect("small")))
                    .collect(),
            ),
        ),
        Column::new(
            "at",
            Values::Timestamp {
                unit: TimeUnit::Milliseconds,
                time_zone: Some("UTC".into()),
                values: (0..rows)
                    .map(|i| (i % 9 != 0).then_some(1_790_812_800_000 + row(i)))
                    .collect(),
            },
        ),
        Column::new(
            "at_ns",
            Values::Timestamp {
                unit: TimeUnit::Nanoseconds,
                time_zone: None,
                values: (0..rows).map(|i| Some(row(i))).collect(),
            },
        ),
    ])
    .expect("columns of one length")
}

fn names(table: &Table) -> Vec<&str> {
    table.columns().iter().map(Column::name).collect()
}

#[test]
fn every_type_round_trips_through_parquet_with_its_nulls() {
    let directory = tempfile::tempdir().expect("a directory");
    let path = directory.path().join("all.parquet");
    let table = every_type(50);
    write(&table, &path, Format::Parquet).expect("written");
    let fields = schema(&path, Format::Parquet).expect("a schema");
    assert_eq!(fields, table.fields());
    let all = names(&table);
    assert_eq!(read(&path, Format::Parquet, &all).expect("read"), table);
    // Columns come back in the order asked for.
    let some = read(&path, Format::Parquet, &["ones", "flag"]).expect("read");
    assert_eq!(names(&some), ["ones", "flag"]);
    assert_eq!(some.column("ones"), table.column("ones"));
}

#[test]
fn flat_types_round_trip_through_csv() {
    let directory = tempfile::tempdir().expect("a directory");
    let path = directory.path().join("flat.csv");
    let table = Table::new(vec![
        Column::new("user", Values::I64(vec![Some(1), None, Some(-3)])),
        Column::new(
            "country",
            Values::Text([Some("a, \"b\""), Some("Ω"), None].into_iter().collect()),
        ),
        Column::new("value", Values::F64(vec![Some(0.5), Some(-1e10), None])),
        Column::new("flag", Values::Bool(vec![Some(true), None, Some(false)])),
    ])
    .expect("a table");
    write(&table, &path, Format::Csv).expect("written");
    assert_eq!(
        read(&path, Format::Csv, &["user", "country", "value", "flag"]).expect("read"),
        table
    );
}

#[test]
fn batches_cover_the_file_in_order_and_stop_when_dropped() {
    let directory = tempfile::tempdir().expect("a directory");
    let path = directory.path().join("many.parquet");
    let rows = 10_000;
    let table = Table::new(vec![Column::new(
        "n",
        Values::U64((0..rows).map(|i| (i % 11 != 0).then_some(i)).collect()),
    )])
    .expect("a table");
    // Several row groups, written batch by batch.
    let mut writer =
        TableWriter::create(&path, Format::Parquet, &table.fields()).expect("a writer");
    for start in (0..rows).step_by(3000) {
        let end = (start + 3000).min(rows);
        let Values::U64(values) = table.columns()[0].values() else {
            unreachable!()
        };
        let part = values
            [usize::try_from(start).expect("small")..usize::try_from(end).expect("small")]
            .to_vec();
        writer
            .write_batch(&Table::new(vec![Column::new("n", Values::U64(part))]).expect("a batch"))
            .expect("written");
    }
    writer.finish().expect("finished");
    let batch_rows = NonZeroUsize::new(1024).expect("non-zero");
    let mut seen = Vec::new();
    for batch in read_batches(&path, Format::Parquet, &["n"], batch_rows).expect("a reader") {
        let batch = batch.expect("a batch");
        assert!(
            batch.rows() <= 1024 && batch.rows() > 0,
            "{} rows",
            batch.rows()
        );
        let Values::U64(values) = batch.columns()[0].values() else {
            panic!("u64 values")
        };
        seen.extend_from_slice(values);
    }
    assert_eq!(Values::U64(seen), *table.columns()[0].values());
    // A reader dropped after one batch stops its query instead of hanging.
    let mut reader = read_batches(&path, Format::Parquet, &["n"], batch_rows).expect("a reader");
    assert!(reader.next().is_some());
    drop(reader);
    // CSV reads in batches too.
    let csv = directory.path().join("many.csv");
    write(&table, &csv, Format::Csv).expect("written");
    let total: usize = read_batches(&csv, Format::Csv, &["n"], batch_rows)
        .expect("a reader")
        .map(|batch| batch.expect("a batch").rows())
        .sum();
    assert_eq!(total, 10_000);
}

#[test]
fn missing_columns_and_files_are_named() {
    let directory = tempfile::tempdir().expect("a directory");
    let path = directory.path().join("t.parquet");
    write(&every_type(3), &path, Format::Parquet).expect("written");
    let error = read(&path, Format::Parquet, &["nation"]).expect_err("no such column");
    let message = error.to_string();
    assert!(
        message.contains("has no column \"nation\" (columns: flag, level, bucket"),
        "{message}"
    );
    let error = read_batches(
        &path,
        Format::Parquet,
        &["flag", "nation"],
        NonZeroUsize::MIN,
    )
    .expect_err("no such column");
    assert!(matches!(error, TableError::ColumnNotFound { column, .. } if column == "nation"));
    let missing = directory.path().join("missing.parquet");
    let error = read(&missing, Format::Parquet, &["flag"]).expect_err("no file");
    assert!(matches!(error, TableError::Open { .. }), "{error}");
    assert!(error.to_string().contains("missing.parquet"), "{error}");
    let garbage = directory.path().join("garbage.parquet");
    std::fs::write(&garbage, b"PAR1 not parquet at all PAR1").expect("written");
    let error = read(&garbage, Format::Parquet, &["flag"]).expect_err("not Parquet");
    assert!(
        matches!(
            error,
            TableError::Unreadable {
                format: "Parquet",
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn a_failed_or_abandoned_write_leaves_the_destination_as_it_was() {
    let directory = tempfile::tempdir().expect("a directory");
    let path = directory.path().join("out.parquet");
    std::fs::write(&path, b"old content").expect("written");
    let table = every_type(4);
    let mut writer =
        TableWriter::create(&path, Format::Parquet, &table.fields()).expect("a writer");
    writer.write_batch(&table).expect("written");
    // A batch with other columns is refused, and nothing is published.
    let other = Table::new(vec![Column::new("x", Values::I64(vec![Some(1)]))]).expect("a table");
    assert!(matches!(
        writer.write_batch(&other),
        Err(TableError::Shape { .. })
    ));
    drop(writer);
    assert_eq!(std::fs::read(&path).expect("still there"), b"old content");
    let left: Vec<_> = std::fs::read_dir(directory.path())
        .expect("listed")
        .collect();
    assert_eq!(left.len(), 1, "the temporary file is deleted");
    // Nested values cannot be written as CSV: refused, old content kept.
    let csv = directory.path().join("out.csv");
    std::fs::write(&csv, b"old").expect("written");
    assert!(write(&table, &csv, Format::Csv).is_err());
    assert_eq!(std::fs::read(&csv).expect("still there"), b"old");
    // A finished write replaces the file whole.
    write(&table, &path, Format::Parquet).expect("written");
    assert_eq!(
        read(&path, Format::Parquet, &["ones"])
            .expect("read")
            .rows(),
        4
    );
    // A missing directory is named.
    let nowhere = directory.path().join("no/such/dir/out.parquet");
    let error = write(&table, &nowhere, Format::Parquet).expect_err("no directory");
    assert!(error.to_string().contains("out.parquet"), "{error}");
}

#[test]
fn tables_refuse_ragged_columns_and_repeated_names() {
    let ragged = Table::new(vec![
        Column::new("a", Values::I64(vec![Some(1)])),
        Column::new("b", Values::I64(vec![])),
    ]);
    assert!(matches!(ragged, Err(TableError::Shape { .. })));
    let repeated = Table::new(vec![
        Column::new("a", Values::I64(vec![Some(1)])),
        Column::new("a", Values::Bool(vec![None])),
    ]);
    assert!(matches!(repeated, Err(TableError::Shape { .. })));
}

#[test]
fn lists_with_a_null_item_are_told_apart_from_null_lists() {
    let directory = tempfile::tempdir().expect("a directory");
    let path = directory.path().join("lists.parquet");
    let mut lists = U32Lists::new();
    lists.push(Some(&[3, 4]));
    lists.push_null_item();
    lists.push(None);
    let table = Table::new(vec![Column::new("ones", Values::ListU32(lists))]).expect("a table");
    write(&table, &path, Format::Parquet).expect("written");
    let back = read(&path, Format::Parquet, &["ones"]).expect("read");
    let Values::ListU32(back) = back.columns()[0].values() else {
        panic!("lists")
    };
    let cells: Vec<ListCell<'_>> = back.iter().collect();
    assert_eq!(
        cells,
        [ListCell::Items(&[3, 4]), ListCell::NullItem, ListCell::Null]
    );
}

#[test]
fn formats_are_named_by_extension() {
    assert_eq!(
        Format::of_path(Path::new("a/b.PARQUET")),
        Some(Format::Parquet)
    );
    assert_eq!(Format::of_path(Path::new("b.csv")), Some(Format::Csv));
    assert_eq!(Format::of_path(Path::new("b.json")), None);
    assert_eq!(Format::of_path(Path::new("b")), None);
}
