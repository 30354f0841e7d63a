from __future__ import annotations

import sys
from pathlib import Path

# The runner's test kit (fake worker, in-process harness) is imported as `runner_testkit`.
sys.path.insert(0, str(Path(__file__).parent))
