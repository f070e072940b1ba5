"""Measurements shared by every method: timing (memory follows with the distributed runtime)."""
