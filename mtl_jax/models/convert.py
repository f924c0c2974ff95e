"""Torch state dicts ↔ NNX modules whose variable paths keep torch's module names.

A variable's path maps to a state-dict key by renaming its last part:
('layer3', 1, 'downsample', 0, 'kernel') ↔ 'layer3.1.downsample.0.weight' (conv kernel, OIHW in
torch, HWIO here), BatchNorm scale/bias/mean/var ↔ weight/bias/running_mean/running_var.
BatchNorm `num_batches_tracked` counters have no counterpart (`is_bn_counter`).

Loading is strict: a missing key, an unknown key or a shape mismatch raises a UserError (a
ValueError) naming the key, so a wrong file never yields a half-loaded module. Reading `.pth`
files needs torch (weights only, never the pickle's code); `.safetensors` files need only the
safetensors package.
"""

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path

import jax.numpy as jnp
import numpy as np
from flax import nnx
from flax.nnx import traversals

from mtl_jax.runtime.errors import UserError

_TORCH_NAMES = {
  'kernel': 'weight',
  'scale': 'weight',
  'bias': 'bias',
  'mean': 'running_mean',
  'var': 'running_var',
}
_HWIO_FROM_OIHW = (2, 3, 1, 0)
_OIHW_FROM_HWIO = (3, 2, 0, 1)

VarPath = tuple  # an nnx variable path, e.g. ('layer1', 0, 'bn1', 'scale')


@dataclasses.dataclass(frozen=True)
class LoadReport:
  """What a strict load did (keys as named in the source).

  `unexpected` lists the ignored extras (fc.*, num_batches_tracked); `missing` is empty whenever
  a report is returned, since a missing key raises.
  """

  source: str
  loaded: tuple[str, ...]
  missing: tuple[str, ...] = ()
  unexpected: tuple[str, ...] = ()

  def __str__(self) -> str:
    counters = sum(k.endswith('num_batches_tracked') for k in self.unexpected)
    others = [k for k in self.unexpected if not k.endswith('num_batches_tracked')]
    ignored = others + ([f'{counters}× num_batches_tracked'] if counters else [])
    return (
      f'{self.source}: loaded {len(self.loaded)} arrays; missing {len(self.missing)}; '
      f'unexpected (ignored) {len(self.unexpected)}: {", ".join(ignored) or "none"}'
    )


def is_bn_counter(key: str) -> bool:
  return key.endswith('.num_batches_tracked')


def torch_key(path: VarPath) -> str:
  """('layer1', 0, 'bn1', 'scale') → 'layer1.0.bn1.weight'."""
  *modules, leaf = path
  return '.'.join([*map(str, modules), _TORCH_NAMES[leaf]])


def dotted(path: VarPath) -> str:
  return '.'.join(map(str, path))


def _to_torch_shape(path: VarPath, shape: tuple[int, ...]) -> tuple[int, ...]:
  return tuple(shape[i] for i in _OIHW_FROM_HWIO) if path[-1] == 'kernel' else tuple(shape)


def _from_torch_layout(path: VarPath, array: np.ndarray) -> np.ndarray:
  return np.transpose(array, _HWIO_FROM_OIHW) if path[-1] == 'kernel' else array


def variables(module: nnx.Module) -> dict[VarPath, nnx.Variable]:
  return dict(nnx.to_flat_state(nnx.state(module, (nnx.Param, nnx.BatchStat))))


def _more(items: list, what: str) -> str:
  return f'; {len(items) - 1} more {what}' if len(items) > 1 else ''


