"""Finding, checking and safely resuming Trainer checkpoints.

Trainer writes ``trainer_state.json`` last, so a checkpoint without a readable one was interrupted
mid-save (a crash or a full disk): it is set aside, never resumed from. A checkpoint that claims to be
complete but whose weights do not load is corrupt: that is an error, not a silent restart.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

from safetensors import safe_open

from ..io import check_output_dir
from ..models.gpt import GPTConfig
from .sharded import is_sharded, sharded_problem

logger = logging.getLogger(__name__)

_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
# Fields that change the shape of the network: a checkpoint with other values belongs to another model.
ARCHITECTURE_KEYS = (
    "model_type",
    "vocab_size",
    "context_length",
    "emb_dim",
    "n_heads",
    "n_layers",
    "ff_mult",
    "qkv_bias",
    "position",
    "norm",
    "norm_weight",
    "mlp",
    "intermediate_size",
    "n_kv_heads",
    "qk_norm",
    "bias",
)


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be resumed from."""


def _trainer_state_ok(ckpt: Path) -> bool:
    try:
        json.loads((ckpt / "trainer_state.json").read_text())
        return True
    except (OSError, ValueError):
        return False


def list_checkpoints(output_dir: str | Path) -> list[Path]:
    """``checkpoint-N`` directories under ``output_dir``, newest (highest N) first."""
    root = Path(output_dir)
    if not root.is_dir():
        return []
    found = [
        (int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := _CHECKPOINT_RE.match(p.name))
    ]
    return [p for _, p in sorted(found, reverse=True)]


def verify_checkpoint(ckpt: str | Path) -> None:
    """Raise ``CheckpointError`` naming the problem if ``ckpt`` cannot be resumed from."""
    ckpt = Path(ckpt)
    if not _trainer_state_ok(ckpt):
        raise CheckpointError(
            f"checkpoint {ckpt} has no readable trainer_state.json: it was not completely written"
        )
    if is_sharded(ckpt):  # FSDP SHARDED_STATE_DICT: distcp shards, no *.safetensors nor config.json
        if problem := sharded_problem(ckpt):
            raise CheckpointError(
                f"checkpoint {ckpt} is corrupt ({problem}); delete it to resume from an earlier one"
            )
        return
    weights = sorted(ckpt.glob("*.safetensors"))
    if not weights:
        raise CheckpointError(
            f"checkpoint {ckpt} has no *.safetensors weights; delete it to resume from an earlier one"
        )
    for file in weights:
        try:
            with safe_open(str(file), framework="pt") as fh:
                for key in fh.keys():
                    fh.get_slice(key)
        except Exception as err:  # safetensors raises several types for damaged files
            raise CheckpointError(
                f"checkpoint {ckpt} is corrupt ({file.name}: {err}); delete it to resume from an earlier "
                "checkpoint, or start over in a new output_dir"
            ) from None
    config = (
        "adapter_config.json" if (ckpt / "adapter_config.json").is_file() else "config.json"
    )  # peft: adapter only
    try:
        json.loads((ckpt / config).read_text())
    except (OSError, ValueError) as err:
        raise CheckpointError(f"checkpoint {ckpt} has no readable {config} ({err})") from None


def check_same_architecture(ckpt: str | Path, config) -> None:
    """Raise ``CheckpointError`` if ``ckpt`` was saved for a model whose shape differs from ``config``."""
    if is_sharded(ckpt) and not (Path(ckpt) / "config.json").is_file():
        return  # no config to compare; prepare_output_dir has matched the run's settings (hfpipe_run.json)
    saved = json.loads((Path(ckpt) / "config.json").read_text())
    if saved.get("model_type") == GPTConfig.model_type:
        saved = GPTConfig.from_dict(saved).to_dict()  # a config saved before a switch existed: its default
    ours = config.to_dict()
    diff = {k: (saved.get(k), ours.get(k)) for k in ARCHITECTURE_KEYS if saved.get(k) != ours.get(k)}
    if diff:
        details = ", ".join(f"{k}: checkpoint {a!r} vs this run {b!r}" for k, (a, b) in diff.items())
        raise CheckpointError(
            f"{Path(ckpt).parent} holds another run's checkpoint ({Path(ckpt).name}) of a different model "
            f"({details}); use a new output_dir, or delete that run to start over"
        )


def find_resume_checkpoint(output_dir: str | Path, config=None, is_main_process: bool = True) -> Path | None:
    """The newest complete checkpoint in ``output_dir`` (checked against the model ``config`` when given: an
    adapter's checkpoints hold no model config), or None to start fresh.

    Interrupted checkpoints (no readable trainer_state.json) are renamed ``*.incomplete`` by the main process.
    """
    for ckpt in list_checkpoints(output_dir):
        if not _trainer_state_ok(ckpt):
            logger.warning("skipping %s: it was interrupted while being saved", ckpt)
            if is_main_process:
                ckpt.rename(ckpt.with_name(ckpt.name + ".incomplete"))
            continue
        verify_checkpoint(ckpt)
        if config is not None and (ckpt / "config.json").is_file():
            check_same_architecture(ckpt, config)
        return ckpt
    return None


RUN_FILE = "hfpipe_run.json"
# Settings that may differ when the same run is resumed: where it reports, and how long it goes on.
_NOT_THE_RUN = {"output_dir", "overwrite_output_dir", "report_to", "logging_dir", "run_name", "push_to_hub",
                "hub_model_id", "hub_token", "hub_strategy", "disable_tqdm", "dataloader_num_workers", "debug",
                "max_steps", "num_train_epochs", "save_steps", "eval_steps", "logging_steps", "save_total_limit"}  # fmt: skip


def prepare_output_dir(args) -> None:
    """Guard ``args.output_dir`` before a run writes to it.

    - ``overwrite_output_dir``: the directory is emptied first, so no earlier file survives next to new weights;
    - the same run again (same settings, recorded in ``hfpipe_run.json``): kept, and the run resumes;
    - a finished model or another run's files: refused, naming the settings that differ.
    """
    if getattr(args, "process_index", 0) != 0:
        # the main process alone decides: another rank could see its half-written run file and refuse; a refusal
        # on the main process ends the whole launch
        return
    out = Path(args.output_dir)
    check_output_dir(out)
    settings = {k: v for k, v in getattr(args, "hfpipe_run_settings", {}).items() if k not in _NOT_THE_RUN}
    if out.exists() and any(out.iterdir()):
        if getattr(args, "overwrite_output_dir", False):
            logger.warning("overwrite_output_dir: deleting the earlier contents of %s", out)
            for entry in out.iterdir():
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        else:
            try:
                saved = json.loads((out / RUN_FILE).read_text())
            except (OSError, ValueError):
                saved = None
            if saved is None:
                what = "a finished model" if (out / "config.json").is_file() else "files of another run"
                raise CheckpointError(
                    f"output_dir {out} already holds {what}; choose a new output_dir, or set "
                    "overwrite_output_dir: true to replace it"
                )
            if saved != settings:
                keys = sorted(k for k in saved.keys() | settings.keys() if saved.get(k) != settings.get(k))
                diff = ", ".join(f"{k}: {saved.get(k)!r} then, {settings.get(k)!r} now" for k in keys[:6])
                raise CheckpointError(
                    f"output_dir {out} holds a run with other settings ({diff}); use a new output_dir, or set "
                    "overwrite_output_dir: true to replace it"
                )
            logger.info("%s holds this run already (same settings): resuming it", out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".{RUN_FILE}.tmp"
    tmp.write_text(json.dumps(settings, indent=2, sort_keys=True, default=str))
    tmp.replace(out / RUN_FILE)
