"""A sweep's plan (pure): product order, names, seeds, sweep files, and bad input as one
`UserError` (the command line's own handling is tests/scenarios/sweep_test.py)."""

import re

import pytest
from conftest import REPO

from mtl_jax.runtime.errors import UserError
from mtl_jax.sweep import planning

TINY = 'configs/joint.py:tiny'


def _names(grid=(), seeds=(), sweep=({},), fixed=()) -> list[str]:
  combos = planning.combinations(list(sweep), planning.parse_grid(list(grid)), list(seeds))
  return [r.name for r in planning.plan(TINY, list(fixed), combos, REPO / 'runs').runs]


def test_grid_product_order_seeds_outermost():
  names = _names(['optim.name=sgd,adam', 'optim.learning_rate=1e-2,1e-3'], ['0', '1'])
  assert names == [
    'optim.name=sgd,optim.learning_rate=1e-2,seed=0',
    'optim.name=sgd,optim.learning_rate=1e-3,seed=0',
    'optim.name=adam,optim.learning_rate=1e-2,seed=0',
    'optim.name=adam,optim.learning_rate=1e-3,seed=0',
    'optim.name=sgd,optim.learning_rate=1e-2,seed=1',
    'optim.name=sgd,optim.learning_rate=1e-3,seed=1',
    'optim.name=adam,optim.learning_rate=1e-2,seed=1',
    'optim.name=adam,optim.learning_rate=1e-3,seed=1',
  ]


def test_names_are_canonical_stable_and_safe():
  # The same value however it is written; a grown grid keeps the names of the runs done.
  assert _names(['optim.learning_rate=0.0001']) == _names(['optim.learning_rate=1e-4'])
  assert _names(sweep=[{'optim.learning_rate': 1e-4}]) == ['optim.learning_rate=1e-4,seed=0']
  assert set(_names(['train.num_epochs=3'])) < set(_names(['train.num_epochs=3,5']))
  # Booleans as absl reads them; seed last, from the config unless swept.
  assert _names(['data.flip=False,1']) == ['data.flip=false,seed=0', 'data.flip=true,seed=0']
  assert _names(['seed=4', 'optim.name=sgd']) == ['optim.name=sgd,seed=4']
  assert _names(['optim.name=sgd'], fixed=['--config.seed=7']) == ['optim.name=sgd,seed=7']
  # Slashes and spaces never reach the filesystem; a long name ends with a hash of the full one.
  assert _names(['data.data_dir=/tmp/my data']) == ['data.data_dir=_tmp_my_data,seed=0']
  long_a, long_b = _names([f'data.data_dir={"x" * 300}a,{"x" * 300}b'])
  assert len(long_a) == 200 and long_a[:180] == long_b[:180] and long_a != long_b
  with pytest.raises(UserError, match=r'are the same run \(optim.learning_rate=1e-3,seed=0\)'):
    _names(['optim.learning_rate=1e-3,0.001'])


def test_sweep_files(tmp_path):
  path = tmp_path / 'mine.py'
  path.write_text(
    'def get_sweep():\n'
    "  return [{'config.optim.name': 'sgd', 'optim.momentum': 0.8}, {'optim.name': 'adam'}]\n"
  )
  sweep = planning.load_sweep_file(path)
  assert sweep == [{'optim.name': 'sgd', 'optim.momentum': 0.8}, {'optim.name': 'adam'}]
  assert _names(['train.num_epochs=1,2'], sweep=sweep) == [
    'optim.name=sgd,optim.momentum=0.8,train.num_epochs=1,seed=0',
    'optim.name=sgd,optim.momentum=0.8,train.num_epochs=2,seed=0',
    'optim.name=adam,train.num_epochs=1,seed=0',
    'optim.name=adam,train.num_epochs=2,seed=0',
  ]
  # The shipped example: the study's optimiser × learning-rate comparison.
  study = _names(sweep=planning.load_sweep_file(REPO / 'sweeps' / 'study' / 'learning_rates.py'))
  assert study == [
    f'optim.name={name},optim.learning_rate={rate},seed=0'
    for name, rates in (
      ('sgd', ('0.1', '1e-2', '1e-3', '1e-4')),
      ('adam', ('1e-2', '1e-3', '1e-4', '1e-5')),
    )
    for rate in rates
  ]


