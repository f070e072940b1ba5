"""Metrics and whole-dataset evaluation."""