def check_keys(
  expected: Mapping[str, tuple[int, ...]],
  given: Mapping[str, np.ndarray],
  source: str,
  *,
  target: str,
  ignorable=lambda key: False,
) -> tuple[str, ...]:
  """Raises on a missing key, an unknown key or a shape mismatch, naming the `target` (e.g.
  'encoder') that expects them; returns the ignored keys."""
  missing = [k for k in expected if k not in given]
  if missing:
    raise UserError(
      f'{source}: missing key {missing[0]!r} ({target} expects shape '
      f'{expected[missing[0]]}){_more(missing, "keys missing")}'
    )
  extra = [k for k in given if k not in expected]
  unknown = [k for k in extra if not ignorable(k)]
  if unknown:
    raise UserError(
      f'{source}: unexpected key {unknown[0]!r} with shape '
      f'{tuple(given[unknown[0]].shape)}, not part of the {target}'
      f'{_more(unknown, "unexpected keys")}'
    )
  for key, shape in expected.items():
    if tuple(given[key].shape) != tuple(shape):
      raise UserError(
        f'{source}: key {key!r} has shape {tuple(given[key].shape)} but the '
        f'{target} expects {tuple(shape)}'
      )
  return tuple(extra)


def assign(module: nnx.Module, values: Mapping[VarPath, np.ndarray]) -> None:
  """Writes every Param/BatchStat of `module` from `values` (cast to each variable's dtype)."""
  state = nnx.state(module, (nnx.Param, nnx.BatchStat))
  targets = variables(module)
  pure = {path: jnp.asarray(np.asarray(values[path]), targets[path].dtype) for path in targets}
  nnx.replace_by_pure_dict(state, traversals.unflatten_mapping(pure))
  nnx.update(module, state)


def load_state_dict(
  module: nnx.Module,
  state_dict: Mapping[str, np.ndarray],
  *,
  source: str,
  target: str = 'model',
  ignorable: Callable[[str], bool] = is_bn_counter,
  key: Callable[[VarPath], str] = torch_key,
) -> LoadReport:
  """Loads a torch state dict (numpy arrays, torch layout) into `module` (the `target`
  named in errors) in place (strict). `key` names each variable's state-dict entry (default:
  the same module names)."""
  module_variables = variables(module)
  expected = {key(p): _to_torch_shape(p, v.shape) for p, v in module_variables.items()}
  ignored = check_keys(expected, state_dict, source, target=target, ignorable=ignorable)
  assign(module, {p: _from_torch_layout(p, state_dict[key(p)]) for p in module_variables})
  return LoadReport(source, loaded=tuple(expected), unexpected=ignored)


def _torch_state_dict(path: Path) -> dict[str, np.ndarray]:
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise UserError(
      f'{path}: reading a .pth file needs torch (pip install torch), or pass a '
      '.safetensors file instead'
    ) from e
  try:  # weights_only: never run the pickle's code, only rebuild tensors
    state = torch.load(path, map_location='cpu', weights_only=True)
  except Exception as e:  # pylint: disable=broad-except  # any unreadable file is the user's
    reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    raise UserError(f'{path}: cannot read with torch.load(weights_only=True): {reason}') from e
  if isinstance(state, Mapping) and isinstance(state.get('state_dict'), Mapping):
    state = state['state_dict']  # a PyTorch Lightning checkpoint
  if not isinstance(state, Mapping) or not all(torch.is_tensor(v) for v in state.values()):
    raise UserError(
      f'{path}: expected a state dict mapping names to tensors, got {type(state).__name__}'
    )
  return {k: (v.float() if v.is_floating_point() else v).numpy() for k, v in state.items()}


def _safetensors_state_dict(path: Path) -> dict[str, np.ndarray]:
  try:
    from safetensors import numpy as safetensors_numpy  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise UserError(
      f'{path}: reading a .safetensors file needs the safetensors package (pip install safetensors)'
    ) from e
  try:
    return dict(safetensors_numpy.load_file(path))
  except Exception as e:  # pylint: disable=broad-except  # SafetensorError, bad header, ...
    raise UserError(f'{path}: cannot read as safetensors: {e}') from e


def read_state_dict(path: str | Path) -> dict[str, np.ndarray]:
  """A torchvision state dict from a `.pth` (torch, weights only) or `.safetensors` file."""
  path = Path(path)
  if not path.is_file():
    raise UserError(f'{path}: no such file')
  if path.suffix == '.safetensors':
    return _safetensors_state_dict(path)
  return _torch_state_dict(path)
