"""The output_dir guard: the main process alone decides, so a rank never sees the main's half-written run file;
a file is never taken for a directory."""

import json
from types import SimpleNamespace

import pytest

from hfpipe.training.checkpoints import RUN_FILE, CheckpointError, prepare_output_dir


def args(out, rank=0, **settings):
    return SimpleNamespace(output_dir=str(out), process_index=rank, hfpipe_run_settings=settings)


def test_main_process_writes_the_run_file_and_refuses_other_settings(tmp_path):
    out = tmp_path / "run"
    prepare_output_dir(args(out, lr=1e-3))
    assert json.loads((out / RUN_FILE).read_text()) == {"lr": 1e-3}
    prepare_output_dir(args(out, lr=1e-3))  # the same run: kept, to resume
    with pytest.raises(CheckpointError, match=r"other settings \(lr: 0.001 then, 0.002 now\)"):
        prepare_output_dir(args(out, lr=2e-3))


def test_other_ranks_leave_the_decision_to_the_main_process(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / f".{RUN_FILE}.tmp").write_text("{")  # the main process is writing its run file
    prepare_output_dir(args(out, rank=1, lr=1e-3))  # a race lost before: "already holds files of another run"
    assert sorted(p.name for p in out.iterdir()) == [f".{RUN_FILE}.tmp"]
    with pytest.raises(CheckpointError, match="files of another run"):
        prepare_output_dir(args(out, rank=0, lr=1e-3))


def test_architecture_check_reads_a_config_saved_before_the_switches(tmp_path):
    """A checkpoint whose config.json predates the architecture switches is the book's layout, not a mismatch."""
    from hfpipe import GPTConfig
    from hfpipe.training.checkpoints import check_same_architecture

    book = GPTConfig.from_preset("tiny")
    switch_keys = {"position", "rope_theta", "rope_scaling_parameters", "norm", "norm_weight", "mlp",
                   "intermediate_size", "n_kv_heads", "qk_norm", "bias"}  # fmt: skip
    ckpt = tmp_path / "checkpoint-10"
    ckpt.mkdir()
    old = {k: v for k, v in book.to_dict().items() if k not in switch_keys}
    (ckpt / "config.json").write_text(json.dumps(old))
    check_same_architecture(ckpt, book)
    with pytest.raises(CheckpointError, match="position: checkpoint 'learned' vs this run 'rope'"):
        check_same_architecture(ckpt, GPTConfig.from_preset("tiny", "llama"))
    with pytest.raises(CheckpointError, match="n_kv_heads: checkpoint 4 vs this run 2"):
        check_same_architecture(ckpt, GPTConfig.from_preset("tiny", n_kv_heads=2))


def test_an_output_dir_that_is_a_file_is_refused_by_name(tmp_path):
    taken = tmp_path / "taken"
    taken.write_text("a file")
    with pytest.raises(ValueError, match=f"output_dir '{taken}' is a file, not a directory"):
        prepare_output_dir(args(taken))
    with pytest.raises(
        ValueError, match=f"output_dir '{taken / 'run'}' is inside '{taken}', which is a file"
    ):
        prepare_output_dir(args(taken / "run"))
    assert taken.read_text() == "a file"
