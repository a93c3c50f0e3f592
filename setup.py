"""The package list, which pyproject.toml cannot express: hfpipe's packages, plus ``recipes/`` shipped as
``hfpipe.recipes`` (the recipe scripts and their configs), so that the checkout keeps its layout and a wheel
carries them. Everything else is in pyproject.toml."""

from setuptools import find_namespace_packages, setup

setup(
    packages=[*find_namespace_packages(include=["hfpipe*"]), "hfpipe.recipes", "hfpipe.recipes.configs"],
    package_dir={"hfpipe.recipes": "recipes"},
)
