"""Writes a tiny valid dataset in the generic folder layout (for tests).

  <root>/images/<split>/<i>.png, semseg/<split>/<i>.png, depth/<split>/<i>.png (millimetres)
with dataset.json listing train in train.txt (with a comment and a blank line) and every other
split inline. A 'test' split gets no semseg/ or depth/ folder, so it is unlabeled.
"""

import json
from pathlib import Path

import numpy as np
from PIL import Image

DEPTH_SCALE = 0.001  # the depth PNGs hold millimetres
IGNORE = 255


DEFAULT_SPLITS = {'train': 3, 'validation': 2}


def write_folder(root, *, splits=None, height=32, width=64, num_classes=19, seed=0) -> Path:
  """Labels cover ids 0..num_classes-1 and the ignore label; depth covers 0 (invalid) and
  1..65535 mm. `splits`: {TFDS split: number of samples}, default DEFAULT_SPLITS."""
  root = Path(root)
  splits = DEFAULT_SPLITS if splits is None else splits
  rng = np.random.default_rng(seed)
  listed = {}
  for split, count in splits.items():
    labeled = split != 'test'
    for sub in ('images', 'semseg', 'depth') if labeled else ('images',):
      (root / sub / split).mkdir(parents=True, exist_ok=True)
    listed[split] = [f'images/{split}/{i}.png' for i in range(count)]
    for i in range(count):
      image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
      Image.fromarray(image).save(root / 'images' / split / f'{i}.png')
      if labeled:
        labels = rng.choice(np.r_[0:num_classes, IGNORE], (height, width)).astype(np.uint8)
        Image.fromarray(labels).save(root / 'semseg' / split / f'{i}.png')
        depth = rng.integers(1, 65536, (height, width), dtype=np.uint16)
        depth[rng.random((height, width)) < 0.1] = 0  # invalid pixels
        Image.fromarray(depth).save(root / 'depth' / split / f'{i}.png')
  split_values = dict(listed)
  if 'train' in listed:
    lines = ['# training images', '', *listed['train']]
    (root / 'train.txt').write_text('\n'.join(lines) + '\n')
    split_values['train'] = 'train.txt'
  spec = {
    'classes': [f'class_{i}' for i in range(num_classes)],
    'colors': rng.integers(0, 256, (num_classes, 3)).tolist(),
    'ignore_label': IGNORE,
    'depth_scale': DEPTH_SCALE,
    'splits': split_values,
  }
  (root / 'dataset.json').write_text(json.dumps(spec, indent=2))
  return root
