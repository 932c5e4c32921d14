"""Fixtures: a working directory with the repository's sample data and jobs, the quickstart
job as a dict, and the `veil` command built from the same checkout."""

import copy
import os
import pathlib
import shutil
import subprocess

import pytest

try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = None

ROOT = pathlib.Path(__file__).resolve().parents[3]


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A fresh directory holding `configs/` and `data/` (links to the repository's), made
    the current directory, so that the jobs' relative paths resolve and each test has its
    own ledger and outputs."""
    for name in ("configs", "data"):
        (tmp_path / name).symlink_to(ROOT / name, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="session")
def quickstart_dict():
    """configs/quickstart.toml as a dict (a fresh copy per use: `copy.deepcopy`)."""
    if tomllib is None:
        pytest.skip("reading TOML needs Python 3.11's tomllib")
    with open(ROOT / "configs" / "quickstart.toml", "rb") as file:
        return tomllib.load(file)


@pytest.fixture
def job(quickstart_dict):
    """The quickstart job as a dict, to change freely."""
    return copy.deepcopy(quickstart_dict)


def _veil_binary():
    given = os.environ.get("VEIL")
    if given:
        return given
    found = shutil.which("veil")
    if found:
        return found
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    built = target / "debug" / "veil"
    return str(built) if built.exists() else None


@pytest.fixture(scope="session")
def veil_cli():
    """Runs the `veil` command (VEIL, else `veil` on PATH, else the debug build); returns
    the completed process. Skipped when there is none, except in CI, where it fails."""
    binary = _veil_binary()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("no veil binary: set VEIL to the one built from this checkout")
        pytest.skip("no veil binary: set VEIL to the one built from this checkout")

    def run(*args):
        return subprocess.run(
            [binary, *map(str, args)], capture_output=True, text=True, check=False
        )

    return run
