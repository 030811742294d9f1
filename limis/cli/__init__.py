"""The `limis` command line: one verb per job; `main(argv) -> int` so tests can call it."""

from __future__ import annotations

import sys

import typer

from limis.cli.app import app, console_err
from limis.errors import LimisError

# Importing the verb modules registers their commands on `app`.
from limis.cli import bench_cmd, chat_cmd, demo_cmd, eval_cmd, example_cmd, info_cmd, segment_cmd, train_cmd, vocab_cmd  # noqa: E402,F401


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; user mistakes print one line and return 2, never a traceback."""
    import click

    try:
        result = app(args=argv if argv is not None else sys.argv[1:], prog_name="limis", standalone_mode=False)
    except LimisError as error:
        console_err.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
        return 2
    except click.exceptions.Exit as done:
        return int(done.exit_code)
    except click.exceptions.Abort:
        console_err.print("aborted")
        return 130
    except click.ClickException as error:
        error.show()
        return int(error.exit_code)
    return int(result) if isinstance(result, int) else 0


def entry() -> None:
    sys.exit(main())


__all__ = ["app", "main", "entry", "typer"]
