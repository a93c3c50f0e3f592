"""FSDP sharded checkpoints (torch.distributed.checkpoint files) are found, checked and resumed or refused."""

import json
import logging
import warnings

import pytest
import torch
import torch.distributed.checkpoint as dcp

from hfpipe.models.gpt import GPTConfig
from hfpipe.training.checkpoints import CheckpointError, find_resume_checkpoint, verify_checkpoint
from hfpipe.training.sharded import check_resume_processes, is_sharded, saved_world_size


def sharded_checkpoint(root, step: int = 8, ranks: int = 2):
    """A checkpoint laid out as Trainer + accelerate write it under FSDP with SHARDED_STATE_DICT: distcp
    directories for the model and the optimizer, one rng state per rank, trainer_state.json; no safetensors
    and no config.json."""
    ckpt = root / f"checkpoint-{step}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "torch.distributed is not initialized": one process writes all
        dcp.save({"model.lm_head.weight": torch.randn(64, 16)}, checkpoint_id=ckpt / "pytorch_model_fsdp_0")
        dcp.save({"state": {"step": torch.tensor(8.0)}}, checkpoint_id=ckpt / "optimizer_0")
    for rank in range(ranks):
        torch.save({"python": None}, ckpt / f"rng_state_{rank}.pth")
    (ckpt / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return ckpt


def test_a_complete_sharded_checkpoint_is_resumed_from(tmp_path):
    ckpt = sharded_checkpoint(tmp_path)
    assert is_sharded(ckpt) and saved_world_size(ckpt) == 2
    verify_checkpoint(ckpt)  # no *.safetensors, no config.json: fine for a sharded one
    assert find_resume_checkpoint(tmp_path, GPTConfig.from_preset("tiny")) == ckpt


def test_a_truncated_or_missing_shard_is_named(tmp_path):
    ckpt = sharded_checkpoint(tmp_path)
    shard = ckpt / "pytorch_model_fsdp_0" / "__0_0.distcp"
    shard.write_bytes(shard.read_bytes()[:100])
    with pytest.raises(
        CheckpointError, match=r"checkpoint-8 is corrupt \(pytorch_model_fsdp_0/__0_0.distcp is truncated"
    ):
        verify_checkpoint(ckpt)
    shard.unlink()
    with pytest.raises(CheckpointError, match=r"__0_0.distcp is missing\)"):
        verify_checkpoint(ckpt)
    (ckpt / "optimizer_0" / ".metadata").write_bytes(b"\0" * 10)
    sharded_checkpoint(tmp_path, step=4)  # an earlier, intact one: the error says to delete the broken one
    with pytest.raises(CheckpointError, match="delete it to resume from an earlier one"):
        find_resume_checkpoint(tmp_path, GPTConfig.from_preset("tiny"))


def test_an_unreadable_metadata_file_is_named(tmp_path):
    ckpt = sharded_checkpoint(tmp_path)
    (ckpt / "optimizer_0" / ".metadata").write_bytes(b"\0" * 10)
    with pytest.raises(CheckpointError, match=r"optimizer_0/.metadata is unreadable"):
        verify_checkpoint(ckpt)


def test_resuming_with_another_process_count(tmp_path, caplog):
    ckpt = sharded_checkpoint(tmp_path)
    with pytest.raises(
        ValueError, match=r"is an FSDP sharded checkpoint \(2 processes\) and this run does not use FSDP"
    ):
        check_resume_processes(ckpt, world_size=1, fsdp=False)
    caplog.set_level(logging.WARNING, logger="hfpipe.training.sharded")
    caplog.clear()
    check_resume_processes(ckpt, world_size=2, fsdp=True)
    assert not [r for r in caplog.records if r.name == "hfpipe.training.sharded"]
    check_resume_processes(ckpt, world_size=1, fsdp=True)  # the shards are redistributed on load
    assert "saved by 2 processes and this run has 1" in caplog.text
    assert "global batch is 0.5 times the saved run's" in caplog.text
    # a DDP checkpoint: full weights, one rng state per rank
    ddp = tmp_path / "checkpoint-12"
    ddp.mkdir()
    for rank in range(4):
        (ddp / f"rng_state_{rank}.pth").write_bytes(b"")
    assert not is_sharded(ddp) and saved_world_size(ddp) == 4
    caplog.clear()
    check_resume_processes(ddp, world_size=2, fsdp=False)
    assert "saved by 4 processes and this run has 2" in caplog.text
    check_resume_processes(None, world_size=8, fsdp=False)  # nothing to resume: nothing to say
