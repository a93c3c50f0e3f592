"""The recipes as scripts (``python recipes/pretrain.py --config ...``) and their configs (``configs/``).

Installed as ``hfpipe.recipes``: a wheel carries them, and ``--config NAME`` finds a packaged config by name.
"""
