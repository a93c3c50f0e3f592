"""recipes/slurm/pretrain.sbatch: valid bash, and the `accelerate launch` it starts on each node is what
accelerate and torchrun accept for a c10d multi-node run.

No cluster is here: `scontrol` and `srun` are stand-ins on PATH (srun runs the task once per node with that
node's SLURM_NODEID), and `accelerate` records its arguments. Those arguments then go through accelerate's
own parser, its config-file merge and environment set-up, and torchrun's ``config_from_args``: the chain
``accelerate launch`` runs before it starts any process.
"""

import json
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import torch.distributed.run as torchrun
from accelerate.commands.launch import _validate_launch_command, launch_command_parser
from accelerate.utils.launch import _filter_args, prepare_multi_gpu_env

REPO = Path(__file__).resolve().parents[2]
SBATCH = REPO / "recipes" / "slurm" / "pretrain.sbatch"
from hfpipe.cli import pretrain  # noqa: E402
from hfpipe.recipe_args import parse_recipe_args  # noqa: E402

STAND_INS = {
    "scontrol": '#!/bin/bash\n[ "$1 $2" = "show hostnames" ] && printf "gpu-node-a\\ngpu-node-b\\n"\n',
    "srun": "#!/bin/bash\nwhile [[ $1 == --* ]]; do shift; done\n"
    'for ((i = 0; i < SLURM_NNODES; i++)); do SLURM_NODEID=$i "$@" || exit $?; done\n',
    "accelerate": f"#!{sys.executable}\nimport json, os, sys\n"
    "open(os.environ['RECORD'], 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def test_sbatch_script_is_valid_bash():
    subprocess.run(["bash", "-n", str(SBATCH)], check=True)


def test_each_node_launches_a_c10d_rendezvous_that_accelerate_and_torchrun_accept(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in STAND_INS.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(stat.S_IRWXU)
    record, port = tmp_path / "launches.jsonl", free_port()
    # the README's command: sbatch --nodes=2 recipes/slurm/pretrain.sbatch <these>
    user_args = [
        "--config",
        "recipes/configs/gpt2_124m_fineweb_edu.yaml",
        "--gradient_accumulation_steps",
        "2",
    ]
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "RECORD": str(record),
        "SLURM_JOB_NODELIST": "gpu-node-[a-b]",
        "SLURM_NNODES": "2",
        "SLURM_GPUS_ON_NODE": "4",
        "SLURM_SUBMIT_DIR": str(REPO),
        "MAIN_PORT": str(port),
    }
    proc = subprocess.run(
        ["bash", str(SBATCH), *user_args], env=env, capture_output=True, text=True, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert "2 nodes x 4 processes, rendezvous at gpu-node-a" in proc.stdout
    launches = [json.loads(line) for line in record.read_text().splitlines()]
    assert len(launches) == 2  # one task per node

    monkeypatch.chdir(REPO)  # the script runs from SLURM_SUBMIT_DIR: its paths are relative to the repo
    for node, argv in enumerate(launches):
        assert argv[0] == "launch"
        args, defaults, _ = _validate_launch_command(launch_command_parser().parse_args(argv[1:]))
        assert args.use_fsdp and args.machine_rank == node and args.num_machines == 2
        assert defaults.fsdp_config["fsdp_transformer_layer_cls_to_wrap"] == "GPTBlock"
        accelerate_env = prepare_multi_gpu_env(args)
        assert accelerate_env["ACCELERATE_USE_FSDP"] == "true" and accelerate_env["FSDP_VERSION"] == "2"
        assert accelerate_env["FSDP_STATE_DICT_TYPE"] == "SHARDED_STATE_DICT"
        assert accelerate_env["FSDP_TRANSFORMER_CLS_TO_WRAP"] == "GPTBlock"
        torchrun_args = _filter_args(
            args,
            torchrun.get_args_parser(),
            ["--training_script", args.training_script, "--training_script_args", args.training_script_args],
        )
        config, entrypoint, script_args = torchrun.config_from_args(torchrun_args)
        assert (config.min_nodes, config.max_nodes, config.nproc_per_node) == (2, 2, 4)
        assert config.rdzv_backend == "c10d" and config.rdzv_endpoint == f"gpu-node-a:{port}"
        assert config.max_restarts == 0 and torchrun_args.node_rank == node
        assert entrypoint == sys.executable and script_args[-len(user_args) - 1 :] == [
            "recipes/pretrain.py",
            *user_args,
        ]
        monkeypatch.chdir(tmp_path)  # output_dir values in the config are relative
        parsed = parse_recipe_args(
            pretrain.ARGUMENTS, [str(REPO / a) if a.endswith(".yaml") else a for a in user_args]
        )
        # on 2 nodes x 8 GPUs (the template's default): 16 x 16 x 2 x 1024 = the config's 0.5 M tokens/step
        assert parsed[-1].gradient_accumulation_steps == 2
        monkeypatch.chdir(REPO)
