"""What `make mutants` would mutate: the Makefile's ATOMIC patterns against the adapters' code.

mutmut skips a pattern that matches no mutant without a word, and mutates only the files that
`[tool.mutmut] only_mutate` names. So a step renamed, or moved to a module that list leaves out,
silently leaves the mutation run: by 2026-12-05 four of the Makefile's patterns named steps gone
since, one named a file mutmut never mutated, and the SQL stores' locks and guards had moved to
modules none named. tests/test_mutation_scope.py holds every pattern to a function mutmut would
mutate, from the source alone (a mutation run takes hours).

mutmut runs each mutant in a process forked from one that has imported the code and run the
tests: what a function built at import (a statement as a module constant), or cached since, was
built by the code unmutated, and its mutants would all survive (on 2026-12-05 the batch
statement's builders did). So no step the patterns name may run at import (`run_at_import`, in
a fresh interpreter), and under mutmut each test starts with the builders' caches empty
(tests/conftest.py).
"""

import ast
import fnmatch
import importlib
import inspect
import subprocess
import sys
import tomllib
from pathlib import Path
from types import FrameType
from typing import Any, TypeGuard

ROOT = Path(__file__).resolve().parent.parent


def atomic_patterns() -> list[str]:
    """The Makefile's ATOMIC, as make expands it."""
    printed = subprocess.run(
        ["make", "-s", "--no-print-directory", "--eval", "atomic: ; @echo $(ATOMIC)", "atomic"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [pattern.strip("'") for pattern in printed.split()]


def mutated_files() -> list[str]:
    """`[tool.mutmut] only_mutate`: globs of the files mutmut mutates."""
    with open(ROOT / "pyproject.toml", "rb") as pyproject:
        globs: list[str] = tomllib.load(pyproject)["tool"]["mutmut"]["only_mutate"]
    return globs


def mutant_prefixes(path: Path) -> list[str]:
    """How mutmut names the mutants of each function of a module, up to `__mutmut_N`:
    `module.x_function`, `module.xǁClassǁmethod`."""
    module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    names = []
    for node in ast.parse(path.read_text()).body:
        if _mutated(node):
            names.append(f"{module}.x_{node.name}")
        elif isinstance(node, ast.ClassDef):
            names += [f"{module}.xǁ{node.name}ǁ{f.name}" for f in node.body if _mutated(f)]
    return names


def _mutated(node: ast.stmt) -> TypeGuard[ast.FunctionDef | ast.AsyncFunctionDef]:
    """Whether mutmut mutates this: a function, not decorated (@cache) but for @staticmethod or
    @classmethod."""
    if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        return False
    names = [d.id for d in node.decorator_list if isinstance(d, ast.Name)]
    return not node.decorator_list or names in (["staticmethod"], ["classmethod"])


def unmatched(patterns: list[str], globs: list[str]) -> list[str]:
    """The patterns that match no function of a file mutmut mutates."""
    mutated = [
        path
        for path in sorted((ROOT / "adapters").rglob("*.py"))
        if any(fnmatch.fnmatchcase(path.relative_to(ROOT).as_posix(), g) for g in globs)
    ]
    names = [f"{prefix}__mutmut_1" for path in mutated for prefix in mutant_prefixes(path)]
    return [p for p in patterns if not any(fnmatch.fnmatchcase(name, p) for name in names)]


def run_at_import(globs: list[str]) -> list[str]:
    """The functions of the files mutmut mutates that run while the service's code is imported,
    as mutmut names them (up to `__mutmut_N`), from a fresh interpreter."""
    printed = subprocess.run(
        [sys.executable, "-m", "tests.mutation_scope", *globs],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return printed.split()


def _print_run_at_import(globs: list[str]) -> None:
    files = {
        str(path)
        for path in (ROOT / "adapters").rglob("*.py")
        if any(fnmatch.fnmatchcase(path.relative_to(ROOT).as_posix(), g) for g in globs)
    }
    ran = set()

    def calls(frame: FrameType, event: str, arg: Any) -> None:
        code = frame.f_code
        # Functions only (not class bodies, which run like calls), and not comprehensions.
        function = code.co_flags & inspect.CO_NEWLOCALS and not code.co_name.startswith("<")
        if event == "call" and code.co_filename in files and function:
            module = ".".join(Path(code.co_filename).relative_to(ROOT).with_suffix("").parts)
            owner, _, name = code.co_qualname.rpartition(".")
            if "<locals>" not in owner:
                ran.add(f"{module}.xǁ{owner}ǁ{name}" if owner else f"{module}.x_{name}")

    sys.setprofile(calls)
    importlib.import_module("entrypoints.container")
    for path in sorted(files):
        importlib.import_module(".".join(Path(path).relative_to(ROOT).with_suffix("").parts))
    sys.setprofile(None)
    print("\n".join(sorted(ran)))


if __name__ == "__main__":
    _print_run_at_import(sys.argv[1:])
