"""Brings weights in from the course's PyTorch world and writes data out in the course's layout:

  python -m mtl_jax.convert torchvision --input resnet34-b627a593.pth --output DIR [--depth 34]
  python -m mtl_jax.convert template --input epoch=63.ckpt --config configs/distilled.py
      [--config.model.second_stage=deep] --workdir runs/ported
  python -m mtl_jax.convert miniscapes (--dataset NAME | --workdir RUN) --output OUT ...

The first argument names the subcommand; the rest are its flags
(`python -m mtl_jax.convert SUBCOMMAND --help` lists them).
"""

import argparse
import inspect
import sys

from mtl_jax import cli

PROGRAM = 'convert'


def torchvision(argv: list[str]) -> None:
  """Converts torchvision ResNet weights into a directory that `--config.model.pretrained` loads.

  Written to ~/.cache/mtl_jax/pretrained/<encoder> ($MTL_JAX_PRETRAINED_DIR/<encoder> if set), it
  is what every config's default `model.pretrained='auto'` loads when a run starts.

  The input is a torchvision state dict: a `.pth` file (read with torch.load(weights_only=True),
  so torch must be installed) or a `.safetensors` file (needs only the safetensors package). The
  depth is read from the keys unless given. Prints which keys were loaded and which were ignored.
  """
  parser = _parser('torchvision', torchvision)
  parser.add_argument('--input', required=True, help='torchvision ResNet .pth or .safetensors')
  parser.add_argument(
    '--output',
    required=True,
    help='new directory for the converted encoder; ~/.cache/mtl_jax/pretrained/<encoder> (e.g. '
    "resnet34; $MTL_JAX_PRETRAINED_DIR/<encoder> if set) is where model.pretrained='auto' looks",
  )
  parser.add_argument(
    '--depth', type=int, default=None, help='18, 34, 50 or 101 (default: inferred from the keys)'
  )
  args = parser.parse_args(argv)
  with cli.command(f'{PROGRAM} torchvision'):
    from mtl_jax.models import pretrained  # pylint: disable=g-import-not-at-top  # fast --help

    report = pretrained.convert_file(args.input, args.output, depth=args.depth)
  print(report)
  print(f'wrote {args.output}; train with --config.model.pretrained={args.output}')


def template(argv: list[str]) -> None:
  """absl parses this subcommand's flags (config_flags' --config and its overrides), defined in
  mtl_jax.convert.template_flags, which only this subcommand imports."""
  from absl import flags  # pylint: disable=g-import-not-at-top

  from mtl_jax.convert import template_flags  # pylint: disable=g-import-not-at-top

  # absl's --help prints __main__'s docstring and the key flags of the module it ran
  # (sys.argv[0], this package's __main__.py): make the subcommand's flags that module's.
  for flag in flags.FLAGS.get_key_flags_for_module(template_flags):
    flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)
  sys.modules['__main__'].__doc__ = template_flags.__doc__
  sys.argv = [sys.argv[0], *argv]  # absl's app.run parses sys.argv
  cli.run(template_flags.main, template_flags.PROGRAM)