WEIGHTS = 'loss.semseg_weight,loss.depth_weight'


def test_task_weights_are_swept_in_pairs():
  combos = planning.combinations([{}], planning.parse_grid([f'{WEIGHTS}=0.3:0.7,0.6:0.4']), [])
  runs = planning.plan(TINY, [], combos, REPO / 'runs').runs
  assert [r.name for r in runs] == [
    'loss.semseg_weight=0.3,loss.depth_weight=0.7,seed=0',
    'loss.semseg_weight=0.6,loss.depth_weight=0.4,seed=0',
  ]
  assert runs[0].args == [
    '--config.loss.semseg_weight=0.3',
    '--config.loss.depth_weight=0.7',
    '--config.seed=0',
  ]
  # A paired axis is one axis of the product.
  assert _names([f'{WEIGHTS}=0.3:0.7,0.6:0.4', 'optim.name=sgd,adam'])[1:3] == [
    'loss.semseg_weight=0.3,loss.depth_weight=0.7,optim.name=adam,seed=0',
    'loss.semseg_weight=0.6,loss.depth_weight=0.4,optim.name=sgd,seed=0',
  ]


def test_one_task_weight_swept_alone_is_refused():
  """One weight alone would keep the other at the config's 0.5 (30/50, not the study's 30/70):
  refused, from a grid or a sweep file, unless --config fixes the other for every run."""
  alone = 'loss.semseg_weight is swept without loss.depth_weight, which would keep the config'
  with pytest.raises(UserError, match=alone) as error:
    _names(['loss.semseg_weight=0.3,0.4'])
  assert f'--grid {WEIGHTS}=0.3:0.7,...' in str(error.value)
  with pytest.raises(UserError, match=alone):
    _names(sweep=[{'loss.semseg_weight': 0.3}])
  assert _names(['loss.semseg_weight=0.3'], fixed=['--config.loss.depth_weight=0.7']) == [
    'loss.semseg_weight=0.3,seed=0'
  ]
  # Both swept as separate axes is a full grid over the two: allowed.
  assert len(_names(['loss.semseg_weight=0.3,0.4', 'loss.depth_weight=0.6,0.7'])) == 4


def test_bad_paired_grids_are_one_line():
  for spec, message in [
    (f'{WEIGHTS}=0.3,0.4', "one value per key (2) joined by ':', like v:v; '0.3' does not"),
    (f'{WEIGHTS}=0.3:0.7:0.1', "'0.3:0.7:0.1' does not"),
    (f'{WEIGHTS}=0.3:', "'0.3:' does not"),
    ('loss.semseg_weight,loss.semseg_weight=1:2', 'loss.semseg_weight is swept by another'),
  ]:
    with pytest.raises(UserError, match=re.escape(message)):
      planning.parse_grid([spec])


def test_more_bad_input(tmp_path):
  for spec, message in [
    ('optim.name=', '--grid optim.name=: empty value'),
    ('optim.name=sgd,', '--grid optim.name=sgd,: empty value'),
    ('optim', '--grid optim: expected key=value1'),
  ]:
    with pytest.raises(UserError, match=re.escape(message)):
      planning.parse_grid([spec])
  with pytest.raises(UserError, match='optim.name is swept by another --grid already'):
    planning.parse_grid(['optim.name=sgd', 'config.optim.name=adam'])
  with pytest.raises(UserError, match='optim.name is both swept and set by --config'):
    _names(['optim.name=sgd'], fixed=['--config.optim.name=adam'])
  with pytest.raises(UserError, match='seed is swept by --grid or the sweep file and by --seeds'):
    _names(['seed=1,2'], seeds=['0'])
  with pytest.raises(UserError, match='optim.name is set by both the sweep file and --grid'):
    _names(['optim.name=sgd'], sweep=[{'optim.name': 'adam'}])
  with pytest.raises(UserError, match="cannot read sweep file '.*none.py'"):
    planning.load_sweep_file(tmp_path / 'none.py')
  for text, message in [
    ("def get_sweep():\n  return [{'optim.rate': 1}]\n", "'optim.rate' is not a config key"),
    ('def get_sweep():\n  return []\n', 'must return a non-empty list of dicts'),
    ("def get_sweep():\n  return ['optim.name=sgd']\n", "returned 'optim.name=sgd', not a dict"),
    ('def get_sweep(:\n', 'bad.py:1: '),
  ]:
    (tmp_path / 'bad.py').write_text(text)
    with pytest.raises(UserError, match=re.escape(message)):
      planning.load_sweep_file(tmp_path / 'bad.py')


