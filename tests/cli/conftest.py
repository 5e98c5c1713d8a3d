"""Fixtures the CLI's test files share."""

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from entrypoints.cli.main import cli


@pytest.fixture
def store(tmp_path: Path, sqlite_template: Path) -> str:
    """A migrated SQLite store with the tenant acme."""
    shutil.copyfile(sqlite_template, tmp_path / "store.db")
    url = f"sqlite:///{tmp_path}/store.db"
    created = CliRunner().invoke(cli, ["--storage-url", url, "tenants", "create", "acme"])
    assert created.exit_code == 0, created.output
    return url
