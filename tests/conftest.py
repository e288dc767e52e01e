"""Fixtures shared by the test modules (opt in with ``pytestmark``)."""

from __future__ import annotations

import signal

import pytest
import torch


@pytest.fixture
def one_thread():
    """One torch thread, as a run's worker process has; the previous count is given back."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _sigint_restored():
    """Every test starts with Python's Ctrl-C handler: a handler left ignored by an in-process
    test is inherited by every process a later test starts (test_ctrl_c_... then sees exit 0)."""
    yield
    signal.signal(signal.SIGINT, signal.default_int_handler)
