"""hfpipe.export.compare: held-out text cut into blocks, without the tokenizer's too-long warning."""

import logging

from transformers.utils import logging as hf_logging

from hfpipe.export.compare import text_blocks
from hfpipe.tokenization import train_bpe_tokenizer


def test_a_text_longer_than_the_context_is_cut_without_a_warning(caplog):
    text = " ".join(f"the cat {i % 7} sat on the mat." for i in range(200))
    tokenizer = train_bpe_tokenizer([text], vocab_size=300, model_max_length=16)
    hf_logging.get_logger("transformers").propagate = True  # into caplog
    try:
        with caplog.at_level(logging.WARNING):
            blocks = text_blocks(tokenizer, text, 16, max_blocks=4)
            quiet = [r.getMessage() for r in caplog.records]
            tokenizer(text)  # the same tokenizer, called plainly, does warn: the check can fail
    finally:
        hf_logging.get_logger("transformers").propagate = False
    assert blocks.shape == (4, 16)
    assert not [m for m in quiet if "longer than the specified maximum" in m], quiet
    assert any("longer than the specified maximum" in r.getMessage() for r in caplog.records)
