"""The DreamScape consumer runtime: the run loop and what a consumer builds on.

`__version__` is the one place the release version is written: every distribution's build
(distributions/*/hatch_build.py, the root pyproject.toml) reads it, and `dreamscape new`
pins a generated consumer to it. What a consumer may import is declared in `common.api`.
"""

__version__ = "0.2.0"
