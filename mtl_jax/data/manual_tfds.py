"""TFDS builders for datasets users bring: miniscapes, Cityscapes and the generic folder layout.

Each reads a manual directory through its layout module (`miniscapes`, `cityscapes`, `folder`;
see `layouts`) and writes array_record files with the features of `tfds_records`, under
`<data_dir>/mtl_<layout>/<H>x<W>/<version>/`. The config name is the stored size: with
--height/--width every sample is resized (`sample.resize`, as augmentation scales), without
them the most common image size (read from every image's header before building) is kept and
an image of any other size is a bad sample, blamed by its own name wherever it sorts.

Samples are decoded, checked and PNG-encoded in a process pool (one process per core, for
datasets of at least MIN_SAMPLES_FOR_POOL samples). A bad sample (`file_checks.BadFile`) stops
the build with one line naming the file, unless skip_bad is set: then it is skipped and listed
at the end. TFDS writes into a temporary folder
and renames it when complete, so a failed build leaves every dataset already prepared intact.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import re
import sys
from pathlib import Path

import tensorflow_datasets as tfds

from mtl_jax.data import cityscapes, file_checks, folder, layouts, miniscapes, tfds_records
from mtl_jax.data import sample as sample_lib
from mtl_jax.runtime.errors import UserError

MIN_SAMPLES_FOR_POOL = 64  # below this, starting worker processes costs more than it saves


@dataclasses.dataclass(eq=False)
class SizeConfig(tfds.core.BuilderConfig):
  """The stored image size; build one with `make_config`."""

  height: int = 0
  width: int = 0


def make_config(height: int, width: int) -> SizeConfig:
  return SizeConfig(
    name=f'{height}x{width}',
    height=height,
    width=width,
    description=f'samples stored at {height}x{width}',
  )


def load_and_encode(job: tuple) -> tuple[dict | None, tuple[str, str] | None]:
  """(feature dict, None) of one sample, or (None, (path, reason)) if it is bad (runs in worker
  processes; a BadFile would not survive pickling back). The sample is resized to `size`, or
  must have it."""
  layout_name, files, size, resize_samples, max_pixels = job
  try:
    layout = LAYOUTS[layout_name]
    if resize_samples:
      sample = sample_lib.resize(layout.load_sample(files, max_pixels=max_pixels), size)
    else:
      sample = layout.load_sample(files, max_pixels=max_pixels, size=size)
    return tfds_records.encode(sample, index=-1), None
  except file_checks.BadFile as bad:
    return None, (bad.path, bad.reason)


class _ManualBuilder(
  tfds_records.PackagedBuilder, tfds.core.GeneratorBasedBuilder, skip_registration=True
):
  """Shared by the three builders below; a subclass only names its layout module."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release.'}
  BUILDER_CONFIGS = []  # every config comes from `make_config`
  LAYOUT: layouts.Layout

  def __init__(
    self,
    *,
    samples: dict[str, list[layouts.SampleFiles]] | None = None,
    resize_samples: bool = False,
    skip_bad: bool = False,
    max_pixels: int = file_checks.DEFAULT_MAX_PIXELS,
    num_workers: int | None = None,
    **kwargs,
  ):
    """samples: what `LAYOUT.find_samples` listed (only needed to build, not to read);
    num_workers: decoding processes (default one per core; <= 1 decodes in-process)."""
    self._samples = samples or {}
    self._resize, self._skip_bad, self._max_pixels = resize_samples, skip_bad, max_pixels
    self._num_workers = tfds_records.available_cpus() if num_workers is None else num_workers
    self._pool = None  # set while building with a process pool
    self.skipped: list[file_checks.BadFile] = []
    super().__init__(**kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    cfg = self.builder_config
    return self.dataset_info_from_configs(
      description=self.LAYOUT.__doc__.splitlines()[0],
      features=tfds_records.features(cfg.height, cfg.width),
      disable_shuffling=True,
      # Filled when building, restored from metadata.json when reading: {'class_names': [...]}.
      metadata=tfds.core.MetadataDict(),
    )

  def _download_and_prepare(self, *args, **kwargs):
    total = sum(len(files) for files in self._samples.values())
    workers = self._num_workers if total >= MIN_SAMPLES_FOR_POOL else 1
    with tfds_records.building(workers) as self._pool:
      try:
        return super()._download_and_prepare(*args, **kwargs)
      finally:
        self._pool = None

  def _split_generators(self, dl_manager):
    # The samples were listed before building; the manual dir gives the class names.
    self.info.metadata['class_names'] = list(self.LAYOUT.class_names(Path(dl_manager.manual_dir)))
    return {split: self._generate_examples(split, files) for split, files in self._samples.items()}

  def _generate_examples(self, split: str, samples: list[layouts.SampleFiles]):
    cfg = self.builder_config
    jobs = [
      (self.LAYOUT.NAME, files, (cfg.height, cfg.width), self._resize, self._max_pixels)
      for files in samples
    ]
    results = tfds_records.ordered_map(
      load_and_encode, jobs, self._pool, window=16 * self._num_workers
    )
    progress = tfds_records.Progress(f'{self.name}/{cfg.name} {split}', len(samples))
    index = 0
    for count, (example, bad) in enumerate(results, 1):
      progress.update(count)
      if bad is not None:
        if not self._skip_bad:
          raise file_checks.BadFile(*bad)
        self.skipped.append(file_checks.BadFile(*bad))
        print(f'skipping {self.skipped[-1]}', file=sys.stderr, flush=True)
        continue
      yield index, {**example, 'index': index}
      index += 1
    if index == 0:
      raise UserError(f'{self.LAYOUT.NAME}: every sample of split {split!r} is bad')


class MtlMiniscapes(_ManualBuilder):
  """The course's miniscapes (a Synscapes subset), see `mtl_jax.data.miniscapes`."""

  LAYOUT = miniscapes
  MANUAL_DOWNLOAD_INSTRUCTIONS = miniscapes.INSTRUCTIONS


class MtlCityscapes(_ManualBuilder):
  """Cityscapes with float32 metric depth from disparity, see `mtl_jax.data.cityscapes`."""

  LAYOUT = cityscapes
  MANUAL_DOWNLOAD_INSTRUCTIONS = cityscapes.INSTRUCTIONS


class MtlFolder(_ManualBuilder):
  """Users' own images/semseg/depth folders with a dataset.json, see `mtl_jax.data.folder`."""

  LAYOUT = folder
  MANUAL_DOWNLOAD_INSTRUCTIONS = folder.INSTRUCTIONS

  def _split_generators(self, dl_manager):
    # The only layout with its own taxonomy also brings its colours (registry.class_colors).
    colors = folder.class_colors(Path(dl_manager.manual_dir))
    if colors is not None:
      self.info.metadata['class_colors'] = [list(c) for c in colors]
    return super()._split_generators(dl_manager)


LAYOUTS = {layout.NAME: layout for layout in (miniscapes, cityscapes, folder)}
BUILDERS = {'miniscapes': MtlMiniscapes, 'cityscapes': MtlCityscapes, 'folder': MtlFolder}


@dataclasses.dataclass(frozen=True)
class Survey:
  """The images' headers, read before building: how many images have each (displayed) size,
  which carry an EXIF orientation, and the files whose header is already bad."""

  sizes: collections.Counter
  turned: list[Path]
  bad: list[file_checks.BadFile]


def _survey(layout: layouts.Layout, samples: dict[str, list[layouts.SampleFiles]]) -> Survey:
  sizes, turned, bad = collections.Counter(), [], []
  for files in (f for split_files in samples.values() for f in split_files):
    try:
      layouts.files_inside_root(files)
      header = file_checks.read_header(files.image, what=layout.IMAGE.what)
    except file_checks.BadFile as e:  # the build blames it again, by the same name
      bad.append(e)
      continue
    sizes[header.size] += 1
    if header.transposed:
      turned.append(files.image)
  return Survey(sizes, turned, bad)


def _native_size(layout: layouts.Layout, images: Survey, skip_bad: bool) -> tuple[int, int]:
  """The most common image size (the first listed of equally common ones): not the first
  image's, so that an image of an odd size is the bad sample wherever it sorts."""
  if images.sizes:
    return images.sizes.most_common(1)[0][0]
  if images.bad and not skip_bad:
    raise images.bad[0]
  raise UserError(f'{layout.NAME}: no usable sample found')


def _orientation_note(turned: list[Path]) -> str:
  """The line saying that images were stored as displayed, not as their pixels are stored."""
  return (
    f'note: {len(turned)} image(s) carry an EXIF orientation (e.g. {turned[0]}) and are stored '
    'as viewers show them, turned or mirrored; their labels and depth must fit that view'
  )


def prepared_sizes(name: str, data_dir: str | os.PathLike) -> list[str]:
  """Config names (sizes) of dataset `name` already prepared under data_dir."""
  root = Path(data_dir) / BUILDERS[name].name
  # <size>/<version>/: TFDS's `incomplete.*` folders of a killed build do not count.
  return sorted(
    {
      p.parent.parent.name
      for p in root.glob('*/*/dataset_info.json')
      if re.fullmatch(r'\d+\.\d+\.\d+', p.parent.name)
    }
  )


def open_prepared(name: str, data_dir: str | os.PathLike, height: int, width: int):
  """The builder of dataset `name` prepared at height×width, or a UserError saying how to
  prepare it."""
  builder = BUILDERS[name](data_dir=os.fspath(data_dir), config=make_config(height, width))
  if builder.is_prepared():
    return builder
  sizes = prepared_sizes(name, data_dir)
  hint = (
    f'prepared sizes there: {", ".join(sizes)} (set --config.data.height and '
    f'--config.data.width to one of them)'
    if sizes
    else f'prepare it first: python -m mtl_jax.prepare_data --dataset {name} '
    f'--manual_dir DIR --data_dir {data_dir} --height {height} --width {width}'
  )
  raise UserError(f'dataset {name} at {height}x{width} is not prepared in {data_dir}; {hint}')


def prepare(
  name: str,
  data_dir: str | os.PathLike,
  manual_dir: str | os.PathLike,
  *,
  height: int = 0,
  width: int = 0,
  skip_bad: bool = False,
  max_pixels: int = file_checks.DEFAULT_MAX_PIXELS,
  num_workers: int | None = None,
):
  """Builds dataset `name` from manual_dir (resized to height×width if given; else at the
  native size) unless already prepared; returns the builder, whose `skipped` lists the
  samples --skip_bad left out."""
  builder_cls = BUILDERS[name]
  samples = builder_cls.LAYOUT.find_samples(Path(manual_dir))
  resize_samples = bool(height and width)
  if bool(height) != bool(width):
    raise UserError('give both --height and --width, or neither (keep the native size)')
  images = _survey(builder_cls.LAYOUT, samples)
  if not resize_samples:
    height, width = _native_size(builder_cls.LAYOUT, images, skip_bad)
  builder = builder_cls(
    data_dir=os.fspath(data_dir),
    config=make_config(height, width),
    samples=samples,
    resize_samples=resize_samples,
    skip_bad=skip_bad,
    max_pixels=max_pixels,
    num_workers=num_workers,
    file_format='array_record',
  )
  if images.turned and not builder.is_prepared():
    print(_orientation_note(images.turned), file=sys.stderr, flush=True)
  builder.download_and_prepare(
    download_config=tfds.download.DownloadConfig(manual_dir=os.fspath(manual_dir))
  )
  return builder
