"""The GPU path (AMP, pinned memory, overlapped copies) gives the CPU's results within tolerance.

Skipped where CUDA is unavailable (this CI); run on a GPU machine with
``pytest tests/core/test_cuda.py -q``.
"""

import numpy as np
import pytest
import torch

from napari_bioimg.core import PredictConfig, TrainConfig, get_model, predict_sync, train_sync
from napari_bioimg.core.control import drain
from napari_bioimg.core.inference.predict import predict
from napari_bioimg.core.inference.tiling import tiled_apply
from napari_bioimg.core.runtime.device import amp_dtype

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="CUDA is not available here (CPU-only torch build or no GPU visible)")

CFG = dict(task="instance", epochs=1, steps_per_epoch=6, time_limit=None, val_fraction=0, batch_size=4,
           patch_size=64, learning_rate=5e-3, preview_every=0, seed=0, model_config={"depth": 2, "base_channels": 16})


def test_tiles_on_cuda_equal_cpu():
    torch.manual_seed(0)
    model = get_model("unet", spatial_dims=2, in_channels=1, out_channels=3, depth=2, base_channels=8).eval()
    img = np.random.default_rng(0).normal(size=(1, 300, 260)).astype(np.float32)
    cpu = drain(tiled_apply(lambda x: torch.softmax(model(x), 1), img, 3, tile=64, overlap=0.25, divisor=4,
                            batch_size=3))
    gpu_model = model.cuda()
    gpu = drain(tiled_apply(lambda x: torch.softmax(gpu_model(x), 1), img, 3, tile=64, overlap=0.25, divisor=4,
                            batch_size=3, device="cuda"))
    np.testing.assert_allclose(gpu, cpu, atol=1e-4)  # fp32 on both: the pipelined copies change nothing


def test_train_and_predict_with_amp_match_cpu(blob_model, blob_field, tmp_path):
    assert amp_dtype(torch.device("cuda")) in (torch.bfloat16, torch.float16)
    image, labels = blob_field
    on_gpu = train_sync(image, labels, TrainConfig(device="cuda", amp=True, **CFG))
    on_cpu = train_sync(image, labels, TrainConfig(device="cpu", **CFG))
    first = [h["loss"] for h in on_cpu.history[:2]]
    assert [h["loss"] for h in on_gpu.history[:2]] == pytest.approx(first, rel=0.05)  # same init and batches
    assert np.isfinite([h["loss"] for h in on_gpu.history]).all()

    # the same model predicted on the GPU (AMP, fast path) and on the CPU (fp32)
    cpu = predict_sync(blob_model, image, device="cpu", tile=64)
    gpu = predict_sync(blob_model, image, device="cuda", tile=64, amp=True)
    assert np.mean((cpu > 0) == (gpu > 0)) > 0.99
    assert abs(int(cpu.max()) - int(gpu.max())) <= max(1, int(0.05 * cpu.max()))
    lazy = drain(predict(blob_model, image, PredictConfig(tile=64, block=64), out=tmp_path / "g.zarr", device="cuda"))[...]
    assert np.mean((lazy > 0) == (cpu > 0)) > 0.99
