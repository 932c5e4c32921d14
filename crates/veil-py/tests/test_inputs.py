"""data= and consent=: tables in memory through the Arrow C stream interface."""

import pyarrow
import pyarrow.parquet
import pytest

import veil


def events():
    return pyarrow.parquet.read_table("data/events.parquet")


def rows_without_consent(ledger="veil-ledger.sqlite"):
    last = veil.Ledger(ledger).history()[-1]
    assert last["state"] == "committed"
    return last["diagnostics_not_private"]


def test_a_pyarrow_table_is_read_instead_of_source_path(workdir):
    release = veil.run("configs/quickstart.toml", data=events())
    assert release.tables["by_country"].num_rows > 0
    assert release.manifest["columns_read"] == ["user_id", "country", "value", "event_time"]


def test_data_in_memory_reads_what_the_file_would(workdir):
    """Same rows, same consent and retention: the scan's exact counts match."""
    veil.run("configs/quickstart.toml", output="out/file")
    from_file = rows_without_consent()
    veil.run("configs/quickstart.toml", data=events(), output="out/memory")
    assert rows_without_consent() == from_file
    assert from_file["rows_without_consent"] > 0


def test_a_pandas_frame(workdir):
    pandas = pytest.importorskip("pandas")
    frame = pandas.read_parquet("data/events.parquet")
    release = veil.run("configs/quickstart.toml", data=frame)
    assert release.tables["by_country"].num_rows > 0


def test_a_polars_frame(workdir):
    polars = pytest.importorskip("polars")
    frame = polars.read_parquet("data/events.parquet")
    release = veil.run("configs/quickstart.toml", data=frame)
    assert release.tables["by_country"].num_rows > 0


def test_category_and_dictionary_group_columns_release_their_values(workdir):
    pandas = pytest.importorskip("pandas")
    polars = pytest.importorskip("polars")
    countries = set(events().column("country").unique().to_pylist())
    table = events()
    encoded = table.set_column(
        table.schema.get_field_index("country"), "country", table.column("country").dictionary_encode()
    )
    assert pyarrow.types.is_dictionary(encoded.schema.field("country").type)
    frame = pandas.read_parquet("data/events.parquet")
    frame["country"] = frame["country"].astype("category")
    lazy = polars.read_parquet("data/events.parquet").with_columns(polars.col("country").cast(polars.Categorical))
    for index, data in enumerate([encoded, frame, lazy]):
        release = veil.run("configs/quickstart.toml", data=data, output=f"out/{index}")
        released = release.tables["by_country"].column("country")
        assert pyarrow.types.is_large_string(released.type) or pyarrow.types.is_string(released.type)
        assert set(released.to_pylist()) <= countries


def test_a_job_given_data_needs_no_source_path(workdir, job):
    del job["source"]["path"]
    with pytest.raises(veil.ConfigError, match="source.*path"):
        veil.run(job)
    release = veil.run(job, data=events())
    assert release.tables["by_country"].num_rows > 0
    assert veil.explain(job, data=events())["source"] == "<data>"


def test_consent_as_a_table(workdir):
    consent = pyarrow.parquet.read_table("data/consent.parquet")
    veil.run("configs/quickstart.toml", output="out/file")
    from_file = rows_without_consent()
    veil.run("configs/quickstart.toml", consent=consent, output="out/table")
    assert rows_without_consent() == from_file
    # Only even users' consent events (as a pandas frame): the odd ones no longer contribute.
    pandas = pytest.importorskip("pandas")
    log = pandas.read_parquet("data/consent.parquet")
    even = log[log["user_id"] % 2 == 0]
    veil.run("configs/quickstart.toml", consent=even, output="out/even")
    assert rows_without_consent()["rows_without_consent"] > from_file["rows_without_consent"]
    assert veil.explain("configs/quickstart.toml", consent=even)["consent_table"] == "<consent>"


def test_consent_as_a_table_adds_the_consent_rule_to_a_job_without_one(workdir, job):
    del job["consent"]
    consent = pyarrow.parquet.read_table("data/consent.parquet")
    assert veil.explain(job)["consent_table"] is None
    assert veil.explain(job, consent=consent)["consent_table"] == "<consent>"


def test_a_column_the_job_declares_must_be_in_the_data(workdir):
    with pytest.raises(veil.ConfigError) as raised:
        veil.run("configs/quickstart.toml", data=events().drop_columns(["value"]))
    message = str(raised.value)
    assert 'column "value" is not in <data>' in message
    assert "user_id" in message and "country" in message
    assert not (workdir / "veil-ledger.sqlite").exists()


def test_columns_the_job_does_not_declare_are_not_read(workdir):
    """A column of a type the engine cannot read is no obstacle when the job does not read it."""
    table = events().append_column(
        "tags", pyarrow.array([{"a": 1}] * events().num_rows, pyarrow.map_(pyarrow.string(), pyarrow.int64()))
    )
    release = veil.run("configs/quickstart.toml", data=table)
    assert "tags" not in release.manifest["columns_read"]


def test_data_that_is_no_table_is_a_type_error(workdir):
    with pytest.raises(TypeError, match="data= takes"):
        veil.run("configs/quickstart.toml", data=[1, 2, 3])
    polars = pytest.importorskip("polars")
    with pytest.raises(TypeError, match="collect"):
        veil.run("configs/quickstart.toml", data=polars.scan_parquet("data/events.parquet"))
