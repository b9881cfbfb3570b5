"""Handler tables: each consumer of the engine's events maps an event type to the method that applies it.

A table replaces a chain of ``isinstance`` tests: what a consumer handles is one mapping to read
(and to test: every event type of :mod:`napari_bioimg.core.events` has a row in the widget's table),
and a new event type is one new row, not a new branch in several places.
"""

from __future__ import annotations

from collections.abc import Callable


class Handlers(dict[type, Callable]):
    """Event type -> handler. Calling the table hands the event (the last argument) to the handler of its type.

    A handler takes the same arguments as the table, e.g. ``(run, ev)``; an event of a type with no
    row (nor a base type with one) is dropped, and the call returns ``False``.
    """

    def __call__(self, *args) -> bool:
        for cls in type(args[-1]).__mro__:
            handler = self.get(cls)
            if handler is not None:
                handler(*args)
                return True
        return False


def ignore(*args) -> None:
    """The handler of an event a consumer has nothing to show for."""
