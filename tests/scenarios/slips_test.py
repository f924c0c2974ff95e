"""Common slips (an empty or wrong path, a broken config file, a hand-edited config.json, a batch
larger than the data, a non-finite number) are refused with one line and exit 2 before anything
is written: every file already there stays as it was."""

import hashlib
import json
import shutil

import pytest
from commands import assert_one_line_error, run
from conftest import REPO

EXPORT = 'mtl_jax.convert'  # its miniscapes subcommand
TINY = ('--config=configs/joint.py:tiny', '--config.data.data_dir={data}')


def digest(root) -> dict[str, str]:
  """Every path under `root` with its content hash ('dir' for directories)."""
  return {
    str(p.relative_to(root)): 'dir' if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    for p in sorted(root.rglob('*'))
  }


@pytest.fixture
def tmp(tmp_path, tiny_run):
  """tmp_path with a copy of a finished tiny run (run/), a file (file) and a directory (dir/)."""
  shutil.copytree(tiny_run[1], tmp_path / 'run')
  (tmp_path / 'file').write_text('not a directory\n')
  (tmp_path / 'dir').mkdir()
  (tmp_path / 'dir' / 'kept.txt').write_text('kept\n')
  return tmp_path


def assert_refused(tmp, data_dir, module, program, args, fragments, cwd=REPO):
  """`module args` ({tmp} and {data} filled in) exits with one error line holding `fragments`
  and leaves every file under tmp as it was."""
  before = digest(tmp)
  fill = lambda s: s.format(tmp=tmp, data=data_dir)
  result = run(module, *map(fill, args), cwd=cwd)
  assert_one_line_error(result, program, *map(fill, fragments))
  assert digest(tmp) == before


def test_train_refuses_an_empty_workdir_and_creates_nothing(tmp_path, data_dir):
  # `--workdir=$RUN` with RUN unset would otherwise train into the current directory.
  assert_refused(
    tmp_path,
    data_dir,
    'mtl_jax.train',
    'train',
    (*TINY, '--workdir='),
    ('--workdir is empty',),
    cwd=tmp_path,
  )
  assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
  'module, program, args, fragments',
  [
    (
      'mtl_jax.train',
      'train',
      (*TINY, '--workdir={tmp}/file'),
      ('--workdir {tmp}/file is a file',),
    ),
    (
      'mtl_jax.train',
      'train',
      (*TINY, '--workdir={tmp}/file/run'),
      ('--workdir {tmp}/file/run', '{tmp}/file is a file, not a directory'),
    ),
    ('mtl_jax.evaluate', 'evaluate', ('--workdir=',), ('--workdir is empty',)),
    (
      'mtl_jax.evaluate',
      'evaluate',
      ('--workdir={tmp}/file',),
      ('--workdir {tmp}/file is a file',),
    ),
    (
      'mtl_jax.evaluate',
      'evaluate',
      ('--workdir={tmp}/run', '--output={tmp}/dir'),
      ('--output {tmp}/dir is a directory', 'name a file'),
    ),
    (
      'mtl_jax.evaluate',
      'evaluate',
      ('--workdir={tmp}/run', '--output={tmp}/file/scores.json'),
      ('--output {tmp}/file/scores.json', '{tmp}/file is a file, not a directory'),
    ),
    (
      EXPORT,
      'convert miniscapes',
      ('miniscapes', '--data_dir={data}', '--height=32', '--width=64', '--split_sizes=16,8,8'),
      ('--output {tmp}/file is a file',),
    ),
    (
      EXPORT,
      'convert miniscapes',
      (
        'miniscapes',
        '--workdir=',
        '--data_dir={data}',
        '--height=32',
        '--width=64',
        '--split_sizes=16,8,8',
      ),
      ('--workdir is empty',),
    ),
  ],
  ids=[
    'train-workdir-file',
    'train-workdir-under-file',
    'evaluate-workdir-empty',
    'evaluate-workdir-file',
    'evaluate-output-dir',
    'evaluate-output-under-file',
    'export-output-file',
    'export-workdir-empty',
  ],
)
def test_paths_that_cannot_be_what_the_flag_names_are_refused(
  tmp, data_dir, module, program, args, fragments
):
  if module == EXPORT:
    args = (*args, '--output={tmp}/file' if '--workdir=' not in args else '--output={tmp}/out')
  assert_refused(tmp, data_dir, module, program, args, fragments)


CONFIG_FILES = {
  'syntax-error': '"""A config with a slip."""\n\ndef get_config(preset=None)\n  return None\n',
  'no-get-config': '"""Not a config."""\n\nCONFIG = {}\n',
}


