"""Fixtures shared by the test modules."""

import pytest
import torch

from rethinkgen.data import load


@pytest.fixture(scope="module")
def digits():
    """scikit-learn's digits as a rethinkgen Dataset (loaded once per module)."""
    return load("digits")


@pytest.fixture
def isolated_cache(tmp_path_factory, monkeypatch):
    """No test may see (or write into) a user's real cache: point RETHINKGEN_DATA at an empty folder."""
    monkeypatch.setenv("RETHINKGEN_DATA", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture
def one_thread():
    """One torch thread: tiny networks run fastest so, and the machine may be shared."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
