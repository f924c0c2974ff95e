"""The study's claims, each checked against the summary tables of our runs of it.

A claim names the experiment whose report decides it (mtl_jax/study/experiments.py), what the
study showed for it, and a judge: a pure function of that report's rows (summary.csv as dicts)
that says what ours show and whether the claim holds. Scores are the best checkpoint's (by
total = mIoU − SI-log, the seed's checkpoint selection), mean over seeds where there are several.
A claim whose runs did not all finish is 'not run'.
"""

import dataclasses
from collections.abc import Callable

from mtl_jax.runtime.progress import format_duration

HOLDS, FAILS, NOT_RUN = 'holds', 'does not hold', 'not run'
Rows = list[dict[str, str]]
Verdict = tuple[str, str]  # (what ours show, HOLDS / FAILS / NOT_RUN)

OPTIMISERS = {'sgd': 'SGD', 'adam': 'Adam'}
CHECK = '✓'


@dataclasses.dataclass(frozen=True)
class Claim:
  text: str
  experiment: str
  evidence: str  # what the study showed
  judge: Callable[[Rows], Verdict]


def finished(rows: Rows, **cells: str) -> Rows:
  """The finished rows whose cells equal `cells` (summary.csv's text)."""
  return [
    r
    for r in rows
    if r['state'] == 'finished' and r['best_total'] and all(r[k] == v for k, v in cells.items())
  ]


def value(row: dict[str, str], key: str) -> float:
  return float(row[key])


def shown(row: dict[str, str], key: str) -> str:
  """'42.01', or '42.01 ± 0.52' over several seeds."""
  std = row.get(f'{key}_std')
  return f'{value(row, key):.2f}' + (f' ± {float(std):.2f}' if std else '')


def _one(rows: Rows, **cells: str) -> dict[str, str] | None:
  matches = finished(rows, **cells)
  return matches[0] if len(matches) == 1 else None


def ranked(rows: Rows, optimiser: str) -> Rows:
  """The optimiser's finished rows, best total first."""
  return sorted(finished(rows, optimizer=optimiser), key=lambda r: -value(r, 'best_total'))


def _best_rate(rows: Rows, optimiser: str) -> dict[str, str] | None:
  candidates = ranked(rows, optimiser)
  return candidates[0] if candidates else None


def _verdict(ok: bool) -> str:
  return HOLDS if ok else FAILS


def adam_beats_sgd(rows: Rows) -> Verdict:
  best = {name: _best_rate(rows, name) for name in OPTIMISERS}
  if None in best.values():
    return 'no finished runs of an optimiser', NOT_RUN
  ours = ', '.join(
    f'{OPTIMISERS[n]} {shown(r, "best_total")} (at {r["learning_rate"]})' for n, r in best.items()
  )
  return f'best total: {ours}', _verdict(
    value(best['adam'], 'best_total') > value(best['sgd'], 'best_total')
  )


def best_rate_is(optimiser: str, rate: str) -> Callable[[Rows], Verdict]:
  def judge(rows: Rows) -> Verdict:
    order = ranked(rows, optimiser)
    if len(order) < 4:
      return f'not every {OPTIMISERS[optimiser]} rate finished', NOT_RUN
    text = ' > '.join(f'{r["learning_rate"]} ({shown(r, "best_total")})' for r in order)
    return f'total by rate: {text}', _verdict(order[0]['learning_rate'] == rate)

  return judge


def larger_batches_cost_less_per_epoch_more_in_total(rows: Rows) -> Verdict:
  parts, ok = [], True
  for name, label in OPTIMISERS.items():
    runs = sorted(finished(rows, optimizer=name), key=lambda r: int(r['batch_size']))
    if len(runs) < 3:
      return f'not every {label} batch size finished', NOT_RUN
    per_epoch = [value(r, 'epoch_time_s') for r in runs]
    total = [value(r, 'wall_time_s') for r in runs]
    ok &= per_epoch == sorted(per_epoch, reverse=True) and total == sorted(total)
    cells = ', '.join(
      f'{r["batch_size"]}: {format_duration(per)} / {format_duration(all_)}'
      for r, per, all_ in zip(runs, per_epoch, total)
    )
    parts.append(f'{label} (batch: per epoch / total) {cells}')
  return '; '.join(parts), _verdict(ok)


