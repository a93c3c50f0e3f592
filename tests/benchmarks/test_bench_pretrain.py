"""Smoke test: bench_pretrain.py --quick runs the recipe and a GPT-2 Trainer in fp32 and in bf16 autocast and
writes its table, with the recipe's bf16/fp32 ratio and the CPU features that explain it; the tinyshakespeare
section (slow) runs nanoGPT beside the recipe; the profiler's regions add up."""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_pretrain.py"
NUMBER = r"([\d,.]+)"


def test_quick_benchmark_writes_table(tmp_path):
    output = tmp_path / "pretrain.md"
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--output", str(output), "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = output.read_text()
    assert table in proc.stdout
    assert "partial results" not in table
    for kind in ("steady", "train_runtime"):
        for dtype in ("fp32", "bf16 autocast"):
            row = f"train tokens/s, {kind}, {dtype}"
            match = re.search(rf"^\| {re.escape(row)} \| {NUMBER} \| {NUMBER} \| ([\d.]+)x \|", table, re.M)
            assert match, f"missing row {row!r} in\n{table}"
            ours, reference, ratio = (float(g.replace(",", "")) for g in match.groups())
            assert ours > 0 and reference > 0 and ratio > 0  # ratio = median of back-to-back pair ratios
        match = re.search(
            rf"^\| \*\*bf16 / fp32 tokens/s, {kind}\*\* \| \*\*([\d.]+)x\*\* \| ([\d.]+)x \|", table, re.M
        )
        assert match, f"missing the bf16/fp32 ratio ({kind}) in\n{table}"
        assert all(float(g) > 0 for g in match.groups())
    for dtype in ("fp32", "bf16"):
        assert re.search(rf"^\| MFU vs {dtype} matmul peak, steady, .*\| [\d.]+% \| [\d.]+% \|", table, re.M)
        assert re.search(rf"^\| measured matmul peak, {dtype} .*\| [\d,.]+ GFLOP/s \|", table, re.M)
    # The CPU features that decide the bf16 branch, so that the ratio can be read.
    assert re.search(r"AVX512-BF16: (yes|no), AMX: (yes|no)", table)
    assert re.search(r"cpu_has_fast_bf16\(\)` = (True|False)", table)
    assert "tinyshakespeare (recipes" not in table  # --quick leaves the long runs out


def test_profile_regions_are_exclusive_and_add_up(load_script):
    """A region's time excludes the regions it calls; inside an absorbing region (evaluation) every wrapped
    call counts as that region; the regions add up to the wall time."""
    profile = load_script("benchmarks/pretrain_profile.py")
    regions = profile.Regions()

    class Work:
        def backward(self):
            time.sleep(0.1)

        def step(self):
            time.sleep(0.05)
            self.backward()

        def evaluation(self):
            time.sleep(0.05)
            self.backward()  # counted as evaluation

    regions.wrap(Work, "backward", "backward")
    regions.wrap(Work, "step", "forward + loss", base_after=profile.LOOP)
    regions.wrap(Work, "evaluation", "evaluation")
    start = time.perf_counter()
    regions.switch_base("setup")
    work = Work()
    work.step()
    work.evaluation()
    result = regions.finish()
    seconds, calls = result["seconds"], result["calls"]
    # sleeps may overrun on a busy machine, but not by the length of the region a wrong count would add
    assert 0.05 <= seconds["forward + loss"] < 0.1  # without backward's 0.1
    assert 0.1 <= seconds["backward"] < 0.15  # without evaluation's call
    assert seconds["evaluation"] >= 0.15
    assert calls == {"forward + loss": 1, "backward": 1, "evaluation": 1}
    assert profile.LOOP in seconds  # the first call of `step` began the loop
    assert sum(seconds.values()) <= result["wall_inside"] < sum(seconds.values()) + 0.01
    assert sum(seconds.values()) - seconds["imports"] >= time.perf_counter() - start - 0.01


