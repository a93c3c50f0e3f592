import pytest
import torch

from hfpipe.distillation import check_same_tokenizer, distillation_loss
from hfpipe.tokenization import build_char_tokenizer, train_bpe_tokenizer


def test_loss_is_zero_for_identical_logits_and_ignores_unlabelled_positions():
    torch.manual_seed(0)
    logits = torch.randn(2, 6, 11)
    labels = torch.randint(0, 11, (2, 6))
    assert distillation_loss(logits, logits.clone(), labels, temperature=2.0).item() == pytest.approx(
        0, abs=1e-6
    )
    other = torch.randn(2, 6, 11)
    loss = distillation_loss(logits, other, labels, temperature=2.0)
    assert loss.item() > 0
    masked = labels.clone()
    masked[:, 3:] = -100
    changed = other.clone()
    changed[:, 2:] = logits[:, 2:]  # positions 2.. predict labels 3.., all ignored: only the first two count
    assert distillation_loss(logits, changed, masked, 2.0).item() == pytest.approx(
        distillation_loss(logits, other, masked, 2.0).item(), rel=1e-5
    )
    # extra (padding) vocabulary rows of a larger model are ignored
    padded = torch.cat([logits, torch.randn(2, 6, 5)], dim=-1)
    assert distillation_loss(padded, logits, labels, 2.0).item() == pytest.approx(0, abs=1e-6)


def test_loss_grows_the_student_toward_the_teacher():
    torch.manual_seed(0)
    teacher = torch.randn(1, 8, 7)
    student = torch.zeros(1, 8, 7, requires_grad=True)
    labels = torch.zeros(1, 8, dtype=torch.long)
    opt = torch.optim.SGD([student], lr=1.0)
    first = None
    for _ in range(300):
        loss = distillation_loss(student, teacher, labels, temperature=1.0)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.1 * first


def test_tokenizer_mismatch_is_a_clear_error():
    bpe = train_bpe_tokenizer(["hello world, hello there"] * 5, vocab_size=270)
    char = build_char_tokenizer("hello world, hello there")
    check_same_tokenizer(bpe, bpe, "t", "s")
    with pytest.raises(ValueError, match="different tokenizers.*model_name_or_path"):
        check_same_tokenizer(bpe, char, "teacher-dir", "student-dir")
