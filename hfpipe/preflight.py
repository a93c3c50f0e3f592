"""A pipeline's inputs checked before its first stage runs, in seconds: nothing is trained on input that a later
stage would refuse.

Each stage that will run is asked, with its parsed settings:

- its data (``dataset_name``) exists and is read by that stage's own loader, so it parses, is not empty and has
  the columns the stage needs (a Hub dataset id is only looked up: nothing is downloaded);
- its model, tokenizer and other ``*_name_or_path`` inputs resolve (a local path or a Hub id hfpipe can use);
- its ``output_dir`` is not a file.

A path that an earlier stage will make is taken as given. A failure is one line naming the stage, the input
and the problem.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path

from .recipe_args import ConfigError

# settings that name a model, a tokenizer or a made input, and what each is called in an error
NAMES = {
    "model_name_or_path": "model",
    "tokenizer_name_or_path": "tokenizer",
    "teacher_model_name_or_path": "teacher model",
    "reward_model_path": "reward model",
    "packed_dataset_path": "packed data",
}


def _setting(parsed, name: str, default=None):
    """The value of setting ``name`` in the first of a recipe's parsed dataclasses that has it."""
    return next((getattr(obj, name) for obj in parsed if hasattr(obj, name)), default)


def _instructions(source: str, parsed) -> None:
    from .data.instructions import load_instruction_records, split_records

    records, _, _ = load_instruction_records(source, _setting(parsed, "dataset_format", "auto"),
                                             _setting(parsed, "dataset_config"),
                                             _setting(parsed, "dataset_train_split", "train"))  # fmt: skip
    split_records(records, _setting(parsed, "test_size", 0.1), _setting(parsed, "validation_size", 0.05))


def _pairs(source: str, parsed) -> None:
    from .preference.data import PreferenceDataArguments, load_split_pairs

    split_args = next(obj for obj in parsed if isinstance(obj, PreferenceDataArguments))
    config, split = _setting(parsed, "dataset_config"), _setting(parsed, "dataset_train_split", "train")
    load_split_pairs(source, split_args, config, split)


def _prompts(source: str, parsed) -> None:
    from .preference.rl import load_prompts

    load_prompts(source, _setting(parsed, "dataset_config"), _setting(parsed, "dataset_train_split", "train"))


def _labelled(source: str, parsed) -> None:
    from .classification import load_labeled_dataset

    load_labeled_dataset(source, _setting(parsed, "text_column", "text"), _setting(parsed, "label_column", "label"),
                         _setting(parsed, "column_names"), _setting(parsed, "dataset_train_split", "train"),
                         _setting(parsed, "dataset_config"))  # fmt: skip


def _corpus(source: str, parsed) -> None:
    """A text corpus can be large: it is streamed, and only its first document is read."""
    from datasets.exceptions import DatasetGenerationError
    from pyarrow import ArrowException

    from .data.sources import load_text_dataset, read_error, resolve_files

    try:
        ds = load_text_dataset(source, _setting(parsed, "text_column", "text"), True,
                               _setting(parsed, "dataset_train_split", "train"), _setting(parsed, "dataset_config"),
                               _setting(parsed, "column_names"), _setting(parsed, "sample_by", "document"))  # fmt: skip
        first = next(iter(ds.take(1)), None)
    # a stream is read only now; datasets < 5 raises a bare TypeError for a JSON record that is not an object
    except (DatasetGenerationError, ArrowException, TypeError) as err:
        raise read_error(source, resolve_files(source), err) from None
    if first is None:
        raise ValueError("the corpus is empty (no documents); point at data with text")


# recipe -> (what its dataset_name is, the check that reads it as the recipe does)
DATA_CHECKS: dict[str, tuple[str, Callable]] = {
    "sft": ("instruction data", _instructions),
    "reward_model": ("preference data", _pairs),
    "dpo": ("preference data", _pairs),
    "rl": ("prompt data", _prompts),
    "finetune_classifier": ("labelled data", _labelled),
    "train_tokenizer": ("corpus", _corpus),
    "prepare_data": ("corpus", _corpus),
    "pretrain": ("corpus", _corpus),
    "distill": ("corpus", _corpus),
    "evaluate": ("evaluation text", _corpus),
}


def check_data(recipe: str, source: str, parsed) -> None:
    """Read ``source`` as ``recipe`` reads it (a local file, directory or glob); only look up a Hub id."""
    from .data.sources import resolve_files

    if resolve_files(str(source)) is not None:  # None: a Hub id that is cached or reachable
        DATA_CHECKS[recipe][1](str(source), parsed)


def _made_by_earlier_stage(value: str, outputs: list[Path]) -> bool:
    path = Path(value).expanduser().absolute()
    return any(path == out or out in path.parents for out in outputs)


def _data_error(stage: str, what: str, source: str, err: Exception) -> ConfigError:
    """One line: the stage, what the input is, its path and the problem (the loaders' messages name the path)."""
    message = str(err).strip()
    for named in (f"data file {source!r}", repr(source), source):
        if message.startswith(named):  # "x.json: no usable ..." -> "... 'x.json': no usable ..."
            return ConfigError(f"stage {stage!r}: {what} {source!r}{message[len(named) :]}")
    return ConfigError(f"stage {stage!r}: {what} {source!r}: {message}")


def check_stage(name: str, recipe: str, parsed, earlier_outputs: list[Path]) -> None:
    """ConfigError naming the stage, the input and the problem when stage ``name`` could not start.

    (Its ``output_dir`` was checked when its settings were parsed: ``parse_recipe_args``.)"""
    from .loading import check_exists

    outputs = [p.absolute() for p in earlier_outputs]
    for obj in parsed:
        for key in (f.name for f in fields(obj) if f.name in NAMES):
            value = getattr(obj, key)
            for one in (value if isinstance(value, list) else [value]) if value else []:
                if not _made_by_earlier_stage(str(one), outputs):
                    try:
                        check_exists(str(one), NAMES[key])
                    except (OSError, ValueError) as err:
                        raise ConfigError(f"stage {name!r}: {err}") from None
    source = _setting(parsed, "dataset_name")
    if recipe in DATA_CHECKS and source and not _made_by_earlier_stage(str(source), outputs):
        try:
            check_data(recipe, source, parsed)
        except (OSError, ValueError) as err:
            raise _data_error(name, DATA_CHECKS[recipe][0], str(source), err) from None


@contextmanager
def _quiet_datasets():
    """No progress bars and no datasets log lines while data is checked: a problem becomes hfpipe's one line."""
    import datasets

    bars = not datasets.utils.are_progress_bars_disabled()
    level = datasets.logging.get_verbosity()
    datasets.disable_progress_bars()
    datasets.logging.set_verbosity(datasets.logging.CRITICAL)
    try:
        yield
    finally:
        datasets.logging.set_verbosity(level)
        if bars:
            datasets.enable_progress_bars()


def check_stages(stages) -> None:
    """Check every stage of a plan that will run (``check_stage``), in order; the first problem is an error."""
    with _quiet_datasets():
        for i, stage in enumerate(stages):
            if stage.action != "skip":
                check_stage(stage.name, stage.recipe, stage.parsed, [s.output for s in stages[:i]])
