"""The package's shape: no import cycle (lazy imports inside functions count too), folders by role
that import only downward, only the train entry point importing the training loop, a short top
level, and no function over sixty lines."""

import ast
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
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


# --- the package's shape: folders by role, imports downward, small pieces -----------------------

# The role folders, lowest first: a module in one imports only from its own folder, folders
# before it, and the top-level library modules (which sit between them: experiment and trainer
# build on workdir/, reports/ and deploy/ build on experiment).
FOLDER_ORDER = (
  'runtime', 'balancing', 'data', 'models', 'config', 'workdir', 'reports', 'deploy', 'sweep',
  'study', 'convert',
)  # fmt: skip
MAX_TOP_LEVEL_LIBRARY = 12
MAX_FUNCTION_LINES = 60


def _folder(module: str) -> str | None:
  parts = module.split('.')
  return parts[1] if len(parts) > 2 and parts[1] in FOLDER_ORDER else None


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
  """'a → b' for every import from a folder into a later one (FOLDER_ORDER)."""
  found = []
  for module, imported in sorted(graph.items()):
    here = _folder(module)
    for target in sorted(imported):
      there = _folder(target)
      if here and there and FOLDER_ORDER.index(there) > FOLDER_ORDER.index(here):
        found.append(f'{module} → {target}')
  return found


def test_upward_imports_are_found():
  graph = {'mtl_jax.data.registry': {'mtl_jax.workdir.layout', 'mtl_jax.runtime.locks'}}
  assert upward_imports(graph) == ['mtl_jax.data.registry → mtl_jax.workdir.layout']


def test_no_folder_imports_from_a_later_one():
  assert upward_imports(import_graph(_modules())) == []


def _is_command(path: pathlib.Path) -> bool:
  """A command module (`python -m mtl_jax.<name>`), or a package with a __main__.py."""
  if path.is_dir():
    return (path / '__main__.py').is_file()
  return "if __name__ == '__main__':" in path.read_text()


def test_the_top_level_holds_commands_and_at_most_twelve_library_modules():
  top = [p for p in PACKAGE.glob('*.py') if p.name != '__init__.py']
  library = sorted(p.stem for p in top if not _is_command(p))
  assert len(library) <= MAX_TOP_LEVEL_LIBRARY, library
  commands = {p.stem for p in [*top, *PACKAGE.iterdir()] if _is_command(p)}
  assert commands == {
    'train', 'evaluate', 'predict', 'export', 'report', 'prepare_data', 'sweep', 'study',
    'convert',
  }  # fmt: skip


def long_functions(source: str, limit: int = MAX_FUNCTION_LINES) -> list[str]:
  """'name (N lines)' for every function or method longer than `limit` lines."""
  return [
    f'{node.name} ({node.end_lineno - node.lineno + 1} lines)'
    for node in ast.walk(ast.parse(source))
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
    and node.end_lineno - node.lineno + 1 > limit
  ]


def test_long_functions_are_found():
  body = ''.join(f'  x{i} = {i}\n' for i in range(MAX_FUNCTION_LINES))
  assert long_functions(f'def f():\n{body}') == [f'f ({MAX_FUNCTION_LINES + 1} lines)']
  assert long_functions(f'def f():\n{body[: body.rindex("  x")]}') == []


def test_no_library_function_is_longer_than_sixty_lines():
  found = {str(p.relative_to(REPO)): long_functions(p.read_text()) for p in PACKAGE.rglob('*.py')}
  assert {path: names for path, names in found.items() if names} == {}


def cli_calls(source: str) -> set[str]:
  """The `cli.<name>` attributes a module uses."""
  return {
    node.attr
    for node in ast.walk(ast.parse(source))
    if isinstance(node, ast.Attribute) and getattr(node.value, 'id', None) == 'cli'
  }


def test_cli_calls_are_found():
  assert cli_calls('cli.run(main, "x")\nwith cli.command("y"): pass\n') == {'run', 'command'}


# What a command opens with: nothing else may set up logging or turn errors into lines itself.
OPENINGS = {'run', 'command'}
OPENING_PARTS = {'setup', 'user_errors', 'start'}


def test_every_command_opens_through_the_one_cli_entry():
  dispatcher = PACKAGE / 'convert' / '__main__.py'  # its subcommands open in convert/
  entries = [
    p
    for p in PACKAGE.rglob('*.py')
    if "__name__ == '__main__'" in p.read_text() and p != dispatcher
  ]
  entries.append(PACKAGE / 'convert' / '__init__.py')  # cli.run for template, cli.command else
  assert len(entries) == 9
  for path in entries:
    assert cli_calls(path.read_text()) & OPENINGS, f'{path} does not open through cli.run/command'
  for path in PACKAGE.rglob('*.py'):
    if path.name != 'cli.py':
      assert not cli_calls(path.read_text()) & OPENING_PARTS, f'{path} opens by hand'
