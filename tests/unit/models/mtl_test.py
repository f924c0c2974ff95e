"""Encoder and joint model: torchvision-equal parameter counts, feature shapes, output split."""

import jax
import jax.numpy as jnp
import pytest
from conftest import tiny_joint_model
from flax import nnx

from mtl_jax.models import mtl, resnet

# torchvision's resnetN().parameters() total minus its fc layer (512·1000 + 1000 for basic
# blocks, 2048·1000 + 1000 for bottlenecks): 11,689,512 / 21,797,672 / 25,557,032 / 44,549,160.
TORCHVISION_TRUNK_PARAMS = {
  'resnet18': 11_689_512 - 513_000,
  'resnet34': 21_797_672 - 513_000,
  'resnet50': 25_557_032 - 2_049_000,
  'resnet101': 44_549_160 - 2_049_000,
}


def count_params(module_fn) -> int:
  abstract = nnx.eval_shape(module_fn)  # no allocation: counting ResNet-101 stays instant
  return sum(x.size for x in jax.tree.leaves(nnx.state(abstract, nnx.Param)))


@pytest.mark.parametrize('name', TORCHVISION_TRUNK_PARAMS)
def test_encoder_parameter_count_equals_torchvision(name):
  n = count_params(lambda: resnet.ENCODERS[name](rngs=nnx.Rngs(0)))
  assert n == TORCHVISION_TRUNK_PARAMS[name]


@pytest.mark.parametrize(
  'output_stride, strides', [(32, (4, 8, 16, 32)), (16, (4, 8, 16, 16)), (8, (4, 8, 8, 8))]
)
def test_features_are_named_and_dilation_keeps_resolution(output_stride, strides):
  encoder = resnet.ResNetTiny(output_stride=output_stride, rngs=nnx.Rngs(0))
  features = encoder(jnp.zeros((2, 64, 128, 3)))
  assert list(features) == ['stride4', 'stride8', 'stride16', 'stride32']
  for (name, f), s, ch in zip(features.items(), strides, (8, 16, 32, 64)):
    assert f.shape == (2, 64 // s, 128 // s, ch), name


def test_bad_output_stride_is_a_clear_error():
  with pytest.raises(ValueError, match='output_stride must be one of 32, 16, 8; got 4'):
    resnet.ResNetTiny(output_stride=4, rngs=nnx.Rngs(0))


def test_zero_init_residual_zeroes_last_bn_scale_of_each_block():
  encoder = resnet.ResNetTiny(zero_init_residual=True, rngs=nnx.Rngs(0))
  for stage in (encoder.layer1, encoder.layer2, encoder.layer3, encoder.layer4):
    for block in stage:
      assert float(jnp.abs(block.bn2.scale[...]).max()) == 0.0
      assert float(block.bn1.scale[...].min()) == 1.0


def test_joint_model_splits_classes_and_depth_at_input_resolution():
  model = tiny_joint_model(num_classes=5)
  out = model(jnp.zeros((2, 48, 96, 3), jnp.uint8))
  assert out['semseg'].shape == (2, 48, 96, 5)
  assert out['depth'].shape == (2, 48, 96)
  head = model.head(jnp.ones((1, 1, 1, 8)))  # depth is the channel after the C class logits
  assert head.shape[-1] == 6


def test_eval_mode_is_deterministic_and_independent_of_batch_mates():
  model = tiny_joint_model()
  model.eval()
  images = jax.random.randint(jax.random.key(0), (2, 32, 64, 3), 0, 255).astype(jnp.uint8)
  alone = model(images[:1])['depth']
  together = model(images)['depth'][:1]
  assert jnp.allclose(alone, together, atol=1e-5)


def test_unknown_architecture_lists_valid_names():
  with pytest.raises(ValueError, match="unknown architecture 'fused'; valid names: joint"):
    mtl.build_model('fused', seed=0)


@pytest.mark.parametrize('arch', ['joint', 'branched', 'distilled', 'single_task'])
@pytest.mark.parametrize('encoder', ['resnet_tiny', 'resnet18', 'resnet50'])
@pytest.mark.parametrize(
  'family,decoder',
  [('deeplabv3plus', 'deeplabv3plus'), ('deeplabv3plus', 'seed'), ('seed', 'deeplabv3plus')],
)
def test_the_last_shared_layer_is_a_conv_of_the_shared_modules(arch, encoder, family, decoder):
  head = mtl.HeadOptions(
    family=family, decoder=decoder, aspp_channels=8, decoder_channels=8, skip_channels=4
  )
  tasks = {'tasks': ('depth',)} if arch == 'single_task' else {}
  model = nnx.eval_shape(
    lambda: mtl.build_model(arch, seed=0, encoder=mtl.EncoderOptions(encoder), head=head, **tasks)
  )
  layer = mtl.last_shared_layer(arch, encoder, head)
  names = ['.'.join(map(str, path)) for path, _ in nnx.to_flat_state(nnx.state(model, nnx.Param))]
  under = [n for n in names if n.startswith('.'.join(layer) + '.')]
  assert under and {n.rsplit('.', 1)[1] for n in under} <= {'kernel', 'bias'}, (layer, under)
  shared = mtl.SHARED_MODULES[arch]
  assert shared is None or layer[0] in shared


def test_the_last_shared_layer_by_architecture():
  head = mtl.HeadOptions()
  assert mtl.last_shared_layer('branched', 'resnet18', head) == ('encoder', 'layer4', '1', 'conv2')
  assert mtl.last_shared_layer('distilled', 'resnet50', head) == ('encoder', 'layer4', '2', 'conv3')
  assert mtl.last_shared_layer('joint', 'resnet50', head) == (
    'branch',
    'decoder',
    'convs',
    '1',
    'conv',
  )
  seed = mtl.HeadOptions(family='seed')
  assert mtl.last_shared_layer('joint', 'resnet18', seed) == ('branch', 'decoder', 'conv3x3')
