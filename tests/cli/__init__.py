"""Tests of the expbus CLI (ls, stat, top). A package, so that its
conftest does not take the module name 'conftest' from tests/e2e, whose
tests import from theirs."""
