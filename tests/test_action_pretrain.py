"""Action-conditioned pretraining term (models/action_term.py): learns, resumes, refuses bad settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils.data import Dataset

from tests.test_pretrain import _with_stop, tiny_cfg
from worldmodel.models.action_term import ActionTerm
from worldmodel.models.jepa import JEPA, JEPAConfig
from worldmodel.models.pooling import encode_frames
from worldmodel.models.vit import EncoderConfig, VideoViT, load_encoder
from worldmodel.training.logger import read_csv_log
from worldmodel.training.pretrain import pretrain


class PushedSquare(Dataset):
    """A square whose per-step displacement is the clip's action: the next frame follows from frame + action."""

    def __init__(self, n: int = 64, t: int = 4, size: int = 32, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.clips = torch.full((n, t, 3, size, size), 30, dtype=torch.uint8)
        self.actions = torch.randint(-3, 4, (n, t - 1, 2), generator=g).float()  # (n, T-1, 2) pixel steps
        pos = torch.randint(6, size - 14, (n, 2), generator=g)
        for i in range(n):
            p = pos[i].clone()
            for f in range(t):
                r, c = (p.clamp(0, size - 8)).tolist()
                self.clips[i, f, :, r : r + 8, c : c + 8] = 220
                if f < t - 1:
                    p += self.actions[i, f].long()
        self.actions = self.actions / 3.0  # actions in [-1, 1]

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"pixels": self.clips[i], "actions": self.actions[i]}


def action_cfg(steps: int, masked_weight: float = 0.0, **model: Any) -> dict[str, Any]:
    """tiny_cfg with the action term on (SIGReg teacher for the masked term when it is kept)."""
    cfg = tiny_cfg(steps)
    cfg["model"] = {
        "teacher": "sigreg",
        "sigreg_slices": 16,
        "masked_weight": masked_weight,
        "action_weight": 1.0,
        "action_pool": "2x2cat",
        "action_width": 32,
        "action_depth": 1,
        "action_heads": 2,
        **model,
    }
    return cfg


def test_action_term_prediction_loss_falls_and_moves_the_encoder(tmp_path: Path) -> None:
    res = pretrain(action_cfg(40), tmp_path, "cpu", train_set=PushedSquare(), progress=False)
    rows = [r for r in read_csv_log(tmp_path / "metrics.csv") if "action_loss" in r and r["action_loss"] != ""]
    first = sum(float(r["action_loss"]) for r in rows[:5]) / 5
    last = sum(float(r["action_loss"]) for r in rows[-5:]) / 5
    assert len(rows) == 40 and last < 0.8 * first
    assert all(float(r["pred_loss"]) == 0.0 for r in rows)  # masked term off: not computed
    assert res["model"].predictor is None and res["model"].target_encoder is None
    enc = load_encoder(res["encoder_path"], "cpu")
    rnd = load_encoder(res["random_encoder_path"], "cpu")
    assert not torch.equal(enc.patch_embed.weight, rnd.patch_embed.weight)


def test_action_term_with_masked_term_resumes_exactly(tmp_path: Path) -> None:
    data = PushedSquare(32)
    cfg = action_cfg(6, masked_weight=1.0)
    full = pretrain(cfg, tmp_path / "full", "cpu", train_set=data, progress=False)["model"]
    pretrain(_with_stop(cfg, 4), tmp_path / "split", "cpu", train_set=data, progress=False)
    resumed = pretrain(cfg, tmp_path / "split", "cpu", train_set=data, progress=False)
    assert resumed["resumed_from"] == 4
    for (k, a), (_, b) in zip(full.state_dict().items(), resumed["model"].state_dict().items()):
        assert torch.equal(a, b), k
    rows = read_csv_log(tmp_path / "full" / "metrics.csv")
    assert all(float(r["pred_loss"]) > 0 and float(r["action_loss"]) > 0 for r in rows if r.get("loss"))