@pytest.mark.parametrize(
  'config, fragments',
  [
    ('{tmp}/syntax-error.py', ('{tmp}/syntax-error.py:3: ', "expected ':'")),
    ('{tmp}/no-get-config.py', ('{tmp}/no-get-config.py does not define get_config()',)),
    (
      '{tmp}/run/config.json',
      (
        '{tmp}/run/config.json is the resolved config a run saved, not a config file',
        'python -m mtl_jax.train --config configs/joint.py',
        '--workdir {tmp}/run',
      ),
    ),
  ],
  ids=['syntax-error', 'no-get-config', 'run-config-json'],
)
def test_config_files_that_cannot_load_are_one_line(tmp, data_dir, config, fragments):
  for name, text in CONFIG_FILES.items():
    (tmp / f'{name}.py').write_text(text)
  args = (f'--config={config}', '--workdir={tmp}/run')
  assert_refused(tmp, data_dir, 'mtl_jax.train', 'train', args, fragments)


@pytest.mark.parametrize('workdir', ['run', 'new'])
def test_a_batch_larger_than_the_train_split_is_refused_before_writing(tmp, data_dir, workdir):
  # The tiny run's 16 train samples: resuming it (run) leaves it untouched; a new run is not
  # even created.
  args = (*TINY, '--config.train.batch_size=32', f'--workdir={{tmp}}/{workdir}')
  fragments = {
    'new': ('config.train.batch_size=32', 'the 16 samples of the train split'),
    'run': ('was trained with another config (train.batch_size: 4 there, 32 here)',),
  }[workdir]
  assert_refused(tmp, data_dir, 'mtl_jax.train', 'train', args, fragments)


@pytest.mark.parametrize(
  'edit, fragments',
  [
    (('train', 'batch_size', [4]), ('config.json: train.batch_size=[4] must be an integer',)),
    (('model', 'output_stride', '16'), ('model.output_stride="16" must be an integer',)),
    (('optim', 'learning_rate', None), ('optim.learning_rate=null must be a number',)),
    (('model', 'tasks', 'semseg'), ('model.tasks="semseg" must be a list of strings',)),
    (('data', 'flip', 1), ('data.flip=1 must be true or false',)),
    ((None, 'optim', 'adam'), ('optim="adam" must be a group of keys (name, learning_rate',)),
    (('seed', 'value', 1), ('seed must be an integer, not a group of keys',)),
    (('optim', 'learning_rate', float('inf')), ('config.optim.learning_rate=inf', 'finite')),
  ],
  ids=[
    'list',
    'str-for-int',
    'null',
    'str-for-list',
    'int-for-bool',
    'group',
    'knob',
    'inf',
  ],
)
def test_a_hand_edited_config_json_names_the_key_and_its_type(tmp, data_dir, edit, fragments):
  path = tmp / 'run' / 'config.json'
  saved = json.loads(path.read_text())
  group, key, value = edit
  if group is None:
    saved[key] = value
  elif group in saved and not isinstance(saved[group], dict):
    saved[group] = {key: value}
  else:
    saved[group][key] = value
  path.write_text(json.dumps(saved))
  assert_refused(tmp, data_dir, 'mtl_jax.evaluate', 'evaluate', ('--workdir={tmp}/run',), fragments)


def test_a_key_this_version_does_not_know_is_refused_by_train_and_named_by_readers(tmp, data_dir):
  path = tmp / 'run' / 'config.json'
  saved = json.loads(path.read_text())
  saved['optim']['learnig_rate'] = 0.1  # a typo, or a knob of a newer version
  path.write_text(json.dumps(saved))
  args = (*TINY, '--workdir={tmp}/run')
  fragments = ('does not know (optim.learnig_rate): a typo, or a newer version wrote them',)
  assert_refused(tmp, data_dir, 'mtl_jax.train', 'train', args, fragments)
  scored = run('mtl_jax.evaluate', f'--workdir={tmp / "run"}', f'--output={tmp / "scores.json"}')
  assert scored.returncode == 0, scored.stderr
  assert [line for line in scored.stderr.splitlines() if 'optim.learnig_rate' in line] == [
    f'warning: {path}: ignored keys this version of mtl_jax does not know '
    '(optim.learnig_rate): a typo, or a newer version wrote them'
  ]


@pytest.mark.parametrize(
  'override, fragments',
  [
    ('--config.optim.learning_rate=inf', ('config.optim.learning_rate=inf must be a finite',)),
    ('--config.depth.mean=nan', ('config.depth.mean=nan must be a finite number',)),
    ('--config.optim.momentum=-inf', ('config.optim.momentum=-inf must be a finite number',)),
  ],
)
def test_non_finite_numbers_are_refused_before_writing(tmp, data_dir, override, fragments):
  args = (*TINY, override, '--workdir={tmp}/run')
  assert_refused(tmp, data_dir, 'mtl_jax.train', 'train', args, fragments)
