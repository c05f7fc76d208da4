"""Run folders and checkpoint files."""

from __future__ import annotations

import json
import logging

import pytest
import torch

from coseg import RUN_FORMAT_VERSION
from coseg.building.checkpoint import list_checkpoints, load_latest_checkpoint, save_checkpoint
from coseg.building.config import BuildConfig
from coseg.building.optim import create_optimizer, create_params
from coseg.errors import CosegError, InputError
from coseg.gaussians import Gaussians
from coseg.run import RunDir


def test_create_writes_config_first_and_refuses_to_clobber(tmp_path):
    run = RunDir.create(tmp_path / "run", tmp_path / "scene", downscale=2)
    cfg = json.loads(run.config_path.read_text())
    assert cfg["format_version"] == RUN_FORMAT_VERSION and cfg["scene"]["downscale"] == 2
    with pytest.raises(CosegError, match="already holds a run"):
        RunDir.create(tmp_path / "run")
    RunDir.create(tmp_path / "run", overwrite=True)


def test_open_refuses_other_format_versions(tmp_path):
    run = RunDir.create(tmp_path / "run")
    cfg = run.read_config()
    cfg["format_version"] = RUN_FORMAT_VERSION + 1
    run.config_path.write_text(json.dumps(cfg))
    with pytest.raises(InputError, match="run format version"):
        RunDir.open(run.path)
    with pytest.raises(InputError, match="not a run folder"):
        RunDir.open(tmp_path)


def test_sections_merge_without_clobbering(tmp_path):
    run = RunDir.create(tmp_path / "run")
    run.update_metrics("segmentation", {"miou": 0.5})
    run.update_metrics("building", {"psnr": 30.0})
    run.update_metrics("building", {"ssim": 0.9})
    assert run.read_metrics() == {"segmentation": {"miou": 0.5}, "building": {"psnr": 30.0, "ssim": 0.9}}
    run.update_metrics("building", {"iterations": 5}, replace=True)
    assert run.read_metrics() == {"segmentation": {"miou": 0.5}, "building": {"iterations": 5}}
    run.update_config("building", {"a": 1})
    assert run.read_config()["building"] == {"a": 1} and "format_version" in run.read_config()


def test_lock_is_exclusive(tmp_path):
    run = RunDir.create(tmp_path / "run")
    with run.lock():
        with pytest.raises(CosegError, match="another coseg process"):
            with RunDir(run.path).lock():
                pass
    with run.lock():
        pass


def test_log_to_file(tmp_path):
    run = RunDir.create(tmp_path / "run")
    with run.log_to_file():
        logging.getLogger("coseg.building.test").info("hello run")
    logging.getLogger("coseg.building.test").info("not logged")
    text = run.log_path.read_text()
    assert "hello run" in text and "not logged" not in text


def _state():
    g = Gaussians.from_points(torch.rand(7, 3).numpy(), torch.rand(7, 3).numpy())
    params = create_params(g, 1)
    opt = create_optimizer(params, BuildConfig(), 1.0)
    for p in params.values():
        p.grad = torch.randn_like(p)
    opt.step()
    return params, opt


def test_checkpoints_round_trip_and_keep_the_newest(tmp_path):
    params, opt = _state()
    strategy_state = {"grad2d": torch.rand(7)}
    for it in (10, 20, 30):
        save_checkpoint(tmp_path, it, params, opt, strategy_state, {"extent": 1.5}, keep=2)
    assert [it for it, _ in list_checkpoints(tmp_path)] == [20, 30]
    ckpt = load_latest_checkpoint(tmp_path)
    assert ckpt["iteration"] == 30 and ckpt["extra"]["extent"] == 1.5
    for k, v in params.items():
        torch.testing.assert_close(ckpt["params"][k], v.detach(), rtol=0, atol=0)
    torch.testing.assert_close(ckpt["strategy_state"]["grad2d"], strategy_state["grad2d"])
    assert ckpt["optimizer"]["state"][0]["exp_avg"].shape == (7, 3)
    assert not list(tmp_path.glob("*.tmp"))


def test_truncated_newest_checkpoint_falls_back(tmp_path, caplog):
    params, opt = _state()
    save_checkpoint(tmp_path, 10, params, opt, {}, {}, keep=2)
    (tmp_path / "ckpt_0000020.pt").write_bytes(b"truncated")
    assert load_latest_checkpoint(tmp_path)["iteration"] == 10
    assert "unreadable checkpoint" in caplog.text
    (tmp_path / "ckpt_0000010.pt").unlink()
    with pytest.raises(InputError, match="no readable checkpoint"):
        load_latest_checkpoint(tmp_path)
