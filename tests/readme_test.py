"""README.md is true: every ```python block runs, and every command it shows
names a tool, flags, config keys, experiment files and install extras that
exist. A README that drifts from the code fails here.

* Python blocks are executed in a fresh namespace, in an empty directory;
  one that reads ``runs/quick`` (the quick start's run) finds there the tiny
  trained ``blocks/small`` run of ``conftest.tiny_blocks_run``.
* Shell commands (```bash blocks, continuation lines joined, ``[...]``
  optional parts included) are checked, not run: ``python -m
  landmark_ssl.<tool>`` must be a module whose absl flags include each
  ``--flag`` of the line (listed once, in one subprocess that loads every
  tool as ``python -m`` would, without running it); ``--config=FILE:ARG``
  must build; ``--config.KEY=``, ``--override=KEY=``, ``--grid=KEY=`` and
  ``--by=KEY`` must name config keys; ``pip install`` extras and files
  must exist; any other program must come from an extra the README installs.
* Inline ``--config.KEY=VALUE`` spans in the prose name existing keys, and
  inline ``--flag`` / ``<tool> --flag`` spans flags some tool (that tool)
  defines.
"""

import dataclasses
import json
import os
import pathlib
import re
import shlex
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from packaging.requirements import Requirement

from landmark_ssl import configs

REPO = pathlib.Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
QUICK_RUN = "runs/quick"  # the quick start's --workdir
# Programs of the system or a cluster, not of a Python package: the README
# may run them without installing them.
SYSTEM_PROGRAMS = {"sbatch": "SLURM", "srun": "SLURM", "gcloud": "Google Cloud"}


# --------------------------------------------------------------------------
# reading the README


@dataclasses.dataclass(frozen=True)
class Block:
  language: str
  code: str
  line: int  # 1-based line of the opening fence


def code_blocks(text: str) -> list[Block]:
  """The fenced code blocks of a markdown text (indented ones, as in list
  items, included and dedented)."""
  blocks, lines = [], text.splitlines()
  i = 0
  while i < len(lines):
    match = re.match(r"^\s*```(\w*)\s*$", lines[i])
    if match:
      end = i + 1
      while end < len(lines) and not lines[end].lstrip().startswith("```"):
        end += 1
      code = textwrap.dedent("\n".join(lines[i + 1:end]) + "\n")
      blocks.append(Block(match[1], code, i + 1))
      i = end
    i += 1
  return blocks


def commands(code: str) -> list[list[str]]:
  """The commands of a shell block as token lists: continuation lines
  joined, comments dropped, the brackets of ``[--optional]`` parts and the
  ``|`` between alternatives removed, and ``NAME=value`` environment
  settings before the program left out."""
  out = []
  for line in code.replace("\\\n", " ").splitlines():
    tokens = []
    for token in shlex.split(line, comments=True):
      token = token.removeprefix("[")
      if "[" not in token:  # keep the brackets of `.[extra]`
        token = token.removesuffix("]")
      if token and token != "|":
        tokens.append(token)
    while tokens and re.fullmatch(r"[A-Za-z_]\w*=\S*", tokens[0]):
      tokens.pop(0)
    if tokens:
      out.append(tokens)
  return out


def flag_name(token: str) -> str | None:
  """``'--a.b=c'`` -> ``'a.b'``; ``None`` for a token that is not a flag."""
  if not token.startswith("--"):
    return None
  return token[2:].split("=", 1)[0]


def flag_value(token: str) -> str:
  return token.split("=", 1)[1] if "=" in token else ""


def inline_spans(text: str) -> list[str]:
  """The inline code spans of the prose (fenced blocks left out)."""
  prose = re.sub(r"^\s*```.*?^\s*```", "", text, flags=re.S | re.M)
  return re.findall(r"`([^`\n]+)`", prose)


BLOCKS = code_blocks(README)
PYTHON_BLOCKS = [b for b in BLOCKS if b.language == "python"]
SHELL_COMMANDS = [c for b in BLOCKS if b.language in ("bash", "sh", "shell")
                  for c in commands(b.code)]
TOOL_COMMANDS = [c for c in SHELL_COMMANDS if c[:2] == ["python", "-m"]
                 and c[2].startswith("landmark_ssl")]


def test_the_readme_has_what_this_test_reads():
  assert len(PYTHON_BLOCKS) >= 1
  assert len(TOOL_COMMANDS) >= 10
  assert {c[2] for c in TOOL_COMMANDS} >= {
      "landmark_ssl.main", "landmark_ssl.sweep", "landmark_ssl.report",
      "landmark_ssl.evaluate", "landmark_ssl.predict"}


