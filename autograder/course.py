"""Where things live in a course repository (the layout the design fixes)."""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

HELPER_MODULE = "cnnkit.py"


@dataclass(frozen=True)
class Course:
    root: Path

    @classmethod
    def here(cls) -> Course:
        """The repository that contains this package."""
        return cls(Path(__file__).resolve().parent.parent)

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
        """The one helper module every notebook imports; it ships in every release folder."""
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


@functools.cache
def load_helper() -> ModuleType:
    """The trusted copy of the notebook helper module (``source/cnnkit.py``), for references."""
    path = Course.here().helper_module
    spec = importlib.util.spec_from_file_location("cnnkit_trusted", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
