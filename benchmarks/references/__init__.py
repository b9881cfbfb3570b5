"""Fair references run beside ours by the quality harness; nothing here imports napari-bioimg."""
