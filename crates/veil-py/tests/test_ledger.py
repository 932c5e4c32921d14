"""veil.Ledger, and one ledger shared by Python and the command."""

import json

import pytest

import veil


def test_status_history_and_reservations(workdir):
    ledger = veil.Ledger("veil-ledger.sqlite")
    with pytest.raises(veil.ConfigError, match="no ledger at veil-ledger.sqlite"):
        ledger.status()
    release = veil.run("configs/quickstart.toml")
    [budget] = ledger.status(dataset="events")
    assert (budget["dataset"], budget["purpose"]) == ("events", "analytics")
    assert budget["total"] == {"epsilon": 8.0, "delta": 1e-5}
    assert 0 < budget["spent"]["epsilon"] < 8
    assert budget["reserved"] == []
    assert ledger.status(dataset="other") == []
    [charge] = ledger.history()
    assert charge["id"] == release.charge_id
    assert charge["state"] == "committed"
    assert charge["job"] == "quickstart"
    assert {item["name"] for item in charge["releases"]} == {"by_country", "release.json"}
    assert charge["diagnostics_not_private"]["rows_read"] > 0
    assert ledger.reservations() == []
    assert "veil-ledger.sqlite" in repr(ledger)


def test_init_budget(workdir):
    ledger = veil.Ledger("new.sqlite")
    said = ledger.init_budget("events", "research", rho=0.5, period="30d")
    assert said.startswith("created a budget of")
    [budget] = ledger.status()
    assert budget["measure"] == "zcdp"
    assert budget["total"] == {"rho": 0.5}
    with pytest.raises(veil.ConfigError, match="already"):
        ledger.init_budget("events", "research", rho=0.5)
    with pytest.raises(veil.ConfigError):
        ledger.init_budget("events", "other", epsilon=1.0, rho=0.5)


def test_amend_budget(workdir):
    ledger = veil.Ledger("amend.sqlite")
    ledger.init_budget("events", "analytics", epsilon=1.0, delta=1e-6)
    said = ledger.amend_budget("events", "analytics", epsilon=2.0, note="board decision")
    assert said.startswith("changed the budget of")
    [budget] = ledger.status()
    assert budget["total"] == {"epsilon": 2.0, "delta": 1e-6}
    assert [a["note"] for a in budget["amendments"]] == ["board decision"]
    with pytest.raises(veil.ConfigError, match="keeps its measure"):
        ledger.amend_budget("events", "analytics", rho=1.0, note="typo")
    with pytest.raises(veil.ConfigError, match="say why"):
        ledger.amend_budget("events", "analytics", epsilon=3.0, note=" ")


def test_python_and_the_command_charge_the_same_ledger(workdir, veil_cli):
    completed = veil_cli("run", "configs/quickstart.toml", "--output", "out/cli")
    assert completed.returncode == 0, completed.stderr
    ledger = veil.Ledger("veil-ledger.sqlite")
    after_cli = ledger.status()[0]["spent"]["epsilon"]
    release = veil.run("configs/quickstart.toml", output="out/python")
    after_python = ledger.status()[0]["spent"]["epsilon"]
    assert after_python > after_cli > 0
    history = ledger.history()
    assert [(charge["job"], charge["state"]) for charge in history] == [
        ("quickstart", "committed"),
        ("quickstart", "committed"),
    ]
    assert history[0]["job_hash"] == history[1]["job_hash"]
    assert history[0]["mechanisms"] == history[1]["mechanisms"]
    assert history[1]["id"] == release.charge_id
    # The command reads what Python charged, and the other way round.
    status = json.loads(veil_cli("budget", "status", "--ledger", "veil-ledger.sqlite", "--json").stdout)
    assert status == ledger.status()
    cli_history = json.loads(veil_cli("budget", "history", "--ledger", "veil-ledger.sqlite", "--json").stdout)
    assert [charge["id"] for charge in cli_history] == [charge["id"] for charge in history]
