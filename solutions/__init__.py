"""Trusted reference implementations that the hidden suites use as oracles."""
