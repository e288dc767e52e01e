"""Fixtures shared by the test modules (opt in with ``pytestmark``)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture
def one_thread():
    """One torch thread, as a run's worker process has; the previous count is given back."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
