"""The full networks in mtl_jax and in PyTorch, side by side: same weights, same batch, same step.

  python scripts/bench_vs_torch.py [--archs joint,distilled] [--batch_size 4] [--height 128]
      [--width 256] [--rounds 5] [--steps 4] [--threads 2] [--dtypes float32] [--no_memory]

The PyTorch networks are the study's own (tests/support/seed_torch.py, the transcription of its
listings that tests/unit/models/seed_parity_test.py holds our 'seed' networks equal to); the full
presets (`configs/<arch>.py`, no preset) build exactly these. The script copies the torch weights
into ours, checks the eval forward outputs agree and that the first train step's loss is the
same, then times, alternating the frameworks round by round:

- train step: mtl_jax's real step (`Experiment.train_step`: forward, losses, backward, Adam with
  L2 on kernels, finiteness guard) against the usual torch loop (zero_grad, forward, the same
  losses, backward, Adam, the same poly schedule), torch in channels_last;
- eval forward: mtl_jax's predict step against torch under inference_mode, both ending in labels
  and metres.

GFLOP per step is torch's FLOP counter (convolutions and matmuls, the work both do) and XLA's
cost analysis (every op); achieved GFLOP/s uses torch's count for both. Peak RSS comes from one
child process per framework × arch × dtype (compile + 3 steps), so neither sees the other's
memory. bfloat16 rows use `model.dtype='bfloat16'` and torch's CPU autocast.
"""

import argparse
import dataclasses
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import torch
from bench_train_step import fake_batch

from mtl_jax import experiment, parallel, steps
from mtl_jax.config import files
from mtl_jax.depth_codec import DECODE_FLOOR_M
from mtl_jax.models import mtl, template_checkpoint

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / 'tests' / 'support'))
import seed_torch  # noqa: E402  (the study's networks in PyTorch, shared with the parity tests)

F = torch.nn.functional
FRAMEWORKS = ('mtl_jax', 'torch')
MAX_RELATIVE_L2 = 1e-4  # eval outputs; as seed_parity_test
MAX_LOSS_RELATIVE = 1e-4  # first train step's total loss
HEADER = (
  '| arch | dtype | what | framework | ms | img/s | GFLOP (torch / XLA) | GFLOP/s '
  '| peak RSS GiB (above imports) '
  '| speed vs torch |\n|---|---|---|---|---:|---:|---:|---:|---:|---:|'
)


def config_for(arch: str, args, dtype: str):
  config = files.load_config_file(REPO / 'configs' / f'{arch}.py', None)
  config.train.batch_size = config.train.eval_batch_size = args.batch_size
  config.data.crop_height, config.data.crop_width = args.height, args.width
  config.model.dtype = dtype
  return config


# --------------------------------------------------------------------------------- torch side


def torch_model(arch: str, config):
  m = config.model
  model = seed_torch.model(arch, int(m.encoder.removeprefix('resnet')), m.output_stride)
  return seed_torch.randomize(model, seed=0).to(memory_format=torch.channels_last)


def torch_image(uint8: np.ndarray) -> torch.Tensor:
  """NHWC uint8 → normalised NCHW float in channels_last memory (a permuted NHWC view)."""
  mean = torch.tensor(mtl.IMAGENET_MEAN).view(1, 3, 1, 1)
  std = torch.tensor(mtl.IMAGENET_STD).view(1, 3, 1, 1)
  x = torch.from_numpy(uint8).permute(0, 3, 1, 2).float() / 255.0
  return ((x - mean) / std).contiguous(memory_format=torch.channels_last)


def _stages(outputs) -> list:
  return outputs if isinstance(outputs, list) else [outputs]


def torch_loss(outputs, semseg, depth, spec: steps.TaskSpec) -> torch.Tensor:
  """steps.task_losses in torch: CE over labelled pixels, L1 on codec units over depth > 0, each
  averaged over the stages (the distilled model's two)."""
  valid = (depth > 0).float()
  target = (depth - spec.codec.mean) / spec.codec.std
  per_task = {
    'semseg': [
      F.cross_entropy(s, semseg, ignore_index=spec.ignore_label) for s in _stages(outputs['semseg'])
    ],
    'depth': [
      ((d[:, 0] - target).abs() * valid).sum() / valid.sum().clamp(min=1)
      for d in _stages(outputs['depth'])
    ],
  }
  weights = dict(zip(spec.tasks, spec.weights))
  return sum(weights[t] * sum(v) / len(v) for t, v in per_task.items())


def torch_optimizer(model, config, total_steps: int):
  """Adam with L2 on conv kernels only and the poly schedule, as mtl_jax.optim."""
  kernels = [p for p in model.parameters() if p.ndim >= 2]
  others = [p for p in model.parameters() if p.ndim < 2]
  optimizer = torch.optim.Adam(
    [
      {'params': kernels, 'weight_decay': config.optim.weight_decay},
      {'params': others, 'weight_decay': 0.0},
    ],
    lr=config.optim.learning_rate,
  )
  poly = lambda step: max(1 - step / total_steps, 0.0) ** 0.9
  return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, poly)


