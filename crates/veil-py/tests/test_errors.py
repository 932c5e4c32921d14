"""Errors: the command's classes and messages, panics, and Ctrl-C."""

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

import veil
from veil import _veil


def test_error_classes_form_a_hierarchy():
    assert issubclass(veil.ConfigError, veil.VeilError)
    assert issubclass(veil.BudgetExceeded, veil.VeilError)
    assert issubclass(veil.VeilError, Exception)
    assert not issubclass(veil.ConfigError, veil.BudgetExceeded)


def test_a_config_error_names_the_key(workdir, job):
    del job["query"][0]["max_rows_per_group"]
    with pytest.raises(veil.ConfigError, match=r"^job: query\[0\]\.max_rows_per_group: missing"):
        veil.run(job)
    job["query"][0]["max_rows_per_group"] = 5
    job["unknown"] = 1
    with pytest.raises(veil.ConfigError, match="^job: unknown: unknown field `unknown`, expected one of"):
        veil.explain(job)
    del job["unknown"]
    del job["source"]["path"]
    assert str(pytest.raises(veil.ConfigError, veil.explain, job).value) == "job: source: missing field `path`"


def test_a_config_error_has_the_commands_message(workdir, veil_cli):
    bad = workdir / "bad.toml"
    text = (workdir / "configs" / "quickstart.toml").read_text()
    bad.write_text(text.replace("max_rows_per_group = 5", "max_rows_per_group = -5"))
    completed = veil_cli("run", bad)
    assert completed.returncode == 2
    with pytest.raises(veil.ConfigError) as raised:
        veil.run(bad)
    assert completed.stderr.strip() == f"error: {raised.value}"


def test_a_missing_job_file_is_a_config_error(workdir):
    with pytest.raises(veil.ConfigError, match="nowhere.toml: cannot read the job file"):
        veil.run("nowhere.toml")


def test_a_refused_charge_is_budget_exceeded_and_releases_nothing(workdir, job):
    ledger = veil.Ledger("small.sqlite")
    ledger.init_budget("events", "analytics", epsilon=0.5, delta=1e-5)
    job["budget"]["ledger"] = "small.sqlite"
    del job["budget"]["purposes"]
    job["output"]["path"] = "out/refused"
    with pytest.raises(veil.BudgetExceeded, match="budget"):
        veil.run(job)
    assert not (workdir / "out" / "refused").exists()
    assert ledger.history() == []
    assert ledger.status()[0]["spent"]["epsilon"] == 0


def test_a_budget_refusal_has_the_commands_message_and_exit_code(workdir, job, veil_cli):
    veil.Ledger("small.sqlite").init_budget("events", "analytics", epsilon=0.5, delta=1e-5)
    text = (workdir / "configs" / "quickstart.toml").read_text()
    small = workdir / "small.toml"
    small.write_text(
        text.replace('ledger = "veil-ledger.sqlite"', 'ledger = "small.sqlite"').replace(
            'purposes = "configs/purposes.toml"', ""
        )
    )
    completed = veil_cli("run", small)
    assert completed.returncode == 3
    with pytest.raises(veil.BudgetExceeded) as raised:
        veil.run(small)
    assert f"error: {raised.value}" in completed.stderr


def test_other_failures_are_veil_errors(workdir, job):
    job["source"]["min_units"] = 10**12
    with pytest.raises(veil.VeilError) as raised:
        veil.run(job)
    assert type(raised.value) is veil.VeilError
    assert "source.min_units" in str(raised.value)


def test_a_panic_is_a_veil_error_not_a_panic_exception():
    with pytest.raises(veil.VeilError, match="internal error .a bug in Veil"):
        _veil._panic_for_tests()


def test_ctrl_c_before_the_commit_stops_the_run_and_charges_nothing(workdir):
    """Ctrl-C while the run waits for the ledger: the reservation is given back, nothing is
    published, and KeyboardInterrupt reaches the caller."""
    veil.run("configs/quickstart.toml", output="out/first")
    ledger = veil.Ledger("veil-ledger.sqlite")
    spent = ledger.status()[0]["spent"]
    # Another process holds the ledger in the middle of a write. (A connection in this
    # process would not do: SQLite's file locks are per process, and the extension carries
    # its own SQLite, so the run would not see them.)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys, time\n"
            "lock = sqlite3.connect('veil-ledger.sqlite')\n"
            "lock.execute('BEGIN IMMEDIATE')\n"
            "print('held', flush=True)\n"
            "sys.stdin.readline()\n"
            "lock.rollback()\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"

    def interrupt_then_unlock():
        time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.5)
        holder.stdin.write("\n")
        holder.stdin.flush()

    # Python turns SIGINT into KeyboardInterrupt only if the process did not inherit it
    # ignored, as a job started in the background by a non-interactive shell does.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    thread = threading.Thread(target=interrupt_then_unlock)
    thread.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            veil.run("configs/quickstart.toml", output="out/interrupted")
    finally:
        thread.join()
        holder.wait(timeout=30)
        signal.signal(signal.SIGINT, previous)
    assert not (workdir / "out" / "interrupted").exists()
    assert ledger.status()[0]["spent"] == spent
    # Interrupted before its reservation, or after it and before its commit (given back).
    states = [charge["state"] for charge in ledger.history()]
    assert states in (["committed"], ["committed", "aborted"]), states
    assert ledger.reservations() == []
