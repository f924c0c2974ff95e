"""python -m mtl_jax.sweep --config configs/joint.py:plain,cpu --root runs/lr --sweep sweeps/lr.py

The study's first comparison (its section 1.1.1, figures 1-3): SGD at learning rates 1e-1 to 1e-4
and Adam at 1e-2 to 1e-5, on its first network (`plain`: no ImageNet weights, output stride 32,
no ASPP) at the laptop size (`cpu`: ResNet-18, 7 epochs of 2,000 images). Eight runs; the study
found 1e-2 best for SGD and 1e-4 for Adam, and Adam better than SGD at their best rates.
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
