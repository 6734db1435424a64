"""Shared test set-up: headless rendering, small thread counts, deterministic seeds."""

from __future__ import annotations

import os

from worldmodel.rendering import configure_headless

configure_headless()

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
