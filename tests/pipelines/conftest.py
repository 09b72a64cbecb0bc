"""Fixtures of the pipeline tests; helpers live in modules named for what they hold."""
from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
for path in (HERE, ROOT):  # helper modules beside this file; `components` and `pipelines` at the repo root
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from s3_server import s3_server  # noqa: E402,F401  (fixture)
