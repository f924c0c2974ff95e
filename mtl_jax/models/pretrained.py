"""Converted ImageNet encoders: torchvision weights stored once as a directory, loaded at start.

A converted encoder is a directory: `encoder.json` (format, depth, width, source; written last,
so its presence marks a complete directory) and `state/` (an orbax checkpoint of the encoder's
params and BatchNorm statistics, keyed like `nnx.state`). `convert_file` makes one from a
torchvision `.pth` / `.safetensors` file; `--config.model.pretrained=DIR` loads it.

`model.pretrained='auto'` (the default) takes `cache_dir(encoder)` —
$MTL_JAX_PRETRAINED_DIR/<encoder>, by default ~/.cache/mtl_jax/pretrained/<encoder> — when it
exists, else random init (`resolve`).
"""

import json
from pathlib import Path

import numpy as np
import orbax.checkpoint as ocp
from flax.nnx import traversals

from mtl_jax.models import convert, resnet
from mtl_jax.models.pretrained_cache import AUTO, IMAGENET, cache_dir
from mtl_jax.runtime.errors import UserError

METADATA_FILE = 'encoder.json'
STATE_DIR = 'state'
_FORMAT = 'mtl_jax.resnet_encoder/1'

# torchvision's ImageNet weight files (IMAGENET1K_V1), named in the conversion hint.
TORCHVISION_FILES = {
  'resnet18': 'resnet18-f37072fd.pth',
  'resnet34': 'resnet34-b627a593.pth',
  'resnet50': 'resnet50-0676ba61.pth',
  'resnet101': 'resnet101-63fe2227.pth',
}


def convert_command(encoder: str, output: str | None = None) -> str:
  """The command that converts torchvision's `encoder` weights into `output` (default: the
  cache 'auto' reads)."""
  source = TORCHVISION_FILES.get(encoder, f'<torchvision {encoder} weights>.pth')
  output = output or cache_dir(encoder)
  return f'python -m mtl_jax.convert torchvision --input {source} --output {output}'


def resolve(pretrained: str, encoder: str) -> tuple[str, str]:
  """(directory to load, or '' for random init; a line saying which, for 'auto' and
  'imagenet') for the value of model.pretrained at the start of training. A named directory, and
  the cache 'imagenet' names, must exist."""
  if pretrained == AUTO:
    cached = Path(cache_dir(encoder)).expanduser()
    if cached.is_dir():
      return str(cached), f'ImageNet encoder: {cached} (model.pretrained={AUTO!r})'
    return '', (
      f'ImageNet encoder: none in {cache_dir(encoder)}, random init (model.pretrained='
      f'{AUTO!r}); to start from ImageNet weights: {convert_command(encoder)}'
    )
  if not pretrained:
    return '', ''
  if pretrained == IMAGENET:
    cached = Path(cache_dir(encoder)).expanduser()
    if not cached.is_dir():
      raise UserError(
        f'config.model.pretrained={IMAGENET!r} needs converted ImageNet weights of {encoder} '
        f'in {cache_dir(encoder)}; convert them: {convert_command(encoder)}'
      )
    return str(cached), f'ImageNet encoder: {cached} (model.pretrained={IMAGENET!r})'
  if not Path(pretrained).expanduser().is_dir():
    raise UserError(
      f'config.model.pretrained={pretrained!r} is not a directory; convert torchvision '
      f'ImageNet weights into it: {convert_command(encoder, pretrained)}'
    )
  return str(Path(pretrained).expanduser()), ''


def save_pretrained_encoder(
  encoder: resnet.ResNet, directory: str | Path, *, source: str = ''
) -> None:
  """Writes `encoder`'s params and BatchNorm statistics (orbax) and encoder.json to `directory`.

  Refuses an existing non-empty directory so nothing already there is overwritten.
  """
  directory = Path(directory).absolute()
  if directory.exists() and any(directory.iterdir()):
    raise UserError(f'{directory}: output directory exists and is not empty')
  tree = {
    convert.dotted(p): np.asarray(v.get_value()) for p, v in convert.variables(encoder).items()
  }
  with ocp.StandardCheckpointer() as checkpointer:
    checkpointer.save(directory / STATE_DIR, traversals.unflatten_mapping(tree, sep='.'))
  meta = {
    'format': _FORMAT,
    'depth': resnet.depth_of(encoder),
    'width': encoder.conv1.out_features,
    'source': str(source),
  }
  # Written last: its presence marks a complete directory.
  (directory / METADATA_FILE).write_text(json.dumps(meta, indent=2) + '\n')


def read_metadata(directory: str | Path) -> dict:
  """encoder.json of a converted-encoder directory (depth, width, source)."""
  path = Path(directory) / METADATA_FILE
  if not path.is_file():
    raise UserError(
      f'{directory}: not a converted encoder directory (no {METADATA_FILE}); '
      'create one with python -m mtl_jax.convert torchvision'
    )
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


def load_pretrained_encoder(encoder: resnet.ResNet, directory: str | Path) -> convert.LoadReport:
  """Loads weights written by `save_pretrained_encoder` into `encoder` in place (strict).

  Fails clearly when the stored depth differs from the encoder's, or on any key/shape mismatch.
  """
  meta = read_metadata(directory)
  resnet.check_depth(encoder, meta['depth'], str(directory))
  given = traversals.flatten_mapping(_restore_tree(Path(directory) / STATE_DIR), sep='.')
  variables = convert.variables(encoder)
  convert.check_keys(
    {convert.dotted(p): v.shape for p, v in variables.items()},
    given,
    str(directory),
    target='encoder',
  )
  convert.assign(encoder, {p: given[convert.dotted(p)] for p in variables})
  return convert.LoadReport(str(directory), loaded=tuple(map(convert.dotted, variables)))


def convert_file(
  input_path: str | Path, output_dir: str | Path, depth: int | None = None
) -> convert.LoadReport:
  """The conversion script: torchvision weights file → converted-encoder directory."""
  output_dir = Path(output_dir)
  if output_dir.exists() and any(output_dir.iterdir()):  # fail before the slow part
    raise UserError(f'{output_dir}: output directory exists and is not empty')
  encoder, report = resnet.load_torchvision_file(input_path, depth=depth, output_stride=32)
  save_pretrained_encoder(encoder, output_dir, source=Path(input_path).name)
  return report
