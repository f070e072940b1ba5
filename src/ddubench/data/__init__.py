"""Datasets: generation, loading and splitting images into subimages."""
