"""Checkpoints written by several processes: FSDP sharded ones, and what changes when the process count does.

An FSDP run with ``fsdp_state_dict_type: SHARDED_STATE_DICT`` saves no ``*.safetensors`` and no
``config.json`` in its checkpoints: each rank writes its shard of the weights to
``pytorch_model_fsdp_0/__<rank>_0.distcp`` and of the optimizer to ``optimizer_0/``, described by a
``.metadata`` file (torch.distributed.checkpoint). Every rank also writes ``rng_state_<rank>.pth``.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from accelerate.utils.constants import FSDP_MODEL_NAME

logger = logging.getLogger(__name__)

_RNG_RE = re.compile(r"^rng_state_(\d+)\.pth$")


def sharded_dirs(ckpt: str | Path) -> list[Path]:
    """The distributed-checkpoint directories of an FSDP sharded checkpoint (model and optimizer), or []."""
    ckpt = Path(ckpt)
    models = sorted(p for p in ckpt.glob(f"{FSDP_MODEL_NAME}*") if p.is_dir())
    return models + sorted(p for p in ckpt.glob("optimizer_*") if p.is_dir()) if models else []


def is_sharded(ckpt: str | Path) -> bool:
    """True for a checkpoint saved by FSDP with a sharded state dict."""
    return bool(sharded_dirs(ckpt))


def saved_world_size(ckpt: str | Path) -> int:
    """How many processes wrote ``ckpt`` (Trainer writes one ``rng_state_<rank>.pth`` per process)."""
    ranks = [int(m.group(1)) for p in Path(ckpt).iterdir() if (m := _RNG_RE.match(p.name))]
    return max(ranks) + 1 if ranks else 1


def sharded_problem(ckpt: str | Path) -> str | None:
    """What is wrong with a sharded checkpoint's files (unreadable metadata, a missing or short shard)."""
    from torch.distributed.checkpoint import FileSystemReader

    for folder in sharded_dirs(ckpt):
        try:
            metadata = FileSystemReader(str(folder)).read_metadata()
        except Exception as err:  # a missing or truncated .metadata raises several types
            return f"{folder.name}/.metadata is unreadable ({type(err).__name__})"
        needed: dict[str, int] = {}
        for info in metadata.storage_data.values():
            needed[info.relative_path] = max(needed.get(info.relative_path, 0), info.offset + info.length)
        for name, size in sorted(needed.items()):
            file = folder / name
            if not file.is_file():
                return f"{folder.name}/{name} is missing"
            if file.stat().st_size < size:
                return f"{folder.name}/{name} is truncated ({file.stat().st_size} of {size} bytes)"
    return None


def check_resume_processes(ckpt: str | Path | None, world_size: int, fsdp: bool) -> None:
    """Before resuming ``ckpt`` with ``world_size`` processes: refuse what cannot work, warn of what changes.

    - a sharded FSDP checkpoint needs an FSDP run (any process count: the shards are redistributed on load);
    - a DDP checkpoint resumes with another process count: the weights, optimizer and step continue, but the
      global batch changes and the data order is not the uninterrupted run's.
    """
    if ckpt is None:
        return
    saved = saved_world_size(ckpt)
    if is_sharded(ckpt) and not fsdp:
        raise ValueError(
            f"{ckpt} is an FSDP sharded checkpoint ({saved} processes) and this run does not use FSDP; "
            "resume it with an FSDP accelerate config (accelerate_configs/fsdp.yaml), or use a new output_dir"
        )
    if saved != world_size:
        logger.warning(
            "%s was saved by %d processes and this run has %d: weights, optimizer and step continue, but the "
            "global batch is %g times the saved run's and the data order differs from an uninterrupted run",
            ckpt, saved, world_size, world_size / saved,
        )  # fmt: skip


def save_fsdp_model(trainer, output_dir: str | Path) -> None:
    """Save an FSDP-trained model whole, as ``trainer.save_model`` does without FSDP (every rank calls it).

    Two things differ under FSDP: with ``SHARDED_STATE_DICT``, ``save_model`` writes no weights at all; and
    FSDP2 turns the model into torch's ``FSDP<Class>`` subclass, which ``save_pretrained`` would record in
    ``auto_map`` (copying torch's files instead of the model's code), so it is saved as its own class.
    """
    from torch.distributed.fsdp import FSDPModule

    model = trainer.accelerator.unwrap_model(trainer.model)
    sharded_cls = type(model)
    state_dict = trainer.accelerator.get_state_dict(trainer.model)  # the full weights; every rank gathers
    model.__class__ = next(c for c in sharded_cls.__mro__ if not issubclass(c, FSDPModule))
    try:
        trainer._save(str(output_dir), state_dict=state_dict)  # what save_model calls with that state dict
    finally:
        model.__class__ = sharded_cls
