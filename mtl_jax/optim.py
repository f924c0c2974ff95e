"""Optimizers and learning-rate schedules, all from optax.

Weight decay is L2 added to the gradients (torch's `weight_decay` for SGD and Adam, as the course
study used) and applies to conv/dense kernels only, never to BatchNorm scales or biases. Adam's
betas are optax's defaults (0.9, 0.999), the same as torch's; the config does not expose them.
"""

import jax
import optax

OPTIMIZERS = ('sgd', 'adam', 'adamw')
SCHEDULES = ('poly', 'cosine', 'constant')
POLY_POWER = 0.9  # DeepLab's "poly" policy


def learning_rate_schedule(
  name: str, base_lr: float, total_steps: int, warmup_steps: int = 0
) -> optax.Schedule:
  if name not in SCHEDULES:
    raise ValueError(f'unknown schedule {name!r}; valid names: {", ".join(SCHEDULES)}')
  decay_steps = max(total_steps - warmup_steps, 1)
  if name == 'poly':
    main = optax.polynomial_schedule(base_lr, 0.0, POLY_POWER, decay_steps)
  elif name == 'cosine':
    main = optax.cosine_decay_schedule(base_lr, decay_steps)
  else:
    main = optax.constant_schedule(base_lr)
  if warmup_steps <= 0:
    return main
  warmup = optax.linear_schedule(0.0, base_lr, warmup_steps)
  return optax.join_schedules([warmup, main], [warmup_steps])


def _kernel_mask(params):
  """True for conv/dense kernels (rank ≥ 2), False for biases and BatchNorm parameters."""
  return jax.tree.map(lambda p: p.ndim >= 2, params)


def make_optimizer(
  name: str,
  schedule: optax.Schedule,
  *,
  momentum: float = 0.9,
  weight_decay: float = 0.0,
  grad_clip_norm: float = 0.0,
) -> optax.GradientTransformation:
  if name not in OPTIMIZERS:
    raise ValueError(f'unknown optimizer {name!r}; valid names: {", ".join(OPTIMIZERS)}')
  parts = []
  if grad_clip_norm > 0:
    parts.append(optax.clip_by_global_norm(grad_clip_norm))
  if name == 'adamw':
    parts.append(optax.adamw(schedule, weight_decay=weight_decay, mask=_kernel_mask))
    return optax.chain(*parts)
  if weight_decay > 0:
    parts.append(optax.add_decayed_weights(weight_decay, mask=_kernel_mask))
  if name == 'sgd':
    parts.append(optax.sgd(schedule, momentum=momentum))
  else:
    parts.append(optax.adam(schedule))
  return optax.chain(*parts)
