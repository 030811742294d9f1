"""`python -m limis.cli` (used by `accelerate launch -m limis.cli ...`)."""

from limis.cli import entry

entry()
