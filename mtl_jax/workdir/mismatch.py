"""Whether a checkpoint holds this model's arrays: one line naming the keys and shapes that
differ, never a cast, pad or partial load."""

from typing import Any

import jax
import orbax.checkpoint as ocp

from mtl_jax.runtime.errors import UserError


class CheckpointMismatch(UserError):
  """The checkpoint holds another model's arrays."""


def _key_name(key) -> str:
  return str(getattr(key, 'key', getattr(key, 'name', getattr(key, 'idx', key))))


def array_specs(tree: Any) -> dict[str, tuple[tuple[int, ...], str]]:
  """'params/encoder/conv1/kernel/value' → (shape, dtype) for arrays or orbax array metadata."""
  return {
    '/'.join(_key_name(k) for k in path): (tuple(leaf.shape), str(leaf.dtype))
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]
  }


def _model_first(key: str) -> tuple[bool, str]:
  """Sort key: parameters and statistics before their optimizer-state copies."""
  return key.startswith('opt_state/'), key


def _examples(keys, limit: int = 3) -> str:
  keys = sorted(keys, key=_model_first)
  return ', '.join(keys[:limit]) + (f' and {len(keys) - limit} more' if len(keys) > limit else '')


def mismatch(saved: dict, expected: dict) -> str | None:
  """What differs between two `array_specs` results, in one line; None if they match."""
  only_saved, only_expected = saved.keys() - expected.keys(), expected.keys() - saved.keys()
  differ = sorted(
    (k for k in saved.keys() & expected.keys() if saved[k] != expected[k]), key=_model_first
  )
  problems = []
  if only_saved:
    problems.append(f'{len(only_saved)} arrays only in the checkpoint ({_examples(only_saved)})')
  if only_expected:
    problems.append(f'{len(only_expected)} arrays only in the model ({_examples(only_expected)})')
  if differ:
    shown = '; '.join(
      f'{k}: {saved[k][1]}{list(saved[k][0])} in the checkpoint vs '
      f'{expected[k][1]}{list(expected[k][0])} in the model'
      for k in differ[:3]
    )
    more = f' and {len(differ) - 3} more' if len(differ) > 3 else ''
    problems.append(f'{len(differ)} arrays differ in shape or dtype ({shown}{more})')
  return '; '.join(problems) or None


def mismatch_error(manager: ocp.CheckpointManager, step: int, problem: str):
  return CheckpointMismatch(
    f'checkpoint {step} in {manager.directory} was written by a different model: {problem}. '
    'Resume with the config the run was trained with (config.json there) or use a new '
    '--workdir'
  )
