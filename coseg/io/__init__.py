"""File input/output: atomic writes, PLY, .splat, images."""
