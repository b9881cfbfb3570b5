"""Dated one-off experiments; each module's docstring opens with its date and what it answered."""