def test_indented_blocks_are_read():
  text = "- item\n\n  ```bash\n  python -m a.b --c=1\n  ```\n\n`--d` x\n"
  assert code_blocks(text) == [Block("bash", "python -m a.b --c=1\n", 3)]
  assert inline_spans(text) == ["--d"]


def test_commands_parse_optional_parts_and_continuations():
  code = ("python -m x.y --a=1 \\\n    [--b='p q' | --c] pos  # note --d\n"
          "# a comment line\n"
          'pip install -e ".[test]" [--e=1,2]\n'
          "A_B=1 c=x ray start --head\n")
  assert commands(code) == [
      ["python", "-m", "x.y", "--a=1", "--b=p q", "--c", "pos"],
      ["pip", "install", "-e", ".[test]", "--e=1,2"],
      ["ray", "start", "--head"]]
  assert flag_name("--config.model.beta=3") == "config.model.beta"
  assert flag_name("photos/*.jpg") is None


# --------------------------------------------------------------------------
# python blocks


@pytest.mark.parametrize("block", PYTHON_BLOCKS,
                         ids=[f"line{b.line}" for b in PYTHON_BLOCKS])
def test_python_block_runs(block, request, tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  if QUICK_RUN in block.code:
    run = request.getfixturevalue("tiny_blocks_run")
    (tmp_path / QUICK_RUN).parent.mkdir(parents=True)
    (tmp_path / QUICK_RUN).symlink_to(run.workdir, target_is_directory=True)
  namespace = {"__name__": "__readme__"}
  exec(compile(block.code, f"README.md:{block.line}", "exec"), namespace)  # pylint: disable=exec-used
  # What the blocks promise, where they name it.
  if "cost" in namespace:
    assert np.isfinite(float(namespace["cost"]))
    assert namespace["grads"].shape == namespace["images"].shape
  if "landmarks" in namespace:
    landmarks = np.asarray(namespace["landmarks"])
    assert landmarks.shape == (len(namespace["images"]),
                               namespace["run"].num_landmarks, 2)
    assert np.all(np.isfinite(landmarks))


# --------------------------------------------------------------------------
# the tools and their flags

# Lists each tool's absl flags as `python -m <tool>` defines them (at
# import or in its `if __name__ == "__main__":` part) without running it:
# absl's app.run is replaced by a stop. Flags and landmark_ssl modules a
# tool brought in are removed before the next one.
_LIST_FLAGS = r"""
import json, runpy, sys
from absl import app, flags

class Stop(Exception):
  pass

def stop(*args, **kwargs):
  raise Stop()

app.run = stop
base, out = set(flags.FLAGS), {}
for tool in sys.argv[1:]:
  modules = set(sys.modules)
  try:
    runpy.run_module(tool, run_name="__main__", alter_sys=True)
  except Stop:
    pass
  new = sorted(set(flags.FLAGS) - base)
  out[tool] = {name: flags.FLAGS[name].boolean for name in new}
  for name in new:
    delattr(flags.FLAGS, name)
  for name in set(sys.modules) - modules:
    if name.startswith("landmark_ssl"):
      del sys.modules[name]
print("FLAGS" + json.dumps(out))
"""


@pytest.fixture(scope="module")
def tool_flags() -> dict[str, dict[str, bool]]:
  """``{tool module: {flag: is boolean}}`` of every tool the README runs."""
  tools = sorted({c[2] for c in TOOL_COMMANDS})
  proc = subprocess.run([sys.executable, "-c", _LIST_FLAGS, *tools],
                        capture_output=True, text=True, cwd=REPO, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  line = [l for l in proc.stdout.splitlines() if l.startswith("FLAGS")][-1]
  return json.loads(line[len("FLAGS"):])


def _accepts(flags_of_tool: dict[str, bool], name: str) -> bool:
  if name in flags_of_tool:
    return True
  # --nofoo for a boolean foo; --config.<key> overrides of a config flag.
  if name.startswith("no") and flags_of_tool.get(name[2:]):
    return True
  return "." in name and name.split(".", 1)[0] in flags_of_tool


def test_tool_flags_fixture_sees_both_ways_of_defining_flags(tool_flags):
  # main defines its flags at import, evaluate in its __main__ part.
  assert {"config", "workdir", "seeds"} <= set(tool_flags["landmark_ssl.main"])
  assert {"workdir", "splits"} <= set(tool_flags["landmark_ssl.evaluate"])
  assert "seeds" not in tool_flags["landmark_ssl.evaluate"]


@pytest.mark.parametrize("command", TOOL_COMMANDS,
                         ids=[" ".join(c[2:4]) for c in TOOL_COMMANDS])
def test_tool_exists_and_takes_the_flags(command, tool_flags):
  tool = command[2]
  flags_of_tool = tool_flags[tool]
  unknown = [t for t in command[3:]
             if flag_name(t) and not _accepts(flags_of_tool, flag_name(t))]
  assert not unknown, (
      f"README: `python -m {tool}` does not define {unknown}; its flags are "
      f"{sorted(flags_of_tool)}")


def _every_config():
  """Every experiment's config, for every model it offers (default costs)."""
  out = []
  for path in sorted((REPO / "experiments").glob("*.py")):
    exp = configs.load_experiment(str(path))
    for model, costs in exp.MODELS.items():
      out.append(exp.get_config(f"model={model},costs={costs[0]}"))
  return out


def _has_key(config, key: str) -> bool:
  node = config
  for part in key.split("."):
    if not hasattr(node, "keys") or part not in node.keys():
      return False
    node = node[part]
  return True


def _experiment_config(command):
  """The config of a command's ``--config=FILE[:ARG]`` (built, as main
  would), or ``None`` without one."""
  for token in command:
    if flag_name(token) == "config":
      file, _, arg = flag_value(token).partition(":")
      assert (REPO / file).is_file(), f"README names a missing {file}"
      return configs.load_experiment(str(REPO / file)).get_config(arg or None)
  return None


@pytest.mark.parametrize("command", TOOL_COMMANDS,
                         ids=[" ".join(c[2:4]) for c in TOOL_COMMANDS])
def test_config_arguments_build_and_keys_exist(command):
  config = _experiment_config(command)
  candidates = [config] if config is not None else _every_config()
  keys = []
  for token in command[3:]:
    name = flag_name(token)
    if name and name.startswith("config."):
      keys.append(name[len("config."):])
    elif name in ("override", "grid"):
      keys.append(flag_value(token).split("=", 1)[0])
    elif name == "by" and flag_value(token) != "KEY":
      keys.append(flag_value(token))
  for key in keys:
    assert any(_has_key(c, key) for c in candidates), (
        f"README: {' '.join(command[:4])}: config key {key!r} does not exist")


def test_inline_config_overrides_name_existing_keys():
  every = _every_config()
  spans = [s for s in inline_spans(README) if s.startswith("--config.")]
  assert spans
  for span in spans:
    for token in span.split():
      if "=" not in token:
        continue  # a placeholder such as `--config.x`
      key = flag_name(token)[len("config."):]
      assert any(_has_key(c, key) for c in every), (
          f"README: `{span}`: config key {key!r} does not exist")


def test_inline_flags_are_defined(tool_flags):
  short = {tool.rsplit(".", 1)[-1]: tool for tool in tool_flags}
  for span in inline_spans(README):
    tokens = span.split()
    tool = short.get(tokens[0])
    if tool is None and not tokens[0].startswith("--"):
      continue
    for token in tokens:
      name = flag_name(token)
      if not name or name.startswith("config."):
        continue
      owners = [tool] if tool else list(tool_flags)
      assert any(_accepts(tool_flags[t], name) for t in owners), (
          f"README: `{span}`: no {'tool' if tool is None else tool} "
          f"defines --{name}")


# --------------------------------------------------------------------------
# installs and other programs


def _extras() -> dict[str, list[str]]:
  tomllib = pytest.importorskip("tomllib")
  project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
  return project.get("optional-dependencies", {})


def _pip_installs():
  return [c for c in SHELL_COMMANDS if c[:4] == ["python", "-m", "pip",
                                                 "install"]]


def test_pip_installs_name_existing_extras_and_files():
  assert _pip_installs()
  extras = _extras()
  named = 0
  for command in _pip_installs():
    for i, token in enumerate(command):
      match = re.fullmatch(r"\.\[([\w,-]+)\]", token)
      if match:
        for extra in match[1].split(","):
          assert extra in extras, f"README installs a missing extra {extra!r}"
          named += 1
      if token == "-r":
        assert (REPO / command[i + 1]).is_file(), command
  assert named >= 2  # the quick start's `test`, TensorBoard's
  # Also those shown as alternatives in comments or prose.
  files = re.findall(r"pip install -r (\S+)", README)
  assert "requirements-lock.txt" in files
  for file in files:
    assert (REPO / file).is_file(), f"README installs a missing {file}"


def test_other_programs_come_from_an_extra_the_readme_installs():
  extras = _extras()
  installed = set()
  for command in _pip_installs():
    for token in command:
      match = re.fullmatch(r"\.\[([\w,-]+)\]", token)
      if match:
        installed.update(match[1].split(","))
  provided = {Requirement(r).name: extra for extra in installed
              for r in extras.get(extra, [])}
  programs = {c[0] for c in SHELL_COMMANDS
              if c[0] != "python" and c[0] not in SYSTEM_PROGRAMS}
  assert "tensorboard" in programs
  for program in programs:
    assert program in provided, (
        f"README runs `{program}`, which no extra it installs provides "
        f"(installed extras: {sorted(installed)})")
