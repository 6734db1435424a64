"""Pixel-reconstruction pretraining term (models/recon_term.py): learns alone or beside the other terms, moves the
encoder, refuses settings that cannot work."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.test_action_pretrain import PushedSquare, action_cfg
from tests.test_pretrain import tiny_cfg
from worldmodel.models.jepa import JEPA, JEPAConfig
from worldmodel.models.recon_term import FrameDecoder
from worldmodel.models.vit import EncoderConfig, VideoViT, load_encoder
from worldmodel.training.logger import read_csv_log
from worldmodel.training.pretrain import pretrain


def _logged(path: Path, key: str) -> list[float]:
    return [float(r[key]) for r in read_csv_log(path / "metrics.csv") if r.get(key, "") != ""]


def test_recon_term_alone_learns_to_redraw_the_frames_and_moves_the_encoder(tmp_path: Path) -> None:
    cfg = action_cfg(40, action_weight=0.0, recon_weight=1.0, recon_width=16)
    res = pretrain(cfg, tmp_path, "cpu", train_set=PushedSquare(), progress=False)
    recon = _logged(tmp_path, "recon_loss")
    assert len(recon) == 40 and sum(recon[-5:]) < 0.5 * sum(recon[:5])
    assert res["model"].action_term is None and res["model"].predictor is None  # only the decoder trained it
    enc, rnd = load_encoder(res["encoder_path"], "cpu"), load_encoder(res["random_encoder_path"], "cpu")
    assert not torch.equal(enc.patch_embed.weight, rnd.patch_embed.weight)


def test_recon_term_beside_the_action_and_masked_terms_adds_to_the_loss() -> None:
    enc = VideoViT(EncoderConfig.from_dict(tiny_cfg(1)["encoder"]))
    model_cfg = dict(action_cfg(1, masked_weight=1.0)["model"])
    base = JEPA(enc, JEPAConfig(**model_cfg), action_dim=2)
    both = JEPA(enc, JEPAConfig(**{**model_cfg, "recon_weight": 2.0, "recon_width": 16}), action_dim=2)
    both.load_state_dict(base.state_dict(), strict=False)  # the same predictors: only the recon term differs
    data = PushedSquare(4)
    masks = [(torch.arange(8)[None].expand(4, -1), torch.arange(8, 16)[None].expand(4, -1))]
    g = torch.Generator().manual_seed(0)
    a = base(data.clips, masks, torch.Generator().manual_seed(0), actions=data.actions)
    b = both(data.clips, masks, g, actions=data.actions)
    assert a.recon_loss is None and b.recon_loss is not None and float(b.recon_loss) > 0
    torch.testing.assert_close(b.loss, a.loss + 2.0 * b.recon_loss)
    b.loss.backward()
    assert enc.patch_embed.weight.grad is not None and both.recon_term.decoder.inp.weight.grad is not None


def test_recon_settings_that_cannot_work_are_refused() -> None:
    with pytest.raises(ValueError, match="divisible by 8; got 36"):
        FrameDecoder(1, 8, 36)
    enc = VideoViT(EncoderConfig.from_dict(tiny_cfg(1)["encoder"]))
    with pytest.raises(ValueError, match="model.recon_weight=-1.0"):
        JEPA(enc, JEPAConfig(teacher="sigreg", recon_weight=-1.0), 0)
    assert JEPA(enc, JEPAConfig(teacher="sigreg", masked_weight=0.0, recon_weight=1.0), 0).recon_term is not None
