"""python -m mtl_jax.sweep --config configs/branched.py:cpu --root runs/balancing \\
  --sweep sweeps/balancing.py

Every task-balancing method (`loss.balancing`, docs/models.md#task-balancing) on the branched
model at the laptop size (`cpu`: ResNet-18, 96×192 crops of the synthetic 2,000-image train
split) for EPOCHS epochs, plus the two single-task baselines the report's Δm column needs. The
branched model shares its encoder only, so the gradient methods combine the encoder's per-task
gradients and each task's branch keeps its own. The report's table (mIoU, SI-log, Δm, time per
epoch) compares them; `scripts/bench_balancing.py` times the step of each method alone.
"""

from mtl_jax.balancing.training import METHODS
from mtl_jax.data.sample import TASKS

# Two epochs = 500 steps: about 5 minutes for a fixed-weight run and 9 for a gradient method on
# the reference machine (0.55 and ~1.0 s per step, docs/performance.md, 2026-12-07).
EPOCHS = 2


def get_sweep() -> list[dict]:
  methods = [{'loss.balancing': method, 'train.num_epochs': EPOCHS} for method in METHODS]
  baselines = [
    {'model.arch': 'single_task', 'model.tasks': (task,), 'train.num_epochs': EPOCHS}
    for task in TASKS
  ]
  return methods + baselines