def weighting_up_helps_a_task(rows: Rows) -> Verdict:
  parts, ok = [], True
  for name, label in OPTIMISERS.items():
    depth_heavy = _one(rows, optimizer=name, task_weights='30/70')
    semseg_heavy = _one(rows, optimizer=name, task_weights='70/30')
    if depth_heavy is None or semseg_heavy is None:
      return f'{label} at 30/70 or 70/30 did not finish', NOT_RUN
    ok &= value(semseg_heavy, 'best_miou') > value(depth_heavy, 'best_miou')
    ok &= value(depth_heavy, 'best_silog') < value(semseg_heavy, 'best_silog')
    parts.append(
      f'{label} 30/70 → 70/30: mIoU {shown(depth_heavy, "best_miou")} → '
      f'{shown(semseg_heavy, "best_miou")}, SI-log {shown(depth_heavy, "best_silog")} → '
      f'{shown(semseg_heavy, "best_silog")}'
    )
  return '; '.join(parts), _verdict(ok)


# The ladder's rows, as the report's cells name them.
PLAIN = {'model': 'joint', 'pretrained': '', 'output_stride': '32', 'aspp': ''}
PRETRAINED = {'model': 'joint', 'pretrained': CHECK, 'output_stride': '32', 'aspp': ''}
DILATED = {'model': 'joint', 'pretrained': CHECK, 'output_stride': '16', 'aspp': ''}
ASPP = {'model': 'joint', 'pretrained': CHECK, 'output_stride': '16', 'aspp': CHECK}
BRANCHED = {**ASPP, 'model': 'branched'}
DISTILLED = {**ASPP, 'model': 'distilled'}
NO_IMAGENET = 'its rows start from ImageNet weights, which were not converted on this machine'


def imagenet_and_dilation_help(rows: Rows) -> Verdict:
  parts, ok = [], True
  for name, label in OPTIMISERS.items():
    ladder = [_one(rows, optimizer=name, **row) for row in (PLAIN, PRETRAINED, DILATED)]
    if None in ladder:
      return NO_IMAGENET, NOT_RUN
    totals = [value(r, 'best_total') for r in ladder]
    ok &= totals[0] < totals[1] < totals[2]
    parts.append(f'{label} total ' + ' → '.join(shown(r, 'best_total') for r in ladder))
  return '; '.join(parts), _verdict(ok)


def _compare(rows: Rows, before: dict, after: dict) -> tuple[dict, dict] | None:
  pair = _one(rows, optimizer='adam', **before), _one(rows, optimizer='adam', **after)
  return None if None in pair else pair


def _change(pair: tuple[dict, dict], key: str, label: str) -> str:
  return f'{label} {shown(pair[0], key)} → {shown(pair[1], key)}'


def aspp_helps_semantics_hurts_depth(rows: Rows) -> Verdict:
  pair = _compare(rows, DILATED, ASPP)
  if pair is None:
    return NO_IMAGENET, NOT_RUN
  ours = f'Adam {_change(pair, "best_miou", "mIoU")}, {_change(pair, "best_silog", "SI-log")}'
  return ours, _verdict(
    value(pair[1], 'best_miou') > value(pair[0], 'best_miou')
    and value(pair[1], 'best_silog') > value(pair[0], 'best_silog')
  )


def lower_silog(before: dict, after: dict) -> Callable[[Rows], Verdict]:
  def judge(rows: Rows) -> Verdict:
    pair = _compare(rows, before, after)
    if pair is None:
      return NO_IMAGENET, NOT_RUN
    ours = f'Adam {_change(pair, "best_silog", "SI-log")}'
    return ours, _verdict(value(pair[1], 'best_silog') < value(pair[0], 'best_silog'))

  return judge


