"""pytest hooks and fixtures of pytest-omnilmm (work in progress)."""
