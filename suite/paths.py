"""Where the project is: the repository root, for paths written relative to it (configs/, data
paths such as ``../shared/data/...``, the commit a result records). Imports nothing, so every
layer can import it."""

from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
