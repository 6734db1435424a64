"""Shared test set-up: headless rendering, small thread counts, deterministic seeds."""

from __future__ import annotations

from envs.rendering import configure_headless

configure_headless()

import pytest  # noqa: E402
import torch  # noqa: E402

# Test models are tiny: one thread is fastest, and steady when other processes share the cores
# (torch's thread pool with 2 threads stalled tiny-model tests 20-100x on a loaded 2-core machine).
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
