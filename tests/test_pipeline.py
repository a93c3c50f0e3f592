"""hfpipe.pipeline: planning, wiring, per-stage fingerprints, bad input, and a short real run with its report.

The long chain (pretrain -> SFT -> DPO -> evaluate -> int8 -> GGUF, killed during SFT and resumed) is in
tests/test_pipeline_chain.py (slow).
"""

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from hfpipe.pipeline import (
    STATE_FILE,
    describe,
    load_pipeline,
    plan,
    read_state,
    run_pipeline,
    settings_of,
)
from hfpipe.recipe_args import ConfigError, parse_recipe_args

REPO = Path(__file__).resolve().parents[1]
WORDS = "the a cat dog sat ran on under mat log big small red blue one two three and then".split()
TINY_PRETRAIN = {
    "vocab_size": 300, "model_preset": "tiny", "context_length": 32, "emb_dim": 32, "n_layers": 2, "n_heads": 2,
    "block_size": 32, "per_device_train_batch_size": 8, "per_device_eval_batch_size": 16, "max_steps": 6,
    "eval_steps": 6, "save_steps": 3, "logging_steps": 2, "report_to": "none", "validation_size": 0.1,
    "sample_max_new_tokens": 4,
}  # fmt: skip


def write_corpus(path: Path, n_docs: int = 200) -> Path:
    rng = random.Random(0)
    with path.open("w") as fh:
        for i in range(n_docs):
            text = " ".join(f"the {rng.choice(WORDS)} {rng.choice(['cat', 'dog'])} sat." for _ in range(3))
            fh.write(json.dumps({"text": f"story {i}: {text}"}) + "\n")
    return path


def write_pipeline(tmp_path: Path, stages: dict, **top) -> Path:
    path = tmp_path / "pipeline.yaml"
    spec = {"output_dir": str(tmp_path / "out"), "seed": 7, **top, "stages": stages}
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


CHAIN = {"pretrain": {}, "sft": {"dataset_name": "{instructions}"}, "dpo": {"dataset_name": "{pairs}"},
         "evaluate": {}, "quantize": {}, "export_gguf": {}}  # fmt: skip


def test_outputs_are_wired_to_the_next_stages(tmp_path):
    spec = load_pipeline(str(write_pipeline(tmp_path, CHAIN, instructions="i.json", pairs="p.json")))
    stages = {s.name: s for s in plan(spec)}
    out = tmp_path / "out"
    arg = lambda stage, key: stage.args[stage.args.index(f"--{key}") + 1]  # noqa: E731
    assert arg(stages["sft"], "model_name_or_path") == str(out / "pretrain")
    assert arg(stages["sft"], "dataset_name") == "i.json" and arg(stages["dpo"], "dataset_name") == "p.json"
    assert arg(stages["dpo"], "model_name_or_path") == str(out / "sft")
    evaluate = stages["evaluate"].args
    i = evaluate.index("--model_name_or_path")
    assert evaluate[i + 1 : i + 4] == [str(out / n) for n in ("pretrain", "sft", "dpo")]
    assert arg(stages["quantize"], "model_name_or_path") == str(out / "dpo")
    assert arg(stages["export_gguf"], "output_file") == str(out / "export_gguf" / "model.gguf")
    assert arg(stages["pretrain"], "seed") == "7" and all(s.action == "run" for s in stages.values())


def test_a_key_the_stage_sets_wins_over_the_wiring(tmp_path):
    stages = {"pretrain": {}, "sft": {"model_name_or_path": "gpt2-dir", "dataset_name": "x.json"}}
    sft = plan(load_pipeline(str(write_pipeline(tmp_path, stages))))[1]
    assert sft.args[sft.args.index("--model_name_or_path") + 1] == "gpt2-dir" and not sft.inputs


def _finish_all(spec, stages):
    out = Path(spec["output_dir"])
    out.mkdir(parents=True, exist_ok=True)
    records = {s.name: {"fingerprint": s.fingerprint, "status": "done"} for s in stages}
    (out / STATE_FILE).write_text(json.dumps({"pipeline": "x", "stages": records}))


def test_a_changed_stage_reruns_with_what_follows_it_and_nothing_before(tmp_path):
    path = write_pipeline(tmp_path, CHAIN, instructions="i.json", pairs="p.json")
    spec = load_pipeline(str(path))
    _finish_all(spec, plan(spec))
    assert {s.name: s.action for s in plan(spec)} == dict.fromkeys(CHAIN, "skip")
    changed = load_pipeline(str(path), {"sft.learning_rate": 1e-4})
    actions = {s.name: s.action for s in plan(changed)}
    assert actions == {"pretrain": "skip", "sft": "rerun", "dpo": "rerun", "evaluate": "rerun",
                       "quantize": "rerun", "export_gguf": "rerun"}  # fmt: skip


