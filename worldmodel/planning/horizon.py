"""How far ahead a world model may be asked to imagine: the planner's reach against what its predictor was trained on.

A predictor trained on clips of T frames (``data.clip_len``) has learnt to predict frames at time positions 1..T-1,
i.e. ``trained_horizon`` = T-1 predictor steps (each ``frameskip`` env steps) ahead of one observed frame. A plan
of H predictor steps from C observed frames asks for positions up to C+H-1; beyond T-1 the predictor runs on time
positions it never saw and its errors grow unchecked (a diagnostic saw the proprio head go from 4 to 38 px between
steps 7 and 10 of a predictor trained on 8-frame clips). Such a plan is refused unless the user allows it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

ALLOW_KEY = "agent.allow_long_horizon"

log = logging.getLogger(__name__)


def trained_horizon(meta: Mapping[str, Any] | None) -> int | None:
    """Predictor steps ahead of one observed frame the world model was trained to predict (its meta's
    ``trained_horizon``), or None for a world model saved before it was recorded."""
    value = (meta or {}).get("trained_horizon")
    return None if value is None else int(value)


def check_planning_horizon(
    horizon: int,
    context_frames: int,
    trained: int | None,
    frameskip: int,
    allow: bool = False,
    allow_key: str = ALLOW_KEY,
    prefix: str = "",
    clip_key: str = "data.clip_len",
) -> None:
    """Raise ValueError when a plan of ``horizon`` predictor steps from ``context_frames`` observed frames reaches
    past the ``trained`` predictor steps (None: unknown, never refused); ``allow`` plans anyway. The message names
    the settings as evaluate's config spells them behind ``prefix`` (``evaluate.`` in the pipeline), the predictor's
    clip length as ``clip_key`` and the override that allows the plan as ``allow_key``."""
    if trained is None or allow:
        return
    c = max(1, int(context_frames))
    reach = c + int(horizon) - 1  # furthest time position the predictor is asked to produce
    if reach <= trained:
        return
    k = int(frameskip)
    more = f" (or {prefix}agent.context_frames)" if c > 1 else ""
    raise ValueError(
        f"{prefix}planner.horizon={horizon} predictor steps ({horizon * k} env steps at frameskip {k}) after "
        f"{c} context frame(s) needs {reach + 1} frames of the predictor, but it was trained on clips of "
        f"{trained + 1} frames (at most {trained} predictor steps, {trained * k} env steps, ahead of one context "
        f"frame); beyond that its errors grow unchecked. Lower {prefix}planner.horizon to <= {trained - c + 1}{more}, "
        f"train the predictor with {clip_key} >= {reach + 1}, or set {allow_key}=true to plan that far anyway"
    )


def check_world_model_horizon(
    wm: Any, horizon: int, context_frames: int = 1, allow: bool = False, allow_key: str = ALLOW_KEY
) -> None:
    """check_planning_horizon for a loaded world model (its meta and frameskip), and a WARNING on stderr when its
    training found it no better than copy-last at the step a last-step goal cost reads (``horizon``; a model worse
    only at earlier steps plans fine, e.g. one trained on raw latents at step 1). World models saved before the
    trained horizon was recorded in their meta are not refused: what they were trained on is not known for
    certain."""
    meta = getattr(wm, "meta", None) or {}
    check_planning_horizon(
        horizon, context_frames, trained_horizon(meta), int(getattr(wm, "frameskip", 1)), allow, allow_key
    )
    record = meta.get("copy_last_by_horizon") or {}
    bad = record.get("not_beaten_at") or []
    if min(int(horizon), len(record.get("horizon") or ())) in bad:  # the step a last-step goal cost reads
        log.warning(
            "this world model did not beat copy-last on its validation clips at rollout step(s) %s, which "
            "planner.horizon=%d reads (see its training's train_summary.json); expect planning near the random floor",
            bad,
            int(horizon),
        )


def check_reach_of(name: str, wm: Any, planner_cfg: Mapping[str, Any], agent_cfg: Mapping[str, Any] | None) -> None:
    """check_planning_horizon for world model ``name`` under an evaluate config's planner and agent sections, with
    the model's name in the message; evaluate and the benchmark run it on every model before any episode."""
    from worldmodel.config.agent import AgentConfig
    from worldmodel.config.evaluate import typed

    agent = typed(AgentConfig, agent_cfg)  # a partial section gets the schema's one default per key
    try:
        check_planning_horizon(
            int(planner_cfg["horizon"]),
            agent.context_frames,
            trained_horizon(getattr(wm, "meta", None)),
            int(getattr(wm, "frameskip", 1)),
            agent.allow_long_horizon,
        )
    except ValueError as exc:
        raise ValueError(f"world model {name!r}: {exc}") from None
