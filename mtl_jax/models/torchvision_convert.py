"""ImageNet initialisation: torchvision ResNet weights → our NNX ResNet, stored for reuse.

Our ResNet keeps torchvision's module names, so a variable's path maps to a state-dict key by
renaming its last part: ('layer3', 1, 'downsample', 0, 'kernel') ↔ 'layer3.1.downsample.0.weight'
(conv kernel, OIHW in torch, HWIO here), BatchNorm scale/bias/mean/var ↔
weight/bias/running_mean/running_var. torchvision's `fc.*` classifier and BatchNorm
`num_batches_tracked` counters have no counterpart; they are ignored and listed in the report.

Loading is strict: a missing key, an unknown key or a shape mismatch raises a UserError (a
ValueError) naming the key, so a wrong file never yields a half-loaded encoder.

A converted encoder is stored as a directory: `encoder.json` (depth, width, source) and `state/`
(an orbax checkpoint of the encoder's params and BatchNorm statistics, keyed like `nnx.state`).
Reading `.pth` files needs torch; `.safetensors` files need only the safetensors package.
"""

import dataclasses
import json
from collections.abc import Iterable, Mapping
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx
from flax.nnx import traversals

from mtl_jax.errors import UserError
from mtl_jax.models import resnet

_TORCH_NAMES = {'kernel': 'weight', 'scale': 'weight', 'bias': 'bias',
                'mean': 'running_mean', 'var': 'running_var'}
_HWIO_FROM_OIHW = (2, 3, 1, 0)
_OIHW_FROM_HWIO = (3, 2, 0, 1)
METADATA_FILE = 'encoder.json'
STATE_DIR = 'state'
_FORMAT = 'mtl_jax.resnet_encoder/1'

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
    return (f'{self.source}: loaded {len(self.loaded)} arrays; missing {len(self.missing)}; '
            f'unexpected (ignored) {len(self.unexpected)}: {", ".join(ignored) or "none"}')


def _is_ignorable(key: str) -> bool:
  return key.startswith('fc.') or key.endswith('.num_batches_tracked')


def torch_key(path: VarPath) -> str:
  """('layer1', 0, 'bn1', 'scale') → 'layer1.0.bn1.weight'."""
  *modules, leaf = path
  return '.'.join([*map(str, modules), _TORCH_NAMES[leaf]])


def _dotted(path: VarPath) -> str:
  return '.'.join(map(str, path))


def _to_torch_shape(path: VarPath, shape: tuple[int, ...]) -> tuple[int, ...]:
  return tuple(shape[i] for i in _OIHW_FROM_HWIO) if path[-1] == 'kernel' else tuple(shape)


def _from_torch_layout(path: VarPath, array: np.ndarray) -> np.ndarray:
  return np.transpose(array, _HWIO_FROM_OIHW) if path[-1] == 'kernel' else array


def _variables(encoder: nnx.Module) -> dict[VarPath, nnx.Variable]:
  return dict(nnx.to_flat_state(nnx.state(encoder, (nnx.Param, nnx.BatchStat))))


def encoder_depth(encoder: resnet.ResNet) -> int:
  """torchvision's depth name: 2 (stem + fc) plus 2 or 3 weighted layers per block."""
  stages = (encoder.layer1, encoder.layer2, encoder.layer3, encoder.layer4)
  per_block = 3 if hasattr(encoder.layer1[0], 'conv3') else 2
  return 2 + per_block * sum(len(stage) for stage in stages)


def infer_depth(keys: Iterable[str]) -> int | None:
  """The ResNet depth a torchvision state dict's keys describe (None if it has no blocks)."""
  keys = list(keys)
  blocks = {k.split('.')[0] + '.' + k.split('.')[1] for k in keys
            if k.startswith(('layer1.', 'layer2.', 'layer3.', 'layer4.'))}
  if not blocks:
    return None
  per_block = 3 if any('.conv3.' in k for k in keys) else 2
  return 2 + per_block * len(blocks)


def _more(items: list, what: str) -> str:
  return f'; {len(items) - 1} more {what}' if len(items) > 1 else ''


