"""Every setting of the engine declared once: type, default, bounds and help in one place.

* :mod:`.declare`: :class:`~.declare.Bound` (a numeric range), :class:`~.declare.Setting` and
  :func:`~.declare.setting` (a dataclass field that carries its bounds, choices and help), :func:`~.declare.check`.
* :mod:`.defaults`: the engine's constants (normalisation percentiles, validation share, patch and tile sizes,
  tile overlap, preview intervals, network width per device).
* :mod:`.train`: :class:`~.train.TrainConfig`; :mod:`.predict`: :class:`~.predict.PredictConfig`;
  :mod:`.embed`: :class:`~.embed.EmbedConfig`.

Front ends (the CLI's flags, the widget's controls) are built from these declarations; nothing here imports
torch, so the command line's ``--help`` stays fast. This ``__init__`` imports nothing on purpose: the data
modules read :mod:`.defaults` without loading the configurations.
"""
