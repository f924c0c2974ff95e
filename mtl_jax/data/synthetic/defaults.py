"""The default synthetic dataset (one definition: renderer, TFDS builder, flags and configs)."""

import dataclasses


@dataclasses.dataclass(frozen=True)
class SyntheticDefaults:
  """The default synthetic dataset: stored image size, dataset seed and split sizes."""

  height: int = 128
  width: int = 256
  seed: int = 0
  num_train: int = 2000
  num_validation: int = 250
  num_test: int = 250

  @property
  def split_sizes(self) -> tuple[int, int, int]:
    """(num_train, num_validation, num_test): the order of the --split_sizes flags."""
    return self.num_train, self.num_validation, self.num_test


SYNTHETIC_DEFAULTS = SyntheticDefaults()
