"""python -m mtl_jax.sweep --config configs/joint.py:plain --root runs/study/learning_rates \\
  --sweep sweeps/study/learning_rates.py          # the study's scale; `:plain,lite` on a laptop

The study's figures 1-3 (its section 1.1.1): SGD at learning rates 1e-1 to 1e-4 and Adam at 1e-2
to 1e-5 on its first network (`plain`: no ImageNet weights, output stride 32, no ASPP; batch 4,
16 epochs, tasks weighted 50/50). Eight runs. The study found 1e-2 best for SGD and 1e-4 for
Adam, and Adam better than SGD at their best rates (grader 43.31 against 39.84, its table 4's
first two rows: mIoU 69.83 / 67.05, SI-log 26.55 / 27.23).
"""

LEARNING_RATES = {
  'sgd': (1e-1, 1e-2, 1e-3, 1e-4),
  'adam': (1e-2, 1e-3, 1e-4, 1e-5),
}


def get_sweep() -> list[dict]:
  return [
    {'optim.name': name, 'optim.learning_rate': rate}
    for name, rates in LEARNING_RATES.items()
    for rate in rates
  ]
