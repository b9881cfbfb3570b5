"""Quality on real images with ground truth: the suite (locked splits), the harness and its statistics."""
