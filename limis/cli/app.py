"""The shared typer application and consoles."""

from __future__ import annotations

import typer
from rich.console import Console

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
