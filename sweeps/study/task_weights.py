"""python -m mtl_jax.sweep --config configs/joint.py:plain --root runs/study/task_weights \\
  --sweep sweeps/study/task_weights.py            # the study's scale; `:plain,lite` on a laptop

The study's figures 5 (SGD) and 6 (Adam), its section 1.1.3: the semseg / depth loss weights
30/70, 40/60, 50/50, 60/40 and 70/30 on its first network (batch 4, 16 epochs). Ten runs. The
study's text lists "30/70" twice; the fifth pair is read as 70/30, the mirror of the others. It
gives no learning rates; these are its best ones. It found that each task scores better when
weighted up, at the other's cost, and kept 50/50 as the best compromise.
"""

from mtl_jax.study.experiments import BEST_RATES

SEMSEG_WEIGHTS = (0.3, 0.4, 0.5, 0.6, 0.7)  # depth gets the rest


def get_sweep() -> list[dict]:
  return [
    {
      'optim.name': name,
      'optim.learning_rate': rate,
      'loss.semseg_weight': weight,
      'loss.depth_weight': round(1 - weight, 2),
    }
    for name, rate in BEST_RATES.items()
    for weight in SEMSEG_WEIGHTS
  ]
