"""python -m mtl_jax.sweep --config configs/joint.py --root runs/study/ladder --seeds 0,1 \\
  --sweep sweeps/study/ladder.py                  # the study's scale; `:lite` on a laptop

The study's table 4, row by row, and the figures that introduced each row: ImageNet weights and
dilation (figure 7), ASPP with the DeepLabV3+ decoder (figure 8), the branched network (figure
9) and the distilled one (figure 10; tables 2 and 4). Each row adds one thing to the one before
and trains for that row's epochs (the presets `plain`, `pretrained`, `dilated`, `aspp`); batch
4, tasks weighted 50/50. Ten rows, each with seeds 0 and 1: twenty runs. Every row after the
first two starts from ImageNet weights ('imagenet': converted torchvision weights in the cache,
docs/models.md#imagenet-initialisation); without them those runs stop at once, saying so.

The study's grader / mIoU / SI-log: plain SGD 39.84 / 67.05 / 27.23, Adam 43.31 / 69.83 / 26.55;
+ImageNet SGD 47.85 / 72.71 / 24.86, Adam 48.84 / 73.67 / 24.83; +dilation SGD 58.18 / 76.30 /
21.11, Adam 59.36 / 80.59 / 21.23; +ASPP Adam 65.21 / 85.15 / 19.94; branched Adam 65.82 /
85.28 / 19.46; distilled SGD 59.15 / 80.37 / 21.23, Adam 64.15 / 83.83 / 19.18 (stopped at
epoch 41 of 64). Its claims: dilation and ImageNet weights help; ASPP helps semantics and hurts
depth; the branched network recovers depth; distillation improves depth further.
"""

from mtl_jax.config import presets
from mtl_jax.study.experiments import BEST_RATES

# (optimisers, the ladder's preset, architecture), in the table's order.
ROWS = (
  (('sgd', 'adam'), 'plain', 'joint'),
  (('sgd', 'adam'), 'pretrained', 'joint'),
  (('sgd', 'adam'), 'dilated', 'joint'),
  (('adam',), 'aspp', 'joint'),
  (('adam',), 'aspp', 'branched'),
  (('sgd', 'adam'), 'aspp', 'distilled'),
)


def get_sweep() -> list[dict]:
  return [
    {
      **presets.changes(preset),
      'model.arch': arch,
      'optim.name': name,
      'optim.learning_rate': BEST_RATES[name],
    }
    for names, preset, arch in ROWS
    for name in names
  ]
