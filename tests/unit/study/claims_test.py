"""Each of the study's claims judged on report rows (summary.csv's cells as text): holds, does
not hold, or not run when its runs did not finish."""

from mtl_jax.study import claims
from mtl_jax.study.claims import FAILS, HOLDS, NOT_RUN


def _row(state='finished', **cells) -> dict[str, str]:
  row = dict.fromkeys(
    ('model', 'pretrained', 'output_stride', 'aspp', 'second_stage', 'optimizer', 'learning_rate')
    + ('batch_size', 'task_weights', 'epochs', 'seeds', 'runs')
    + ('best_miou', 'best_silog', 'best_total', 'epoch_time_s', 'wall_time_s'),
    '',
  )
  row.update({'state': state, 'best_miou_std': '', 'best_silog_std': '', 'best_total_std': ''})
  row.update({k: str(v) for k, v in cells.items()})
  if row['best_miou'] and row['best_silog']:
    row['best_total'] = str(float(row['best_miou']) - float(row['best_silog']))
  return row


def _rates(sgd: dict[str, float], adam: dict[str, float]) -> list[dict]:
  return [
    _row(optimizer=name, learning_rate=rate, best_miou=total, best_silog=0)
    for name, totals in (('sgd', sgd), ('adam', adam))
    for rate, total in totals.items()
  ]


STUDY_LIKE = _rates(
  {'0.1': 30, '0.01': 40, '1e-3': 35, '1e-4': 20}, {'0.01': 10, '1e-3': 42, '1e-4': 45, '1e-5': 30}
)


def test_the_learning_rate_claims():
  assert claims.adam_beats_sgd(STUDY_LIKE) == (
    'best total: SGD 40.00 (at 0.01), Adam 45.00 (at 1e-4)',
    HOLDS,
  )
  sgd_best = claims.best_rate_is('sgd', '0.01')
  adam_best = claims.best_rate_is('adam', '1e-4')
  assert sgd_best(STUDY_LIKE) == (
    'total by rate: 0.01 (40.00) > 1e-3 (35.00) > 0.1 (30.00) > 1e-4 (20.00)',
    HOLDS,
  )
  assert adam_best(STUDY_LIKE)[1] == HOLDS
  shorter = _rates({'0.1': 30, '0.01': 40, '1e-3': 35, '1e-4': 20}, {'0.01': 10, '1e-3': 46})
  assert adam_best(shorter) == ('not every Adam rate finished', NOT_RUN)
  higher = _rates(
    {'0.1': 41, '0.01': 40, '1e-3': 35, '1e-4': 20}, {'0.01': 10, '1e-3': 46, '1e-4': 45, '1e-5': 1}
  )
  assert (sgd_best(higher)[1], adam_best(higher)[1]) == (FAILS, FAILS)
  assert claims.adam_beats_sgd(_rates({'0.01': 50}, {'1e-4': 45}))[1] == FAILS


def test_a_failed_run_is_not_a_result():
  rows = [*STUDY_LIKE[:7], _row('failed', optimizer='adam', learning_rate='1e-5')]
  assert claims.best_rate_is('adam', '1e-4')(rows)[1] == NOT_RUN


def _batches(name, times):
  return [
    _row(optimizer=name, batch_size=b, epoch_time_s=e, wall_time_s=w, best_miou=1, best_silog=0)
    for b, (e, w) in zip((2, 4, 8), times)
  ]


def test_batch_time_per_epoch_and_in_total():
  rows = _batches('sgd', [(120, 600), (90, 900), (60, 1200)]) + _batches(
    'adam', [(120, 700), (100, 1000), (80, 1300)]
  )
  ours, verdict = claims.larger_batches_cost_less_per_epoch_more_in_total(rows)
  assert verdict == HOLDS
  assert ours.startswith('SGD (batch: per epoch / total) 2: 2m00s / 10m00s, 4: 1m30s / 15m00s')
  cheaper_in_total = rows[:5] + _batches('adam', [(0, 0), (0, 0), (80, 900)])[2:]
  assert claims.larger_batches_cost_less_per_epoch_more_in_total(cheaper_in_total)[1] == FAILS
  assert claims.larger_batches_cost_less_per_epoch_more_in_total(rows[:5])[1] == NOT_RUN


def _weights(name, depth_heavy, semseg_heavy):
  return [
    _row(optimizer=name, task_weights=w, best_miou=m, best_silog=s)
    for w, (m, s) in (('30/70', depth_heavy), ('70/30', semseg_heavy))
  ]


def test_weighting_a_task_up():
  rows = _weights('sgd', (20, 30), (25, 35)) + _weights('adam', (22, 28), (26, 31))
  ours, verdict = claims.weighting_up_helps_a_task(rows)
  assert verdict == HOLDS
  assert ours.startswith('SGD 30/70 → 70/30: mIoU 20.00 → 25.00, SI-log 30.00 → 35.00')
  depth_unmoved = rows[:2] + _weights('adam', (22, 31), (26, 31))
  assert claims.weighting_up_helps_a_task(depth_unmoved)[1] == FAILS


