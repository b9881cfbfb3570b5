"""The warning policy: which of the plugin's messages stay on a status line and which also pop up.

One table, :data:`POLICY`, says it for the status line's levels; :func:`engine_notice` says it for
the engine's own :class:`~napari_bioimg.core.events.Notice` events (a pop-up, never the status line:
the run goes on); :func:`said_level` for what a Training data button reports. Pop-ups are napari's
notifications, prefixed with the plugin's name so the user knows where they come from.
"""

from __future__ import annotations

from typing import NamedTuple

from napari.utils.notifications import show_error, show_info, show_warning

PREFIX = "napari-bioimg: "
"""Every pop-up starts with the plugin's name."""


class Level(NamedTuple):
    prefix: str
    """Put in front of the message on the status line."""
    pops_up: bool
    """Whether napari also shows it as a notification (``info`` only when asked)."""


#: Status-line level -> how it reaches the user.
POLICY = {
    "error": Level("Error: ", True),  # something the user asked for did not happen
    "warning": Level("", True),  # it happened, but the user should look (e.g. train anyway?)
    "info": Level("", False),  # what is going on: the status line is enough
}

_SHOW = {"error": show_error, "warning": show_warning, "info": show_info}


def on_status_line(level: str, message: str) -> str:
    """What the status line shows for ``message`` at ``level``."""
    return POLICY[level].prefix + message


def pop_up(level: str, message: str, notify: bool | None = None) -> None:
    """A napari notification of ``message`` when the policy (or ``notify``, when given) says so."""
    if POLICY[level].pops_up if notify is None else notify:
        _SHOW[level](PREFIX + message)


def engine_notice(ev) -> None:
    """The engine's :class:`~napari_bioimg.core.events.Notice`: a warning or an info pop-up."""
    pop_up("warning" if ev.level == "warning" else "info", ev.message, True)


def said_level(text: str) -> str:
    """What a Training data button reported: ``"warning"`` when something was not added, else ``"info"``."""
    return "warning" if text.startswith(("Not added", "Error")) else "info"
