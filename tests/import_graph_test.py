"""The modules of landmark_ssl import each other without cycles, counting
imports inside functions too, and the analysis package is JAX-free."""

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "landmark_ssl"


def _module_name(path: pathlib.Path) -> str:
  parts = path.relative_to(ROOT).with_suffix("").parts
  return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict:
  """``{module: {landmark_ssl modules it imports anywhere in its code}}``."""
  modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
  graph = {}
  for name, path in modules.items():
    edges = set()
    for node in ast.walk(ast.parse(path.read_text())):
      targets = []
      if isinstance(node, ast.Import):
        targets = [a.name for a in node.names]
      elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        # ``from pkg import sub`` imports the submodule; ``from mod import
        # name`` the module.
        targets = [f"{node.module}.{a.name}"
                   if f"{node.module}.{a.name}" in modules else node.module
                   for a in node.names]
      for t in targets:
        while t and t not in modules:
          t = t.rpartition(".")[0]
        if t and t != name and t != "landmark_ssl":
          edges.add(t)
    graph[name] = edges
  return graph


def _cycle(graph):
  """One cycle as a list of modules, or None."""
  state, stack = {}, []

  def visit(node):
    state[node] = "open"
    stack.append(node)
    for nxt in sorted(graph.get(node, ())):
      if state.get(nxt) == "open":
        return stack[stack.index(nxt):] + [nxt]
      if nxt not in state:
        found = visit(nxt)
        if found:
          return found
    stack.pop()
    state[node] = "done"
    return None

  for node in sorted(graph):
    if node not in state:
      found = visit(node)
      if found:
        return found
  return None


def test_no_import_cycles():
  cycle = _cycle(import_graph())
  assert cycle is None, " -> ".join(cycle)


def test_the_cycle_finder_finds_one():
  assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
  assert _cycle({"a": {"b"}, "b": set()}) is None


def test_analysis_is_jax_free():
  for path in (PACKAGE / "analysis").glob("*.py"):
    for node in ast.walk(ast.parse(path.read_text())):
      names = ([a.name for a in node.names] if isinstance(node, ast.Import)
               else [node.module or ""] if isinstance(node, ast.ImportFrom)
               else [])
      assert not any(n.split(".")[0] in ("jax", "flax", "optax") for n in names), path
