"""Our 'seed' networks equal the study's own (a PyTorch transcription of its Listings 1–8 on the
course template's encoder), output for output, after the whole-model checkpoint conversion."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import seed_torch
from conftest import CONFIG_DIR
from flax import nnx

from mtl_jax.config import files
from mtl_jax.models import mtl, template_checkpoint

torch = pytest.importorskip('torch')

MAX_RELATIVE_L2 = 1e-4
ARCHS = ('joint', 'branched', 'distilled', 'distilled_deep')
# Every architecture at both dilated output strides on ResNet-18; ResNet-34 and -50 (the
# Bottleneck) on the deepest model, at both strides too.
CASES = [(a, 18, s) for a in ARCHS for s in (16, 8)] + [
  ('distilled_deep', d, s) for d in (34, 50) for s in (16, 8)
]


def ours(arch: str, depth: int, output_stride: int) -> nnx.Module:
  """Our model with the study's settings, unallocated (the conversion fills every variable)."""
  head = mtl.HeadOptions(
    family='seed', second_stage='deep' if arch == 'distilled_deep' else 'simple'
  )
  encoder = mtl.EncoderOptions(f'resnet{depth}', output_stride, 'template', zero_init_residual=True)
  name = 'distilled' if arch == 'distilled_deep' else arch
  return nnx.eval_shape(lambda: mtl.build_model(name, seed=0, encoder=encoder, head=head))


def _nhwc(x) -> np.ndarray:
  return x.detach().numpy().transpose(0, 2, 3, 1)


@pytest.mark.parametrize('arch, depth, output_stride', CASES)
def test_outputs_equal_the_study_after_conversion(arch, depth, output_stride):
  theirs = seed_torch.randomize(seed_torch.model(arch, depth, output_stride), seed=depth)
  state = {k: v.numpy() for k, v in theirs.state_dict().items()}
  model = ours(arch, depth, output_stride)
  name = 'distilled' if arch == 'distilled_deep' else arch
  report = template_checkpoint.load_template_state(model, name, state, source='template')
  assert len(report.loaded) == sum(not template_checkpoint.is_ignored(k) for k in state)
  model.eval()
  uint8, normalised = seed_torch.images()
  with torch.no_grad():
    expected = theirs(normalised)
  got = model(jnp.asarray(uint8))
  for task in ('semseg', 'depth'):
    stages = expected[task] if isinstance(expected[task], list) else [expected[task]]
    ours_stages = ([got['aux'][task]] if 'aux' in got else []) + [got[task]]
    for mine, reference in zip(ours_stages, stages, strict=True):
      reference = _nhwc(reference)
      mine = np.asarray(mine)
      if task == 'depth':
        mine = mine[..., None]
      assert mine.shape == reference.shape
      assert seed_torch.relative_l2(mine, reference) <= MAX_RELATIVE_L2, (
        task,
        seed_torch.relative_l2(mine, reference),
      )


@pytest.mark.parametrize('arch', ARCHS)
def test_parameter_counts_equal_the_study(arch):
  theirs = seed_torch.model(arch, 34, 16)
  count = sum(
    p.numel() for k, p in theirs.named_parameters() if not template_checkpoint.is_ignored(k)
  )
  model = ours(arch, 34, 16)
  assert sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param))) == count


def test_a_missing_or_unexpected_key_is_one_line_naming_it():
  theirs = seed_torch.model('joint', 18, 16)
  state = {f'net.{k}': v.numpy() for k, v in theirs.state_dict().items()}  # a Lightning ckpt
  template_checkpoint.load_template_state(ours('joint', 18, 16), 'joint', state, source='x.ckpt')
  del state['net.aspp.im_pool.2.running_var']
  with pytest.raises(ValueError, match=r"^x.ckpt: missing key 'aspp.im_pool.2.running_var' "):
    template_checkpoint.load_template_state(ours('joint', 18, 16), 'joint', state, source='x.ckpt')
  state['net.aspp.im_pool.2.running_var'] = state['net.aspp.im_pool.2.running_mean']
  state['net.decoder.extra.weight'] = state['net.decoder.conv_3x3.bias']
  with pytest.raises(ValueError, match=r"unexpected key 'decoder.extra.weight'"):
    template_checkpoint.load_template_state(ours('joint', 18, 16), 'joint', state, source='x.ckpt')


@pytest.mark.parametrize('path', sorted(CONFIG_DIR.glob('*.py')), ids=lambda p: p.stem)
def test_full_presets_build_the_study_networks(path):
  model = files.load_config_file(path, None).model
  assert (model.heads, model.block_dilation, model.output_stride) == ('seed', 'template', 16)
  assert model.zero_init_residual and model.aspp_channels == 256