def _check_keys(expected: Mapping[str, tuple[int, ...]], given: Mapping[str, np.ndarray],
                source: str, *, ignorable=lambda key: False) -> tuple[str, ...]:
  """Raises on a missing key, an unknown key or a shape mismatch; returns the ignored keys."""
  missing = [k for k in expected if k not in given]
  if missing:
    raise UserError(f'{source}: missing key {missing[0]!r} (encoder expects shape '
                    f'{expected[missing[0]]}){_more(missing, "keys missing")}')
  extra = [k for k in given if k not in expected]
  unknown = [k for k in extra if not ignorable(k)]
  if unknown:
    raise UserError(f'{source}: unexpected key {unknown[0]!r} with shape '
                    f'{tuple(given[unknown[0]].shape)}, not part of the encoder'
                    f'{_more(unknown, "unexpected keys")}')
  for key, shape in expected.items():
    if tuple(given[key].shape) != tuple(shape):
      raise UserError(f'{source}: key {key!r} has shape {tuple(given[key].shape)} but the '
                      f'encoder expects {tuple(shape)}')
  return tuple(extra)


def _assign(encoder: nnx.Module, values: Mapping[VarPath, np.ndarray]) -> None:
  """Writes every Param/BatchStat of `encoder` from `values` (cast to each variable's dtype)."""
  state = nnx.state(encoder, (nnx.Param, nnx.BatchStat))
  variables = _variables(encoder)
  pure = {path: jnp.asarray(np.asarray(values[path]), variables[path].dtype) for path in variables}
  nnx.replace_by_pure_dict(state, traversals.unflatten_mapping(pure))
  nnx.update(encoder, state)


def _check_depth(encoder: resnet.ResNet, depth: int | None, source: str) -> None:
  if depth is not None and depth != encoder_depth(encoder):
    raise UserError(f'{source} holds ResNet-{depth} weights but the encoder is a '
                    f'ResNet-{encoder_depth(encoder)}')


def load_torchvision_state(encoder: resnet.ResNet, state_dict: Mapping[str, np.ndarray], *,
                           source: str = 'state dict') -> LoadReport:
  """Loads a torchvision ResNet state dict (numpy arrays, torch layout) into `encoder` in place."""
  _check_depth(encoder, infer_depth(state_dict), source)
  variables = _variables(encoder)
  expected = {torch_key(p): _to_torch_shape(p, v.shape) for p, v in variables.items()}
  ignored = _check_keys(expected, state_dict, source, ignorable=_is_ignorable)
  _assign(encoder, {p: _from_torch_layout(p, state_dict[torch_key(p)]) for p in variables})
  return LoadReport(source, loaded=tuple(expected), unexpected=ignored)


def _torch_state_dict(path: Path) -> dict[str, np.ndarray]:
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise UserError(f'{path}: reading a .pth file needs torch (pip install torch), or pass a '
                    '.safetensors file instead') from e
  try:  # weights_only: never run the pickle's code, only rebuild tensors
    state = torch.load(path, map_location='cpu', weights_only=True)
  except Exception as e:  # pylint: disable=broad-except  # any unreadable file is the user's
    reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    raise UserError(f'{path}: cannot read with torch.load(weights_only=True): {reason}') from e
  if not isinstance(state, Mapping) or not all(torch.is_tensor(v) for v in state.values()):
    raise UserError(f'{path}: expected a state dict mapping names to tensors, '
                    f'got {type(state).__name__}')
  return {k: (v.float() if v.is_floating_point() else v).numpy() for k, v in state.items()}


def _safetensors_state_dict(path: Path) -> dict[str, np.ndarray]:
  try:
    from safetensors import numpy as safetensors_numpy  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise UserError(f'{path}: reading a .safetensors file needs the safetensors package '
                    '(pip install safetensors)') from e
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


def abstract_encoder(depth: int, output_stride: int = 32) -> resnet.ResNet:
  """An unallocated torchvision-sized ResNet; a strict load then fills every variable."""
  valid = [n[len('resnet'):] for n in resnet.ENCODERS if n[len('resnet'):].isdigit()]
  if str(depth) not in valid:
    raise UserError(f'unsupported ResNet depth {depth}; valid depths: {", ".join(valid)}')
  return nnx.eval_shape(lambda: resnet.ENCODERS[f'resnet{depth}'](
      output_stride=output_stride, rngs=nnx.Rngs(0)))


