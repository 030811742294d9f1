"""Launch the LIMIS web demo: `python demos/limis_demo.py [limis demo options]`.

A thin launcher around the same builder as `limis demo`; analytics are switched off here,
in the launcher's own environment, before Gradio is imported.
"""

from __future__ import annotations

import os
import sys


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from limis.cli import main as limis_main

    return limis_main(["demo", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
