"""Procedural synthetic street scenes with exact semantic labels and metric z-depth.

`render_sample(index, split=..., seed=..., height=..., width=...)` is the dataset's entry point;
a sample is a pure function of (seed, split, index). `scene_for` and `render_scene` expose its two
steps (sampling a scene and camera, rendering them) for tests and hand-built scenes.

Modules: camera (pinhole, rays, screen rectangles), builder (primitives), layout and populate
(what goes where), objects (cars, people, poles, ...), palettes (colours), raycast (z-buffered
ray casting), textures and shading (deferred shading and the camera response), render.
"""

from mtl_jax.data.synthetic.render import (
  SPLITS,
  render_sample,
  render_scene,
  sample_scene,
  scene_for,
)

__all__ = ['render_sample', 'render_scene', 'sample_scene', 'scene_for', 'SPLITS']
