"""Language-driven interactive refinement: the command language, the session, the interaction log."""

from limis.interact.commands import NotUnderstood, parse
from limis.interact.log import InteractionLog
from limis.interact.session import Reply, Session

__all__ = ["InteractionLog", "NotUnderstood", "Reply", "Session", "parse"]