def deeper_second_stage_helps_sgd_not_adam(rows: Rows) -> Verdict:
  gains = {}
  for name in OPTIMISERS:
    simple = _one(rows, optimizer=name, second_stage='simple')
    deep = _one(rows, optimizer=name, second_stage='deep')
    if simple is None or deep is None:
      return NO_IMAGENET, NOT_RUN
    gains[name] = (simple, deep)
  ours = '; '.join(
    f'{OPTIMISERS[n]} total {shown(s, "best_total")} → {shown(d, "best_total")}'
    for n, (s, d) in gains.items()
  )
  sgd, adam = ((value(d, 'best_total') - value(s, 'best_total')) for s, d in gains.values())
  return ours, _verdict(sgd > 0 >= adam)


CLAIMS = (
  Claim(
    'Adam beats SGD at their best rates',
    'learning_rates',
    'grader 43.31 (Adam 1e-4) against 39.84 (SGD 1e-2), table 4',
    adam_beats_sgd,
  ),
  Claim(
    "1e-2 is SGD's best rate",
    'learning_rates',
    'figures 1 and 3: 1e-2 ahead of 1e-1, 1e-3 and 1e-4',
    best_rate_is('sgd', '0.01'),
  ),
  Claim(
    "1e-4 is Adam's best rate",
    'learning_rates',
    'figures 2 and 3: 1e-4 ahead of 1e-2, 1e-3 and 1e-5',
    best_rate_is('adam', '1e-4'),
  ),
  Claim(
    'Larger batches cost less time per epoch but more in total (epochs in proportion)',
    'batch_size',
    'table 1, batch 2 / 4 / 8: SGD 3h11m / 4h28m / 4h49m (stopped at epoch 20), '
    'Adam 3h31m / 4h31m / 7h55m',
    larger_batches_cost_less_per_epoch_more_in_total,
  ),
  Claim(
    "Each task gains when weighted up, at the other's cost",
    'task_weights',
    'figures 5 (SGD) and 6 (Adam), weights 30/70 to 70/30',
    weighting_up_helps_a_task,
  ),
  Claim(
    'ImageNet weights help, and dilation helps further',
    'ladder',
    'table 4, grader plain → ImageNet → dilated: SGD 39.84 → 47.85 → 58.18, '
    'Adam 43.31 → 48.84 → 59.36 (figure 7)',
    imagenet_and_dilation_help,
  ),
  Claim(
    'ASPP helps semantics and hurts depth',
    'ladder',
    'figure 8 (Adam): mIoU +5.31%, depth "deteriorated quite substantially" '
    '(table 4 after twice the epochs: mIoU 80.59 → 85.15, SI-log 21.23 → 19.94)',
    aspp_helps_semantics_hurts_depth,
  ),
  Claim(
    'The branched network recovers depth',
    'ladder',
    'figure 9 (Adam): SI-log 19.94 → 19.46, table 4',
    lower_silog(ASPP, BRANCHED),
  ),
  Claim(
    'Distillation improves depth further',
    'ladder',
    'figure 10 (Adam): SI-log 19.18 against 20.89 at epoch 40 (stopped at 41 of 64)',
    lower_silog(BRANCHED, DISTILLED),
  ),
  Claim(
    'The deeper second stage helps SGD but not Adam',
    'second_stage',
    'figure 11, distilled at batch 2 for 32 epochs',
    deeper_second_stage_helps_sgd_not_adam,
  ),
)


def table(summaries: dict[str, Rows]) -> list[dict[str, str]]:
  """One row per claim: claim, the study's evidence, ours, verdict. An experiment without a
  report (no run of it finished) leaves its claims 'not run'."""
  out = []
  for claim in CLAIMS:
    rows = summaries.get(claim.experiment)
    ours, verdict = claim.judge(rows) if rows else ('no run of it finished', NOT_RUN)
    out.append({'claim': claim.text, 'study': claim.evidence, 'ours': ours, 'verdict': verdict})
  return out
