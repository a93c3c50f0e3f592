"""Token shards under transformers' Trainer: exact resume of the data position, one slice per DDP rank."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import Trainer, TrainerCallback, TrainingArguments

from hfpipe.data import ShardWriter, TokenShardDataset
from hfpipe.models.gpt import GPTConfig, GPTForCausalLM
from hfpipe.pretraining import collate_blocks

BLOCK = 8
N_BLOCKS = 10  # 5 steps of 2 per epoch


def numbered_blocks(path: Path, n_blocks: int = N_BLOCKS) -> TokenShardDataset:
    """Shards whose block i starts with token i, so a batch tells which blocks it holds."""
    writer = ShardWriter(path, np.uint16, BLOCK, shard_tokens=3 * BLOCK)  # 3 blocks per shard
    for i in range(n_blocks):
        writer.add(np.full(BLOCK, i, np.uint16))
    writer.finish()
    return TokenShardDataset(path)


class StopAt(TrainerCallback):
    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            control.should_training_stop = True  # after the checkpoint of this step: a run cut short


def run(data, out: Path, stop_at=None, resume=None) -> list[list[int]]:
    """Train a tiny GPT for 9 steps (or until ``stop_at``); returns the blocks of every batch it trained on."""
    torch.manual_seed(0)
    config = GPTConfig.from_preset("tiny", vocab_size=N_BLOCKS, context_length=BLOCK, emb_dim=8, n_layers=1,
                                   n_heads=2)  # fmt: skip
    model = GPTForCausalLM(config)
    seen = []
    model.register_forward_pre_hook(
        lambda m, a, kw: seen.append(kw["input_ids"][:, 0].tolist()), with_kwargs=True
    )
    args = TrainingArguments(output_dir=str(out), per_device_train_batch_size=2, max_steps=9, save_steps=6,
                             save_strategy="steps", eval_strategy="no", report_to=[], use_cpu=True, seed=0,
                             logging_steps=100, disable_tqdm=True, dataloader_num_workers=0)  # fmt: skip
    callbacks = [StopAt(stop_at)] if stop_at else []
    trainer = Trainer(
        model=model, args=args, train_dataset=data, data_collator=collate_blocks, callbacks=callbacks
    )
    trainer.train(resume_from_checkpoint=resume)
    return seen


def test_resumed_run_sees_the_same_batches(tmp_path):
    data = numbered_blocks(tmp_path / "shards")
    whole = run(data, tmp_path / "whole")
    assert len(whole) == 9 and sorted(sum(whole[:5], [])) == list(
        range(N_BLOCKS)
    )  # an epoch = every block once
    first = run(data, tmp_path / "cut", stop_at=6)  # killed after step 6's checkpoint, in the second epoch
    rest = run(data, tmp_path / "cut", resume=str(tmp_path / "cut" / "checkpoint-6"))
    assert first + rest == whole
    assert whole[5:] != whole[:4]  # the second epoch is reshuffled (so the check above is not trivial)


RANK_SCRIPT = """
import json, sys, torch
from transformers import Trainer, TrainingArguments
from hfpipe.data import TokenShardDataset
from hfpipe.pretraining import collate_blocks
data, out = TokenShardDataset(sys.argv[1]), sys.argv[2]
args = TrainingArguments(output_dir=out, per_device_train_batch_size=2, use_cpu=True, report_to=[], seed=0,
                         remove_unused_columns=False)
trainer = Trainer(model=torch.nn.Linear(1, 1), args=args, train_dataset=data, data_collator=collate_blocks)
loader = trainer.get_train_dataloader()
epochs = []
for epoch in range(2):
    loader.set_epoch(epoch)
    epochs.append([batch["input_ids"][:, 0].tolist() for batch in loader])
with open(f"{out}/rank{args.process_index}.json", "w") as fh:
    json.dump({"world_size": args.world_size, "epochs": epochs}, fh)
"""


@pytest.mark.slow  # two interpreters importing torch and transformers: ~30 s on a busy 2-core machine
def test_each_ddp_rank_reads_its_own_slice(tmp_path):
    numbered_blocks(tmp_path / "shards", n_blocks=12)
    (tmp_path / "rank.py").write_text(RANK_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(tmp_path / "rank.py"), str(tmp_path / "shards"), str(tmp_path)]  # fmt: skip
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    for epoch in range(2):
        slices = [sum(r["epochs"][epoch], []) for r in ranks]
        assert [len(b) for b in ranks[0]["epochs"][epoch]] == [2, 2, 2]  # 12 blocks / (2 ranks x batch 2)
        assert not set(slices[0]) & set(slices[1]) and sorted(slices[0] + slices[1]) == list(range(12))
    assert ranks[0]["epochs"][0] != ranks[0]["epochs"][1]  # reshuffled each epoch, the same way on every rank
