"""The `limis` command line: one verb per job; `main(argv) -> int` so tests can call it."""

from __future__ import annotations

import logging
import sys
import warnings

import typer
from rich.markup import escape

# Importing the verb modules registers their commands on `app`.
from limis.cli import bench_cmd, chat_cmd, demo_cmd, eval_cmd, example_cmd, info_cmd, segment_cmd, train_cmd, vocab_cmd  # noqa: E402,F401
from limis.cli.app import Invocation, app, console_err
from limis.errors import LimisError

INTERRUPTED = 130  # typer returns this, silently, on Ctrl-C
# Verbs whose files are staged and moved into place together, so an interrupt leaves none behind.
ALL_OR_NOTHING = ("segment", "chat", "info", "vocab")


def main(argv: list[str] | None = None, *, own_process: bool = False) -> int:
    """Run the CLI; user mistakes print one line and return 2, never a traceback.

    `own_process`: this process exists to run this one command (the `limis` script), so a verb may change
    process-wide settings (glibc's allocator, `limis.cli.memory`); never when called inside a longer-lived program.
    """
    import click

    with HeldLibraryNoise() as noise:
        try:
            code = _run(argv, Invocation(own_process=own_process))
        except LimisError as error:
            console_err.print(f"[bold red]error:[/] {escape(str(error))}", highlight=False, soft_wrap=True)
            return 2
        except (click.exceptions.Abort, KeyboardInterrupt):
            code = INTERRUPTED
    if code == INTERRUPTED:
        command = next((arg for arg in (argv if argv is not None else sys.argv[1:]) if not arg.startswith("-")), "")
        console_err.print("interrupted, nothing written" if command in ALL_OR_NOTHING else "interrupted")
        return code
    noise.show()
    return code


class HeldLibraryNoise:
    """Hold Python warnings and nibabel's header-fix log lines while a command runs.

    pydicom, PIL and nibabel complain about the very files that then fail with one `error:`
    line; held, they are dropped on a user error and shown (`show`) after any other outcome.
    """

    def __enter__(self) -> HeldLibraryNoise:
        self._catcher = warnings.catch_warnings(record=True)
        self.warnings = self._catcher.__enter__()
        self.records: list[logging.LogRecord] = []
        self._logger = logging.getLogger("nibabel.global")  # nibabel logs header fixes here, to its own stderr handler
        self._logger.addFilter(self._hold)
        return self

    def _hold(self, record: logging.LogRecord) -> bool:
        self.records.append(record)
        return False

    def __exit__(self, *exc_info) -> None:
        self._logger.removeFilter(self._hold)
        self._catcher.__exit__(*exc_info)

    def show(self) -> None:
        for caught in self.warnings:
            warnings.showwarning(caught.message, caught.category, caught.filename, caught.lineno)
        for record in self.records:
            self._logger.handle(record)


def _run(argv: list[str] | None, invocation: Invocation) -> int:
    import click

    try:
        result = app(args=argv if argv is not None else sys.argv[1:], prog_name="limis", standalone_mode=False,
                     obj=invocation)
    except click.exceptions.Exit as done:
        return int(done.exit_code)
    except click.ClickException as error:
        error.show()
        return int(error.exit_code)
    return int(result) if isinstance(result, int) else 0


def entry() -> None:
    sys.exit(main(own_process=True))


__all__ = ["app", "main", "entry", "typer"]
