"""``optimizer: muon``: torch's Muon for the hidden weight matrices, AdamW for everything else, under any Trainer.

    use_muon(trainer, optimizer_args)     # before trainer.train(); train_and_evaluate does it for every stage

The hidden matrices are found by position, not by name: the 2-D weights inside the model's repeated blocks (the
items of an ``nn.ModuleList``), minus embeddings. The token embeddings, the output head, a classifier head, the
norms and the biases stay with AdamW (``learning_rate``, ``weight_decay``, ``adam_beta1/2``, ``adam_epsilon``,
with Trainer's own decay rule), the matrices get ``muon_learning_rate`` and ``muon_weight_decay``. One
``torch.optim.Optimizer`` (``MuonWithAdamW``) holds both, so Trainer's scheduler (warm-up + cosine) scales every
group from its own peak, accelerate wraps it, and its state is saved in ``optimizer.pt`` with each checkpoint.

Under DDP every process applies the same update to its replica. Under FSDP2 the matrices are DTensors sharded by
rows: torch's Muon runs on them unchanged and DTensor gathers what each Newton-Schulz matmul needs, so the update
equals DDP's (tested), at the cost of that communication on every step.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch
from torch import nn

logger = logging.getLogger(__name__)

OPTIMIZERS = ("adamw", "muon")
ADJUST_LR_FNS = ("original", "match_rms_adamw")
ADAMW_OPTIMS = ("adamw_torch", "adamw_torch_fused")


@dataclass
class OptimizerArguments:
    """hfpipe's optimizer choice: Trainer's ``optim`` (AdamW by default), or Muon for the hidden matrices."""

    optimizer: str = field(
        default="adamw",
        metadata={
            "help": "adamw: TrainingArguments' optim (AdamW unless optim says otherwise); muon: torch.optim.Muon "
            "for the 2-D weights inside the blocks, AdamW for embeddings, head, norms and biases."
        },
    )
    muon_learning_rate: float = field(
        default=0.02, metadata={"help": "Peak learning rate of the Muon matrices (learning_rate is AdamW's)."}
    )
    muon_weight_decay: float = field(
        default=0.0,
        metadata={"help": "Decoupled weight decay of the Muon matrices (weight_decay is AdamW's)."},
    )
    muon_momentum: float = field(default=0.95, metadata={"help": "Muon's (Nesterov) momentum."})
    muon_adjust_lr_fn: str = field(
        default="original",
        metadata={
            "help": "Muon's per-shape learning rate scaling: original (sqrt(max(1, rows/cols))) or "
            "match_rms_adamw (0.2*sqrt(max(rows, cols)): reuse AdamW's learning rate)."
        },
    )

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.muon_learning_rate < 0:
            raise ValueError(f"muon_learning_rate must be positive, got {self.muon_learning_rate}")
        if self.muon_weight_decay < 0:
            raise ValueError(f"muon_weight_decay must be at least 0, got {self.muon_weight_decay}")
        if not 0 <= self.muon_momentum < 1:
            raise ValueError(f"muon_momentum must be in [0, 1), got {self.muon_momentum}")
        if self.muon_adjust_lr_fn not in ADJUST_LR_FNS:
            raise ValueError(
                f"muon_adjust_lr_fn must be one of {', '.join(ADJUST_LR_FNS)}, got {self.muon_adjust_lr_fn!r}"
            )


def check_muon_fits(*, optim: str, peft: bool = False, deepspeed: bool = False) -> None:
    """Refuse, naming the setting, a run ``optimizer: muon`` cannot honour."""
    if peft:
        raise ValueError(
            "optimizer: muon trains whole weight matrices, and use_peft trains low-rank LoRA factors (no tested "
            "Muon learning rate for them): drop optimizer: muon or use_peft"
        )
    if str(optim) not in ADAMW_OPTIMS:
        raise ValueError(
            f"optimizer: muon uses AdamW for the parameters outside the hidden matrices, and optim is {optim}: "
            f"drop optim or set it to {' or '.join(ADAMW_OPTIMS)}"
        )
    if deepspeed:
        raise ValueError(
            "optimizer: muon is not supported with deepspeed (it builds its own optimizer): drop one"
        )


def hidden_matrices(model: nn.Module) -> list[nn.Parameter]:
    """The trainable 2-D weights inside the model's repeated blocks (``nn.ModuleList`` items), minus embeddings."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    embeddings = {id(p) for m in model.modules() if isinstance(m, nn.Embedding) for p in m.parameters()}
    embeddings |= {id(p) for p in head.parameters()} if head is not None else set()
    found: dict[int, nn.Parameter] = {}
    for module in model.modules():
        if isinstance(module, nn.ModuleList):
            for p in module.parameters():
                if p.ndim == 2 and p.requires_grad and id(p) not in embeddings:
                    found[id(p)] = p
    return list(found.values())


