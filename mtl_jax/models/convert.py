"""Torch state dicts ↔ NNX modules whose variable paths keep torch's module names.

A variable's path maps to a state-dict key by renaming its last part:
('layer3', 1, 'downsample', 0, 'kernel') ↔ 'layer3.1.downsample.0.weight' (conv kernel, OIHW in
torch, HWIO here), BatchNorm scale/bias/mean/var ↔ weight/bias/running_mean/running_var.
BatchNorm `num_batches_tracked` counters have no counterpart (`is_bn_counter`).

Loading is strict: a missing key, an unknown key or a shape mismatch raises a UserError (a
ValueError) naming the key, so a wrong file never yields a half-loaded module. Reading `.pth`
and `.ckpt` files needs torch; it rebuilds tensors only (weights_only=True), and any other class
the pickle names (a Lightning checkpoint's hyper-parameters) becomes an inert stand-in, so no
code of the file's runs. `.safetensors` files need only the safetensors package.
"""

import dataclasses
import re
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

  `unexpected` lists the ignored extras (fc.*, num_batches_tracked, a Lightning checkpoint's keys
  outside the network); `missing` is empty whenever a report is returned, since a missing key
  raises.
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


_ANSI_ESCAPE = re.compile(r'\x1b\[[0-9;]*[A-Za-z]')  # torch bolds parts of its load errors
# torch.save writes a zip archive; before torch 1.6 a pickle (protocol 2: first byte 0x80).
_TORCH_FILE_STARTS = (b'PK\x03\x04', b'\x80')


class _Unread:
  """Stands in for a class a checkpoint pickles beside its weights (the argparse.Namespace of
  a Lightning checkpoint's hyper_parameters, a callback's state): accepts whatever the pickle
  hands it and runs none of the original's code, so the weights read safely around it."""

  pickled_name = '?'

  def __new__(cls, *args, **kwargs):  # pylint: disable=unused-argument
    return object.__new__(cls)

  def __init__(self, *args, **kwargs):  # pylint: disable=unused-argument
    pass

  def __setstate__(self, state):  # pylint: disable=unused-argument
    pass

  def __setitem__(self, key, value):  # pylint: disable=unused-argument
    pass


def _stand_ins(torch, path: Path, zipped: bool) -> list[tuple[type, str]]:
  """An `_Unread` for every global the checkpoint names that torch's weights-only load does not
  allow, in the (class, 'module.name') form torch.serialization.safe_globals takes."""
  find = getattr(torch.serialization, 'get_unsafe_globals_in_checkpoint', None)  # torch >= 2.5
  if find is None or not zipped:
    return []  # torch lists the globals of its zip format only
  try:
    names = find(path)
  except Exception:  # pylint: disable=broad-except  # torch.load names the damage below
    return []
  return [(type('Unread', (_Unread,), {'pickled_name': name}), name) for name in names]


def torch_error_reason(error: Exception) -> str:
  """What went wrong in torch.load, in one sentence: no terminal escapes, and none of torch's
  advice to load with weights_only=False (which would run the file's code)."""
  text = _ANSI_ESCAPE.sub('', str(error)).split('WeightsUnpickler error:')[-1]  # the cause
  lines = [
    line.strip() for line in text.splitlines() if line.strip() and 'weights_only' not in line
  ]
  return lines[0].split('. ')[0].rstrip('.') if lines else type(error).__name__


def _load_torch_file(torch, path: Path):
  with path.open('rb') as f:
    start = f.read(4)
  if not start:
    raise UserError(f'{path}: not a PyTorch checkpoint (the file is empty)')
  if not start.startswith(_TORCH_FILE_STARTS):
    raise UserError(
      f'{path}: not a PyTorch checkpoint (torch.save writes a zip archive; this file starts '
      f'with bytes {start.hex(" ")})'
    )
  try:  # weights_only, with stand-ins for other classes: never run the pickle's code
    zipped = start.startswith(_TORCH_FILE_STARTS[0])
    with torch.serialization.safe_globals(_stand_ins(torch, path, zipped)):
      return torch.load(path, map_location='cpu', weights_only=True)
  except Exception as e:  # pylint: disable=broad-except  # any unreadable file is the user's
    raise UserError(f'{path}: cannot read as a PyTorch checkpoint: {torch_error_reason(e)}') from e


def _torch_state_dict(path: Path) -> dict[str, np.ndarray]:
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise UserError(
      f'{path}: reading a .pth file needs torch (pip install torch), or pass a '
      '.safetensors file instead'
    ) from e
  state = _load_torch_file(torch, path)
  if isinstance(state, Mapping) and isinstance(state.get('state_dict'), Mapping):
    state = state['state_dict']  # a PyTorch Lightning checkpoint: only its weights matter
  if not isinstance(state, Mapping):
    raise UserError(f'{path}: expected a state dict mapping names to tensors, got {_kind(state)}')
  for key, value in state.items():
    if not torch.is_tensor(value):
      raise UserError(
        f'{path}: expected a state dict mapping names to tensors, but {key!r} holds {_kind(value)}'
      )
  return {k: (v.float() if v.is_floating_point() else v).numpy() for k, v in state.items()}


def _kind(value) -> str:
  return value.pickled_name if isinstance(value, _Unread) else type(value).__name__


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
  """A state dict from a `.pth` or `.ckpt` (torch, weights only; a Lightning checkpoint's
  `state_dict`) or a `.safetensors` file."""
  path = Path(path)
  if not path.is_file():
    raise UserError(f'{path}: no such file')
  if path.suffix == '.safetensors':
    return _safetensors_state_dict(path)
  return _torch_state_dict(path)
