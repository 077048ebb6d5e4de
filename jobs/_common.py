"""Shared by the job scripts: make the package importable from ``--working-dir .``."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # a job's working dir is uploaded as-is; the package sits at its root
    sys.path.insert(0, str(ROOT))
