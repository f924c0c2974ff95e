"""Which sweep file reproduces which of the study's figures and tables, on which config, with
which seeds: the one list `python -m mtl_jax.study` runs and docs/study.md is generated from.

Every sweep file under sweeps/study/ reproduces its experiment's settings at the full scale (the
config file with the presets named here); `lite` appends the `lite` preset, which keeps the
study's schedules and shortens them in proportion (mtl_jax/config/presets.py).
"""

import dataclasses
from pathlib import Path

SWEEP_DIR = 'sweeps/study'
SCALES = ('full', 'lite')

# The study's best learning rate of each optimiser (its section 1.1.1, figures 1-3). It names no
# rate for the experiments that follow; these are the natural reading, and its table 4's Adam
# rows are at 1e-4.
BEST_RATES = {'sgd': 1e-2, 'adam': 1e-4}


@dataclasses.dataclass(frozen=True)
class Experiment:
  name: str  # the sweep file's stem, and the folder of its runs under the study's root
  config: str  # config file and presets at the full scale
  shows: str  # the study's figures and tables it reproduces
  seeds: tuple[int, ...] = ()  # () = the config's seed only

  @property
  def sweep_file(self) -> str:
    return f'{SWEEP_DIR}/{self.name}.py'

  def config_ref(self, scale: str) -> str:
    """The --config value at `scale`: the full one, or with the scale's preset appended."""
    if scale not in SCALES:
      raise ValueError(f'unknown scale {scale!r}; valid: {", ".join(SCALES)}')
    if scale == 'full':
      return self.config
    return f'{self.config}{"," if ":" in self.config else ":"}{scale}'

  def plan(self, scale: str, root: str):
    """Its sweep's plan (mtl_jax.sweep.planning.Sweep): every run's overrides and command, each
    run's config validated. Paths are relative to the repository's root, like the sweep's."""
    from mtl_jax.sweep import planning  # pylint: disable=g-import-not-at-top  # JAX-free import

    seeds = [str(seed) for seed in self.seeds]
    combos = planning.combinations(planning.load_sweep_file(self.sweep_file), [], seeds)
    return planning.plan(self.config_ref(scale), [], combos, Path(root) / self.name)

  def sweep_args(self, scale: str, root: str) -> list[str]:
    """The `python -m mtl_jax.sweep` flags that run this experiment under root/<name>."""
    args = ['--config', self.config_ref(scale), '--root', f'{root}/{self.name}']
    args += ['--sweep', self.sweep_file]
    return args + (['--seeds', ','.join(map(str, self.seeds))] if self.seeds else [])


EXPERIMENTS = (
  Experiment('learning_rates', 'configs/joint.py:plain', 'Figures 1-3'),
  Experiment('batch_size', 'configs/joint.py:plain', 'Figure 4, Table 1'),
  Experiment('task_weights', 'configs/joint.py:plain', 'Figures 5-6'),
  Experiment('ladder', 'configs/joint.py', 'Figures 7-10, Tables 2 and 4', seeds=(0, 1)),
  Experiment('second_stage', 'configs/distilled.py', 'Figure 11, Table 3'),
)
