"""The options that several commands share, defined once so that they read the same everywhere.

A shared option is a decorator: ``@store_option`` goes first among a command's options (right
after its arguments), so ``--store`` sits in the same place in every ``--help``. A new shared option
is one more function here, applied in each command that takes it (as ``@engine_options`` is on
ingest, tag, dedup, infer and assemble).

Nothing here imports pyarrow, numpy, duckdb or polars: ``curator --help`` must stay fast.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import click

from curator.engine.base import DEFAULT_ENGINE, ENGINE_ENV
from curator.store.locking import DEFAULT_LOCK_TIMEOUT

if TYPE_CHECKING:
    from curator.engine.base import Engine

F = TypeVar("F", bound=Callable[..., Any])

#: The input formats of `curator.ingest.readers` (a test checks they agree; importing the readers
#: here would load pyarrow for `--help`).
INPUT_FORMATS: tuple[str, ...] = ("jsonl", "parquet", "csv", "text", "image", "webdataset")

STORE_HELP = "The store directory."


def store_option(f: F) -> F:
    """``--store DIR`` (env CURATOR_STORE), passed to the command as ``store_path``."""
    return click.option(
        "--store",
        "store_path",
        envvar="CURATOR_STORE",
        show_envvar=True,
        metavar="DIR",
        type=click.Path(file_okay=False),
        help=STORE_HELP,
    )(f)


def lock_timeout_option(f: F) -> F:
    """``--lock-timeout SECONDS`` (env CURATOR_LOCK_TIMEOUT) for commands that write to the store."""
    return click.option(
        "--lock-timeout",
        type=click.FloatRange(0),
        envvar="CURATOR_LOCK_TIMEOUT",
        show_envvar=True,
        default=DEFAULT_LOCK_TIMEOUT,
        metavar="SECONDS",
        help="Seconds to wait for another writer.",
    )(f)


def progress_option(f: F) -> F:
    """``--progress/--no-progress``: a progress bar, shown only on a terminal."""
    return click.option(
        "--progress/--no-progress", default=True, help="Progress bar on a terminal."
    )(f)


#: The environment variable of ``--ray-address``: Ray's own, which Ray's tools read too.
RAY_ADDRESS_ENV = "RAY_ADDRESS"


def engine_options(f: F) -> F:
    """``--engine NAME`` (env CURATOR_ENGINE, default ``local``) and ``--ray-address ADDRESS``
    (env RAY_ADDRESS), passed as ``engine`` and ``ray_address``; :func:`engine_for` makes the
    engine they name."""
    f = click.option(
        "--ray-address",
        metavar="ADDRESS",
        envvar=RAY_ADDRESS_ENV,
        show_envvar=True,
        help="Join an existing Ray cluster; without it --engine ray starts a local Ray for the "
        "command with this machine's cores.",
    )(f)
    return click.option(
        "--engine",
        metavar="NAME",
        envvar=ENGINE_ENV,
        show_envvar=True,
        default=DEFAULT_ENGINE,
        help="Where the work runs: `local` (worker processes on this machine) or `ray` (with "
        "`pip install 'curator[ray]'`).",
    )(f)


@contextmanager
def engine_for(
    engine: str, ray_address: str | None, *, jobs: int | None = None
) -> Iterator[Engine]:
    """The engine that :func:`engine_options` name, closed when the command is done.

    A name that came from CURATOR_ENGINE is left for :func:`curator.engine.registry.get_engine`
    to read, so that its error says where the name came from. RAY_ADDRESS is Ray's own variable,
    often set for other tools: it counts only with ``--engine ray`` (an explicit
    ``--ray-address`` with another engine is an error).

    Raises:
        EngineError: an unknown engine, one that is not available, or ``--ray-address``
            without ``--engine ray``.
    """
    from click.core import ParameterSource

    from curator.engine.registry import get_engine

    ctx = click.get_current_context()
    from_env = ParameterSource.ENVIRONMENT
    name = None if ctx.get_parameter_source("engine") is from_env else engine
    if ctx.get_parameter_source("ray_address") is from_env and engine.strip().lower() != "ray":
        ray_address = None
    with get_engine(name, jobs=jobs, address=ray_address) as made:
        yield made


def json_option(help: str = "Print JSON.") -> Callable[[F], F]:
    """``--json``, passed as ``as_json``; `help` says what is printed."""
    return click.option("--json", "as_json", is_flag=True, help=help)


def open_store_at(store_path: str | None) -> Any:
    """The store named by ``--store`` (or CURATOR_STORE), opened through the public API."""
    from curator.api import open_store

    return open_store(store_path)


class SizeType(click.ParamType):
    """A size such as ``256MiB``, ``64MB`` or ``4096``, in bytes."""

    name = "SIZE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        from curator.core.output import parse_size

        if isinstance(value, int):
            return value
        try:
            return parse_size(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class DateType(click.ParamType):
    """A date or timestamp, UTC unless a zone is given."""

    name = "DATE"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> datetime:
        from curator.core.provenance import parse_timestamp

        try:
            return parse_timestamp(str(value))
        except ValueError as exc:
            self.fail(f"{exc} (examples: 2021-06-01, 2021-06-01T12:00:00Z)", param, ctx)


def _renames(values: tuple[str, ...]) -> dict[str, str]:
    renames: dict[str, str] = {}
    for value in values:
        old, sep, new = value.partition("=")
        if not sep or not old or not new:
            raise click.BadParameter(f"{value!r} is not OLD=NEW", param_hint="--rename-column")
        renames[old] = new
    return renames


def provenance_options(*, generated_by: bool) -> Callable[[F], F]:
    """The provenance and input flags shared by ingest and tag; `generated_by` adds ingest's
    ``--generated-by MODEL`` (a registered model, which only a store knows)."""
    options = [
        click.option(
            "--source",
            required=True,
            help="Dataset or crawl name (letters, digits, . _ -); prefixes every sample_id.",
        ),
        click.option(
            "--origin",
            type=click.Choice(["real", "synthetic", "unknown"]),
            help="Declared origin of every sample"
            + (" (or --generated-by)." if generated_by else "."),
        ),
        *(
            [
                click.option(
                    "--generated-by",
                    metavar="MODEL",
                    help="A registered model made every sample: origin synthetic, generation = "
                    "its generation + 1.",
                )
            ]
            if generated_by
            else []
        ),
        click.option(
            "--generation",
            type=click.IntRange(0),
            help="0 for real (the default); N >= 1 for synthetic (required).",
        ),
        click.option("--model", help="The generator of synthetic samples."),
        click.option(
            "--confidence",
            type=click.FloatRange(0, 1),
            default=1.0,
            help="origin_confidence of the declared label.",
        ),
        click.option(
            "--collected-at",
            type=DateType(),
            help="When every sample was created or captured (UTC unless a zone is given).",
        ),
        click.option(
            "--collected-at-column",
            metavar="COL",
            help="Input column holding each sample's creation time.",
        ),
        click.option(
            "--id-column",
            metavar="COL",
            show_default="file and line/row",
            help="Input column whose value is the sample key.",
        ),
        click.option(
            "--text-column",
            metavar="COL",
            default="text",
            help="Input column holding the text.",
        ),
        click.option(
            "--image-column",
            metavar="COL",
            help="Input column holding image bytes (tabular inputs).",
        ),
        click.option(
            "--parent-id-column",
            metavar="COL",
            help="Input column holding the sample_id (SOURCE/KEY) of the sample this one was "
            "derived from.",
        ),
        click.option(
            "--rename-column",
            "rename_column",
            multiple=True,
            metavar="OLD=NEW",
            help="Rename an input column first (repeatable), e.g. an input column named `source`.",
        ),
        click.option(
            "--format",
            "input_format",
            type=click.Choice(["auto", *INPUT_FORMATS]),
            default="auto",
            help="Input format (auto: by file name).",
        ),
        click.option(
            "--strict",
            is_flag=True,
            help="Any rejected record fails the run; nothing is committed.",
        ),
        click.option(
            "--allow-empty",
            is_flag=True,
            help="Accept a run that keeps no record, or that rejects whole files for a missing "
            "column (by default it fails and keeps nothing).",
        ),
        click.option(
            "--jobs",
            "-j",
            type=click.IntRange(1),
            show_default="all cores",
            help="Worker processes.",
        ),
        click.option(
            "--shard-size",
            type=SizeType(),
            show_default="256MiB",
            help="Target content bytes per shard.",
        ),
        click.option(
            "--max-image-pixels",
            type=click.IntRange(1),
            default=89_478_485,
            help="Larger images are rejected (decompression-bomb guard).",
        ),
        click.option(
            "--max-record-bytes",
            type=SizeType(),
            default="64MiB",
            help="Longer JSON Lines lines and CSV records are rejected (record_too_large).",
        ),
        click.option(
            "--batch-rows",
            type=click.IntRange(1),
            default=8192,
            help="Records per batch (memory per worker grows with it).",
        ),
    ]

    def decorate(f: F) -> F:
        for option in reversed(options):
            f = option(f)
        return f

    return decorate


def provenance_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of :meth:`curator.Store.ingest` and :func:`curator.tag` that
    :func:`provenance_options` collected."""
    return {
        "source": kwargs["source"],
        "origin": kwargs["origin"],
        "generation": kwargs["generation"],
        "model": kwargs["model"],
        "confidence": kwargs["confidence"],
        "collected_at": kwargs["collected_at"],
        "collected_at_column": kwargs["collected_at_column"],
        "id_column": kwargs["id_column"],
        "text_column": kwargs["text_column"],
        "image_column": kwargs["image_column"],
        "parent_id_column": kwargs["parent_id_column"],
        "rename_columns": _renames(kwargs["rename_column"]),
        "input_format": kwargs["input_format"],
        "strict": kwargs["strict"],
        "allow_empty": kwargs["allow_empty"],
        "jobs": kwargs["jobs"],
        "shard_bytes": kwargs["shard_size"],
        "max_image_pixels": kwargs["max_image_pixels"],
        "batch_rows": kwargs["batch_rows"],
        "max_record_bytes": kwargs["max_record_bytes"],
    }