def torch_steps(arch: str, config, batch: dict, dtype: str):
  """(train_step() → loss, eval_forward() → (labels, metres)) on the given batch."""
  model = torch_model(arch, config)
  spec = experiment.task_spec(config)
  optimizer, scheduler = torch_optimizer(model, config, total_steps=1000)
  image = torch_image(batch['image'])
  semseg = torch.from_numpy(batch['semseg']).long()
  depth = torch.from_numpy(batch['depth'])
  autocast = lambda: torch.autocast('cpu', torch.bfloat16, enabled=dtype == 'bfloat16')

  def train_step():
    model.train()
    optimizer.zero_grad(set_to_none=True)
    with autocast():
      outputs = model(image)
    loss = torch_loss(
      {k: [s.float() for s in _stages(v)] for k, v in outputs.items()}, semseg, depth, spec
    )
    loss.backward()
    optimizer.step()
    scheduler.step()
    return loss.detach()

  def eval_forward():
    model.eval()
    with torch.inference_mode(), autocast():
      outputs = model(image)
    semseg_logits = _stages(outputs['semseg'])[-1].float()
    raw = _stages(outputs['depth'])[-1].float()[:, 0]
    metres = (raw * spec.codec.std + spec.codec.mean).clamp(min=DECODE_FLOOR_M)
    return semseg_logits.argmax(1), metres

  return model, train_step, eval_forward


def torch_flops(fn) -> float:
  from torch.utils.flop_counter import FlopCounterMode

  with FlopCounterMode(display=False) as counter:
    fn()
  return counter.get_total_flops()


# ----------------------------------------------------------------------------------- jax side


@dataclasses.dataclass(frozen=True)
class JaxSide:
  train_step: Callable  # () → loss
  eval_forward: Callable  # () → (labels, metres)
  flops: dict  # 'train' / 'eval' → XLA's cost analysis
  train_hlo: str  # the compiled train step, for profile_train_step.py
  kernel_shapes: frozenset  # every conv kernel's shape


def jax_steps(arch: str, config, batch: dict, torch_weights) -> JaxSide:
  """mtl_jax's train step and eval forward, each compiled once (ahead of time, so the cost
  analysis and the timed calls share one executable)."""
  exp = experiment.Experiment.from_config(config)
  model = experiment.build_model(config)
  if torch_weights is not None:
    template_checkpoint.load_template_state(model, arch, torch_weights, source='torch')
  tx = exp.optimizer(total_steps=1000).tx
  graphdef, state = steps.create_train_state(model, tx)
  placement = exp.placement()
  box = {'state': placement.state_in(parallel.replicate(state, exp.mesh))}
  device_batch = placement.batch(batch)
  image = jnp.asarray(batch['image'])
  train = exp.train_step(graphdef, tx).lower(box['state'], device_batch).compile()
  predict = exp.predict_step(graphdef).lower(box['state'], image).compile()

  def train_step():
    box['state'], m = train(box['state'], device_batch)
    return jax.block_until_ready(m['loss/total'])

  def eval_forward():
    preds = predict(placement.state_out(box['state']), image)
    return jax.block_until_ready((preds['semseg'], preds['depth']))

  kernels = frozenset(x.shape for x in jax.tree.leaves(state.params) if x.ndim == 4)
  flops = {'train': _flops(train), 'eval': _flops(predict)}
  return JaxSide(train_step, eval_forward, flops, train.as_text(), kernels)


def _flops(compiled) -> float:
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, list) else cost
  return float(cost.get('flops', float('nan')))


# -------------------------------------------------------------------------------- measurement


def check_agreement(arch: str, jax_eval, torch_eval, jax_train, torch_train) -> str:
  """Raises unless eval outputs and the first train step's loss agree; returns a summary."""
  (ours_labels, ours_depth), (their_labels, their_depth) = jax_eval(), torch_eval()
  depth_error = np.linalg.norm(np.asarray(ours_depth) - their_depth.numpy()) / np.linalg.norm(
    their_depth.numpy()
  )
  same_labels = float(np.mean(np.asarray(ours_labels) == their_labels.numpy()))
  ours_loss, their_loss = float(jax_train()), float(torch_train())
  loss_error = abs(ours_loss - their_loss) / abs(their_loss)
  summary = (
    f'{arch}: eval depth relative L2 {depth_error:.1e}, labels equal {same_labels:.4%}; '
    f'first train loss {ours_loss:.6f} vs {their_loss:.6f} (relative {loss_error:.1e})'
  )
  if depth_error > MAX_RELATIVE_L2 or same_labels < 0.999 or loss_error > MAX_LOSS_RELATIVE:
    raise SystemExit(f'the two networks disagree; {summary}')
  return summary


def seconds_per_call(fn, calls: int) -> float:
  start = time.perf_counter()
  for _ in range(calls):
    fn()
  return (time.perf_counter() - start) / calls


def alternate(pairs: dict, rounds: int, calls: int) -> dict:
  """{name: median seconds per call} over `rounds` rounds, each timing every fn in turn."""
  samples = {name: [] for name in pairs}
  for _ in range(rounds):
    for name, fn in pairs.items():
      samples[name].append(seconds_per_call(fn, calls))
  return {name: statistics.median(s) for name, s in samples.items()}


