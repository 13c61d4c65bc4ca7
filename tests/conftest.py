"""Fixtures shared by the test modules that ask for them (``pytest.mark.usefixtures``)."""

import matplotlib.pyplot as plt
import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """Tiny networks: several threads only wait for each other, much slower on a busy 2-core
    machine. One thread for the module; the previous count is restored afterwards."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def close_figures():
    """Close every matplotlib figure a test opened."""
    yield
    plt.close("all")
