"""python -m mtl_jax.sweep --config configs/joint.py:cpu --root runs/architectures \\
  --sweep sweeps/architectures.py

The README's results: the study's architectures (its sections 1.2-1.3) and networks at the
laptop size (`cpu`: ResNet-18, 96×192 crops, 7 epochs of 2,000 images, Adam at 1e-2). Three
runs; the README's table gives each one's wall time.
The distilled model is the quick start's (64-channel heads, chosen when its DeepLabV3+ step cost
1.7× the joint one at 128 channels on a CPU). Adding the single-task baselines
(`{'model.arch': 'single_task', 'model.tasks': ('semseg',), ...}`) gives the report's Δm column.
"""

# The quick start's model (configs/distilled.py:cpu): 64-channel heads, semseg weighted 0.7.
QUICK_START = {
  'model.arch': 'distilled',
  'model.aspp_channels': 64,
  'model.decoder_channels': 64,
  'loss.semseg_weight': 0.7,
  'loss.depth_weight': 0.3,
}


def get_sweep() -> list[dict]:
  return [QUICK_START, {'model.arch': 'joint'}, {'model.arch': 'branched'}]
