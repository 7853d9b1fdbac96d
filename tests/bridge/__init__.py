"""The bridge tests: a package, so that its conftest does not shadow the other suites' (python/tests imports from its own conftest)."""
