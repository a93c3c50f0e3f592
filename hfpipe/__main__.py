"""``python -m hfpipe <command>`` (and ``accelerate launch -m hfpipe <command>``): the ``hfpipe`` command."""

from hfpipe.cli import main

main()
