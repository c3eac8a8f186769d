"""Top-level conftest: keeps the tests' helper modules importable from any invocation dir."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "tests"))
