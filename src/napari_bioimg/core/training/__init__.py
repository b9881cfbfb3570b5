"""Training as a generator: the loop, its set-up and resumable state."""
