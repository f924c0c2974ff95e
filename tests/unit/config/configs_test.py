"""Every shipped config and preset loads, validates and builds its model; registries resolve;
config paths resolve from anywhere; the presets hold the study's setting and the demos' own."""

import json
import pathlib

import jax.numpy as jnp
import ml_collections
import pytest
from conftest import CONFIG_DIR, config_presets
from flax import nnx

from mtl_jax import experiment
from mtl_jax.config import files, presets, schema
from mtl_jax.models import pretrained, pretrained_cache
from mtl_jax.runtime.errors import UserError
from mtl_jax.workdir import run_config

CONFIGS = sorted(CONFIG_DIR.glob('*.py'))


def _cases():
  """Every config file alone and with each of its presets, alone and followed by `tiny`."""
  for path in CONFIGS:
    for preset in config_presets(path):
      for full in dict.fromkeys([preset, ','.join(p for p in (preset, 'tiny') if p)]):
        yield pytest.param(path, full, id=f'{path.stem}:{full or "full"}')


@pytest.mark.parametrize('path, preset', list(_cases()))
def test_config_validates_and_builds(path, preset):
  config = files.load_config_file(path, preset)
  docstring_first_line = path.read_text().split('\n')[0]
  assert docstring_first_line.startswith(f'"""python -m mtl_jax.train --config configs/{path.name}')
  schema.validate(config)  # model.pretrained is only read (and checked) when training starts
  # Abstract build + forward: checks every shape without allocating full-size weights.
  out = nnx.eval_shape(
    lambda: experiment.build_model(config)(jnp.zeros((1, 64, 128, 3), jnp.uint8))
  )
  assert set(out) - {'aux'} == set(config.model.tasks)
  assert experiment.task_spec(config).tasks == tuple(config.model.tasks)


def test_ladder_rows_add_one_change_each_with_their_table_4_epochs():
  rows = [
    presets.apply(schema.base_config(), p) for p in ('plain', 'pretrained', 'dilated', 'aspp')
  ]
  assert [
    (
      r.model.output_stride,
      r.model.use_aspp,
      r.model.decoder,
      r.model.pretrained,
      r.train.num_epochs,
    )
    for r in rows
  ] == [
    (32, False, 'seed', '', 16),
    (32, False, 'seed', 'imagenet', 32),
    (16, False, 'seed', 'imagenet', 32),
    (16, True, 'deeplabv3plus', 'imagenet', 64),
  ]


def test_a_preset_as_a_sweep_entry_is_what_it_changes():
  assert presets.changes('dilated') == {
    'model.use_aspp': False,
    'model.decoder': 'seed',
    'model.pretrained': 'imagenet',
    'train.num_epochs': 32,
  }
  # Applied over another size preset, the entry gives that size's row: lite's aspp row.
  lite_aspp = presets.apply(schema.base_config(), 'lite,aspp')
  entry = presets.apply(schema.base_config(), 'lite')
  for key, value in presets.changes('aspp').items():
    *groups, name = key.split('.')
    node = entry
    for group in groups:
      node = node[group]
    node[name] = value
  assert entry.to_dict() == lite_aspp.to_dict()


def test_lite_keeps_the_study_epochs_and_trains_a_quarter_of_them():
  config = presets.apply(schema.base_config(), 'plain,lite')
  assert (config.train.num_epochs, schema.epochs(config)) == (16, 4)
  config.train.num_epochs = 8  # the batch-size sweep's batch-2 row
  assert schema.epochs(config) == 2
  config.train.num_epochs = 1
  assert schema.epochs(config) == 1  # never none


# The study's final setting (its Table 4 and 5): every config with no preset trains with it.
STUDY_SETTING = {
  'optim.name': 'adam',
  'optim.learning_rate': 1e-4,
  'train.batch_size': 4,
  'train.eval_batch_size': 4,
  'train.num_epochs': 64,
  'model.encoder': 'resnet34',
  'model.output_stride': 16,
  'model.pretrained': 'auto',
  'model.zero_init_residual': True,
  'depth.mode': 'linear',
  'depth.mean': 27.0727,  # the course template's linear-depth normalisation
  'depth.std': 29.1264,
}


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: p.stem)
def test_full_presets_are_the_studys_final_setting(path):
  config = files.load_config_file(path)
  assert {key: schema.get(config, key) for key in STUDY_SETTING} == STUDY_SETTING
  weights = (config.loss.semseg_weight, config.loss.depth_weight)
  assert weights == ((1.0, 0.0) if path.stem == 'single_task' else (0.5, 0.5))