def _interrupt(spec, name):
    state = read_state(Path(spec["output_dir"]))
    state["stages"][name]["status"] = "running"
    (Path(spec["output_dir"]) / STATE_FILE).write_text(json.dumps(state))


def _write_checkpoint(path: Path) -> None:
    from safetensors.torch import save_file

    path.mkdir(parents=True)
    save_file({"w": torch.zeros(2)}, str(path / "model.safetensors"))
    (path / "config.json").write_text("{}")
    (path / "trainer_state.json").write_text(json.dumps({"global_step": int(path.name.split("-")[1])}))


def test_an_interrupted_stage_resumes_from_its_checkpoint_or_restarts(tmp_path):
    spec = load_pipeline(str(write_pipeline(tmp_path, {"pretrain": {}, "evaluate": {}})))
    _finish_all(spec, plan(spec))
    for name in ("pretrain", "evaluate"):
        _interrupt(spec, name)
    described = describe(plan(spec))
    assert "pretrain         restart interrupted before its first checkpoint: starts at step 0" in described
    assert "evaluate         restart interrupted: runs again" in described
    _write_checkpoint(tmp_path / "out" / "pretrain" / "checkpoint-3")
    (
        tmp_path / "out" / "pretrain" / "checkpoint-6"
    ).mkdir()  # interrupted while being saved: not resumed from
    assert "pretrain         resume  interrupted: resumes from checkpoint-3" in describe(plan(spec))


def test_a_rerun_names_the_keys_that_changed_and_the_stage_it_follows(tmp_path):
    path = write_pipeline(tmp_path, {**CHAIN, "sft": {**CHAIN["sft"], "learning_rate": 1e-4}}, instructions="i.json",
                          pairs="p.json")  # fmt: skip
    spec = load_pipeline(str(path))
    stages = plan(spec)
    _finish_all(spec, stages)
    state = read_state(tmp_path / "out")
    for stage in stages:  # what run_pipeline records
        state["stages"][stage.name]["settings"] = settings_of(stage.args)
    (tmp_path / "out" / STATE_FILE).write_text(json.dumps(state))
    why = {
        s.name: s.why for s in plan(load_pipeline(str(path), {"sft.learning_rate": 5e-5, "dpo.beta": 0.2}))
    }
    assert why["pretrain"] == "done, unchanged"
    assert why["sft"] == "learning_rate 0.0001 -> 5e-05"
    assert why["dpo"] == "beta unset -> 0.2; reruns because 'sft' reruns"
    assert why["evaluate"] == "reruns because 'sft' and 'dpo' rerun"
    assert why["quantize"] == why["export_gguf"] == "reruns because 'dpo' reruns"


def test_a_rerun_names_a_key_changed_in_the_stage_config_file(tmp_path):
    config = tmp_path / "pre.yaml"
    config.write_text("learning_rate: 1.0e-4\nmax_steps: 10\n")
    path = write_pipeline(tmp_path, {"pretrain": {"config": "pre.yaml"}, "evaluate": {}})
    spec = load_pipeline(str(path))
    stages = plan(spec)
    _finish_all(spec, stages)
    state = read_state(tmp_path / "out")
    for stage in stages:
        state["stages"][stage.name]["settings"] = settings_of(stage.args)
    (tmp_path / "out" / STATE_FILE).write_text(json.dumps(state))
    config.write_text("learning_rate: 0.00005\nmax_steps: 10\n")  # another size: changed even within a second
    assert [s.why for s in plan(load_pipeline(str(path)))] == [
        "learning_rate 0.0001 -> 5e-05",
        "reruns because 'pretrain' reruns",
    ]


def test_selection_flags(tmp_path):
    spec = load_pipeline(str(write_pipeline(tmp_path, CHAIN, instructions="i.json", pairs="p.json")))
    assert [s.action for s in plan(spec, until="sft")] == ["run", "run", "skip", "skip", "skip", "skip"]
    with pytest.raises(ConfigError, match="stage 'dpo' needs the output of stage 'sft'.*run it first"):
        plan(spec, only=["dpo"])
    with pytest.raises(ConfigError, match="--from sfft: the pipeline has no stage 'sfft'"):
        plan(spec, start="sfft")


