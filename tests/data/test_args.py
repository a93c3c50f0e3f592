import pytest
from trl import DPOConfig, ModelConfig, RewardConfig, ScriptArguments, SFTConfig, TrlParser

from hfpipe.data import DataArguments
from hfpipe.tokenization import TokenizerArguments


@pytest.mark.parametrize("config", [SFTConfig, DPOConfig, RewardConfig])
def test_one_parser_with_trl(config):
    # argparse raises on a duplicate option: hfpipe's data and tokenizer fields must not repeat trl's
    TrlParser([ScriptArguments, ModelConfig, DataArguments, TokenizerArguments, config])
    script, data = TrlParser([ScriptArguments, DataArguments]).parse_args_into_dataclasses(
        ["--dataset_name", "c.txt", "--dataset_streaming", "true", "--block_size", "64"]
    )
    assert (script.dataset_name, script.dataset_streaming, data.block_size) == ("c.txt", True, 64)
