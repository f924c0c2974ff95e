"""python -m mtl_jax.sweep --config configs/distilled.py --root runs/study/second_stage \\
  --sweep sweeps/study/second_stage.py            # the study's scale; `:lite` on a laptop

The study's figure 11 and table 3 (its task 3): the distilled network's second-stage decoder, one
3×3 conv (`simple`, the course template's) against three with two 2× upsamplings (`deep`, its
listing 8), with SGD and Adam, at batch 2 for 32 epochs, from ImageNet weights with dilation and
ASPP (the `aspp` preset). Four runs. The study found that the deeper decoder helps SGD but not
Adam, and costs SGD 75% more time (22h06m against 38h34m) and Adam 20 minutes (15h34m, 15h54m).
It gives no learning rates; these are its best ones.
"""

from mtl_jax.config import presets
from mtl_jax.study.experiments import BEST_RATES

DECODERS = ('simple', 'deep')


def get_sweep() -> list[dict]:
  return [
    {
      **presets.changes('aspp'),
      'model.second_stage': decoder,
      'optim.name': name,
      'optim.learning_rate': rate,
      'train.batch_size': 2,
      'train.num_epochs': 32,
    }
    for name, rate in BEST_RATES.items()
    for decoder in DECODERS
  ]