def peak_rss_gb(framework: str, arch: str, dtype: str, args) -> str:
  """'peak (above the imports)' GiB of a child process that imports both frameworks, builds one
  framework's network and runs 3 train steps and 3 eval forwards."""
  command = [sys.executable, __file__, f'--rss_of={framework}', f'--archs={arch}']
  command += [f'--dtypes={dtype}', f'--batch_size={args.batch_size}']
  command += [f'--height={args.height}', f'--width={args.width}', f'--threads={args.threads}']
  out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
  return out.strip().splitlines()[-1]


def _rss_gb(field: str) -> float:
  """VmRSS (now) or VmHWM (peak) of this process. Not getrusage's ru_maxrss: Linux carries that
  over execve, so a child would report its parent's peak."""
  status = pathlib.Path('/proc/self/status').read_text()
  return int(status.split(f'{field}:')[1].split()[0]) / 2**20  # kB → GiB


def report_own_rss(args) -> None:
  """The --rss_of child: 3 train steps and 3 eval forwards of one framework, then peak RSS."""
  imported = _rss_gb('VmRSS')  # both frameworks' libraries, before any network exists
  arch, dtype = args.archs, args.dtypes
  config = config_for(arch, args, dtype)
  batch = fake_batch(args.batch_size, args.height, args.width, config.model.num_classes)
  if args.rss_of == 'torch':
    _, train, forward = torch_steps(arch, config, batch, dtype)
  else:
    side = jax_steps(arch, config, batch, torch_weights=None)
    train, forward = side.train_step, side.eval_forward
  for _ in range(3):
    train()
    forward()
  peak = _rss_gb('VmHWM')
  print(f'{peak:.2f} ({peak - imported:.2f})')


def bench_arch(arch: str, dtype: str, args) -> list[str]:
  config = config_for(arch, args, dtype)
  batch = fake_batch(args.batch_size, args.height, args.width, config.model.num_classes)
  model, torch_train, torch_eval = torch_steps(arch, config, batch, dtype)
  weights = {k: v.numpy() for k, v in model.state_dict().items()}
  side = jax_steps(arch, config, batch, weights)
  jax_train, jax_eval, xla_flops = side.train_step, side.eval_forward, side.flops
  if dtype == 'float32':
    print(check_agreement(arch, jax_eval, torch_eval, jax_train, torch_train), flush=True)
  for fn in (jax_train, torch_train, jax_eval, torch_eval):  # warm-up
    fn()
  flops = {'train': torch_flops(torch_train), 'eval': torch_flops(torch_eval)}
  timed = alternate(
    {
      ('train', 'mtl_jax'): jax_train,
      ('train', 'torch'): torch_train,
      ('eval', 'mtl_jax'): jax_eval,
      ('eval', 'torch'): torch_eval,
    },
    args.rounds,
    args.steps,
  )
  rss = {f: peak_rss_gb(f, arch, dtype, args) if args.memory else '—' for f in FRAMEWORKS}
  lines = []
  for what in ('train', 'eval'):
    for framework in FRAMEWORKS:
      seconds = timed[(what, framework)]
      ratio = timed[(what, 'torch')] / seconds
      xla = xla_flops[what] / 1e9 if framework == 'mtl_jax' else float('nan')
      lines.append(
        f'| {arch} | {dtype} | {what} | {framework} | {seconds * 1e3:.0f} | '
        f'{args.batch_size / seconds:.1f} | {flops[what] / 1e9:.1f} / {xla:.1f} | '
        f'{flops[what] / 1e9 / seconds:.0f} | {rss[framework]} | {ratio:.2f}× |'
      )
  return lines


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--archs', default='joint,distilled')
  parser.add_argument('--dtypes', default='float32', help='float32,bfloat16')
  parser.add_argument('--batch_size', type=int, default=4)
  parser.add_argument('--height', type=int, default=128)
  parser.add_argument('--width', type=int, default=256)
  parser.add_argument('--rounds', type=int, default=5)
  parser.add_argument('--steps', type=int, default=4, help='calls timed per round')
  parser.add_argument('--threads', type=int, default=os.cpu_count(), help='torch threads')
  parser.add_argument('--no_memory', dest='memory', action='store_false')
  parser.add_argument('--rss_of', choices=('mtl_jax', 'torch'), help=argparse.SUPPRESS)
  args = parser.parse_args()
  torch.set_num_threads(args.threads)
  if args.rss_of:
    report_own_rss(args)
    return
  print(
    f'{platform.machine()}, {os.cpu_count()} cores, jax {jax.__version__} '
    f'({jax.devices()[0].platform}), torch {torch.__version__} ({torch.get_num_threads()} '
    f'threads); batch {args.batch_size}, {args.height}×{args.width}; median of {args.rounds} '
    f'alternating rounds of {args.steps} calls',
    flush=True,
  )
  lines = []
  for dtype in args.dtypes.split(','):
    for arch in args.archs.split(','):
      lines += bench_arch(arch, dtype, args)
  print(f'\n{HEADER}\n' + '\n'.join(lines))


if __name__ == '__main__':
  main()
