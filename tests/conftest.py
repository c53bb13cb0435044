"""Shared test fixtures (kept small)."""
import pytest
import torch


@pytest.fixture
def seeded():
    """Seed torch's global generator so a statistical test's samples are fixed."""
    torch.manual_seed(0)


@pytest.fixture(scope="session", autouse=True)
def single_thread():
    """Run the tests with one intra-op thread, then restore the setting.

    Tests on small tensors gain nothing from threads, and when another process shares the
    cores every parallel op waits for a descheduled thread: measured 40x slower on 2 cores.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
