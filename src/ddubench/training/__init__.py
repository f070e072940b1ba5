"""Losses and the one trainer every method uses."""
