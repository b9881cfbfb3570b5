"""Where and how fast the engine runs: device choice, mixed precision, threads, inference copies."""
