"""Run recipes/pretrain.py under accelerate's FSDP on CPU processes (gloo): a test-only launcher.

accelerate 1.15 selects FSDP only for GPU-type devices (accelerate/state.py, AcceleratorState.__init__: the
``elif self.distributed_type in [MULTI_GPU, ...]`` branch that sets ``DistributedType.FSDP``); a CPU launch
is MULTI_CPU and silently stays DDP, which is why hfpipe refuses FSDP on a CPU-only machine. torch's
``fully_shard`` itself runs on CPU tensors with gloo, so this launcher takes that branch for MULTI_CPU too and
lifts hfpipe's refusal; everything else (Trainer, accelerate's FSDP2 wrapping, sharded checkpoints,
resume) is the real code. It writes ``result-<rank>.json`` into ``output_dir`` for the test to read.

    accelerate launch --config_file accelerate_configs/fsdp.yaml --num_processes 2 --mixed_precision no \\
        tests/recipes/cpu_fsdp_launch.py <pretrain.py arguments>
"""

import json
import os
import sys
from pathlib import Path

import accelerate.state
from accelerate.utils import DistributedType

REPO = Path(__file__).resolve().parents[2]
_init = accelerate.state.AcceleratorState.__init__


def _init_with_cpu_fsdp(self, *args, fsdp_plugin=None, **kwargs):
    _init(self, *args, fsdp_plugin=fsdp_plugin, **kwargs)
    if fsdp_plugin is not None and self.distributed_type == DistributedType.MULTI_CPU:
        if self.mixed_precision != "no":
            fsdp_plugin.set_mixed_precision(self.mixed_precision)
        self.distributed_type = DistributedType.FSDP
        self.fsdp_plugin = fsdp_plugin
        accelerate.state.PartialState._shared_state["distributed_type"] = DistributedType.FSDP


def main(argv: list[str]) -> None:
    accelerate.state.AcceleratorState.__init__ = _init_with_cpu_fsdp
    sys.path.insert(0, str(REPO / "recipes"))
    import pretrain

    import hfpipe.pretraining

    hfpipe.pretraining.launched_on_cpu_only = lambda: False  # the refusal this launcher works around
    trainer = pretrain.main(argv)
    from torch.distributed.tensor import DTensor

    weight = next(trainer.model.parameters())
    full = trainer.accelerator.get_state_dict(trainer.model)  # a collective: every rank gathers
    result = {
        "world_size": trainer.args.world_size,
        "fsdp": trainer.is_fsdp_enabled,
        "distributed_type": str(trainer.accelerator.distributed_type),
        "sharded_param": isinstance(weight, DTensor),
        "local_rows": weight.to_local().shape[0] if isinstance(weight, DTensor) else weight.shape[0],
        "global_step": trainer.state.global_step,
        "num_parameters": trainer.model.num_parameters(),
        "weight_sums": {k: v.double().sum().item() for k, v in full.items()},
        "weight_norms": {k: v.double().norm().item() for k, v in full.items()},
        "log_history": trainer.state.log_history,
    }
    out = Path(argv[argv.index("--output_dir") + 1])
    (out / f"result-{os.environ.get('RANK', '0')}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
