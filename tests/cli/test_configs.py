"""``hfpipe configs``: the packaged configs listed with their descriptions; one printed as it ships, so that a
user can copy it, edit it and run it."""

import pytest

from hfpipe.cli import main
from hfpipe.configs import packaged_configs
from hfpipe.recipe_args import parse_recipe_args


def test_lists_every_packaged_config_with_its_description(capsys):
    main(["configs"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "packaged configs (`hfpipe configs NAME` prints one):"
    listed = {line.split()[0]: line for line in lines[1:]}
    assert sorted(listed) == sorted(packaged_configs())
    assert "a small GPT pretrained in about 5 minutes on a laptop CPU." in listed["quickstart"]
    assert all(len(line) <= 130 for line in lines)


@pytest.mark.parametrize("name", ["sft_alpaca", "sft_alpaca.yaml"])
def test_prints_one_as_it_ships_and_the_copy_runs(name, capsys, tmp_path, monkeypatch):
    from hfpipe.cli.sft import ARGUMENTS

    main(["configs", name])
    printed = capsys.readouterr().out
    assert printed == packaged_configs()["sft_alpaca"].read_text()
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my.yaml").write_text(printed.replace("learning_rate: ", "learning_rate: 1.0e-3 #"))
    _, training, *_ = parse_recipe_args(ARGUMENTS, ["--config", "my"])
    assert training.learning_rate == 1e-3


def test_an_unknown_name_is_one_line_and_exit_2(capsys):
    with pytest.raises(SystemExit) as done:
        main(["configs", "quikstart"])
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: hfpipe ships no config 'quikstart'; its configs: classifier_sms_spam, ")
    assert "Traceback" not in err
