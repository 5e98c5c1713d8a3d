"""What commands show besides their result line: rows in a chosen format, and progress on
standard error while a person is watching it (never in a pipe or a log)."""

import csv
import io
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from typing import IO, NoReturn

import click

from domain.money import amount_text

format_option = click.option(
    "--format",
    "output",
    type=click.Choice(["table", "json", "csv"]),
    default="table",
    show_default=True,
)


def echo_rows(output: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Rows under their column names, in the format of `format_option`: an aligned table, a JSON
    array of objects, or CSV with a header row."""
    if output == "json":
        objects = [dict(zip(columns, row, strict=True)) for row in rows]
        click.echo(json.dumps(objects, default=_plain))
        return
    rows = [[_cell(v) for v in row] for row in rows]
    if output == "csv":
        text = io.StringIO()
        # Lines end as RFC 4180 says: a cell holding a carriage return is then quoted too.
        csv.writer(text, lineterminator="\r\n").writerows([columns, *rows])
        click.echo(text.getvalue(), nl=False)
    else:
        widths = [max(len(str(v)) for v in column) for column in zip(columns, *rows, strict=True)]
        for row in (columns, *rows):
            click.echo(
                "  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
            )


def watched() -> bool:
    return sys.stderr.isatty()


class Progress:
    """A running count of records on standard error."""

    def __init__(self, verb: str) -> None:
        self._verb = verb
        self._count = 0
        self._shown = watched()

    def one(self) -> None:
        self._count += 1
        if self._shown and self._count % 1000 == 0:
            click.echo(f"\r{self._verb} {self._count:,} records", nl=False, err=True)

    def done(self) -> None:
        if self._shown:
            click.echo(f"\r{self._verb} {self._count:,} records", err=True)


class HourBar:
    """A progress bar of hours rolled up, on standard error."""

    WIDTH = 30

    def __init__(self) -> None:
        self._shown = watched()

    def show(self, done: int, planned: int) -> None:
        if self._shown and planned:
            filled = self.WIDTH * done // planned
            bar = "#" * filled + "-" * (self.WIDTH - filled)
            click.echo(f"\rrolling up [{bar}] {done}/{planned} hours", nl=False, err=True)

    def done(self) -> None:
        if self._shown:
            click.echo(err=True)


@contextmanager
def lines_read(source: IO[str], label: str) -> Iterator[Iterator[str]]:
    """The lines of a file, with a bar of the bytes read on standard error (standard input has
    no size to measure against, so it has none)."""
    size = os.fstat(source.fileno()).st_size if source is not sys.stdin else 0
    if not (watched() and size):
        yield iter(source)
        return
    with click.progressbar(length=size, label=label, file=sys.stderr) as bar:

        def lines() -> Iterator[str]:
            for line in source:
                bar.update(len(line.encode()))
                yield line

        yield lines()


class Passes:
    """A seekable file's lines, from its start each time they are iterated: an import reads
    them twice (checking every line, then storing), each pass with its bar of the bytes read."""

    def __init__(self, file: IO[str]) -> None:
        self._file = file
        self._labels = iter(("checking", "importing"))

    def __iter__(self) -> Iterator[str]:
        self._file.seek(0)
        with lines_read(self._file, next(self._labels, "importing")) as lines:
            yield from lines


@contextmanager
def steady_copy(source: IO[str]) -> Iterator[IO[str]]:
    """A temporary copy of the source, to be read twice: the file itself (standard input, or a
    file a collector still writes) may be gone or longer by the second pass, which would then
    store lines the first never checked."""
    with tempfile.TemporaryFile("w+", encoding="utf-8") as copy:
        try:
            shutil.copyfileobj(source, copy)
        except UnicodeDecodeError as error:
            raise not_text(error) from None
        except OSError as error:  # a full temporary directory: not the output's failure
            raise click.ClickException(f"cannot copy the input: {error}") from None
        yield copy


class OutputFailed(Exception):
    """Standard output could not be written: its reader went away (`| head`), or its disk is
    full. Not the storage's failure."""


def write_out(text: str) -> None:
    """Write to standard output inside a job, where an OSError would read as the storage's."""
    try:
        sys.stdout.write(text)
    except OSError as error:
        raise OutputFailed() from error


def output_failed(ctx: click.Context, error: OSError) -> NoReturn:
    """Standard output points nowhere from here (so that flushing it at exit raises nothing);
    a reader gone stops the command quietly, a write that failed otherwise is one line; either
    way the exit status is 1."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    if isinstance(error, BrokenPipeError):
        ctx.exit(1)
    raise click.ClickException(f"cannot write the output: {error.strerror or error}")


def not_text(error: UnicodeDecodeError) -> click.ClickException:
    """A file given as text that is not (a compressed export, a spreadsheet), in one line."""
    return click.ClickException(
        f"not UTF-8 text (byte {error.start}: {error.reason}); give the file as exported"
    )


def _plain(value: object) -> object:
    """What JSON has no type for: exact decimals as strings of digits, instants in RFC 3339,
    sets as sorted lists."""
    if isinstance(value, frozenset):
        return sorted(value)
    if isinstance(value, Decimal):
        return amount_text(value)
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not shown")


def _cell(value: object) -> object:
    """A table or CSV cell: nothing as an empty cell, maps and sets (sorted) as JSON, so that
    items holding spaces or commas stay apart; decimals and instants as `_plain` says."""
    if value is None:
        return ""
    if isinstance(value, dict | frozenset):
        return json.dumps(value, default=_plain)
    if isinstance(value, Decimal | datetime):
        return _plain(value)
    return value