def load_torchvision_file(path: str | Path, depth: int | None = 34,
                          output_stride: int = 16) -> tuple[resnet.ResNet, LoadReport]:
  """(encoder, report) for a torchvision `.pth`/`.safetensors` state dict; depth=None infers it."""
  state_dict = read_state_dict(path)
  depth = infer_depth(state_dict) if depth is None else depth
  if depth is None:
    raise UserError(f'{path}: no layer1..layer4 keys; not a torchvision ResNet state dict')
  encoder = abstract_encoder(depth, output_stride)
  report = load_torchvision_state(encoder, state_dict, source=str(path))
  if not all(isinstance(x, jax.Array) for x in jax.tree.leaves(nnx.state(encoder))):
    raise AssertionError('the encoder has variables that no state-dict key provides')
  return encoder, report


def resnet_from_torchvision(path: str | Path, depth: int | None = 34,
                            output_stride: int = 16) -> resnet.ResNet:
  """A ResNet encoder holding torchvision weights; it returns {'stride4', ..., 'stride32'}.

  Like a fresh torchvision model it is in training mode; call `.eval()` to use running stats.
  """
  return load_torchvision_file(path, depth, output_stride)[0]


def save_pretrained_encoder(encoder: resnet.ResNet, directory: str | Path, *,
                            source: str = '') -> None:
  """Writes `encoder`'s params and BatchNorm statistics (orbax) and encoder.json to `directory`.

  Refuses an existing non-empty directory so nothing already there is overwritten.
  """
  directory = Path(directory).absolute()
  if directory.exists() and any(directory.iterdir()):
    raise UserError(f'{directory}: output directory exists and is not empty')
  tree = {_dotted(p): np.asarray(v.get_value()) for p, v in _variables(encoder).items()}
  with ocp.StandardCheckpointer() as checkpointer:
    checkpointer.save(directory / STATE_DIR, traversals.unflatten_mapping(tree, sep='.'))
  meta = {'format': _FORMAT, 'depth': encoder_depth(encoder),
          'width': encoder.conv1.out_features, 'source': str(source)}
  # Written last: its presence marks a complete directory.
  (directory / METADATA_FILE).write_text(json.dumps(meta, indent=2) + '\n')


def read_metadata(directory: str | Path) -> dict:
  """encoder.json of a converted-encoder directory (depth, width, source)."""
  path = Path(directory) / METADATA_FILE
  if not path.is_file():
    raise UserError(f'{directory}: not a converted encoder directory (no {METADATA_FILE}); '
                    'create one with scripts/convert_torchvision_resnet.py')
  try:
    meta = json.loads(path.read_text())
  except json.JSONDecodeError as e:
    raise UserError(f'{path}: not valid JSON ({e})') from e
  if meta.get('format') != _FORMAT or not isinstance(meta.get('depth'), int):
    raise UserError(f'{path}: expected format {_FORMAT!r} with an integer depth')
  return meta


def _restore_tree(path: Path) -> dict:
  try:
    with ocp.StandardCheckpointer() as checkpointer:
      return checkpointer.restore(path.absolute())
  except Exception as e:  # pylint: disable=broad-except  # missing or damaged files
    reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    raise UserError(f'{path}: cannot restore the orbax checkpoint: {reason}') from e


def load_pretrained_encoder(encoder: resnet.ResNet, directory: str | Path) -> LoadReport:
  """Loads weights written by `save_pretrained_encoder` into `encoder` in place (strict).

  Fails clearly when the stored depth differs from the encoder's, or on any key/shape mismatch.
  """
  meta = read_metadata(directory)
  _check_depth(encoder, meta['depth'], str(directory))
  given = traversals.flatten_mapping(_restore_tree(Path(directory) / STATE_DIR), sep='.')
  variables = _variables(encoder)
  _check_keys({_dotted(p): v.shape for p, v in variables.items()}, given, str(directory))
  _assign(encoder, {p: given[_dotted(p)] for p in variables})
  return LoadReport(str(directory), loaded=tuple(map(_dotted, variables)))


def convert_file(input_path: str | Path, output_dir: str | Path,
                 depth: int | None = None) -> LoadReport:
  """The conversion script: torchvision weights file → converted-encoder directory."""
  output_dir = Path(output_dir)
  if output_dir.exists() and any(output_dir.iterdir()):  # fail before the slow part
    raise UserError(f'{output_dir}: output directory exists and is not empty')
  encoder, report = load_torchvision_file(input_path, depth=depth, output_stride=32)
  save_pretrained_encoder(encoder, output_dir, source=Path(input_path).name)
  return report
