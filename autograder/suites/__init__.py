"""Hidden suites, one module per assignment (never shipped to students)."""
