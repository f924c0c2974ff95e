"""The software a run's numbers depend on: recorded in every checkpoint, compared on resume.

A resumed run is only bit-identical to an uninterrupted one under the same JAX/XLA build, PRNG
implementation and XLA flags; a difference is worth a warning, not a refusal.
"""

import importlib.metadata
import os

import jax

PACKAGES = ('jax', 'jaxlib', 'flax', 'optax', 'orbax-checkpoint', 'grain')


def _version(package: str) -> str:
  try:
    return importlib.metadata.version(package)
  except importlib.metadata.PackageNotFoundError:
    return 'not installed'


def describe() -> dict[str, str]:
  return {
    **{p: _version(p) for p in PACKAGES},
    'prng_impl': str(jax.config.jax_default_prng_impl),
    'xla_flags': os.environ.get('XLA_FLAGS', ''),
    'backend': jax.default_backend(),
  }


def differences(saved: dict[str, str], current: dict[str, str] | None = None) -> list[str]:
  """One line per setting that differs from what the checkpoint was written with."""
  current = describe() if current is None else current
  return [
    f'{key}: checkpoint {saved.get(key)!r}, now {current.get(key)!r}'
    for key in sorted(current)
    if saved.get(key) != current.get(key)
  ]
