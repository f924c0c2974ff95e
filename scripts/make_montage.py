"""Renders a montage of synthetic samples: image | colour labels | depth, one sample per row.

python scripts/make_montage.py --output docs/synthetic_montage.png [--num 8] [--split train]
"""

import argparse

import matplotlib
import numpy as np
from PIL import Image

from mtl_jax.data import labels
from mtl_jax.data.registry import SYNTHETIC_DEFAULTS
from mtl_jax.data.synthetic import render_sample


def depth_to_rgb(depth: np.ndarray, max_depth: float = 100.0) -> np.ndarray:
  """Colour-maps inverse depth (near = bright); invalid pixels (0) are black."""
  valid = depth > 0
  inv = np.where(valid, np.clip(4.0 / np.maximum(depth, 1e-3), 0, 1), 0)
  rgb = (matplotlib.colormaps['magma'](inv)[..., :3] * 255).astype(np.uint8)
  rgb[~valid] = 0
  return rgb


def montage(samples, gap: int = 4) -> np.ndarray:
  """Stacks (image, palette labels, depth) rows with `gap` white pixels between tiles."""
  pal = labels.palette()
  rows = []
  for s in samples:
    tiles = [s['image'], pal[s['semseg']], depth_to_rgb(s['depth'])]
    h = tiles[0].shape[0]
    sep = np.full((h, gap, 3), 255, np.uint8)
    rows.append(np.concatenate([tiles[0], sep, tiles[1], sep, tiles[2]], axis=1))
    rows.append(np.full((gap, rows[-1].shape[1], 3), 255, np.uint8))
  return np.concatenate(rows[:-1], axis=0)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--output', required=True, help='PNG file to write')
  parser.add_argument('--num', type=int, default=8)
  parser.add_argument('--start', type=int, default=0, help='first sample index')
  parser.add_argument('--split', default='train')
  parser.add_argument('--seed', type=int, default=SYNTHETIC_DEFAULTS.seed)
  parser.add_argument('--height', type=int, default=SYNTHETIC_DEFAULTS.height)
  parser.add_argument('--width', type=int, default=SYNTHETIC_DEFAULTS.width)
  args = parser.parse_args()
  samples = [
    render_sample(i, split=args.split, seed=args.seed, height=args.height, width=args.width)
    for i in range(args.start, args.start + args.num)
  ]
  Image.fromarray(montage(samples)).save(args.output)
  print(f'wrote {args.output}')


if __name__ == '__main__':
  main()
