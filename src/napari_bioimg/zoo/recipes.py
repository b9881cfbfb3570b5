"""What each built-in is trained on and how: the recipes of the model zoo."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..core.sim import SimSettings


@dataclass(frozen=True)
class Recipe:
    """How one built-in is made.

    Attributes
    ----------
    name
        The built-in's name (``builtin:NAME``).
    task
        The engine task it is trained for.
    scene_shape
        Pixels of each simulated scene, ``(Y, X)`` or ``(Z, Y, X)``.
    pool
        Scenes generated for each chunk of training (a fresh pool every chunk).
    chunk_seconds
        Training seconds per chunk: a checkpoint is saved after each.
    settings
        The simulator's ranges.
    config
        :class:`~napari_bioimg.core.config.TrainConfig` fields besides the budget and seed.
    seed
        First word of every seed the build draws.
    test_scenes
        Simulated scenes the finished model is scored on (never trained on).
    model_dims
        The network's dimensionality when it differs from the scenes': a 2D network
        trained on the XY planes of 3D scenes predicts stacks plane by plane, its
        objects linked across planes.
    """

    name: str
    task: str
    scene_shape: tuple[int, ...]
    pool: int
    chunk_seconds: float = 300.0
    settings: SimSettings = field(default_factory=SimSettings)
    config: dict[str, Any] = field(default_factory=dict)
    seed: int = 19
    test_scenes: int = 12
    model_dims: int | None = None

    @property
    def spatial_dims(self) -> int:
        """The network's dimensionality."""
        return self.model_dims or len(self.scene_shape)


RECIPES: dict[str, Recipe] = {
    "nuclei-2d": Recipe("nuclei-2d", "instance", (256, 256), pool=160),
    # a 3D U-Net gets too few steps on a shared 2-core CPU: a 2D network learns the planes of anisotropic
    # 3D scenes (cut caps, out-of-focus planes) and predicts stacks plane by plane, objects linked in 3D
    "nuclei-3d": Recipe("nuclei-3d", "instance", (24, 160, 160), pool=16, model_dims=2, test_scenes=6,
                        settings=SimSettings(diameter=(12.0, 56.0))),
    "denoise-2d": Recipe("denoise-2d", "denoise", (256, 256), pool=120),
}
