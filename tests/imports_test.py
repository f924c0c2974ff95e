"""The package's import graph: no cycles (lazy imports inside functions count too), and only the
train entry point imports the training loop."""

import ast
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = REPO / 'mtl_jax'


def module_name(path: pathlib.Path) -> str:
  parts = path.relative_to(REPO).with_suffix('').parts
  return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def _modules() -> dict[str, pathlib.Path]:
  return {module_name(p): p for p in PACKAGE.rglob('*.py')}


def imports_of(path: pathlib.Path, known: set[str]) -> set[str]:
  """The package modules `path` imports anywhere in its body (`from a import b` counts as a.b
  when b is a module, else as a)."""
  found = set()
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.Import):
      found.update(alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
      for alias in node.names:
        submodule = f'{node.module}.{alias.name}'
        found.add(submodule if submodule in known else node.module)
  return {name for name in found if name in known}


def import_graph(paths: dict[str, pathlib.Path]) -> dict[str, set[str]]:
  known = set(paths)
  return {name: imports_of(path, known) - {name} for name, path in paths.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
  """One import cycle as [a, b, ..., a], or None."""
  state = {}  # name → 'active' while on the DFS stack, 'done' after

  def visit(node, stack):
    state[node] = 'active'
    for nxt in sorted(graph.get(node, ())):
      if state.get(nxt) == 'active':
        return stack[stack.index(nxt) :] + [nxt]
      if nxt not in state:
        cycle = visit(nxt, stack + [nxt])
        if cycle:
          return cycle
    state[node] = 'done'
    return None

  for start in sorted(graph):
    if start not in state:
      cycle = visit(start, [start])
      if cycle:
        return cycle
  return None


def test_find_cycle_finds_a_lazy_cycle_and_accepts_a_tree(tmp_path):
  assert find_cycle({'a': {'b'}, 'b': {'c'}, 'c': set()}) is None
  assert find_cycle({'a': {'b'}, 'b': {'c'}, 'c': {'a'}}) == ['a', 'b', 'c', 'a']
  # A function-level import is an edge too: that is how resnet ⇄ convert used to hide.
  (tmp_path / 'mtl_jax').mkdir()
  one, two = tmp_path / 'mtl_jax' / 'one.py', tmp_path / 'mtl_jax' / 'two.py'
  one.write_text('from mtl_jax import two\n')
  two.write_text('def f():\n  from mtl_jax import one\n')
  known = {'mtl_jax.one', 'mtl_jax.two'}
  graph = {'mtl_jax.one': imports_of(one, known), 'mtl_jax.two': imports_of(two, known)}
  assert find_cycle(graph) == ['mtl_jax.one', 'mtl_jax.two', 'mtl_jax.one']


def test_the_package_has_no_import_cycle():
  assert find_cycle(import_graph(_modules())) is None


@pytest.mark.parametrize('folder', ['mtl_jax', 'scripts'])
def test_only_the_train_entry_point_imports_the_training_loop(folder):
  known = set(_modules())
  importers = {
    module_name(p) if folder == 'mtl_jax' else p.name
    for p in (REPO / folder).rglob('*.py')
    if 'mtl_jax.trainer' in imports_of(p, known)
  }
  assert importers <= {'mtl_jax.train'}
