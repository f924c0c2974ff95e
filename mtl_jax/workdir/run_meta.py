"""What a checkpoint records about its run beside the arrays (its `meta` item, JSON), and
which eval score picks a run's best checkpoint."""

import dataclasses

from mtl_jax.workdir import environment


@dataclasses.dataclass(frozen=True)
class RunMeta:
  """What a checkpoint records about the run beside its arrays (saved as JSON)."""

  epoch: int  # completed epochs at this step
  steps_per_epoch: int  # a resume must count epochs the same way
  wall_time_s: float  # training time so far, across resumes
  epoch_sums: dict  # the running epoch's partial step-metric sums (trainer.EpochSums)
  history: list[dict]  # every eval record so far (metrics.jsonl is rewritten from it)
  environment: dict[str, str]  # software versions (mtl_jax.workdir.environment.describe())
  # The run's config as config.json records it (`run_config.as_record`), so a lost config.json
  # can be restored; None in checkpoints written before it was recorded.
  config: dict | None = None
  # The dataset's classes (`labels.Classes.to_json`), for predict, export and reports; None in
  # checkpoints written before they were recorded.
  classes: dict | None = None

  @classmethod
  def start(cls, config: dict, classes: dict) -> 'RunMeta':
    """A run's step 0, before any training: nothing counted, nothing scored."""
    return cls(
      epoch=0,
      steps_per_epoch=0,
      wall_time_s=0.0,
      epoch_sums={},
      history=[],
      environment=environment.describe(),
      config=config,
      classes=classes,
    )

  def to_json(self) -> dict:
    return dataclasses.asdict(self)

  @classmethod
  def from_json(cls, saved: dict) -> 'RunMeta':
    # Fields with a default are newer than some checkpoints: those take the default.
    return cls(**{f.name: saved[f.name] for f in dataclasses.fields(cls) if f.name in saved})


# Checkpoint selection: `total` = mIoU − SI-log for two-task models (as the course "grader");
# single-task baselines rank by their own task's metric.
BEST_METRIC_MODES = {'total': 'max', 'miou': 'max', 'silog': 'min'}


def best_metric_for(tasks) -> str:
  tasks = tuple(tasks)
  return 'total' if len(tasks) > 1 else {'semseg': 'miou', 'depth': 'silog'}[tasks[0]]
