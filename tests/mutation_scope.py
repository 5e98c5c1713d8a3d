"""What `make mutants` would mutate: the Makefile's ATOMIC patterns against the adapters' code.

mutmut skips a pattern that matches no mutant without a word, and mutates only the files that
`[tool.mutmut] only_mutate` names. So a step renamed, or moved to a module that list leaves out,
silently leaves the mutation run: by 2026-12-05 four of the Makefile's patterns named steps gone
since, one named a file mutmut never mutated, and the SQL stores' locks and guards had moved to
modules none named. tests/test_mutation_scope.py holds every pattern to a function mutmut would
mutate, from the source alone (a mutation run takes hours).
"""

import ast
import fnmatch
import subprocess
import tomllib
from pathlib import Path

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
    functions = (ast.FunctionDef, ast.AsyncFunctionDef)
    names = []
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, functions):
            names.append(f"{module}.x_{node.name}")
        elif isinstance(node, ast.ClassDef):
            names += [
                f"{module}.xǁ{node.name}ǁ{f.name}" for f in node.body if isinstance(f, functions)
            ]
    return names


def unmatched(patterns: list[str], globs: list[str]) -> list[str]:
    """The patterns that match no function of a file mutmut mutates."""
    mutated = [
        path
        for path in sorted((ROOT / "adapters").rglob("*.py"))
        if any(fnmatch.fnmatchcase(path.relative_to(ROOT).as_posix(), g) for g in globs)
    ]
    names = [f"{prefix}__mutmut_1" for path in mutated for prefix in mutant_prefixes(path)]
    return [p for p in patterns if not any(fnmatch.fnmatchcase(name, p) for name in names)]
