"""`ragkit` command line. Each command (a module of this package) parses options, calls the Python
API, and prints; this module puts them under one `ragkit` command and turns errors into one line."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.markup import escape

from ragkit.cli import adapt, embed, eval, export, index, info, query, serve
from ragkit.cli.options import console, errors
from ragkit.errors import RagkitError, for_flags

app = typer.Typer(
    help="Decoder LLMs as text encoders (LLM2Vec), and retrieval on top of them.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
for command in (embed.embed, index.index, query.query, export.export, serve.serve, adapt.adapt):
    app.command()(command)
app.command("eval")(eval.eval_)
app.command()(info.info)


def _print_version(value: bool) -> None:
    if value:
        from ragkit import __version__

        console.print(f"ragkit {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool | None,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = None,
) -> None:
    """Decoder LLMs as text encoders (LLM2Vec), and retrieval on top of them."""


def cli_flags() -> dict[str, str]:
    """Python parameter name -> its long CLI flag, over every command (`index_dir` -> "--index")."""
    flags: dict[str, str] = {}
    group = typer.main.get_command(app)
    assert isinstance(group, typer.core.TyperGroup)  # an app of several commands
    for command in group.commands.values():
        for param in command.params:
            long = [opt for opt in param.opts if opt.startswith("--")]
            if long and param.name:
                flags.setdefault(param.name, long[0])
    return flags


def main() -> None:
    """Entry point: user errors are one line on stderr, never a traceback; parameters named as flags."""
    try:
        app()
    except RagkitError as e:
        message = escape(for_flags(str(e), cli_flags()))
        errors.print(f"[red]error:[/] {message}", soft_wrap=True, highlight=False)
        sys.exit(1)
    except KeyboardInterrupt:
        errors.print("interrupted")
        sys.exit(130)
