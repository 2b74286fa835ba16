"""The `curator` click group and the one place where errors become messages and exit codes.

Command modules import :data:`cli` from here and register their commands on it;
``curator/cli/__init__.py`` imports them all.
"""

from __future__ import annotations

import os
from typing import Any

import click

from curator.core.version import __version__


class CuratorGroup(click.Group):
    """Turns CuratorError into a short message and exit 1, Ctrl-C into exit 130."""

    def invoke(self, ctx: click.Context) -> Any:
        from curator.core.errors import CuratorError

        try:
            return super().invoke(ctx)
        except CuratorError as exc:
            click.secho(f"Error: {exc.message}", fg="red", err=True)
            if exc.hint:
                click.echo(f"Hint: {exc.hint}", err=True)
            ctx.exit(exc.exit_code)
        except BrokenPipeError:
            # `curator … | head`: the reader left; say nothing more.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            ctx.exit(141)
        except KeyboardInterrupt:
            click.echo("Interrupted: nothing of this run was committed.", err=True)
            ctx.exit(130)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as exc:
            if os.environ.get("CURATOR_DEBUG") == "1":
                raise
            click.secho(f"Internal error: {type(exc).__name__}: {exc}", fg="red", err=True)
            click.echo(
                "This is a bug in curator. Run again with CURATOR_DEBUG=1 for the traceback.",
                err=True,
            )
            ctx.exit(2)


@click.group(
    cls=CuratorGroup,
    context_settings={
        "help_option_names": ["-h", "--help"],
        "max_content_width": 100,
        # Every option with a default says it in its help, on every command.
        "show_default": True,
    },
)
@click.version_option(__version__, prog_name="curator")
def cli() -> None:
    """Dataset curation with provenance: real or generated, how many generations deep, and
    training sets with a guaranteed share of fresh real data.

    Every command that uses a store takes --store DIR (env CURATOR_STORE); ingest, tag, dedup,
    infer and assemble run their work on --engine NAME (env CURATOR_ENGINE; default local).

    \b
    Examples:
      curator init ./store
      curator ingest corpus.jsonl --store ./store --source web-2021 --origin real
      curator stats --store ./store
    """
