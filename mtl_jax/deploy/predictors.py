"""The two networks predict runs: a run's checkpoint (`Predictor`) and an export folder's
StableHLO artifact (`ExportedPredictor`). Each offers `fit` (an image size → `fitting.Fit`),
`tasks`, the class `colors`, a `source` line, and a call on a batch of fitted images."""

import json
from pathlib import Path

import jax
import numpy as np

from mtl_jax import experiment
from mtl_jax.deploy import artifacts, fitting
from mtl_jax.models.finite_weights import require_finite
from mtl_jax.reports import samples
from mtl_jax.runtime.errors import UserError


class Predictor:
  """A run's network on fitted images: labels and metres per image at its own size."""

  def __init__(self, workdir: str, step: int | None):
    self.run = experiment.open_run(workdir, step)
    state = self.run.state  # BatchNorm statistics count: NaN there ruins predictions too
    require_finite(
      {'params': state.params, 'batch_stats': state.batch_stats},
      f'checkpoint {self.run.step} of {workdir}',
    )
    config = self.run.config
    self.trained = (config.data.height, config.data.width)
    self.stride = config.model.output_stride
    self.tasks = self.run.experiment.tasks
    self.colors = self.run.classes.colors  # the dataset's the run trained on
    self.source = f'{workdir} checkpoint {self.run.step}'
    self._predict = self.run.experiment.predict_step(self.run.graphdef)

  def fit(self, original: tuple[int, int]):
    return fitting.Fit.of(original, self.trained, self.stride)

  def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
    """[B, H, W, 3] uint8 fitted images → {'semseg': [B, H, W] ids, 'depth': metres}."""
    return samples.predict(self._predict, self.run.state, images, self.run.experiment.mesh)


class ExportedPredictor:
  """The same from `mtl_jax.export`'s StableHLO artifact: its input size is fixed, so every
  image is fitted and padded to exactly that size."""

  def __init__(self, folder: str):
    folder = Path(folder)
    try:
      card = (folder / artifacts.MODEL_CARD).read_bytes()
      blob = (folder / artifacts.STABLEHLO_FILE).read_bytes()
    except OSError as e:
      raise UserError(
        f'--exported {folder}: no exported model there ({e.strerror}: {e.filename}); write one '
        'with python -m mtl_jax.export --format stablehlo'
      ) from e
    self._exported = _deserialize(blob, folder / artifacts.STABLEHLO_FILE)
    self.trained = tuple(self._exported.in_avals[0].shape[1:3])  # the artifact's own input
    self.tasks, self.colors, step = _card_fields(card, folder / artifacts.MODEL_CARD)
    self.source = f'{folder / artifacts.STABLEHLO_FILE} (checkpoint {step})'

  def fit(self, original: tuple[int, int]):
    return fitting.Fit.of(original, self.trained, stride=1, pad_to=self.trained)

  def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
    return jax.device_get(self._exported.call(images))


_REEXPORT = 're-run python -m mtl_jax.export --format stablehlo'


def _deserialize(blob: bytes, path: Path):
  """The jax.export artifact in `blob`, checked to run on this machine's platform."""
  try:
    exported = jax.export.deserialize(bytearray(blob))
  except Exception as e:  # pylint: disable=broad-except  # any parse failure: a bad file, not a bug
    raise UserError(
      f'{path}: not a complete jax.export artifact ({type(e).__name__}: {e}); {_REEXPORT}'
    ) from e
  here = jax.export.default_export_platform()
  if here not in exported.platforms:  # its call would fail on the first batch, deep in JAX
    raise UserError(
      f'{path} was exported for {", ".join(exported.platforms)} and cannot run on this '
      f"machine's {here}: export it here, or predict where it was exported"
    )
  return exported


def _card_fields(text: bytes, path: Path) -> tuple[tuple, tuple, int]:
  """(tasks, palette, checkpoint step) of a model card's text."""
  try:
    card = json.loads(text)
  except ValueError as e:  # JSONDecodeError, or UnicodeDecodeError for bytes that are not text
    raise UserError(f'{path} is not valid JSON ({e}): torn or edited; {_REEXPORT}') from e
  try:
    tasks = tuple(str(t) for t in card['tasks'])
    colors = tuple(tuple(int(v) for v in c) for c in card['palette'])
    return tasks, colors, int(card['checkpoint_step'])
  except (KeyError, TypeError, ValueError) as e:
    raise UserError(
      f'{path} is not a model card of mtl_jax.export (tasks, palette or checkpoint_step missing '
      f'or malformed: {type(e).__name__} {e}); {_REEXPORT}'
    ) from e
