#!/usr/bin/env python3
"""Checks that imports inside the ssvbench package run downward only.

Why: DESIGN.md's layering (CLI -> run-level drivers -> train / evaluators -> methods ->
models -> data / results) keeps a newcomer's reading order and lets a lower module be
tested without the machinery above it. This script reads every module with the standard
library's `ast` (no import is executed, so it is fast and works without JAX), builds the
graph of `ssvbench.*` imports -- module-level and function-level alike, since a lazy import
still ties the two modules together -- and reports

  * every import from a lower layer to a higher one, and
  * every import cycle (strongly connected component with more than one module).

Usage:  python tools/check_imports.py [--graph] [--root DIR]
Exit status 0 when clean, 1 when a violation is found.
"""

from __future__ import annotations

import argparse
import ast
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = "ssvbench"

# Layer of each module, by longest matching prefix; a lower number is a higher layer.
# A module may import its own layer or any layer below (a larger number), never above.
LAYERS: list[tuple[int, str, tuple[str, ...]]] = [
  (0, "cli", ("ssvbench.cli",)),
  (1, "run-level drivers", ("ssvbench.quickstart", "ssvbench.evaluate", "ssvbench.finetune",
                            "ssvbench.import_checkpoint", "ssvbench.benchmark",
                            "ssvbench.publish", "ssvbench.runs",
                            # what a run is made of and how a run reports: recipes and the
                            # config files naming them, the one-line failure type, runtime setup
                            "ssvbench.recipes", "ssvbench.config_keys", "ssvbench.configs", "ssvbench.failures",
                            "ssvbench.runtime")),
  (2, "train / evaluators", ("ssvbench.train", "ssvbench.evaluators")),
  (3, "methods", ("ssvbench.methods",)),
  (4, "models", ("ssvbench.models",)),
  (5, "data / results", ("ssvbench.data", "ssvbench.results")),
  # The floor every layer may use: config loading/validation, hashing, the package itself.
  (6, "foundation", ("ssvbench.config", "ssvbench.hashing", "ssvbench.splits", "ssvbench")),
]


def layer_of(module: str) -> tuple[int, str]:
  best = None
  for number, name, prefixes in LAYERS:
    for prefix in prefixes:
      # The package name itself stands for its __init__ only, so a new top-level module
      # must be placed in the table before the check passes.
      if module == prefix or (prefix != PACKAGE and module.startswith(prefix + ".")):
        if best is None or len(prefix) > best[0]:
          best = (len(prefix), number, name)
  if best is None:
    raise SystemExit(f"check_imports: module {module} is in no layer; add it to LAYERS")
  return best[1], best[2]


def set_root(root: pathlib.Path) -> None:
  global ROOT
  ROOT = pathlib.Path(root).resolve()


def module_files() -> dict[str, pathlib.Path]:
  files = {}
  for path in sorted((ROOT / PACKAGE).rglob("*.py")):
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
      parts = parts[:-1]
    files[".".join(parts)] = path
  return files


def resolve(name: str, modules: dict[str, pathlib.Path]) -> str | None:
  """The longest known module that `name` (a module or module.attribute) refers to."""
  while name:
    if name in modules:
      return name
    if "." not in name:
      return None
    name = name.rsplit(".", 1)[0]
  return None


def imports_of(module: str, path: pathlib.Path,
               modules: dict[str, pathlib.Path]) -> dict[str, int]:
  """Imported ssvbench modules -> first line number (every import, at any depth)."""
  tree = ast.parse(path.read_text(), filename=str(path))
  is_package = path.name == "__init__.py"
  found: dict[str, int] = {}
  for node in ast.walk(tree):
    names = []
    if isinstance(node, ast.Import):
      names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level:
        anchor = module.split(".")
        if not is_package:
          anchor = anchor[:-1]
        anchor = anchor[:len(anchor) - (node.level - 1)]
        base = ".".join(anchor + ([base] if base else []))
      # `from pkg import mod` imports the submodule pkg.mod when it exists.
      names = [f"{base}.{alias.name}" for alias in node.names] or [base]
    for name in names:
      if not name.startswith(PACKAGE):
        continue
      target = resolve(name, modules)
      if target and target != module:
        found.setdefault(target, node.lineno)
  return found


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
  """Strongly connected components of more than one module (Tarjan, iterative)."""
  index, low, stack, on_stack, result = {}, {}, [], set(), []
  counter = [0]

  def visit(root):
    work = [(root, iter(sorted(graph[root])))]
    index[root] = low[root] = counter[0]
    counter[0] += 1
    stack.append(root)
    on_stack.add(root)
    while work:
      node, children = work[-1]
      advanced = False
      for child in children:
        if child not in index:
          index[child] = low[child] = counter[0]
          counter[0] += 1
          stack.append(child)
          on_stack.add(child)
          work.append((child, iter(sorted(graph[child]))))
          advanced = True
          break
        if child in on_stack:
          low[node] = min(low[node], index[child])
      if advanced:
        continue
      work.pop()
      if work:
        low[work[-1][0]] = min(low[work[-1][0]], low[node])
      if low[node] == index[node]:
        component = []
        while True:
          member = stack.pop()
          on_stack.discard(member)
          component.append(member)
          if member == node:
            break
        if len(component) > 1:
          result.append(sorted(component))

  for node in sorted(graph):
    if node not in index:
      visit(node)
  return sorted(result)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--graph", action="store_true", help="print every module's imports")
  parser.add_argument("--root", type=pathlib.Path, default=ROOT,
                      help="the folder holding the ssvbench package (default: this checkout)")
  args = parser.parse_args(argv)
  set_root(args.root)
  modules = module_files()
  graph = {module: imports_of(module, path, modules) for module, path in modules.items()}
  problems = 0
  if args.graph:
    for module in sorted(graph):
      print(f"{module}: {', '.join(sorted(graph[module])) or '-'}")
  for module in sorted(graph):
    mine, my_name = layer_of(module)
    for target, line in sorted(graph[module].items()):
      theirs, their_name = layer_of(target)
      if theirs < mine:
        rel = modules[module].relative_to(ROOT)
        print(f"upward import: {rel}:{line} {module} ({my_name}) imports {target} "
              f"({their_name})")
        problems += 1
  for component in cycles(graph):
    print(f"import cycle: {' <-> '.join(component)}")
    problems += 1
  print(f"check_imports: {len(modules)} modules, "
        f"{sum(len(v) for v in graph.values())} imports, {problems} violation(s)")
  return 1 if problems else 0


if __name__ == "__main__":
  sys.exit(main())
