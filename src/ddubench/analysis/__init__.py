"""Analyses over model structure: parameter counts (receptive field and memory models follow)."""
