"""Progress of engine runs on the command line: a tqdm bar on stderr, notices as lines."""

from __future__ import annotations

import sys


class Progress:
    """tqdm on stderr driven by engine events.

    The bar appears with the first progress event, so an input error found before
    any work starts is still the only line on stderr.
    """

    def __init__(self, quiet: bool, desc: str):
        self.quiet, self.desc = quiet, desc
        self.bar = None
        self.val = ""

    def _start(self) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=100, desc=self.desc, file=sys.stderr, unit="%",
                        bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining} {postfix}")

    def __call__(self, ev) -> None:
        from ..core import events as E

        if isinstance(ev, E.Notice):  # said even when quiet
            self.write(f"{ev.level}: {ev.message}")
            return
        if self.quiet:
            return
        if self.bar is None:
            self._start()
        handler = {E.TrainingStarted: self._started, E.StepDone: self._step, E.ValidationDone: self._validated,
                   E.PredictProgress: self._predicting}.get(type(ev))
        if handler is not None:  # other events (previews) only start the bar
            handler(ev)

    def _started(self, ev) -> None:
        self.write(f"training {ev.model} for {ev.task} on {ev.device}: {ev.n_parameters:,} parameters, "
                   f"patch {ev.patch_size}, {ev.n_train_pixels:,} training / {ev.n_val_pixels:,} validation "
                   f"{ev.unit}")

    def _step(self, ev) -> None:
        self.bar.n = round(100 * ev.fraction, 1)
        self.bar.set_postfix_str(f"step {ev.step} loss {ev.loss:.4f} {ev.steps_per_second:.1f} it/s{self.val}",
                                 refresh=False)
        self.bar.refresh()

    def _validated(self, ev) -> None:
        self.val = " " + " ".join(f"{k} {v:.3f}" for k, v in ev.metrics.items())
        if ev.size is not None:
            self.val += f" (n={ev.size:,} {ev.unit})"

    def _predicting(self, ev) -> None:
        self.bar.n = round(100 * ev.done / max(ev.total, 1), 1)
        self.bar.set_postfix_str(f"{ev.done}/{ev.total} {ev.stage}", refresh=False)
        self.bar.refresh()

    def write(self, msg: str) -> None:
        if self.bar is not None:
            self.bar.write(msg, file=sys.stderr)
        else:
            print(msg, file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

