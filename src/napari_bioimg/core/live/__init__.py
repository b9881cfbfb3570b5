"""Live training while the user annotates: edits that reach a running session, uncertainty, where to annotate next."""