# What the demo presets keep whatever the full setting's defaults are (the README's demo figures
# and the tests' tiny runs rely on them). Output stride 16 comes from the defaults on purpose: a
# ladder row before the preset (`plain,cpu`) sets its own.
DEMO_SETTINGS = {
  'cpu': {
    'optim.name': 'adam',
    'optim.learning_rate': 1e-2,
    'train.batch_size': 8,
    'train.eval_batch_size': 8,
    'train.num_epochs': 7,
    'model.encoder': 'resnet18',
    'model.output_stride': 16,
    'model.zero_init_residual': True,
    'model.pretrained': '',
    'model.heads': 'seed',
    'model.block_dilation': 'template',
    'depth.mode': 'log',
    'depth.mean': 3.0,
    'depth.std': 1.0,
  },
  'tiny': {
    'optim.name': 'adam',
    'optim.learning_rate': 1e-3,
    'train.batch_size': 4,
    'train.eval_batch_size': 4,
    'train.num_epochs': 2,
    'model.encoder': 'resnet_tiny',
    'model.output_stride': 16,
    'model.zero_init_residual': False,
    'model.pretrained': '',
    'model.heads': 'deeplabv3plus',
    'model.block_dilation': 'both',
    'depth.mode': 'linear',
    'depth.mean': 20.0,
    'depth.std': 20.0,
  },
}


def _moved_defaults(heads: str) -> ml_collections.ConfigDict:
  """The base config with every default a demo relies on moved elsewhere (the networks to
  either head family's: cpu builds the study's, tiny the DeepLabV3+ paper's)."""
  c = schema.base_config()
  c.optim.name, c.optim.learning_rate = 'sgd', 0.5
  c.train.batch_size = c.train.eval_batch_size = 2
  c.train.num_epochs = 99
  c.model.pretrained = 'auto'
  c = presets.apply(c, heads)
  c.depth.mean = c.depth.std = 1.0
  return c


@pytest.mark.parametrize('preset', DEMO_SETTINGS)
def test_demo_presets_pin_their_settings_whatever_the_defaults(preset):
  expected = DEMO_SETTINGS[preset]
  bases = (schema.base_config(), _moved_defaults('study'), _moved_defaults('deeplabv3plus'))
  for base in bases:
    config = presets.apply(base, preset)
    assert {key: schema.get(config, key) for key in expected} == expected
  for path in CONFIGS:
    config = files.load_config_file(path, preset)
    assert {key: schema.get(config, key) for key in expected} == expected, path.name


