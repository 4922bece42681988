"""Where things live in a course repository (the layout the design fixes)."""

from __future__ import annotations

import functools
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

HELPER_MODULE = "cnnkit"  # a package: one module per concern


@dataclass(frozen=True)
class Course:
    root: Path

    @classmethod
    def here(cls) -> Course:
        """The repository that contains this package."""
        return cls(Path(__file__).resolve().parent.parent)

    @classmethod
    def find(cls, root: str | Path | None = None) -> Course:
        """The course at ``root`` (or ``$AUTOGRADER_COURSE``), else the one around the cwd.

        A course root holds ``nbgrader_config.py``, ``rubrics/`` and ``source/``.
        Without a root given, the current directory and its parents are searched;
        failing that, the repository that contains this package is the course.
        """
        root = root or os.environ.get("AUTOGRADER_COURSE") or None
        if root is not None:
            path = Path(root).expanduser().resolve()
            if not (path / "rubrics").is_dir() or not (path / "source").is_dir():
                raise ValueError(f"--course {root}: no course there (no rubrics/ and source/)")
            return cls(path)
        for folder in [Path.cwd(), *Path.cwd().parents]:
            if (folder / "nbgrader_config.py").is_file() and (folder / "rubrics").is_dir():
                return cls(folder)
        return cls.here()

    @property
    def source_dir(self) -> Path:
        return self.root / "source"

    @property
    def release_dir(self) -> Path:
        return self.root / "release"

    @property
    def rubrics_dir(self) -> Path:
        return self.root / "rubrics"

    @property
    def helper_module(self) -> Path:
        """The helper package every notebook imports; it ships in every release folder."""
        return self.source_dir / HELPER_MODULE

    def rubric_path(self, assignment: str) -> Path:
        return self.rubrics_dir / f"{assignment}.yaml"

    def source_notebook(self, assignment: str) -> Path:
        return self.source_dir / assignment / f"{assignment}.ipynb"

    def release_notebook(self, assignment: str) -> Path:
        return self.release_dir / assignment / f"{assignment}.ipynb"

    def assignments(self) -> list[str]:
        """Assignments that have both a source notebook and a rubric."""
        return sorted(
            path.stem
            for path in self.rubrics_dir.glob("*.yaml")
            if self.source_notebook(path.stem).exists()
        )

    def require(self, assignment: str) -> None:
        if assignment not in self.assignments():
            known = ", ".join(self.assignments()) or "none"
            raise ValueError(f"unknown assignment '{assignment}' (known: {known})")


def package_files(folder: Path, name: str = HELPER_MODULE) -> dict[str, str]:
    """``{"cnnkit/<module>.py": text}`` for the helper package in ``folder``."""
    root = folder / name
    return {
        f"{name}/{path.relative_to(root).as_posix()}": path.read_text()
        for path in sorted(root.rglob("*.py"))
        if "__pycache__" not in path.parts
    }


def copy_package(source: Path, target: Path) -> None:
    """Replace ``target`` (a folder, or the link nbgrader copied from source/) by a copy of ``source``."""
    import shutil

    if target.is_symlink() or target.is_file():
        target.unlink()
    elif target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


@functools.cache
def load_helper() -> ModuleType:
    """The trusted copy of the notebook helper package (``source/cnnkit``), for references."""
    path = Course.here().helper_module
    spec = importlib.util.spec_from_file_location(
        "cnnkit_trusted", path / "__init__.py", submodule_search_locations=[str(path)]
    )
    module = importlib.util.module_from_spec(spec)
    import sys

    sys.modules[spec.name] = module  # its submodules import each other relatively
    spec.loader.exec_module(module)
    return module
