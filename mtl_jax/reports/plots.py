"""The report's figures (matplotlib, no pyplot: nothing global, nothing shown): per-epoch curves
with one line per setting (a mean ± std band over seeds), per-class IoU bars and depth error by
distance bars. Each setting keeps one colour in every figure (`colors`).
"""

import dataclasses
import math
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from mtl_jax import metrics
from mtl_jax.data.sample import TASKS
from mtl_jax.reports import scores
from mtl_jax.reports.settings import Setting

_TITLES = {'total': 'total = mIoU − SI-log'}
CURVES = (
  *((key, _TITLES.get(key, label)) for key, label, _ in metrics.HEADLINE),
  ('loss/total', 'training loss, total'),
  ('loss/semseg', 'training loss, semseg'),
  ('loss/depth', 'training loss, depth'),
  (scores.LEARNING_RATE, 'learning rate (schedule)'),
  *((f'weight/{t}', f'task weight, {t} (loss.balancing)') for t in TASKS),
)
PANELS_PER_ROW = 4
DPI = 100
LEGEND_CHARS = 150  # label characters a legend row holds across a figure


def colors(count: int) -> list[tuple]:
  """Distinct colours: tab10, then tab20 for more settings, then cycling."""
  palette = colormaps['tab10' if count <= 10 else 'tab20'].colors
  return [palette[i % len(palette)] for i in range(count)]


def legend_label(s: Setting) -> str:
  return s.label if len(s.runs) == 1 else f'{s.label} ({len(s.runs)} seeds)'


@dataclasses.dataclass(frozen=True)
class Band:
  epochs: np.ndarray
  mean: np.ndarray
  std: np.ndarray  # sample std over the seeds with that epoch; NaN where fewer than 2


def band(s: Setting, key: str) -> Band:
  by_epoch: dict[int, list[float]] = {}
  for run in s.runs:
    for epoch, value in scores.series(run, key):
      by_epoch.setdefault(epoch, []).append(value)
  epochs = sorted(by_epoch)
  stats = [scores.stat(by_epoch[e]) for e in epochs]
  return Band(
    np.array(epochs),
    np.array([st.mean for st in stats]),
    np.array([math.nan if st.std is None else st.std for st in stats]),
  )


def _columns(labels: list[str]) -> int:
  """Legend columns: three for short labels, one for long (the figures are ~150 chars wide)."""
  return max(1, min(3, len(labels), LEGEND_CHARS // max(map(len, labels), default=1)))


def _legend(fig: Figure, axes) -> None:
  """One legend below the panels for every line or bar drawn in `axes`."""
  handles, labels = [], []
  for ax in axes:
    for handle, label in zip(*ax.get_legend_handles_labels()):
      if label not in labels:
        handles.append(handle)
        labels.append(label)
  if labels:
    fig.legend(handles, labels, loc='lower center', ncol=_columns(labels), fontsize='small')


def _make_figure(width: float, panels_height: float, labels: list[str]) -> Figure:
  """A figure whose panels leave room below for a legend of `labels`."""
  legend = 0.3 + 0.22 * math.ceil(len(labels) / _columns(labels))
  height = panels_height + legend
  fig = Figure(figsize=(width, height), dpi=DPI, layout='constrained')
  fig.get_layout_engine().set(rect=(0, legend / height, 1, 1 - legend / height))
  return fig


def curves(settings: list[Setting], path: Path) -> None:
  rows = math.ceil(len(CURVES) / PANELS_PER_ROW)
  fig = _make_figure(16, 3.5 * rows, [legend_label(s) for s in settings])
  axes = fig.subplots(rows, PANELS_PER_ROW).ravel()
  for ax in axes[len(CURVES) :]:
    ax.set_visible(False)
  for ax, (key, title) in zip(axes, CURVES):
    for s, color in zip(settings, colors(len(settings))):
      b = band(s, key)
      if not len(b.epochs):
        continue
      ax.plot(b.epochs, b.mean, color=color, marker='o', markersize=3, label=legend_label(s))
      ax.fill_between(b.epochs, b.mean - b.std, b.mean + b.std, color=color, alpha=0.2, lw=0)
    ax.set_title(title, fontsize='medium')
    ax.set_xlabel('epoch')
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
  _legend(fig, axes)
  fig.savefig(path)


def _grouped_bars(ax, names: list[str], entries: list[tuple[str, tuple, list[float]]]) -> None:
  """One group of bars per name, one bar per (label, colour, values) entry."""
  width = 0.8 / max(len(entries), 1)
  x = np.arange(len(names))
  for i, (label, color, values) in enumerate(entries):
    ax.bar(x + (i - (len(entries) - 1) / 2) * width, values, width, color=color, label=label)
  ax.set_xticks(x, names, rotation=45, ha='right')
  ax.grid(axis='y', alpha=0.3)


def per_class_iou(
  class_names: list[str], entries: list[tuple[str, tuple, list[float]]], path: Path
) -> None:
  """entries: (label, colour, IoU % per class) of the settings shown."""
  fig = _make_figure(max(8, 0.6 * len(class_names)), 4, [label for label, _, _ in entries])
  ax = fig.subplots()
  _grouped_bars(ax, class_names, entries)
  ax.set_ylabel('IoU (%) at the best eval')
  _legend(fig, [ax])
  fig.savefig(path)


def depth_by_distance(
  bin_names: list[str], entries: list[tuple[str, tuple, dict[str, list[float]]]], path: Path
) -> None:
  """entries: (label, colour, `distance.errors`) of each run drawn."""
  fig = _make_figure(12, 4.5, [label for label, _, _ in entries])
  axes = fig.subplots(1, 2)
  for ax, (key, ylabel) in zip(axes, (('abs_rel', 'abs rel error'), ('mae', 'mean abs error (m)'))):
    _grouped_bars(ax, bin_names, [(label, color, errors[key]) for label, color, errors in entries])
    ax.set_ylabel(ylabel)
    ax.set_xlabel('ground-truth depth')
  _legend(fig, axes)
  fig.savefig(path)
