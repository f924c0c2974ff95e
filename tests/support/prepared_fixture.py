"""Each real on-disk layout written small and prepared with `registry.prepare`: what the `prepared`
fixture (tests/conftest.py, one param per layout) gives the data tests and the training
scenarios on them (tests/support is on sys.path: tests/conftest.py)."""

import cityscapes_fixture
import folder_fixture
import miniscapes_fixture

from mtl_jax.data import cityscapes, folder, miniscapes, registry

FIXTURES = {
  'miniscapes': (miniscapes_fixture.write_miniscapes, miniscapes),
  'cityscapes': (cityscapes_fixture.write_cityscapes, cityscapes),
  'folder': (folder_fixture.write_folder, folder),
}


def prepare(name: str, tmp_path_factory):
  """(name, manual_dir, data_dir, builder) of fixture `name` prepared at its native 32×64."""
  write, _ = FIXTURES[name]
  manual_dir = write(tmp_path_factory.mktemp(name))
  data_dir = tmp_path_factory.mktemp(f'{name}_tfds')
  builder = registry.prepare(name, data_dir, height=0, width=0, manual_dir=manual_dir)
  return name, manual_dir, data_dir, builder
