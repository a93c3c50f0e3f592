"""hfpipe.pipeline: planning, wiring, per-stage fingerprints, bad input, and a short real run with its report.

The long chain (pretrain -> SFT -> DPO -> evaluate -> int8 -> GGUF, killed during SFT and resumed) is in
tests/test_pipeline_chain.py (slow).
"""

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hfpipe.pipeline import STATE_FILE, load_pipeline, plan, read_state, run_pipeline
from hfpipe.recipe_args import ConfigError

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


def test_an_interrupted_stage_resumes(tmp_path):
    spec = load_pipeline(str(write_pipeline(tmp_path, {"pretrain": {}, "evaluate": {}})))
    stages = plan(spec)
    _finish_all(spec, stages)
    state = read_state(Path(spec["output_dir"]))
    state["stages"]["evaluate"]["status"] = "running"
    (Path(spec["output_dir"]) / STATE_FILE).write_text(json.dumps(state))
    assert [s.action for s in plan(spec)] == ["skip", "resume"]


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
            "stage 'pretrain': config 'missing.yaml' does not exist",
        ),
        ({"pretrain": {"max_steps": "many"}}, {}, "stage 'pretrain'.*max_steps"),
    ],
)
def test_bad_pipelines_fail_before_anything_runs(tmp_path, stages, top, message):
    with pytest.raises(ConfigError, match=message):
        plan(load_pipeline(str(write_pipeline(tmp_path, stages, **top))))
    assert not (tmp_path / "out").exists()


def test_two_pipelines_in_one_output_dir_are_refused(tmp_path):
    first = write_pipeline(tmp_path, {"evaluate": {"model_name_or_path": "m"}})
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
    assert f"Model architecture: {named}." in (out / "report.md").read_text()
    assert f"architecture: {named}." in (out / "pretrain" / "README.md").read_text()  # the model card
    trained = (out / "pretrain" / "model.safetensors").stat().st_mtime

    run_pipeline(str(path))  # unchanged: nothing runs again
    assert "pretrain         skip" in capsys.readouterr().out
    assert (out / "pretrain" / "model.safetensors").stat().st_mtime == trained

    run_pipeline(str(path), {"evaluate.max_eval_documents": 4})  # only evaluation changed
    printed = capsys.readouterr().out
    assert "pretrain         skip" in printed and "evaluate         rerun" in printed
    assert (out / "pretrain" / "model.safetensors").stat().st_mtime == trained


def test_a_failing_stage_stops_with_its_error_and_keeps_the_finished_ones(tmp_path):
    corpus = write_corpus(tmp_path / "corpus.jsonl")
    stages = {"pretrain": {**TINY_PRETRAIN, "dataset_name": str(corpus)},
              "sft": {"dataset_name": str(tmp_path / "missing.json")}}  # fmt: skip
    path = write_pipeline(tmp_path, stages)
    proc = subprocess.run([sys.executable, "-m", "hfpipe", "pipeline", "--config", str(path)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 2
    error = proc.stderr.strip().splitlines()[-2]
    assert error.startswith("error: stage 'sft' failed:") and "missing.json" in error
    state = read_state(tmp_path / "out")
    assert state["stages"]["pretrain"]["status"] == "done" and state["stages"]["sft"]["status"] == "running"


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
