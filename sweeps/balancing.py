"""python -m mtl_jax.sweep --config configs/branched.py:cpu,deeplabv3plus --root runs/balancing \\
  --sweep sweeps/balancing.py

Every task-balancing method (`loss.balancing`, docs/models.md#task-balancing) on the branched
model at the laptop size (`cpu`: ResNet-18, 96×192 crops of synthetic street scenes) with the
DeepLabV3+ paper's heads and Adam at 1e-3 (`cpu` before it became the study's networks), plus the
two single-task baselines the report's Δm column needs. The branched model shares its encoder
only, so the gradient methods combine the encoder's per-task gradients and each task's branch
keeps its own. The report's table (mIoU, SI-log, Δm, time per epoch) compares them;
`scripts/bench_balancing.py` times the step of each method alone. `fixed` also trains with seeds
1 and 2: the ± of its row is how far one seed's scores move, the scale against which the
methods' differences read. The committed results: docs/balancing.md.

Not `mean` and `sum`, the aggregation API's plain averages: they give every parameter its tasks'
summed or averaged gradient, which under Adam's per-parameter scaling is all but `fixed`'s equal
weights, so they would spend 13 minutes to repeat it.
"""

from mtl_jax.balancing.training import METHODS
from mtl_jax.data.sample import TASKS

PLAIN_AVERAGES = ('mean', 'sum')

# Three epochs of 640 images (240 steps of 8), not one of the split's 2,000: DWA's weights are
# ones until two epochs have ended and STCH warms up for one, so over a single epoch both would
# be `fixed`. About 3.5 minutes for a fixed-weight run and 6 for a gradient method on the
# reference machine (0.55 and ~1.0 s per step, docs/performance.md, 2026-12-07, plus three
# evaluations), so the whole comparison (21 runs) takes under two hours on a 2-core laptop.
# Adam at 1e-3: the `cpu` preset's rate when the committed comparison trained.
SCHEDULE = {'data.num_train': 640, 'train.num_epochs': 3, 'optim.learning_rate': 1e-3}


def get_sweep() -> list[dict]:
  methods = [
    {'loss.balancing': method, **SCHEDULE} for method in METHODS if method not in PLAIN_AVERAGES
  ]
  baselines = [{'model.arch': 'single_task', 'model.tasks': (task,), **SCHEDULE} for task in TASKS]
  spread = [{'loss.balancing': 'fixed', **SCHEDULE, 'seed': seed} for seed in (1, 2)]
  return methods + baselines + spread