@pytest.mark.slow
def test_shakespeare_beside_nanogpt(tmp_path, shared_data):
    """The tinyshakespeare section runs nanoGPT's own train.py (a checkout: $NANOGPT_DIR) beside the recipe,
    compares both final models on the same held-out windows and breaks each run's wall time down."""
    if not os.environ.get("NANOGPT_DIR"):
        pytest.skip("set NANOGPT_DIR to a checkout of github.com/karpathy/nanoGPT (hfpipe does not ship it)")
    output = tmp_path / "pretrain.md"
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--without-throughput", "--without-bf16", "--shakespeare-max-steps", "20",
         "--shakespeare-eval-blocks", "40", "--threads", "1", "--shared", str(shared_data),
         "--book-vs-modern-steps", "8", "--output", str(output), "--workdir", str(tmp_path)],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = output.read_text()
    rows = {}
    for name in ("nanoGPT", "hfpipe", "hfpipe modern"):
        match = re.search(rf"^\| {name} \| ([\d.]+) min \| ([\d.x]*) \| ([\d.]+) \|", table, re.M)
        assert match, f"no row for {name} in\n{table}"
        rows[name] = match.groups()
    assert rows["hfpipe"][1].endswith("x") and float(rows["hfpipe"][1][:-1]) > 0
    # 20 steps from a random start: both models are past the uniform loss ln(65) = 4.17 but far from trained
    for _, _, loss in rows.values():
        assert 2.0 < float(loss) < 4.2
    assert "on the same 40 disjoint windows" in table
    assert "**Reduced run: 20 steps" in table
    section = table.split("### Where the time goes", 1)[1]
    for region in ("forward + loss", "backward", "optimizer step", "data loading", "evaluation"):
        match = re.search(
            rf"^\| {re.escape(region)} \| ([\d.,]+) \| ([\d.,]+)? ?\| ([\d.,]+) \|", section, re.M
        )
        assert match, f"no {region!r} for both runs in\n{section}"
    assert re.search(r"^\| NaN guard \(on_pre_optimizer_step\) \|  \|  \| [\d.]+ \| [\d.]+ \|", section, re.M)
    assert re.search(r"^\| \*\*wall time of the process\*\* \| [\d.,]+ \|  \| [\d.,]+ \|  \| [\d.,]+ \|  \|$",
                     section, re.M)  # fmt: skip
    # the modern config beside them: its time to nanoGPT's loss, the curves, and book vs modern on quickstart
    assert re.search(r"\*\*time to nanoGPT's loss: [\d.]+x nanoGPT's wall time\*\*", table)
    assert (tmp_path / "pretrain_time_to_loss.png").stat().st_size > 10_000
    for side in ("book, AdamW", "modern, Muon"):
        assert re.search(
            rf"^\| {side} \| 8 \| \d+ s \| [\d.]+ \| [\d.]+ \| [\d.]+ \(\d+\) \|$", table, re.M
        ), table


def test_time_to_loss_reading_and_plot(tmp_path):
    """The curve readings the time-to-loss lines are built from, and the PNG of every run's curve."""
    sys.path.insert(0, str(BENCH.parent))
    import book_vs_modern
    import vs_nanogpt

    curve = [[30.0, 100, 2.2], [60.0, 200, 1.95], [90.0, 300, 1.85]]
    assert vs_nanogpt.first_time_at(curve, 1.9) == 90.0 and vs_nanogpt.first_time_at(curve, 1.5) is None
    assert book_vs_modern.loss_by(curve, 75.0) == (1.95, 200) and book_vs_modern.loss_by(curve, 10.0) is None
    runs = []
    for name, points in (("nanoGPT", [[20.0, 0, 4.2], [100.0, 2000, 1.88]]), ("hfpipe modern", curve)):
        run = vs_nanogpt.Run(name, "hfpipe", [], tmp_path, tmp_path)
        run.result = {
            "curve": points,
            "steps": points[-1][1],
            "wall": points[-1][0] + 5,
            "reported": points[-1][2],
        }
        runs.append(run)
    png = vs_nanogpt.plot_curves(runs, tmp_path / "curves.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and not list(tmp_path.glob("*.tmp.png"))
