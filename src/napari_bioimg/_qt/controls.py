"""Form controls built from the engine's declarations, and the notice when a typed value is out of range.

:func:`number` makes a spin box whose range, initial value and tooltip come from a
setting's declaration (:mod:`napari_bioimg.core.settings`), and records which
setting it shows (``widget.declared_as``, read by the tests that hold the form to
the declarations). Qt clamps or drops a typed value outside a spin box's range without a
word; :class:`RangeGuard` says so instead (on the status line and in a tooltip at the
control).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from magicgui.widgets import ComboBox, FloatSpinBox, SpinBox
from qtpy.QtCore import QEvent, QObject, QPoint, Qt, QTimer
from qtpy.QtWidgets import QAbstractSpinBox, QToolTip

from ..core.settings.declare import declared, default


@dataclass(frozen=True)
class Shown:
    """Which setting a control shows, and how: ``scale`` (100 for a percentage), ``zero_unset`` (0 means None)."""

    config: Any
    name: str
    scale: float = 1.0
    zero_unset: bool = False

    @property
    def setting(self):
        """The declaration (:class:`~napari_bioimg.core.settings.declare.Setting`)."""
        return declared(self.config)[self.name]


def control_range(shown: Shown, decimals: int = 0) -> tuple[float, float]:
    """The (min, max) a control offers for its setting: the declared bounds, scaled, open ends stepped in."""
    bound = declared(shown.config)[shown.name].bound
    step = 1 if decimals == 0 else 10.0 ** -decimals
    low = 0.0 if bound.low is None else bound.low * shown.scale
    high = float(2**31 - 1) if bound.high is None else bound.high * shown.scale
    if bound.low_open:
        low += step
    if bound.high_open:
        high -= step
    if decimals == 0:
        low, high = math.ceil(low), math.floor(high)
    if shown.zero_unset:
        low = 0
    return low, high


def number(shown: Shown, *, label: str, decimals: int = 0, tooltip: str | None = None, **kwargs: Any):
    """A spin box (``decimals`` > 0: a float spin box) for the declared setting ``shown``."""
    setting = declared(shown.config)[shown.name]
    low, high = control_range(shown, decimals)
    value = default(shown.config, shown.name)
    if value is None or isinstance(value, tuple):
        value = low if shown.zero_unset or value is None else value[-1]
    value = value * shown.scale
    kind = FloatSpinBox if decimals else SpinBox
    widget = kind(label=label, min=low, max=high, value=value if decimals else int(round(value)),
                  tooltip=tooltip or setting.help[:1].upper() + setting.help[1:], **kwargs)
    if decimals:
        widget.native.setDecimals(decimals)
    widget.declared_as = shown
    return widget


def choice(shown: Shown, *, label: str, **kwargs: Any) -> ComboBox:
    """A drop-down of the declared choices of ``shown``, at its declared default."""
    setting = declared(shown.config)[shown.name]
    widget = ComboBox(label=label, choices=list(setting.choices), value=default(shown.config, shown.name),
                      tooltip=kwargs.pop("tooltip", setting.help[:1].upper() + setting.help[1:]), **kwargs)
    widget.declared_as = shown
    return widget


class RangeGuard(QObject):
    """Says when a value typed into a spin box is outside its range, instead of Qt's silent clamp.

    Whole-number boxes take what is typed and bound it when editing ends (Enter, or
    leaving the box): a value outside the range is then said, with the value the box
    holds. Decimal boxes drop a key that would go past the maximum (or a minus sign
    where nothing is negative): that is said at once. ``say`` gets one sentence.
    """

    def __init__(self, widget, say: Callable[[str], None]):
        super().__init__(widget.native)
        self.widget, self.say = widget, say
        self.box: QAbstractSpinBox = widget.native
        self.decimal = hasattr(self.box, "decimals")
        if not self.decimal:  # bound the number when it is entered, not at each key ("3" of "32" became 8)
            self.box.setKeyboardTracking(False)
        self.box.setCorrectionMode(QAbstractSpinBox.CorrectionMode.CorrectToPreviousValue)
        self.box.installEventFilter(self)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt's name)
        kind = event.type()
        if kind == QEvent.Type.KeyPress:
            if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
                self.check(self.box.lineEdit().text(), typing=False)
            elif self.decimal and event.text() and event.text().isprintable():
                self.check(self._after(event.text()), typing=True)
        elif kind == QEvent.Type.FocusOut:
            self.check(self.box.lineEdit().text(), typing=False)
        return False

    def _after(self, typed: str) -> str:
        """The text the line would hold once ``typed`` is inserted (over the selection)."""
        edit = self.box.lineEdit()
        text, start = edit.text(), edit.cursorPosition()
        if edit.hasSelectedText():
            start = edit.selectionStart()
            text = text[:start] + text[start + len(edit.selectedText()):]
        return text[:start] + typed + text[start:]

    def check(self, text: str, *, typing: bool) -> None:
        """Say so when ``text`` is a value outside the box's range (while ``typing``, only when the box drops the
        key: past the maximum, or negative where nothing is)."""
        low, high = self.box.minimum(), self.box.maximum()
        text = text.strip().replace(",", ".")
        try:
            value = float(text)
        except ValueError:
            if text.startswith("-") and low >= 0:
                self._refuse(f"must be at least {_shown(low)}, not negative")
            return
        if value > high:
            self._refuse(f"must be at most {_shown(high)}, got {_shown(value)}")
        elif value < low and (not typing or value < 0 <= low):
            self._refuse(f"must be at least {_shown(low)}, got {_shown(value)}")

    def _refuse(self, what: str) -> None:
        """Say it once Qt has handled the key (so the sentence gives the value the box then holds)."""
        QTimer.singleShot(0, lambda: self._say(what))

    def _say(self, what: str) -> None:
        message = f"{self.widget.label} {what}; it is {_shown(self.box.value())}"
        QToolTip.showText(self.box.mapToGlobal(QPoint(0, self.box.height())), message, self.box)
        self.say(message)


def _shown(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"
