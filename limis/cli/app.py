"""The shared typer application and consoles."""

from __future__ import annotations

from dataclasses import dataclass

import typer
from rich.console import Console
from rich.markup import escape

app = typer.Typer(
    name="limis",
    help="LIMIS: language-prompted, interactive medical image segmentation.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)
console = Console()
console_err = Console(stderr=True)


@dataclass(frozen=True)
class Invocation:
    """How the CLI was started (typer's `ctx.obj`): `own_process` when the process runs this one command and exits."""

    own_process: bool = False


def invocation(ctx: typer.Context) -> Invocation:
    return ctx.obj if isinstance(ctx.obj, Invocation) else Invocation()


def print_written(path) -> None:
    """`wrote PATH` on stdout, never wrapped at the terminal width or read as markup (scripts grep these lines)."""
    console.print(f"wrote {escape(str(path))}", highlight=False, soft_wrap=True)


def print_reader_warnings(volume) -> None:
    """Print, one line each on stderr, what the reader changed or chose (NaN voxels replaced, one series of several)."""
    print_warnings(volume.metadata.get("warnings", []))


def print_warnings(lines: list[str]) -> None:
    """Each line on stderr as `warning: ...`."""
    for line in lines:
        console_err.print(f"[yellow]warning:[/] {escape(line)}", highlight=False, soft_wrap=True)