class MuonWithAdamW(torch.optim.Optimizer):
    """``torch.optim.AdamW`` and ``torch.optim.Muon`` as one optimizer: AdamW's groups first (the learning rate
    Trainer logs is ``learning_rate``), then Muon's. The groups and the state are the inner optimizers' own
    objects, so a scheduler changing a group's lr, and ``state_dict``/``load_state_dict``, act on both."""

    def __init__(self, model: nn.Module, *, decay_parameters: list[str], lr: float, weight_decay: float,
                 betas: tuple[float, float], eps: float, fused: bool, muon_lr: float, muon_weight_decay: float,
                 muon_momentum: float, muon_adjust_lr_fn: str):  # fmt: skip
        hidden = hidden_matrices(model)
        if not hidden:
            raise ValueError(
                f"optimizer: muon found no trainable 2-D weight inside the blocks of {type(model).__name__}; "
                "drop optimizer: muon"
            )
        in_muon = {id(p) for p in hidden}
        decay = set(decay_parameters)
        rest = [(n, p) for n, p in model.named_parameters() if p.requires_grad and id(p) not in in_muon]
        adamw_groups = [
            {"params": [p for n, p in rest if n in decay], "weight_decay": weight_decay},
            {"params": [p for n, p in rest if n not in decay], "weight_decay": 0.0},
        ]
        self.adamw = torch.optim.AdamW(adamw_groups, lr=lr, betas=betas, eps=eps, fused=fused or None)
        self.muon = torch.optim.Muon(
            hidden, lr=muon_lr, weight_decay=muon_weight_decay, momentum=muon_momentum,
            adjust_lr_fn=muon_adjust_lr_fn,
        )  # fmt: skip
        # defaults["lr"]: transformers' cosine_with_min_lr turns an absolute min_lr into a fraction of it, so the
        # floor is min_lr for AdamW and the same fraction of muon_learning_rate for the matrices.
        super().__init__(self.adamw.param_groups + self.muon.param_groups, defaults={"lr": lr})
        self._share_groups_and_state()
        logger.info(
            "optimizer: Muon for %d hidden matrices (%s parameters), AdamW for %d other tensors (%s)",
            len(hidden), f"{sum(p.numel() for p in hidden):,}", len(rest), f"{sum(p.numel() for _, p in rest):,}",
        )  # fmt: skip

    def _share_groups_and_state(self) -> None:
        n = len(self.adamw.param_groups)
        self.adamw.param_groups, self.muon.param_groups = self.param_groups[:n], self.param_groups[n:]
        self.adamw.state = self.muon.state = self.state

    @torch.no_grad()
    def step(self, closure=None):
        """One step of both optimizers."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self.adamw.step()
        self.muon.step()
        return loss

    def load_state_dict(self, state_dict) -> None:
        """Load as any optimizer; the inner optimizers then use the loaded groups and state."""
        super().load_state_dict(state_dict)  # replaces the group dicts and the state
        self._share_groups_and_state()


def use_muon(trainer, optimizer_args: OptimizerArguments | None) -> None:
    """Make ``trainer`` build a ``MuonWithAdamW`` when ``optimizer_args.optimizer`` is muon (else nothing).

    Trainer builds it in ``create_optimizer`` (after wrapping the model, where it wraps first), through its
    ``optimizer_cls_and_kwargs``; a ``model`` keyword is given to the class in place of the param groups on
    every transformers 5.x release."""
    if optimizer_args is None or optimizer_args.optimizer != "muon":
        return
    args = trainer.args
    check_muon_fits(
        optim=getattr(args.optim, "value", args.optim),
        peft=hasattr(trainer.model, "peft_config"),
        deepspeed=trainer.is_deepspeed_enabled,
    )
    if trainer.optimizer is not None:
        raise ValueError("optimizer: muon cannot replace an optimizer given to the trainer")
    model = trainer.model
    kwargs = {
        "model": model,
        "decay_parameters": trainer.get_decay_parameter_names(model),
        "lr": args.learning_rate,
        "weight_decay": args.weight_decay,
        "betas": (args.adam_beta1, args.adam_beta2),
        "eps": args.adam_epsilon,
        "fused": getattr(args.optim, "value", args.optim) == "adamw_torch_fused",
        "muon_lr": optimizer_args.muon_learning_rate,
        "muon_weight_decay": optimizer_args.muon_weight_decay,
        "muon_momentum": optimizer_args.muon_momentum,
        "muon_adjust_lr_fn": optimizer_args.muon_adjust_lr_fn,
    }
    trainer.optimizer_cls_and_kwargs = (MuonWithAdamW, kwargs)


__all__ = ["MuonWithAdamW", "OptimizerArguments", "check_muon_fits", "hidden_matrices", "use_muon"]
