"""veil.explain and veil.report."""

import json

import pyarrow.parquet
import pytest

import veil


def test_explain_is_the_plan_and_reads_no_rows(workdir):
    plan = veil.explain("configs/quickstart.toml")
    assert plan["columns_read"] == ["user_id", "country", "value", "event_time"]
    assert plan["purpose"] == "analytics"
    [query] = plan["queries"]
    assert query["name"] == "by_country"
    assert query["max_groups_per_unit"] == 3
    assert {aggregate["output"] for aggregate in query["aggregates"]} >= {"count", "sum_value"}
    assert not (workdir / "veil-ledger.sqlite").exists()
    assert not (workdir / "out").exists()


def test_explain_says_what_the_command_says(workdir, veil_cli):
    completed = veil_cli("explain", "configs/quickstart.toml", "--json")
    assert completed.returncode == 0, completed.stderr
    assert veil.explain("configs/quickstart.toml") == json.loads(completed.stdout)


def test_explain_on_data_in_memory_checks_its_columns(workdir):
    events = pyarrow.parquet.read_table("data/events.parquet")
    assert veil.explain("configs/quickstart.toml", data=events)["source"] == "<data>"
    with pytest.raises(veil.ConfigError, match='"country" is not in <data>'):
        veil.explain("configs/quickstart.toml", data=events.drop_columns(["country"]))


def test_report_returns_report_json_and_the_html_page(workdir):
    report = veil.report("configs/quickstart.toml", epsilons=[0.5, 1, 2], trials=20, output="out/report")
    assert isinstance(report, dict)
    with open(workdir / "out" / "report" / "report.json") as file:
        assert report == json.load(file)
    assert report.html == workdir.joinpath("out/report/report.html").relative_to(workdir)
    assert report.html.read_text().lstrip().lower().startswith("<!doctype html")
    assert "not private" in report.text.lower()
    assert "<iframe" in report._repr_html_()
    assert not (workdir / "veil-ledger.sqlite").exists(), "a report charges nothing"


def test_report_on_data_in_memory_and_analytic_only(workdir):
    events = pyarrow.parquet.read_table("data/events.parquet")
    on_data = veil.report("configs/quickstart.toml", epsilons=[1], trials=10, data=events)
    assert on_data.html.exists()
    analytic = veil.report("configs/quickstart.toml", epsilons=[1, 2], analytic_only=True)
    assert analytic.html.exists()
    with pytest.raises(veil.ConfigError, match="epsilons"):
        veil.report("configs/quickstart.toml", epsilons=[-1], trials=10)
