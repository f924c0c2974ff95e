"""python -m mtl_jax.sweep --config configs/joint.py:plain --root runs/study/batch_size \\
  --sweep sweeps/study/batch_size.py              # the study's scale; `:plain,lite` on a laptop

The study's figure 4 and table 1 (its section 1.1.2): batch sizes 2, 4 and 8 with the epochs in
proportion (8, 16 and 32: the same number of steps), SGD and Adam, on its first network. Six runs.
The study does not give the learning rates; these are its best ones (section 1.1.1). It found
Adam at batch 8 best (grader 46.3; its SGD run at batch 8 stopped at epoch 20), and that a larger
batch costs less time per epoch but, with the epochs in proportion, more in total: SGD 3h11m,
4h28m, 4h49m (at epoch 20); Adam 3h31m, 4h31m, 7h55m.
"""

from mtl_jax.study.experiments import BEST_RATES

SCHEDULES = ((2, 8), (4, 16), (8, 32))  # (batch size, epochs)


def get_sweep() -> list[dict]:
  return [
    {
      'optim.name': name,
      'optim.learning_rate': rate,
      'train.batch_size': batch,
      'train.num_epochs': epochs,
    }
    for name, rate in BEST_RATES.items()
    for batch, epochs in SCHEDULES
  ]
