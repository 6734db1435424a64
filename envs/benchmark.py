"""Measure rendered env steps per second (pixels every step), e.g. ``python -m envs.benchmark tworoom``.

Reports wall-clock steps/s and process CPU time per step; on a shared machine the CPU figure is the
load-independent one (llvmpipe renders on this process's threads, so it is counted).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import envs


def steps_per_second(
    name: str, steps: int = 3000, image_size: int = 64, action_repeat: int = 1
) -> tuple[float, float]:
    """(wall-clock env steps/s, CPU microseconds per step) of envs.make(name) under random actions."""
    env = envs.make(name, image_size=image_size, action_repeat=action_repeat, max_episode_steps=None)
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, size=(steps, env.action_space.shape[0])).astype(np.float32)  # (T, A)
    env.reset(seed=0)
    for a in actions[:100]:  # warm-up: renderer creation, caches
        env.step(a)
    wall, cpu = time.perf_counter(), time.process_time()
    for a in actions:
        env.step(a)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    env.close()
    return steps / wall, cpu / steps * 1e6


def main() -> None:
    """Print steps/s for the requested envs."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", default=list(envs.ALIASES))
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--action-repeat", type=int, default=1)
    args = parser.parse_args()
    for name in args.names:
        sps, cpu_us = steps_per_second(name, args.steps, args.image_size, args.action_repeat)
        print(
            f"{name}: {sps:.0f} env steps/s wall, {cpu_us:.0f} us CPU/step "
            f"(image_size={args.image_size}, action_repeat={args.action_repeat})"
        )


if __name__ == "__main__":
    main()
