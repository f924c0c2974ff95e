"""Course-template PyTorch checkpoints → our 'seed' models, weight for weight.

The study's models (its Listings 1–8 on the template's `Encoder`) name their modules
`encoder.encoder.*` (torchvision's ResNet inside the template's Encoder), `aspp` / `decoder`
(joint), `aspp_segm` / `decoder_segm` / `aspp_depth` / `decoder_depth` (branched), and
`aspp_segm`, `decoder_1_segm`, `sa_segm`, `decoder_2_segm` and their `_depth` twins (distilled).
Inside them, ASPPpart is a Sequential (conv `0`, BatchNorm `1`), image pooling a Sequential
(pool `0`, conv `1`, BatchNorm `2`), decoders hold `conv_3x3`, SelfAttention `conv` and
`attention`, the deeper second decoder `conv_upscale1`, `conv_upscale2` and `conv_3x3`.

`template_key(arch, path)` spells the key each of our variables has there; the load is strict
(`convert.load_state_dict`): every key mapped, one line naming any missing or unexpected one.
A Lightning `.ckpt` (its `state_dict`: the network under the LightningModule's `net.`, any other
key, such as a `class_weights` buffer, reported as ignored) or a plain state dict both work.
Weights holding NaN or infinity are refused (`finite_weights.require_finite`).
"""

import dataclasses
import re
from collections.abc import Mapping

import numpy as np
from flax import nnx

from mtl_jax.models import convert, finite_weights
from mtl_jax.runtime.errors import UserError

TASK_SUFFIX = {'semseg': 'segm', 'depth': 'depth'}
LIGHTNING_PREFIX = 'net.'  # the template's LightningModule holds the model as `self.net`

# (our module path, the template's), applied in order to the dotted path without its leaf.
_TOP = {
  'joint': [(r'^branch\.context', 'aspp'), (r'^branch\.decoder', 'decoder')],
  'branched': [
    (r'^branches\.(\w+)\.context', r'aspp_{\1}'),
    (r'^branches\.(\w+)\.decoder', r'decoder_{\1}'),
  ],
  'distilled': [
    (r'^branches\.(\w+)\.context', r'aspp_{\1}'),
    (r'^branches\.(\w+)\.decoder', r'decoder_1_{\1}'),
    (r'^attention\.(\w+)', r'sa_{\1}'),
    (r'^second_decoders\.(\w+)', r'decoder_2_{\1}'),
  ],
}
_TOP['single_task'] = _TOP['branched']
_INSIDE = [
  (r'^encoder\.', 'encoder.encoder.'),
  (r'\.branches\.0\.', '.conv1.'),  # ASPP's 1×1 part, then one part per rate
  (r'\.branches\.([123])\.', r'.conv_r\1.'),
  (r'\.pooling\.proj\.conv$', '.im_pool.1'),
  (r'\.pooling\.proj\.bn$', '.im_pool.2'),
  (r'\.project\.', '.conv_out.'),
  (r'\.conv3x3$', '.conv_3x3'),
  (r'\.conv$', '.0'),  # a conv-BN-ReLU part: Sequential(conv, BatchNorm2d, ReLU)
  (r'\.bn$', '.1'),
  (r'^(sa_\w+)\.value$', r'\1.conv'),  # after the rule above: SelfAttention's own `conv`
  (r'^(sa_\w+)\.gate$', r'\1.attention'),
]
_LEAF = {
  'kernel': 'weight',
  'scale': 'weight',
  'bias': 'bias',
  'mean': 'running_mean',
  'var': 'running_var',
}


def template_key(arch: str, path: convert.VarPath) -> str:
  """The template's state-dict key of our variable at `path` in architecture `arch`."""
  *modules, leaf = map(str, path)
  dotted = '.'.join(modules)
  for pattern, replacement in _TOP[arch]:
    dotted = re.sub(pattern, replacement, dotted)
  dotted = re.sub(r'\{(\w+)\}', lambda m: TASK_SUFFIX[m.group(1)], dotted)
  for pattern, replacement in _INSIDE:
    dotted = re.sub(pattern, replacement, dotted)
  return f'{dotted}.{_LEAF[leaf]}'


def is_ignored(key: str) -> bool:
  """BatchNorm counters and the torchvision classifier the template's Encoder keeps unused."""
  return convert.is_bn_counter(key) or key.startswith('encoder.encoder.fc.')


def network_keys(state_dict: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], list[str]]:
  """(the network's entries, the other keys). A Lightning checkpoint holds the network under
  `net.`, beside whatever else its LightningModule registered (a `class_weights` buffer, a loss
  module): those are not the network's, so they are set aside rather than matched. A plain state
  dict (no key under `net.`) is all network."""
  if not any(k.startswith(LIGHTNING_PREFIX) for k in state_dict):
    return dict(state_dict), []
  network = {
    k.removeprefix(LIGHTNING_PREFIX): v
    for k, v in state_dict.items()
    if k.startswith(LIGHTNING_PREFIX)
  }
  return network, [k for k in state_dict if not k.startswith(LIGHTNING_PREFIX)]


def load_template_state(
  model: nnx.Module, arch: str, state_dict: Mapping[str, np.ndarray], *, source: str
) -> convert.LoadReport:
  """Loads a template state dict (numpy, torch layout) into our 'seed' model in place; the
  report's ignored keys include a Lightning checkpoint's entries outside `net.`. Refuses weights
  holding NaN or infinity, which would predict garbage without an error."""
  if arch not in _TOP:
    raise UserError(f'{source}: no course-template layout for architecture {arch!r}')
  network, outside = network_keys(state_dict)
  finite_weights.require_finite({k: v for k, v in network.items() if not is_ignored(k)}, source)
  report = convert.load_state_dict(
    model,
    network,
    source=source,
    ignorable=is_ignored,
    key=lambda path: template_key(arch, path),
  )
  return dataclasses.replace(report, unexpected=(*outside, *report.unexpected))
