"""veil.run on job files and dicts: the release, its tables, manifest and display."""

import csv
import json

import pyarrow
import pytest

import veil


def test_a_job_file_releases_tables_a_manifest_and_a_charge(workdir):
    release = veil.run("configs/quickstart.toml")
    assert set(release.tables) == {"by_country"}
    table = release.tables["by_country"]
    assert isinstance(table, pyarrow.Table)
    assert table.num_rows > 0
    assert release.paths["by_country"] == workdir.joinpath("out/quickstart/by_country.csv").relative_to(workdir)
    assert release.charge_id == 1
    assert release.manifest["job"] == "quickstart"
    assert release.manifest["ledger"]["charge_id"] == release.charge_id
    assert release.manifest["private"] is True
    assert release.budget_left.startswith("ε = ")
    assert release.warnings == []


def test_tables_have_the_columns_and_rows_of_the_files_written(workdir):
    release = veil.run("configs/quickstart.toml")
    table = release.tables["by_country"]
    with open(release.paths["by_country"], newline="") as file:
        rows = list(csv.reader(file))
    assert table.column_names == rows[0]
    assert table.num_rows == len(rows) - 1
    assert table.column("country").to_pylist() == [row[0] for row in rows[1:]]
    counts = [int(value) for value in table.column("count").to_pylist()]
    assert counts == [int(row[1]) for row in rows[1:]]


def test_manifest_is_release_json(workdir):
    release = veil.run("configs/quickstart.toml")
    with open(release.manifest_path) as file:
        assert release.manifest == json.load(file)
    assert release.manifest["columns_read"] == ["user_id", "country", "value", "event_time"]


def test_to_pandas_and_to_polars(workdir):
    pandas = pytest.importorskip("pandas")
    polars = pytest.importorskip("polars")
    release = veil.run("configs/quickstart.toml")
    frame = release.to_pandas("by_country")
    assert isinstance(frame, pandas.DataFrame)
    assert list(frame.columns) == release.tables["by_country"].column_names
    polars_frame = release.to_polars("by_country")
    assert isinstance(polars_frame, polars.DataFrame)
    assert polars_frame.height == release.tables["by_country"].num_rows
    with pytest.raises(KeyError):
        release.to_pandas("no_such_query")


def test_repr_html_shows_values_with_intervals_and_the_privacy_cost(workdir):
    release = veil.run("configs/quickstart.toml")
    page = release._repr_html_()
    cost = release.manifest["cost"]
    assert "Privacy cost" in page and f"ε = {cost['epsilon']:.4g}" in page
    assert "count (95% CI)" in page
    first = release.tables["by_country"].slice(0, 1).to_pylist()[0]
    low, high = first["count_ci_low"], first["count_ci_high"]

    def shown(value):  # as the preview prints a released float: whole from 100 up
        return f"{value:.0f}" if abs(value) >= 100 else f"{value:.2f}"

    assert f"{first['count']} [{shown(low)}, {shown(high)}]" in page
    assert "budget left" in page
    assert "veil.Release" in repr(release)


def test_a_job_dict_runs_as_its_file_does(workdir, job):
    job["output"]["path"] = "out/from-dict"
    release = veil.run(job, name="daily")
    assert release.manifest["job"] == "daily"
    assert release.paths["by_country"].parent.name == "from-dict"
    history = veil.Ledger("veil-ledger.sqlite").history()
    assert [charge["job"] for charge in history] == ["daily"]


def test_ledger_and_output_can_be_given_as_on_the_command_line(workdir):
    release = veil.run("configs/quickstart.toml", ledger="other.sqlite", output="elsewhere")
    assert release.ledger.name == "other.sqlite"
    assert (workdir / "elsewhere" / "by_country.csv").exists()
    assert not (workdir / "veil-ledger.sqlite").exists()


def test_each_run_draws_fresh_noise(workdir):
    first = veil.run("configs/quickstart.toml", output="out/a")
    second = veil.run("configs/quickstart.toml", output="out/b")
    assert first.tables["by_country"].column("count") != second.tables["by_country"].column("count")
