"""pytest glue, split by role as pytest-xdist splits its plugin.

``main`` is the ``pytest11`` entry point (named ``deploy_smoke``): options, markers and
configuration. The role plugins it registers once a smoke config is found live beside it:
``collection``, ``execution``, ``controller`` (with ``publish``; it calls :mod:`pytest_smoke.decision`), ``fixtures``
and ``preflight``; ``run`` holds the per-process state they share. This package module itself
registers nothing, so a stale entry point that names it (an older install, or the unrelated
``pytest-smoke`` distribution) adds no second copy of the hooks.
"""
