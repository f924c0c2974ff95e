"""Where a train step's time goes, per kind of op, in mtl_jax and in PyTorch.

  python scripts/profile_train_step.py [--arch joint] [--batch_size 4] [--height 128]
      [--width 256] [--steps 3] [--top 12]

mtl_jax: a jax.profiler trace of the real train step (the full preset, as bench_vs_torch.py
times it); every executed XLA op (a fusion or a library call) is named in the trace, and its
kind is read from the compiled HLO: convolution forward, backward to the input (its
metadata says `transpose(jvp(...))`) or to the filter (XLA writes it as a convolution whose
output has a kernel's shape), dot (the bilinear resizes), transpose/copy (layout changes: kernels
for the input-gradient convolutions, activations for the filter-gradient ones), reductions
(BatchNorm statistics, losses, norms), reduce-window (the max-pool's gradient, is-finite checks)
and the elementwise rest (BatchNorm normalisation, ReLU, Adam). PyTorch: torch.profiler's self
CPU time per aten op for the same network and step. The profilers add overhead, so read shares,
not absolute times (bench_vs_torch.py times without them).
"""

import argparse
import collections
import gzip
import json
import pathlib
import re
import sys
import tempfile

import jax
import torch
from bench_train_step import fake_batch
from bench_vs_torch import config_for, jax_steps, torch_steps

_INSTRUCTION = re.compile(r'\s*(?:ROOT )?%?([\w.\-]+) = (\S+) ([\w\-]+)\(')


def hlo_instructions(hlo: str) -> dict[str, tuple[str, str, str, str]]:
  """name → (opcode, shape, metadata op_name, called computation) for every instruction."""
  found = {}
  for line in hlo.splitlines():
    m = _INSTRUCTION.match(line)
    if m:
      meta = re.search(r'op_name="([^"]*)"', line)
      calls = re.search(r'calls=%?([\w.\-]+)', line)
      found[m.group(1)] = (
        m.group(3),
        m.group(2),
        meta.group(1) if meta else '',
        calls.group(1) if calls else '',
      )
  return found


def computation_ops(hlo: str) -> dict[str, set[str]]:
  """computation name → opcodes inside it (one level of calls deep)."""
  bodies, current = collections.defaultdict(list), None
  for line in hlo.splitlines():
    header = re.match(r'^(?:ENTRY )?%?([\w.\-]+) .*\{\s*$', line)
    if header:
      current = header.group(1)
    elif current and (m := _INSTRUCTION.match(line)):
      bodies[current].append((m.group(3), re.search(r'calls=%?([\w.\-]+)', line)))
  ops = {}
  for name, body in bodies.items():
    ops[name] = {op for op, _ in body} | {
      inner for _, call in body if call for inner, _ in bodies.get(call.group(1), ())
    }
  return ops


def kind_of(opcode: str, shape: str, meta: str, inner: set[str], filter_grads: set[str]) -> str:
  if 'convolution' in inner:
    if shape.split('{')[0].removeprefix('f32') in filter_grads:
      return 'conv backward (filter)'
    return 'conv backward (input)' if 'transpose(' in meta else 'conv forward'
  if 'dot' in inner:
    return 'dot (resize)'
  if inner & {'select-and-scatter', 'reduce-window'}:
    return 'reduce-window (max-pool, is-finite)'
  if opcode == 'copy' or inner & {'transpose', 'copy'} and not inner & {'add', 'multiply'}:
    return 'transpose / copy'
  if 'reduce' in inner:
    return 'reduce (BN statistics, losses, norms)'
  return 'elementwise (BN, ReLU, Adam, ...)'


def jax_profile(arch: str, args) -> collections.Counter:
  """kind → milliseconds per step, from a trace of args.steps steps."""
  config = config_for(arch, args, 'float32')
  batch = fake_batch(args.batch_size, args.height, args.width, config.model.num_classes)
  side = jax_steps(arch, config, batch, torch_weights=None)
  train = side.train_step
  for _ in range(2):
    train()
  instructions = hlo_instructions(side.train_hlo)
  inner_ops = computation_ops(side.train_hlo)
  # XLA writes a filter gradient as a convolution whose output is the kernel, [O, KH, KW, I]
  # or [I, KH, KW, O].
  filter_grads = {f'[{o},{kh},{kw},{i}]' for kh, kw, i, o in side.kernel_shapes}
  filter_grads |= {f'[{i},{kh},{kw},{o}]' for kh, kw, i, o in side.kernel_shapes}
  with tempfile.TemporaryDirectory() as trace_dir:
    jax.profiler.start_trace(trace_dir, create_perfetto_trace=True)
    for _ in range(args.steps):
      train()
    jax.profiler.stop_trace()
    (trace,) = pathlib.Path(trace_dir).rglob('*.trace.json.gz')
    events = json.load(gzip.open(trace))
  events = events['traceEvents'] if isinstance(events, dict) else events
  per_kind, per_op = collections.Counter(), collections.Counter()
  for e in events:
    name = e.get('name')
    if e.get('ph') != 'X' or name not in instructions:
      continue
    opcode, shape, meta, calls = instructions[name]
    kind = kind_of(opcode, shape, meta, inner_ops.get(calls, {opcode}), filter_grads)
    ms = e.get('dur', 0) / 1e3 / args.steps
    per_kind[kind] += ms
    per_op[f'{kind}: {name} {shape}'] += ms
  return per_kind, per_op


def torch_profile(arch: str, args) -> collections.Counter:
  """aten op → self CPU milliseconds per step."""
  config = config_for(arch, args, 'float32')
  batch = fake_batch(args.batch_size, args.height, args.width, config.model.num_classes)
  _, train, _ = torch_steps(arch, config, batch, 'float32')
  for _ in range(2):
    train()
  with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
    for _ in range(args.steps):
      train()
  return collections.Counter(
    {e.key: e.self_cpu_time_total / 1e3 / args.steps for e in prof.key_averages()}
  )


def table(title: str, counter: collections.Counter, top: int) -> str:
  total = sum(counter.values())
  rows = [f'\n{title} (profiled total {total:.0f} ms per step)\n', '| op | ms/step | share |']
  rows.append('|---|---:|---:|')
  for name, ms in counter.most_common(top):
    rows.append(f'| {name} | {ms:.1f} | {ms / total:.0%} |')
  return '\n'.join(rows)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--arch', default='joint')
  parser.add_argument('--batch_size', type=int, default=4)
  parser.add_argument('--height', type=int, default=128)
  parser.add_argument('--width', type=int, default=256)
  parser.add_argument('--steps', type=int, default=3)
  parser.add_argument('--top', type=int, default=12)
  args = parser.parse_args()
  per_kind, per_op = jax_profile(args.arch, args)
  print(table(f'mtl_jax {args.arch}, by kind', per_kind, args.top))
  print(table(f'mtl_jax {args.arch}, largest ops', per_op, args.top))
  theirs = torch_profile(args.arch, args)
  print(table(f'PyTorch {args.arch}, by aten op (self time)', theirs, args.top))
  sys.stdout.flush()


if __name__ == '__main__':
  main()