@pytest.mark.parametrize(
    ("stages", "top", "message"),
    [
        ({"pretrian": {}}, {}, "stage 'pretrian': no recipe 'pretrian'"),
        ({"pretrain": {"learnign_rate": 1}}, {}, r"stage 'pretrain': unknown key\(s\) \['learnign_rate'\]"),
        ({"sft": {"dataset_name": "{data}"}}, {}, r"\{data\} is used but not set"),
        ({"pretrain": {}}, {"outptu_dir": "x"}, r"unknown key\(s\) \['outptu_dir'\]"),
        (
            {"pretrain": {"config": "missing.yaml"}},
            {},
            "stage 'pretrain': config 'missing.yaml' not found: no missing.yaml in .*, and hfpipe ships no config",
        ),
        ({"pretrain": {"max_steps": "many"}}, {}, "stage 'pretrain'.*max_steps"),
        ({"pretrain": {"architecture": "llama2"}}, {}, "stage 'pretrain'.*unknown architecture 'llama2'"),
        (
            {"pretrain": {"architecture": "llama", "n_kv_heads": 3}},
            {},
            r"n_kv_heads \(3\) must divide n_heads",
        ),
    ],
)
def test_bad_pipelines_fail_before_anything_runs(tmp_path, stages, top, message):
    with pytest.raises(ConfigError, match=message):
        plan(load_pipeline(str(write_pipeline(tmp_path, stages, **top))))
    assert not (tmp_path / "out").exists()


def test_two_pipelines_in_one_output_dir_are_refused(tmp_path):
    first = write_pipeline(tmp_path, {"evaluate": {"model_name_or_path": str(tmp_path)}})
    other = tmp_path / "other.yaml"
    other.write_text(first.read_text())
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / STATE_FILE).write_text(json.dumps({"pipeline": str(first.resolve()), "stages": {}}))
    with pytest.raises(ConfigError, match="belongs to another pipeline"):
        run_pipeline(str(other))


def test_short_run_report_skip_and_rerun(tmp_path, capsys):
    corpus = write_corpus(tmp_path / "corpus.jsonl")
    stages = {"pretrain": {**TINY_PRETRAIN, "dataset_name": str(corpus), "architecture": "nanochat"},
              "evaluate": {"perplexity": True, "eval_batch_size": 4, "max_eval_documents": 8}}  # fmt: skip
    path = write_pipeline(tmp_path, stages, report_prompts=0)
    out = tmp_path / "out"
    run_pipeline(str(path))
    state = read_state(out)
    assert {n: r["status"] for n, r in state["stages"].items()} == {"pretrain": "done", "evaluate": "done"}
    report = json.loads((out / "report.json").read_text())
    rows = {r["stage"]: r for r in report["stages"]}
    assert rows["pretrain"]["tokens"] == 6 * 8 * 32 and rows["pretrain"]["seconds"] > 0
    assert report["evaluation"]["rows"][0]["metrics"]["perplexity"] > 1
    assert report["versions"]["transformers"] and report["hardware"]["cores"]
    assert (out / "report_losses.png").is_file() and "## Evaluation" in (out / "report.md").read_text()
    named = "nanochat (rope, rmsnorm without weight, relu2, 1 of 2 kv heads, qk-norm, no bias)"
    assert report["architecture"] == named
    assert f"Model architecture: {named}. Optimizers: pretrain adamw." in (out / "report.md").read_text()
    assert json.loads((out / "pretrain" / "results.json").read_text())["optimizer"] == "adamw"
    assert f"architecture: {named}." in (out / "pretrain" / "README.md").read_text()  # the model card
    trained = (out / "pretrain" / "model.safetensors").stat().st_mtime

    run_pipeline(str(path))  # unchanged: nothing runs again
    assert "pretrain         skip" in capsys.readouterr().out
    assert (out / "pretrain" / "model.safetensors").stat().st_mtime == trained

    run_pipeline(str(path), {"evaluate.max_eval_documents": 4})  # only evaluation changed
    printed = capsys.readouterr().out
    assert (
        "pretrain         skip" in printed and "evaluate         rerun   max_eval_documents 8 -> 4" in printed
    )
    assert (out / "pretrain" / "model.safetensors").stat().st_mtime == trained


