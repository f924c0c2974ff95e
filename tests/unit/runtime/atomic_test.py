import pytest

from mtl_jax.runtime import atomic


def test_a_complete_write_replaces_the_file_and_leaves_no_partial(tmp_path):
  path = tmp_path / 'config.json'
  path.write_text('old')
  atomic.write_text(path, 'new')
  assert path.read_text() == 'new'
  assert sorted(p.name for p in tmp_path.iterdir()) == ['config.json']


@pytest.mark.parametrize('interruption', [OSError('No space left on device'), KeyboardInterrupt()])
def test_an_interrupted_write_keeps_the_old_file_and_removes_the_partial(tmp_path, interruption):
  path = tmp_path / 'model_card.json'
  path.write_text('old')
  with pytest.raises(type(interruption)), atomic.replacing(path) as partial:
    partial.write_text('half of the ne')
    raise interruption
  assert path.read_text() == 'old'
  assert sorted(p.name for p in tmp_path.iterdir()) == ['model_card.json']


def test_the_partial_file_is_hidden_beside_its_target(tmp_path):
  assert atomic.partial_path(tmp_path / 'a' / 'x.png') == tmp_path / 'a' / '.x.png.partial'