def miniscapes(argv: list[str]) -> None:
  """Writes a prepared dataset, or a trained run's predictions, in the course's miniscapes layout.

  # a dataset (ours included) as <out>/{train,val,test}/{rgb/<i>.jpg, semseg/<i>.png,
  # depth/<i>.png}
  python -m mtl_jax.convert miniscapes --dataset synthetic --output OUT [--data_dir D]
      [--height H --width W] [--split_sizes N,N,N] [--splits train,validation,test]
  # predictions of a run's best checkpoint as <out>/<split>/{semseg,depth}/<i>.png, the course's
  # submission encoding (train ids; 8-bit inverse depth, mtl_jax.data.miniscapes.encode_depth)
  python -m mtl_jax.convert miniscapes --workdir RUN --output OUT [--splits test]

  File <i> is record i of the split, so exported predictions line up with an exported dataset.
  """
  args = _miniscapes_parser().parse_args(argv)
  with cli.command(f'{PROGRAM} miniscapes'):
    from mtl_jax.deploy import course_layout  # pylint: disable=g-import-not-at-top  # fast --help

    out = cli.directory_flag('--output', args.output)
    if args.workdir is not None:  # even empty (an unset variable): never the dataset instead
      cli.directory_flag('--workdir', args.workdir)
      splits = args.splits or ','.join(course_layout.RUN_SPLITS)
      counts = course_layout.export_run(args.workdir, out, splits.split(','), args.step)
    else:
      splits = args.splits or ','.join(course_layout.DATASET_SPLITS)
      size = dict(height=args.height, width=args.width)
      if args.dataset == 'synthetic':
        size.update(
          zip(('num_train', 'num_validation', 'num_test'), map(int, args.split_sizes.split(',')))
        )
      counts = course_layout.export_named_dataset(
        args.dataset, args.data_dir, out, splits.split(','), **size
      )
  print(
    f'wrote {", ".join(f"{s} {n}" for s, n in counts.items())} samples to {out}',
    file=sys.stderr,
  )


def _miniscapes_parser() -> argparse.ArgumentParser:
  from mtl_jax.data import registry  # pylint: disable=g-import-not-at-top  # cheap; fast --help

  defaults = registry.SYNTHETIC_DEFAULTS
  parser = _parser('miniscapes', miniscapes)
  parser.add_argument('--output', required=True)
  parser.add_argument('--workdir', help="export this run's predictions (best checkpoint)")
  parser.add_argument('--step', type=int, help='with --workdir: this checkpoint instead')
  parser.add_argument('--dataset', default='synthetic', choices=sorted(registry.DATASETS))
  parser.add_argument('--data_dir', default=registry.DEFAULT_DATA_DIR)
  parser.add_argument('--height', type=int, default=defaults.height)
  parser.add_argument('--width', type=int, default=defaults.width)
  parser.add_argument(
    '--split_sizes',
    default=','.join(map(str, defaults.split_sizes)),
    help='synthetic: train,validation,test sample counts',
  )
  parser.add_argument(
    '--splits',
    default=None,
    help='comma-separated (default: all three for a dataset, test for a run)',
  )
  return parser


def _parser(name: str, subcommand) -> argparse.ArgumentParser:
  """An argparse parser named `convert <name>` whose --help shows the subcommand's docstring."""
  return argparse.ArgumentParser(
    prog=f'{PROGRAM} {name}',
    description=inspect.getdoc(subcommand),
    formatter_class=argparse.RawDescriptionHelpFormatter,
  )


# name → (what it does, in one line; its main, given the arguments after the name).
SUBCOMMANDS = {
  'torchvision': (
    'torchvision ResNet weights → an encoder directory for model.pretrained',
    torchvision,
  ),
  'template': ('a course-template PyTorch checkpoint → step 0 of an mtl_jax run', template),
  'miniscapes': ("a dataset, or a run's predictions → the course's miniscapes layout", miniscapes),
}


def usage() -> str:
  lines = [f'usage: python -m mtl_jax.{PROGRAM} SUBCOMMAND [flags]', '']
  lines += [f'  {name:<12} {summary}' for name, (summary, _) in SUBCOMMANDS.items()]
  lines += ['', f'python -m mtl_jax.{PROGRAM} SUBCOMMAND --help lists its flags.']
  return '\n'.join(lines)


def main(argv: list[str]) -> int:
  """Runs the subcommand argv[0] names with the rest of argv."""
  if argv and argv[0] in ('-h', '--help'):
    print(usage())
    return 0
  valid = ', '.join(SUBCOMMANDS)
  if not argv or argv[0] not in SUBCOMMANDS:
    what = f'unknown subcommand {argv[0]!r}' if argv else 'no subcommand given'
    print(f'{PROGRAM}: error: {what}; give one of {valid} (--help)', file=sys.stderr)
    return 2
  SUBCOMMANDS[argv[0]][1](argv[1:])
  return 0
