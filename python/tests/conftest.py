"""pytest's view of reader_helpers.py: its fixture and hooks. The tests
import helpers from reader_helpers by name: every suite has a module named
conftest, and which one `import conftest` finds depends on the order of
the directories on pytest's command line."""
from reader_helpers import (broker, pytest_configure,  # noqa: F401
                            pytest_pyfunc_call)
