"""Hidden suites load the autograder's pytest plugin (fixtures ``student``, ``inputs``, ``check``)."""

pytest_plugins = ["autograder.pytest_plugin"]
