"""A run directory: its file names, checkpoints, status, metrics writers and the software record."""
