"""Sweeps: the plan (runs, names, commands, SLURM script) and the runner that trains them.

`python -m mtl_jax.sweep` (`__main__.py`) is the command."""
