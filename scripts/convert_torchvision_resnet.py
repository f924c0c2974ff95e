"""Converts torchvision ResNet weights into a directory that `--config.model.pretrained` loads.

  python scripts/convert_torchvision_resnet.py --input resnet34-b627a593.pth \
      --output ~/.cache/mtl_jax/pretrained/resnet34 [--depth 34]

Written to ~/.cache/mtl_jax/pretrained/<encoder> ($MTL_JAX_PRETRAINED_DIR/<encoder> if set), it
is what every config's default `model.pretrained='auto'` loads when a run starts.

The input is a torchvision state dict: a `.pth` file (read with torch.load(weights_only=True),
so torch must be installed) or a `.safetensors` file (needs only the safetensors package). The
depth is read from the keys unless given. Prints which keys were loaded and which were ignored.
"""

import argparse
import sys

from mtl_jax.runtime.errors import UserError

PROGRAM = 'convert_torchvision_resnet'


def parse_args(argv: list[str]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(prog=PROGRAM, description=__doc__.strip().splitlines()[0])
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
  return parser.parse_args(argv)


def main(argv: list[str]) -> int:
  args = parse_args(argv)
  # Imported after parsing so --help stays instant.
  from mtl_jax.models import pretrained  # pylint: disable=g-import-not-at-top

  try:
    report = pretrained.convert_file(args.input, args.output, depth=args.depth)
  except UserError as e:
    print(f'{PROGRAM}: error: {e}', file=sys.stderr)
    return 2
  print(report)
  print(f'wrote {args.output}; train with --config.model.pretrained={args.output}')
  return 0


if __name__ == '__main__':
  sys.exit(main(sys.argv[1:]))
