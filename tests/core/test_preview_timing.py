"""The first live preview comes soon after Train (FIRST_PREVIEW), the next ones every ``preview_every``."""

from napari_bioimg.core import TrainConfig, train_sync
from napari_bioimg.core import events as E
from napari_bioimg.core.training.loop import FIRST_PREVIEW


def test_first_preview_early_then_at_the_interval(blobs2d):
    image, labels = blobs2d
    seen = []
    cfg = TrainConfig(time_limit=FIRST_PREVIEW + 3, preview_every=1000, val_fraction=0, batch_size=2,
                      patch_size=32, model_config={"depth": 1, "base_channels": 4})
    res = train_sync(image, labels, cfg, callback=seen.append)
    previews = [e for e in seen if isinstance(e, E.PreviewReady)]
    assert len(previews) == 1 and previews[0].data.shape == labels.shape
    first = [h["time"] for h in res.history if h["step"] == previews[0].step][0]
    # after FIRST_PREVIEW seconds of training (the history's clock starts a few ms later), not 1000
    assert first >= FIRST_PREVIEW - 0.05 and first < 100
