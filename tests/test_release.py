"""Is release/ exactly what nbgrader makes from source/, with no solution or hidden test in it?"""

from __future__ import annotations

import re

import pytest

from autograder.course import package_files
from autograder.notebook import read_source
from autograder.release import release


@pytest.fixture(scope="module")
def regenerated(course, tmp_path_factory):
    into = tmp_path_factory.mktemp("release")
    release(course.assignments(), course=course, into=into)
    return into


def test_regenerating_the_release_gives_the_committed_files_byte_for_byte(course, regenerated):
    for assignment in course.assignments():
        committed = sorted(
            p.relative_to(course.release_dir)
            for p in (course.release_dir / assignment).rglob("*")
            if p.is_file()
        )
        fresh = sorted(
            p.relative_to(regenerated) for p in (regenerated / assignment).rglob("*") if p.is_file()
        )
        assert committed == fresh
        for relative in committed:
            assert (course.release_dir / relative).read_bytes() == (
                regenerated / relative
            ).read_bytes(), f"{relative} is stale: run `python -m autograder release`"


def test_no_solution_code_or_hidden_test_text_in_the_release(course):
    hidden_sources = [
        p.read_text() for p in (course.root / "autograder" / "suites").glob("test_*.py")
    ]
    for assignment in course.assignments():
        public = {
            line.strip()
            for cell in read_source(course.source_notebook(assignment))
            for line in re.sub(
                r"### BEGIN SOLUTION.*?### END SOLUTION", "", cell.source, flags=re.DOTALL
            ).splitlines()
        }
        released = "\n".join(
            p.read_text() for p in (course.release_dir / assignment).rglob("*") if p.is_file()
        )
        assert not re.search(r"BEGIN SOLUTION|END SOLUTION|BEGIN HIDDEN TESTS", released)
        for cell in read_source(course.source_notebook(assignment)):
            if not cell.solution:
                continue
            body = cell.source.split("### BEGIN SOLUTION", 1)[-1].split("### END SOLUTION", 1)[0]
            for line in body.splitlines():
                line = line.strip()
                if len(line) > 25 and not line.startswith(("#", "return", "def ", '"""')):
                    assert line not in released, f"{assignment}: solution line leaked: {line}"
        for text in hidden_sources:
            for line in text.splitlines():
                line = line.strip()
                if (
                    len(line) > 40
                    and line not in public
                    and not line.startswith(("#", "import", "from"))
                ):
                    assert line not in released, f"{assignment}: hidden-suite line leaked: {line}"


def test_each_release_ships_the_helper_module_and_stubs(course):
    for assignment in course.assignments():
        folder = course.release_dir / assignment
        assert package_files(folder) == package_files(course.source_dir)
        assert not (folder / "cnnkit.py").exists()
        notebook = (folder / f"{assignment}.ipynb").read_text()
        assert "# TODO: your code here" in notebook and "raise NotImplementedError()" in notebook
        assert '"outputs": []' in notebook and '"execution_count": null' in notebook


def test_source_notebooks_have_no_outputs(course):
    import json

    for assignment in course.assignments():
        for cell in json.loads(course.source_notebook(assignment).read_text())["cells"]:
            assert not cell.get("outputs") and cell.get("execution_count") is None
