"""Tests for the TFDS builder and the grain pipeline, on a tiny dataset rendered by a stand-in.

The stand-in replaces `mtl_jax.data.synthetic.render_sample` (monkeypatched), and the dataset is
built in-process (num_workers=1) so the patch is visible to the generator.
"""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from mtl_jax.data import augment, pipeline, registry, synthetic, synthetic_tfds

H, W = 16, 32
SIZES = dict(height=H, width=W, seed=3, num_train=12, num_validation=5, num_test=3)


def fake_render(index, *, split='train', seed=0, height=128, width=256):
  """Deterministic noise with the renderer's contract (uint8 image/semseg, float32 depth)."""
  rng = np.random.default_rng([seed, synthetic_tfds.SPLITS.index(split), index])
  semseg = rng.integers(0, 19, (height, width), dtype=np.uint8)
  semseg[: height // 4] = 255
  depth = rng.uniform(4, 300, (height, width)).astype(np.float32)
  depth[: height // 4] = 0
  image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
  return {'image': image, 'semseg': semseg, 'depth': depth}


def _patch_renderer(mp, render):
  mp.setattr(synthetic, 'render_sample', render)


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  return tmp_path_factory.mktemp('tfds')


@pytest.fixture(scope='module')
def builder(data_dir):
  with pytest.MonkeyPatch.context() as mp:
    _patch_renderer(mp, fake_render)
    return registry.prepare('synthetic', data_dir, num_workers=1, **SIZES)


@pytest.fixture(scope='module')
def train(builder):
  return pipeline.data_source(builder, 'train')


def _take(it, n):
  return [next(it) for _ in range(n)]


def _assert_resumes_exactly(make_iterator, taken: int, compared: int):
  """A fresh iterator given the state after `taken` batches yields the next `compared` batches
  the original does."""
  it = make_iterator()
  _take(it, taken)
  state = it.get_state()
  expected = _take(it, compared)
  fresh = make_iterator()
  fresh.set_state(state)
  _assert_batches_equal(_take(fresh, compared), expected)


def _assert_batches_equal(a, b):
  for x, y in zip(a, b, strict=True):
    assert x.keys() == y.keys()
    for k in x:
      np.testing.assert_array_equal(x[k], y[k])


# ----------------------------------------------------------------------------- builder


def test_config_name_and_layout(builder, data_dir):
  assert builder.builder_config.name == '16x32_seed3_n12-5-3'
  assert builder.data_dir.startswith(str(data_dir / 'mtl_synthetic' / '16x32_seed3_n12-5-3'))
  assert {s: builder.info.splits[s].num_examples for s in synthetic_tfds.SPLITS} == {
    'train': 12,
    'validation': 5,
    'test': 3,
  }


@pytest.mark.parametrize('split', synthetic_tfds.SPLITS)
def test_records_equal_rendered_samples_exactly(builder, split):
  source = pipeline.data_source(builder, split)
  for i in range(len(source)):
    got, want = source[i], fake_render(i, split=split, seed=3, height=H, width=W)
    assert got['image'].dtype == np.uint8 and got['image'].shape == (H, W, 3)
    assert got['semseg'].dtype == np.uint8 and got['semseg'].shape == (H, W)
    assert got['depth'].dtype == np.float32 and got['depth'].shape == (H, W)
    assert got['index'] == i and got['index'].dtype == np.int64
    np.testing.assert_array_equal(got['image'], want['image'])
    np.testing.assert_array_equal(got['semseg'], want['semseg'])
    np.testing.assert_array_equal(got['depth'].view(np.uint32), want['depth'].view(np.uint32))


def test_prepare_twice_does_not_rebuild(builder, data_dir):
  def must_not_render(*args, **kwargs):
    raise AssertionError('dataset was rebuilt')

  with pytest.MonkeyPatch.context() as mp:
    _patch_renderer(mp, must_not_render)
    again = registry.prepare('synthetic', data_dir, num_workers=1, **SIZES)
  assert again.data_dir == builder.data_dir


def test_real_renderer_through_the_worker_pool(tmp_path):
  """Integration: spawn pool + the real `render_sample` contract, records bit-exact."""
  sizes = dict(height=H, width=W, seed=1, num_train=4, num_validation=1, num_test=1)
  b = registry.prepare('synthetic', tmp_path, num_workers=2, **sizes)
  source = pipeline.data_source(b, 'train')
  for i in range(len(source)):
    want = synthetic.render_sample(i, split='train', seed=1, height=H, width=W)
    got = source[i]
    for key in ('image', 'semseg', 'depth'):
      assert got[key].tobytes() == want[key].tobytes(), key


def test_bad_config_value_is_one_clear_error():
  with pytest.raises(ValueError, match='height must be an int >= 1'):
    synthetic_tfds.make_config(height=0)


def test_reading_needs_no_tensorflow(builder):
  code = textwrap.dedent(f"""
      import sys
      from mtl_jax.data import pipeline, synthetic_tfds
      cfg = synthetic_tfds.make_config(**{SIZES!r})
      b = synthetic_tfds.MtlSynthetic(data_dir={str(builder.data_dir_root)!r}, config=cfg)
      batch = next(pipeline.train_iterator(pipeline.data_source(b, "train"), batch_size=2, seed=0))
      assert batch["image"].shape == (2, {H}, {W}, 3)
      assert "tensorflow" not in sys.modules, "tensorflow was imported"
  """)
  subprocess.run([sys.executable, '-c', code], check=True)


# ----------------------------------------------------------------------------- train


def test_train_batches_have_the_documented_dtypes(train):
  it = pipeline.train_iterator(
    train, batch_size=4, seed=0, crop_size=(8, 12), scale_range=(0.5, 1.5), jitter=augment.Jitter()
  )
  batch = next(it)
  assert batch['image'].dtype == np.uint8 and batch['image'].shape == (4, 8, 12, 3)
  assert batch['semseg'].dtype == np.int32 and batch['semseg'].shape == (4, 8, 12)
  assert batch['depth'].dtype == np.float32 and batch['depth'].shape == (4, 8, 12)
  assert batch['index'].dtype == np.int64 and batch['index'].shape == (4,)


def test_each_epoch_visits_every_index_once_in_a_new_order(train):
  it = pipeline.train_iterator(train, batch_size=4, seed=0, flip=False)
  epochs = [np.concatenate([b['index'] for b in _take(it, 3)]) for _ in range(2)]
  for order in epochs:
    assert sorted(order) == list(range(12))
  assert list(epochs[0]) != list(epochs[1])


def test_without_augmentation_batches_are_the_stored_samples(train):
  batch = next(pipeline.train_iterator(train, batch_size=4, seed=0, flip=False))
  for j, i in enumerate(batch['index']):
    np.testing.assert_array_equal(batch['image'][j], train[int(i)]['image'])
    np.testing.assert_array_equal(batch['depth'][j], train[int(i)]['depth'])


def test_same_seed_same_batches_different_seed_different_order(train):
  kw = dict(batch_size=4, crop_size=(8, 12), scale_range=(0.5, 1.5), jitter=augment.Jitter())
  a = _take(pipeline.train_iterator(train, seed=1, **kw), 5)
  b = _take(pipeline.train_iterator(train, seed=1, **kw), 5)
  c = _take(pipeline.train_iterator(train, seed=2, **kw), 5)
  _assert_batches_equal(a, b)
  order = lambda batches: np.concatenate([x['index'] for x in batches]).tolist()
  assert order(a) != order(c)


def test_set_state_resumes_exactly_mid_epoch(train):
  kw = dict(
    batch_size=4, seed=5, crop_size=(8, 12), scale_range=(0.5, 1.5), jitter=augment.Jitter()
  )
  _assert_resumes_exactly(lambda: pipeline.train_iterator(train, **kw), 4, 5)  # 1 epoch + 1 in


def test_shards_split_the_one_shard_global_batches_row_for_row(train):
  """Two processes with 2 rows each train on exactly the batches of one process with 4: same
  samples, same augmentation (3 batches = one epoch of 12 and into the next)."""
  kw = dict(seed=3, crop_size=(8, 12), scale_range=(0.5, 1.5), jitter=augment.Jitter())
  whole = _take(pipeline.train_iterator(train, batch_size=4, **kw), 4)
  shards = [
    _take(pipeline.train_iterator(train, batch_size=2, shard_index=k, shard_count=2, **kw), 4)
    for k in range(2)
  ]
  joined = [
    {key: np.concatenate([a[key], b[key]]) for key in a} for a, b in zip(*shards, strict=True)
  ]
  _assert_batches_equal(joined, whole)
  first_epoch = np.concatenate([b['index'] for b in whole[:3]])
  assert sorted(first_epoch.tolist()) == list(range(12))


def test_a_shard_resumes_its_own_rows(train):
  kw = dict(batch_size=2, seed=3, shard_index=1, shard_count=2, crop_size=(8, 12))
  _assert_resumes_exactly(lambda: pipeline.train_iterator(train, **kw), 2, 3)


def test_a_global_batch_larger_than_the_split_is_refused(train):
  with pytest.raises(ValueError, match='fewer than the global batch 14'):
    pipeline.train_iterator(train, batch_size=7, seed=0, shard_index=0, shard_count=2)


def test_steps_per_epoch():
  assert pipeline.steps_per_epoch(12, 4) == 3
  assert pipeline.steps_per_epoch(13, 4) == 3


# ----------------------------------------------------------------------------- eval


def test_eval_batches_cover_the_split_once_with_a_masked_tail(train):
  batches = pipeline.eval_batches(train, batch_size=5)
  got = list(batches)
  assert len(got) == len(batches) == 3
  index = np.concatenate([b['index'] for b in got])
  mask = np.concatenate([b['mask'] for b in got])
  np.testing.assert_array_equal(index[mask], np.arange(12))
  np.testing.assert_array_equal(mask, [True] * 12 + [False] * 3)
  last = got[-1]
  assert last['mask'].dtype == np.bool_ and last['semseg'].dtype == np.int32
  assert (last['image'][2:] == 0).all() and (last['depth'][2:] == 0).all()
  assert (last['semseg'][2:] == 255).all()
  assert (last['index'][2:] == -1).all()
  np.testing.assert_array_equal(last['depth'][0], train[10]['depth'])
  _assert_batches_equal(got, list(batches))  # re-iterable and deterministic


def test_eval_shards_have_equal_length_and_cover_everything(builder):
  source = pipeline.data_source(builder, 'validation')  # 5 samples over 2 shards
  shards = [
    pipeline.eval_batches(source, batch_size=2, shard_index=k, shard_count=2) for k in range(2)
  ]
  assert len(shards[0]) == len(shards[1]) == 2
  index = np.concatenate([b['index'][b['mask']] for s in shards for b in s])
  assert sorted(index.tolist()) == list(range(5))


def test_worker_processes_resume_exactly(train):
  kw = dict(batch_size=4, seed=5, crop_size=(8, 12), jitter=augment.Jitter(), worker_count=1)
  it = pipeline.train_iterator(train, **kw)
  _take(it, 4)
  state = it.get_state()
  expected = _take(it, 4)
  fresh = pipeline.train_iterator(train, **kw)
  fresh.set_state(state)
  _assert_batches_equal(_take(fresh, 4), expected)
  it.close()
  fresh.close()


def test_jitter_accepts_a_mapping_of_bounds(train):
  bounds = dict(brightness=0.3, contrast=0.0, saturation=0.0, hue=0.0)
  a = next(pipeline.train_iterator(train, batch_size=4, seed=0, jitter=bounds))
  b = next(pipeline.train_iterator(train, batch_size=4, seed=0, jitter=augment.Jitter(**bounds)))
  _assert_batches_equal([a], [b])
