"""Converts a course-template PyTorch checkpoint into an mtl_jax run (step 0).

  python -m mtl_jax.convert template --input epoch=63.ckpt --config configs/distilled.py
      [--config.model.second_stage=deep] --workdir runs/ported

The input is the study's model as the course template saves it: a Lightning `.ckpt` (its
`state_dict`; keys outside the network's `net.`, such as a `class_weights` buffer, are listed as
ignored) or a plain state dict. It is read with torch.load(weights_only=True): only tensors are
rebuilt, and other pickled classes (the template's argparse.Namespace of hyper-parameters) become
inert stand-ins, so no code in the file runs. The config names the architecture the checkpoint
holds (no preset: the study's own networks; override the encoder or second stage to match).
Every key must map, strictly: a missing or unexpected one is one line naming it; weights holding
NaN or infinity are refused. Then `python -m mtl_jax.evaluate --workdir runs/ported` scores it and
`python -m mtl_jax.train --config ... --workdir runs/ported` fine-tunes from it.
"""

# The flags of `convert template`, apart from the dispatcher: absl flags are process-global, so
# only this subcommand imports them and the argparse subcommands never see them.

from absl import flags
from ml_collections import config_flags

PROGRAM = 'convert template'

_INPUT = flags.DEFINE_string('input', None, 'Course-template .ckpt or state-dict .pth file.')
_CONFIG = config_flags.DEFINE_config_file(
  'config', None, 'The architecture the checkpoint holds, e.g. configs/distilled.py'
)
_WORKDIR = flags.DEFINE_string('workdir', None, 'New run directory to write.')
flags.mark_flags_as_required(['input', 'config', 'workdir'])


def main(argv):
  from mtl_jax import experiment  # after flag parsing: keeps --help fast
  from mtl_jax.models import convert, template_checkpoint

  config = _CONFIG.value
  state_dict = convert.read_state_dict(_INPUT.value)  # first: a wrong file fails in a second
  model = experiment.build_model(config)
  report = template_checkpoint.load_template_state(
    model, config.model.arch, state_dict, source=_INPUT.value
  )
  workdir = experiment.save_run_start(config, model, _WORKDIR.value)
  print(report)
  print(
    f'wrote step 0 of a run to {workdir}; score it with python -m mtl_jax.evaluate '
    f'--workdir {workdir}'
  )