def test_a_failing_stage_stops_with_its_error_and_keeps_the_finished_ones(tmp_path):
    """A problem only the stage can find (its inputs passed the checks): the tokenizer pretraining made has no
    such token."""
    corpus = write_corpus(tmp_path / "corpus.jsonl")
    data = tmp_path / "instructions.json"
    data.write_text(json.dumps([{"instruction": "Name a colour.", "input": "", "output": "Blue."}] * 20))
    stages = {"pretrain": {**TINY_PRETRAIN, "dataset_name": str(corpus)},
              "sft": {"dataset_name": str(data), "eos_token": "<|no-such-token|>"}}  # fmt: skip
    path = write_pipeline(tmp_path, stages)
    proc = subprocess.run([sys.executable, "-m", "hfpipe", "pipeline", "--config", str(path)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 2
    error = proc.stderr.strip().splitlines()[-2]
    assert error.startswith(
        "error: stage 'sft' failed: eos_token '<|no-such-token|>' is not in the tokenizer"
    )
    state = read_state(tmp_path / "out")
    assert state["stages"]["pretrain"]["status"] == "done" and state["stages"]["sft"]["status"] == "running"
    assert [a["outcome"] for a in state["stages"]["sft"]["attempts"]] == ["failed"]


def test_report_says_when_an_answer_is_empty():
    from hfpipe.report import render

    hardware = {"cpu": "x", "cores": 2, "gpus": [], "native_bf16": False, "python": "3.11"}
    report = {"pipeline": "p.yaml", "created": "now", "hardware": hardware,
              "versions": {}, "stages": [], "quality": [],
              "answers": [{"instruction": "Name a colour.", "input": "", "base": "\n\n", "sft": "Blue."}]}  # fmt: skip
    text = render(report)
    assert "- *base*: (nothing: only whitespace or the end-of-text token)" in text
    assert "- *sft*: 'Blue.'" in text


def test_a_pipeline_ends_with_the_native_export(tmp_path):
    """pretrain (llama architecture) -> export_native: the last stage writes a transformers Llama directory."""
    corpus = write_corpus(tmp_path / "corpus.jsonl")
    stages = {"pretrain": {**TINY_PRETRAIN, "dataset_name": str(corpus), "architecture": "llama"},
              "export_native": {}}  # fmt: skip
    spec = load_pipeline(str(write_pipeline(tmp_path, stages, report_prompts=0)))
    export = plan(spec)[1]
    assert export.args[export.args.index("--model_name_or_path") + 1] == str(tmp_path / "out" / "pretrain")
    assert export.output == tmp_path / "out" / "export_native"
    run_pipeline(str(tmp_path / "pipeline.yaml"))
    config = json.loads((export.output / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"] and (export.output / "tokenizer.json").is_file()
    assert read_state(tmp_path / "out")["stages"]["export_native"]["status"] == "done"


def test_command_line_values_keep_yaml_1_1_booleans_as_words():
    """`--sft.eval_strategy no` reaches the stage as "no", as the recipe's own flag would; true/false, numbers and
    lists are still read as YAML."""
    from hfpipe.cli.pipeline import parse

    _, overrides = parse(["--config", "c.yaml", "--sft.eval_strategy", "no", "--sft.bf16", "false",
                          "--sft.learning_rate", "0.00005", "--evaluate.lm_eval_tasks", "[a, b]", "--x", "off"])  # fmt: skip
    assert overrides == {"sft.eval_strategy": "no", "sft.bf16": False, "sft.learning_rate": 5e-5,
                         "evaluate.lm_eval_tasks": ["a", "b"], "x": "off"}  # fmt: skip


def tiny_model_dir(path: Path) -> Path:
    from hfpipe import GPTConfig, GPTForCausalLM
    from hfpipe.tokenization import train_bpe_tokenizer

    tokenizer = train_bpe_tokenizer([" ".join(WORDS)] * 20, vocab_size=300, model_max_length=32)
    config = GPTConfig(vocab_size=len(tokenizer), context_length=32, emb_dim=16, n_heads=2, n_layers=1,
                       eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)  # fmt: skip
    GPTForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_a_killed_stage_that_resumes_reports_each_attempt(tmp_path):
    corpus = write_corpus(tmp_path / "corpus.jsonl", n_docs=20)
    stages = {"evaluate": {"model_name_or_path": [str(tiny_model_dir(tmp_path / "m"))], "dataset_name": str(corpus),
                           "max_eval_documents": 2, "eval_batch_size": 2, "progress": False}}  # fmt: skip
    path = write_pipeline(tmp_path, stages, report_prompts=0)
    spec = load_pipeline(str(path))
    (stage,) = plan(spec)
    out = Path(spec["output_dir"])
    # what a SIGKILL leaves: the attempt's start in pipeline.json, and its files, the newest 30 s later
    killed_at = time.time() - 100
    (out / "evaluate").mkdir(parents=True)
    partial = out / "evaluate" / "partial.json"
    partial.write_text("{}")
    os.utime(partial, (killed_at + 30, killed_at + 30))
    record = {"fingerprint": stage.fingerprint, "status": "running", "recipe": "evaluate", "args": stage.args,
              "started": killed_at, "attempts": [{"started": killed_at}]}  # fmt: skip
    (out / STATE_FILE).write_text(
        json.dumps({"pipeline": str(path.resolve()), "stages": {"evaluate": record}})
    )
    assert plan(spec)[0].action == "restart"  # evaluate keeps no checkpoint: it runs again

    run_pipeline(str(path))
    record = read_state(out)["stages"]["evaluate"]
    first, second = record["attempts"]
    assert first["outcome"] == "killed" and first["seconds"] == pytest.approx(30, abs=1)
    assert second["outcome"] == "done" and record["seconds"] == pytest.approx(30 + second["seconds"])
    report = (out / "report.md").read_text()
    assert (
        "| evaluate | evaluate | done | " in report
        and "- evaluate took 2 attempts: killed after 30" in report
    )
    assert "; started again, done after" in report


def test_the_report_explains_each_evaluation_figure():
    from hfpipe.report import render

    hardware = {"cpu": "x", "cores": 2, "gpus": [], "native_bf16": False, "python": "3.11"}
    metrics = {
        "loss": 5.8,
        "perplexity": 332.4,
        "bits_per_byte": 2.9,
        "eval_tokens": 1834.0,
        "eval_documents": 8.0,
        "skipped_documents": 0.0,
        "hfpipe_mc/acc": 0.31,
        "hfpipe_mc/acc_norm": 0.3,
        "hfpipe_mc/chance": 0.25,
        "hfpipe_bpb/word_perplexity": 900.0,
        "hfpipe_bpb/byte_perplexity": 7.9,
        "hfpipe_bpb/bits_per_byte": 3.0,
    }
    rows = [{"stage": "dpo", "model": "out/dpo", "metrics": metrics, "perplexity_text": "held.txt"}]
    what = "318.1 -> 318.5 on hfpipe_text.txt cut into disjoint blocks"
    quality = [{"figure": "int8 perplexity / original", "stage": "quantize", "value": 1.0013, "what": what}]
    report = {"pipeline": "p.yaml", "created": "now", "hardware": hardware, "versions": {}, "stages": [],
              "quality": quality, "evaluation": {"columns": list(metrics), "rows": rows}}  # fmt: skip
    text = render(report)
    header = next(line for line in text.splitlines() if line.startswith("| checkpoint"))
    assert header == ("| checkpoint | perplexity | bits per byte | lm-eval bits per byte | cloze accuracy | "
                      "cloze accuracy per byte |")  # fmt: skip
    assert "- **perplexity** (per token; lower is better): exp of the mean next-token loss over 8 documents, " \
           "1,834 tokens of held.txt" in text  # fmt: skip
    n_items = sum(1 for line in (REPO / "hfpipe/evaluation/tasks/hfpipe_mc.jsonl").open() if line.strip())
    assert (
        "- **cloze accuracy** (share of items; higher is better): sentences of held-out docstrings cut before "
        f"their last word ({n_items} items)"
    ) in text
    assert "chance 25%" in text and "word_perplexity" not in text
    assert f"| int8 perplexity / original | quantize | 1.001 | {what} |" in text


def test_the_cpu_pipeline_answers_at_most_20_prompts_after_sft(tmp_path):
    from hfpipe.cli.sft import ARGUMENTS

    record = {"instruction": "Name a colour.", "input": "", "output": "Blue."}
    pair = {"instruction": "Name a colour.", "input": "", "chosen": "Blue.", "rejected": "Cat."}
    (tmp_path / "i.json").write_text(json.dumps([record] * 30))
    (tmp_path / "p.json").write_text(json.dumps([pair] * 30))
    spec = load_pipeline(str(REPO / "recipes/configs/pipeline_cpu.yaml"),
                         {"instruction_data": str(tmp_path / "i.json"), "preference_data": str(tmp_path / "p.json"),
                          "output_dir": str(tmp_path / "out")})  # fmt: skip
    sft = next(s for s in plan(spec) if s.name == "sft")
    *_, sft_args = parse_recipe_args(ARGUMENTS, sft.args)
    assert sft_args.test_answers == 20
    *_, defaults = parse_recipe_args(ARGUMENTS, ["--model_name_or_path", "m", "--dataset_name", "d.json"])
    assert defaults.test_answers == 50  # bounded without a config too
