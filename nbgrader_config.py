"""nbgrader settings for the course (nbgrader reads this file from the repo root)."""

c = get_config()  # noqa: F821  (injected by traitlets when nbgrader loads this file)

c.CourseDirectory.course_id = "cnn-module-06"
c.CourseDirectory.root = "."
c.CourseDirectory.source_directory = "source"
c.CourseDirectory.release_directory = "release"
c.CourseDirectory.submitted_directory = "submitted"
c.CourseDirectory.autograded_directory = "autograded"
c.CourseDirectory.feedback_directory = "feedback"
c.CourseDirectory.db_url = "sqlite:///gradebook.db"
# Helper modules and data next to a notebook are released with it.
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "data"]

# The stub students see in place of each solution.
c.ClearSolutions.code_stub = {"python": "# TODO: your code here\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# Library warnings on stderr (torchvision, matplotlib, ...) must not zero a cell
# when nbgrader's own autograde runs the visible checks.
c.IgnorePattern.enabled = True
c.IgnorePattern.pattern = r"(Warning|WARNING|warn\()"

c.Execute.timeout = 600
