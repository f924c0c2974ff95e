"""The Cityscapes label taxonomy, read from cityscapesScripts' own table (never retyped).

`TRAIN_CLASSES` lists the 19 evaluated classes in train-id order; every other label id maps to
`IGNORE_LABEL` (the sample contract's, re-exported here). Loaders, metrics and plots all read
these tables.
"""

import dataclasses

import numpy as np
from cityscapesscripts.helpers import labels as _cs

from mtl_jax.data.sample import IGNORE_LABEL

NUM_CLASSES = 19


@dataclasses.dataclass(frozen=True)
class TrainClass:
  name: str
  train_id: int
  color: tuple[int, int, int]


TRAIN_CLASSES: tuple[TrainClass, ...] = tuple(
  TrainClass(_cs.trainId2label[i].name, i, tuple(_cs.trainId2label[i].color))
  for i in range(NUM_CLASSES)
)
CLASS_NAMES: tuple[str, ...] = tuple(c.name for c in TRAIN_CLASSES)
TRAIN_ID: dict[str, int] = {c.name: c.train_id for c in TRAIN_CLASSES}


def palette() -> np.ndarray:
  """[256, 3] uint8 colours indexed by train id; ignore (and unused ids) are black."""
  table = np.zeros((256, 3), np.uint8)
  for c in TRAIN_CLASSES:
    table[c.train_id] = c.color
  return table


def label_id_to_train_id() -> np.ndarray:
  """[256] uint8 lookup from Cityscapes label ids (gtFine *_labelIds.png) to train ids."""
  lut = np.full(256, IGNORE_LABEL, np.uint8)
  for label in _cs.labels:
    if 0 <= label.id < 256 and 0 <= label.trainId < NUM_CLASSES:
      lut[label.id] = label.trainId
  return lut


def label_ids() -> tuple[int, ...]:
  """The label ids cityscapesScripts defines for gtFine *_labelIds.png pixels, sorted.

  The license plate's id -1 never appears in a PNG, so only ids 0..255 are listed.
  """
  return tuple(sorted(label.id for label in _cs.labels if 0 <= label.id < 256))


def default_class_names(num_classes: int) -> tuple[str, ...]:
  """The Cityscapes train classes for 19 classes, else class_<id>."""
  if num_classes == len(CLASS_NAMES):
    return CLASS_NAMES
  return tuple(f'class_{i}' for i in range(num_classes))


def default_class_colors(num_classes: int) -> tuple[tuple[int, int, int], ...]:
  """The Cityscapes train classes' colours, repeated beyond 19 classes."""
  return tuple(TRAIN_CLASSES[i % len(TRAIN_CLASSES)].color for i in range(num_classes))


@dataclasses.dataclass(frozen=True)
class Classes:
  """A dataset's classes in id order, names and (r, g, b) colours: what a run records, so that
  its predictions, exports and reports show the classes it was trained on."""

  names: tuple[str, ...]
  colors: tuple[tuple[int, int, int], ...]

  @classmethod
  def default(cls, num_classes: int) -> 'Classes':
    """The Cityscapes train classes (`default_class_names`, `default_class_colors`)."""
    return cls(default_class_names(num_classes), default_class_colors(num_classes))

  def to_json(self) -> dict:
    return {'names': list(self.names), 'colors': [list(c) for c in self.colors]}

  @classmethod
  def from_json(cls, saved: dict) -> 'Classes':
    return cls(tuple(saved['names']), tuple(tuple(c) for c in saved['colors']))