@pytest.mark.parametrize(
  'text, message',
  [
    ('import nonexistent_module\n', "bad.py:1: ModuleNotFoundError: No module named 'nonexistent"),
    ("x = 1\nraise RuntimeError('no\\nmore')\n", 'bad.py:2: RuntimeError: no ... (raised while'),
    ('def get_sweep(a, b=1):\n  return [{}]\n', 'must take no arguments; it requires a'),
    ('def get_sweep():\n  return [{}][1]\n', 'bad.py:2: IndexError: list index out of range'),
    ("def get_sweep():\n  return {'optim.name': 'sgd'}\n", "list of dicts, not {'optim.name'"),
    ('def get_sweep():\n  return (d for d in [{}])\n', 'non-empty list of dicts, not <generator'),
    ("get_sweep = lambda: [{'seed': 1}, {'optim.learning_rate': float('nan')}]\n", 'entry 2: '),
    (
      "def get_sweep():\n  return [{'optim.learning_rate': float('-inf')}]\n",
      'get_sweep() entry 1: optim.learning_rate=-inf must be a finite number',
    ),
    (
      "def get_sweep():\n  return [{'model.aspp_rates': (6, float('inf'))}]\n",
      'model.aspp_rates=(6, inf) must be a finite number',
    ),
    ("def get_sweep():\n  return [{'optim.momentum': None}]\n", 'optim.momentum=None must be a'),
    ("def get_sweep():\n  return [{'optim.name': {'a': 1}}]\n", "{'a': 1} must be a string"),
    ("def get_sweep():\n  return [{'model.tasks': ('depth', 2)}]\n", 'must be a list of strings'),
  ],
)
def test_sweep_files_that_fail_are_one_line_naming_the_file(tmp_path, text, message):
  (tmp_path / 'bad.py').write_text(text)
  with pytest.raises(UserError, match=re.escape(message)) as refused:
    planning.load_sweep_file(tmp_path / 'bad.py')
  assert '\n' not in str(refused.value) and str(tmp_path / 'bad.py') in str(refused.value)


def test_text_values_of_a_sweep_file_are_parsed_as_on_the_command_line(tmp_path):
  (tmp_path / 'text.py').write_text("def get_sweep(*args):\n  return [{'optim.momentum': '0.8'}]\n")
  assert _names(sweep=planning.load_sweep_file(tmp_path / 'text.py')) == [
    'optim.momentum=0.8,seed=0'
  ]


def test_non_finite_values_are_written_for_validation_to_refuse():
  assert [planning.value_text(v) for v in (float('nan'), float('inf'), -float('inf'))] == [
    'nan',
    'inf',
    '-inf',
  ]
  with pytest.raises(UserError, match=re.escape('config.optim.momentum=inf must be a finite')):
    _names(['optim.name=sgd'], fixed=[f'--config.optim.momentum={float("inf")}'])


def test_the_slurm_script_is_never_written_over_another_file(tmp_path):
  script = tmp_path / 'jobs' / 'sweep.sbatch'
  planning.write_slurm_script(script, 'one\n')
  planning.write_slurm_script(script, 'one\n')  # the same command again
  script.write_text('one\n#SBATCH --partition=mine\n')  # the user's edit
  with pytest.raises(UserError) as refused:
    planning.write_slurm_script(script, 'one\n')
  assert str(refused.value) == (
    f'--slurm {script} exists and holds another script (one you edited, or another '
    "sweep's); give another file name, or delete it to write this sweep's"
  )
  assert script.read_text() == 'one\n#SBATCH --partition=mine\n'
  assert [p.name for p in script.parent.iterdir()] == ['sweep.sbatch']  # no temporary left