def test_action_term_embeddings_are_the_world_models_pooled_latents() -> None:
    enc = VideoViT(EncoderConfig.from_dict(tiny_cfg(1)["encoder"])).eval()
    term = ActionTerm(enc, action_dim=2, pool="2x2cat", width=32, depth=1, heads=2)
    clip = PushedSquare(2)[0]["pixels"][None]  # (1, T, 3, H, W)
    with torch.no_grad():
        emb, _ = term.embed(enc, clip)  # (1, T, 1, 4*D)
    ref = encode_frames(enc, clip[0], "2x2cat")  # (T, 1, 4*D): what the embedding cache stores
    assert emb.shape == (1, 4, 1, 4 * enc.dim)
    torch.testing.assert_close(emb[0], ref)


@pytest.mark.parametrize(
    ("model", "action_dim", "message"),
    [
        ({"masked_weight": 0.0, "action_weight": 0.0}, 2, "at least one > 0"),
        ({"masked_weight": -1.0, "action_weight": 1.0}, 2, "must be >= 0"),
        ({"action_weight": 1.0}, 0, "needs data with actions"),
    ],
)
def test_objective_weights_are_checked(model: dict[str, float], action_dim: int, message: str) -> None:
    enc = VideoViT(EncoderConfig.from_dict(tiny_cfg(1)["encoder"]))
    with pytest.raises(ValueError, match=message):
        JEPA(enc, JEPAConfig(teacher="sigreg", **model), action_dim)


def test_actions_missing_from_the_batch_is_a_clear_error() -> None:
    enc = VideoViT(EncoderConfig.from_dict(tiny_cfg(1)["encoder"]))
    model = JEPA(enc, JEPAConfig(teacher="sigreg", masked_weight=0.0, action_weight=1.0, action_width=32,
                                 action_depth=1, action_heads=2), action_dim=2)
    with pytest.raises(ValueError, match="needs the clips' actions"):
        model(PushedSquare(2).clips[:2], [])
    with pytest.raises(ValueError, match="do not match a clip of 4 frames"):
        model(PushedSquare(2).clips[:2], [], actions=torch.zeros(2, 2, 2))


def test_end_to_end_world_model_is_the_jointly_trained_pair(tmp_path: Path) -> None:
    """Pretraining with the action term on a collected dataset also writes world_model_end_to_end.pt: the encoder
    and the term's predictor as a WorldModel (loadable weights-only) whose imagined next latent is the term's."""
    from worldmodel.data import ClipDataset
    from worldmodel.data.collect import CollectConfig, collect
    from worldmodel.world_model import WorldModel

    data = str(collect(CollectConfig(env_id="wm/TwoRoom-v0", out=str(tmp_path / "d.h5"), episodes=4,
                                     episode_length=12, workers=1, env_kwargs={"image_size": 32}), progress=False))
    cfg = action_cfg(3)
    cfg["data"] = {**cfg["data"], "path": data}
    res = pretrain(cfg, tmp_path / "p", "cpu", progress=False)
    wm = WorldModel.load(res["end_to_end_path"], "cpu")
    assert wm.meta["end_to_end"] and wm.meta["data_path"] == data and wm.meta["trained_horizon"] == 3
    assert wm.proprio_dim == 0 and wm.pool == "2x2cat" and wm.meta["env_id"] == "wm/TwoRoom-v0"
    clip = ClipDataset(data, clip_len=2)[0]  # pixels (2, 3, 32, 32) uint8, actions (1, 2)
    model = res["model"].eval()
    with torch.no_grad():
        emb, _ = model.action_term.embed(model.encoder, clip["pixels"][None])  # (1, 2, 1, 4D)
        scaled = (clip["actions"][None] - model.action_term.action_mid) / model.action_term.action_half
        ref, _ = model.action_term.predictor(emb[:, :1], scaled)  # (1, 1, 1, 4D)
        z = wm.encode(clip["pixels"][:1])  # (1, 1, 4D): identity normalisation
        imagined = wm.rollout(z, clip["actions"][None])["latents"]  # (1, 1, 1, 4D)
    torch.testing.assert_close(z["latents"], emb[:, 0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(imagined, ref, rtol=1e-4, atol=1e-5)