def test_config_paths_not_on_disk_name_the_shipped_configs(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  shipped = files.SHIPPED_CONFIGS / 'joint.py'
  assert shipped.resolve() == (CONFIG_DIR / 'joint.py').resolve()
  for given in ('configs/joint.py', 'joint.py', 'joint'):
    assert files.resolve_config_path(given) == shipped
  assert files.resolve_config_ref('configs/joint.py:deep,tiny') == f'{shipped}:deep,tiny'
  assert files.load_config_file('distilled', 'tiny').model.arch == 'distilled'
  (tmp_path / 'configs').mkdir()
  (tmp_path / 'configs' / 'joint.py').write_text('mine')
  assert files.resolve_config_path('configs/joint.py') == pathlib.Path('configs/joint.py')
  for missing in ('configs/nope.py', 'elsewhere/branched.py', 'branched.txt'):
    assert files.resolve_config_path(missing) == pathlib.Path(missing)


@pytest.mark.parametrize(
  'ref, workdir',
  [
    ('configs/distilled.py:tiny', 'runs/distilled-tiny'),
    ('configs/distilled.py:deep,cpu', 'runs/distilled-deep_cpu'),
    ('/somewhere/joint.py', 'runs/joint-full'),
    ('branched:full', 'runs/branched-full'),
  ],
)
def test_default_workdir_names_the_config_and_its_presets(ref, workdir):
  assert files.default_workdir(ref) == pathlib.Path(workdir)


def test_auto_pretrained_takes_the_converted_cache_else_random_init(tmp_path, monkeypatch):
  monkeypatch.delenv(pretrained_cache.CACHE_ENV, raising=False)
  assert pretrained.cache_dir('resnet34') == '~/.cache/mtl_jax/pretrained/resnet34'
  monkeypatch.setenv(pretrained_cache.CACHE_ENV, str(tmp_path))
  directory, line = pretrained.resolve('auto', 'resnet34')
  assert directory == ''
  assert 'random init' in line
  assert line.endswith(
    'python -m mtl_jax.convert torchvision --input resnet34-b627a593.pth '
    f'--output {tmp_path}/resnet34'
  )
  (tmp_path / 'resnet34').mkdir()
  directory, line = pretrained.resolve('auto', 'resnet34')
  assert directory == str(tmp_path / 'resnet34') and directory in line
  assert pretrained.resolve('', 'resnet34') == ('', '')


def test_a_missing_pretrained_directory_stops_only_a_training_start(tmp_path, monkeypatch):
  monkeypatch.setenv(pretrained_cache.CACHE_ENV, str(tmp_path / 'cache'))
  config = files.load_config_file(CONFIG_DIR / 'joint.py', 'pretrained,tiny')
  cached = f'{tmp_path}/cache/resnet_tiny'
  # The ladder asks for the cache of whichever encoder the config ends up with, in any order.
  assert experiment.Experiment.from_config(config).config.model.pretrained == 'imagenet'
  with pytest.raises(UserError) as missing:
    experiment.Experiment.from_config(config, training=True)
  assert str(missing.value) == (
    "config.model.pretrained='imagenet' needs converted ImageNet weights of resnet_tiny in "
    f'{cached}; convert them: python -m mtl_jax.convert torchvision --input '
    f'<torchvision resnet_tiny weights>.pth --output {cached}'
  )
  (tmp_path / 'cache' / 'resnet_tiny').mkdir(parents=True)
  # The run records the directory it started from.
  assert experiment.Experiment.from_config(config, training=True).config.model.pretrained == cached
  config.model.pretrained = f'{tmp_path}/elsewhere'
  with pytest.raises(UserError, match="'.*elsewhere' is not a directory; convert"):
    experiment.Experiment.from_config(config, training=True)


def test_single_task_arch_needs_exactly_one_task():
  config = files.load_config_file(CONFIG_DIR / 'single_task.py', 'tiny')
  config.model.tasks = ('semseg', 'depth')
  with pytest.raises(schema.ConfigError, match='needs one task'):
    schema.validate(config)


def test_config_json_of_an_older_run_takes_defaults_for_newer_keys(tmp_path):
  config = files.load_config_file(CONFIG_DIR / 'branched.py', 'tiny')
  saved = json.loads(config.to_json())
  del saved['train']['max_nonfinite_steps'], saved['train']['checkpoint_every_steps']
  (tmp_path / 'config.json').write_text(json.dumps(saved))
  loaded = run_config.load(tmp_path)
  assert loaded.train.max_nonfinite_steps == 10 and loaded.train.checkpoint_every_steps == 200
  assert loaded.model.arch == 'branched' and loaded.model.encoder == 'resnet_tiny'
  schema.validate(loaded)


def test_config_json_of_a_run_before_the_knob_renames_loads_under_the_new_names(tmp_path):
  config = files.load_config_file(CONFIG_DIR / 'distilled.py', 'tiny')
  saved = json.loads(config.to_json())
  data = saved['data']
  del data['seed'], data['num_train'], data['num_validation'], data['num_test'], data['jitter']
  data.update(dataset_seed=3, train_size=16, validation_size=8, test_size=4, jitter=0.4)
  saved['loss']['depth'] = saved['loss'].pop('depth_loss').replace('l1', 'silog')
  (tmp_path / 'config.json').write_text(json.dumps(saved))
  loaded = run_config.load(tmp_path)
  assert (
    loaded.data.seed,
    loaded.data.num_train,
    loaded.data.num_validation,
    loaded.data.num_test,
  ) == (3, 16, 8, 4)
  assert loaded.data.jitter.to_dict() == {
    'brightness': 0.4,
    'contrast': 0.4,
    'saturation': 0.4,
    'hue': 0.04,
  }
  assert loaded.loss.depth_loss == 'silog'
  schema.validate(loaded)


def test_every_knob_has_a_meaning_and_its_default_validates():
  assert all(knob.meaning for knob in schema.KNOBS.values())
  schema.validate(schema.base_config())
  config = schema.base_config()
  config.data.jitter.hue = -0.1
  with pytest.raises(schema.ConfigError, match=r'config.data.jitter.hue=-0.1 must be >= 0'):
    schema.validate(config)
