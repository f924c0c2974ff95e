"""Colour-only baseline on the synthetic data: nearest per-class mean RGB.

  python scripts/color_baseline.py [--num_train 300] [--num_val 250]

Fits the mean RGB of every class over the train samples, labels each validation pixel with the
class whose mean is nearest, and prints the mIoU. The synthetic scenes are meant to defeat this
(colour must not give the class), so it should stay well below 35.
"""

import argparse

import numpy as np

from mtl_jax import metrics
from mtl_jax.data import labels
from mtl_jax.data.registry import SYNTHETIC_DEFAULTS
from mtl_jax.data.synthetic import render_sample


def fit_class_means(samples, num_classes: int = labels.NUM_CLASSES) -> np.ndarray:
  """[C, 3] mean RGB per class over labelled pixels; classes never seen get +inf (never chosen)."""
  sums = np.zeros((num_classes, 3))
  counts = np.zeros(num_classes)
  for s in samples:
    lab = s['semseg'].reshape(-1)
    keep = lab < num_classes
    rgb = s['image'].reshape(-1, 3)[keep].astype(np.float64)
    for ch in range(3):
      sums[:, ch] += np.bincount(lab[keep], rgb[:, ch], minlength=num_classes)
    counts += np.bincount(lab[keep], minlength=num_classes)
  with np.errstate(invalid='ignore', divide='ignore'):
    return np.where(counts[:, None] > 0, sums / counts[:, None], np.inf)


def predict(image: np.ndarray, means: np.ndarray) -> np.ndarray:
  """[H, W] class of the nearest mean to each pixel's RGB."""
  rgb = image.reshape(-1, 1, 3).astype(np.float32)
  dist = ((rgb - means[None].astype(np.float32)) ** 2).sum(-1)
  return dist.argmin(-1).reshape(image.shape[:2]).astype(np.uint8)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--num_train', type=int, default=300)
  parser.add_argument('--num_val', type=int, default=250)
  parser.add_argument('--seed', type=int, default=SYNTHETIC_DEFAULTS.seed)
  parser.add_argument('--height', type=int, default=SYNTHETIC_DEFAULTS.height)
  parser.add_argument('--width', type=int, default=SYNTHETIC_DEFAULTS.width)
  args = parser.parse_args()
  size = dict(seed=args.seed, height=args.height, width=args.width)
  means = fit_class_means(render_sample(i, split='train', **size) for i in range(args.num_train))
  val = [render_sample(i, split='validation', **size) for i in range(args.num_val)]
  pred = np.stack([predict(s['image'], means) for s in val])
  label = np.stack([s['semseg'] for s in val])
  result = metrics.semseg_metrics(
    pred, label, num_classes=labels.NUM_CLASSES, ignore_label=labels.IGNORE_LABEL
  )
  print(
    f'colour-only baseline ({args.num_train} train, {args.num_val} validation samples): '
    f'mIoU {result["miou"]:.2f}, pixel accuracy {result["pixel_acc"]:.2f}'
  )
  for name in labels.CLASS_NAMES:
    print(f'  {name:14s} IoU {result[f"iou/{name}"]:6.2f}')


if __name__ == '__main__':
  main()
