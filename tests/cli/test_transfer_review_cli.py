"""A hostile review of `sessionmeter import`: a file that is not an export is one line of error
and exit status 1, never a traceback (README: "never a stack trace"; running.run: "domain and
storage errors become a one-line message and exit code 1, never a traceback"). Found by the
review (a helper's, 2026-12-05): a line of JSON that is not an object, a `$decimal` that is not a
number, a field of the wrong type or past 64 bits each printed a traceback (or, a wrong type,
was stored and broke the tenant's next export)."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from application.transfer.tenant_export_format import VERSION
from entrypoints.cli.main import cli
from tests.conftest import open_storage, run_async
from tests.contract.builders import add_tenant, stored_session

HEADER = json.dumps({"record": "sessionmeter-export", "version": 1, "tenant": "acme"})  # no end


def sessionmeter(url: str, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--storage-url", url, *args])


@pytest.fixture
def store(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path}/store.db"
    assert sessionmeter(url, "db", "upgrade").exit_code == 0
    return url


def importing(store: str, tmp_path: Path, *lines: str) -> Result:
    file = tmp_path / "acme.jsonl"
    file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return sessionmeter(store, "import", str(file))


def a_tenant_line(store: str) -> str:
    assert sessionmeter(store, "tenants", "create", "acme").exit_code == 0
    exported = sessionmeter(store, "export", "--tenant", "acme")
    line: str = exported.stdout.splitlines()[1]
    return line.replace('"name":"acme"', '"name":"moved"').replace('"id":"', '"id":"x', 1)


@pytest.mark.parametrize("line", ["1", "null", '"tenant"'])
def test_a_line_that_is_json_but_not_an_object_is_one_line_of_error(
    store: str, tmp_path: Path, line: str
) -> None:
    result = importing(store, tmp_path, HEADER, line)

    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: line 2: "), result.stderr


def test_a_decimal_that_is_not_a_number_is_one_line_of_error(store: str, tmp_path: Path) -> None:
    tenant = a_tenant_line(store)
    rate = '{"record":"rate","kind":"k","credits_per_minute":{"$decimal":"lots"}}'

    result = importing(store, tmp_path, HEADER, tenant, rate)

    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.stderr.startswith("Error: line 3: "), result.stderr


def test_an_export_of_another_format_version_is_refused_before_anything_is_stored(
    store: str, tmp_path: Path
) -> None:
    """tenant_export_format: the header's version must be one it reads; a file of a later format
    may mean its records differently, so none of it is taken."""
    tenant = a_tenant_line(store)
    later = json.dumps({"record": "sessionmeter-export", "version": VERSION + 1, "tenant": "moved"})

    result = importing(store, tmp_path, later, tenant)

    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("Error: line 1: "), result.stderr
    assert f"format version {VERSION + 1}" in result.stderr
    assert sessionmeter(store, "export", "--tenant", "moved").exit_code == 1  # none stored


async def _a_tenant_with_a_session(url: str) -> None:
    storage = open_storage(url)
    try:
        await stored_session(storage, await add_tenant(storage, "acme"))
    finally:
        await storage.close()


@pytest.mark.parametrize("count", ['"many"', str(2**64)])
def test_a_record_with_a_field_of_the_wrong_type_or_size_is_refused_with_its_line(
    store: str, tmp_path: Path, count: str
) -> None:
    """README (Limits): every number must fit what every store holds exactly, imports included;
    ImportTenant: InvalidInput names the first line that is not a record of the export
    format. Nothing of the file is stored."""
    source = f"sqlite:///{tmp_path}/source.db"
    assert sessionmeter(source, "db", "upgrade").exit_code == 0
    run_async(lambda: _a_tenant_with_a_session(source))
    header, tenant, session = sessionmeter(source, "export", "--tenant", "acme").stdout.split("\n")[
        :3
    ]
    assert '"event_count":0,' in session

    result = importing(
        store,
        tmp_path,
        header,
        tenant,
        session.replace('"event_count":0,', f'"event_count":{count},'),
    )

    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == 1 and result.stderr.startswith("Error: line 3: "), result.output
    assert sessionmeter(store, "export", "--tenant", "acme").exit_code == 1  # nothing stored