def _ladder(**scores):
  rows = {
    'plain': claims.PLAIN,
    'pretrained': claims.PRETRAINED,
    'dilated': claims.DILATED,
    'aspp': claims.ASPP,
    'branched': claims.BRANCHED,
    'distilled': claims.DISTILLED,
  }
  return [
    _row(optimizer=name, best_miou=m, best_silog=s, **rows[key])
    for key, pairs in scores.items()
    for name, (m, s) in pairs.items()
  ]


def test_the_ladder_claims():
  both = lambda m, s: {'sgd': (m, s), 'adam': (m, s)}  # noqa: E731
  rows = _ladder(
    plain=both(20, 40),
    pretrained=both(25, 38),
    dilated=both(30, 35),
    aspp={'adam': (33, 36)},
    branched={'adam': (33, 34)},
    distilled={'adam': (33, 33)},
  )
  assert claims.imagenet_and_dilation_help(rows) == (
    'SGD total -20.00 → -13.00 → -5.00; Adam total -20.00 → -13.00 → -5.00',
    HOLDS,
  )
  assert claims.aspp_helps_semantics_hurts_depth(rows) == (
    'Adam mIoU 30.00 → 33.00, SI-log 35.00 → 36.00',
    HOLDS,
  )
  assert claims.lower_silog(claims.ASPP, claims.BRANCHED)(rows) == (
    'Adam SI-log 36.00 → 34.00',
    HOLDS,
  )
  assert claims.lower_silog(claims.BRANCHED, claims.DISTILLED)(rows)[1] == HOLDS
  assert claims.lower_silog(claims.DISTILLED, claims.BRANCHED)(rows)[1] == FAILS
  # Without ImageNet weights only the plain rows finish: the rest is said, not guessed.
  plain_only = _ladder(plain=both(20, 40))
  assert claims.imagenet_and_dilation_help(plain_only) == (claims.NO_IMAGENET, NOT_RUN)
  assert claims.aspp_helps_semantics_hurts_depth(plain_only)[1] == NOT_RUN


def test_the_second_stage_claim():
  def rows(sgd_deep, adam_deep):
    return [
      _row(optimizer=n, second_stage=d, best_miou=m, best_silog=0)
      for n, d, m in (('sgd', 'simple', 10), ('sgd', 'deep', sgd_deep))
      + (('adam', 'simple', 10), ('adam', 'deep', adam_deep))
    ]

  assert claims.deeper_second_stage_helps_sgd_not_adam(rows(12, 9))[1] == HOLDS
  assert claims.deeper_second_stage_helps_sgd_not_adam(rows(12, 11))[1] == FAILS
  assert claims.deeper_second_stage_helps_sgd_not_adam(rows(9, 9))[1] == FAILS


def test_the_table_has_every_claim_and_leaves_unrun_experiments_not_run():
  table = claims.table({'learning_rates': STUDY_LIKE})
  assert [r['claim'] for r in table] == [c.text for c in claims.CLAIMS]
  assert [r['verdict'] for r in table] == [HOLDS, HOLDS, HOLDS] + [NOT_RUN] * 7
  assert table[3]['ours'] == 'no run of it finished'


def test_the_ranking_check_counts_pairs_in_the_same_order():
  from mtl_jax.study import page

  longer = _rates(
    {'0.1': 35, '0.01': 40, '1e-3': 30, '1e-4': 20},
    {'0.01': 10, '1e-3': 42, '1e-4': 45, '1e-5': 30},
  )
  table = page.ranking_table(STUDY_LIKE, longer, '4×').splitlines()
  assert table[2] == (
    '| SGD | 0.01 > 1e-3 > 0.1 > 1e-4 | 0.01 > 0.1 > 1e-3 > 1e-4 | 5 of 6 | yes |'
  )
  assert table[3].endswith('| 6 of 6 | yes |')


def test_the_ladder_table_shows_the_study_row_beside_ours():
  from mtl_jax.study import page

  rows = [
    _row(optimizer='adam', best_miou=30, best_silog=40, seeds='0,1', **claims.PLAIN),
    _row('failed', optimizer='adam', seeds='0,1', **claims.PRETRAINED),
  ]
  lines = page.results_table('ladder', rows).splitlines()
  assert lines[0] == (
    '| model | ImageNet | stride | ASPP | optimiser | seeds | state | mIoU | SI-log | total '
    '| time/epoch | wall time | study: mIoU / SI-log |'
  )
  assert lines[2] == (
    '| joint |  | 32 |  | adam | 0,1 | finished | 30.00 | 40.00 | -10.00 | — | — | 69.83 / 26.55 |'
  )
  assert lines[3] == (
    '| joint | ✓ | 32 |  | adam | 0,1 | failed | — | — | — | — | — | 73.67 / 24.83 |'
  )
  # Table 4's other eight rows, which left no record, are listed as not run.
  assert len(lines) == 2 + 10
  assert lines[4] == '| joint |  | 32 |  | sgd |  | not run | — | — | — | — | — | 67.05 / 27.23 |'
  section = page.samples_section(rows, drawn={12})
  assert '![figure 12](study/figure_12.png)' in section
  assert '**Figure 13**: + ImageNet weights and dilation: *not run*.' in section
