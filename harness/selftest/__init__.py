"""`zkchaos selftest`: proof that the harness catches real bugs.

A catalogue of mutants (`catalogue.py`), small realistic bugs of zkserver, each a text patch
applied to a copy of the server at run time (`mutant.py`); each is run under the campaign test
that should expose it, next to a control run of the unchanged server (`plan.py`, `execute.py`);
every run is judged caught, missed or unknown (`verdict.py`) into a detection matrix
(`matrix.py`) shown in the terminal, as JSON and as HTML (`render.py`). docs/selftest.md has
the catalogue and how to use it.
"""
