"""Model files: the checkpoint, loading from any source, export to other tools."""
