"""A mutant: one small bug put into a copy of the server, never into the product.

Its patch is an exact text replacement in one file. Applying it fails loudly when the old
snippet does not occur exactly once, so the catalogue cannot drift from the code unnoticed: a
refactoring that moves the line makes the mutant fail to apply, and its unit test says which.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from harness.db.zkchaos import REPO, copy_sources


class MutantError(RuntimeError):
    """A patch that no longer matches the source; one line naming the mutant and the file."""


@dataclass(frozen=True)
class Patch:
    path: str  # relative to the repository, e.g. "zkserver/prep.py"
    old: str
    new: str


@dataclass(frozen=True)
class Mutant:
    name: str
    layer: str
    description: str  # the slip, as a code review would put it
    patch: Patch
    campaign: Mapping[str, Any]  # test options naming the campaign test that must catch it
    expects: tuple[str, ...]  # anomaly types; any one of them in the results counts as caught

    def patched(self, root: Path = REPO) -> str:
        """The text of the patched file of the tree at `root`; MutantError if the patch does
        not apply there."""
        try:
            text = (root / self.patch.path).read_text()
        except OSError as e:
            raise MutantError(f"mutant {self.name}: cannot read {self.patch.path} ({e.strerror})") from None
        found = text.count(self.patch.old)
        if found != 1:
            raise MutantError(f"mutant {self.name}: the snippet to replace occurs {found} times in "
                              f"{self.patch.path} (expected once); update the catalogue")
        return text.replace(self.patch.old, self.patch.new)

    def apply(self, root: Path) -> None:
        """Patch the tree at `root` in place."""
        (root / self.patch.path).write_text(self.patched(root))

    def build(self, parent: Path | None = None, repo: Path = REPO) -> Path:
        """A copy of the checkout's sources with this mutant applied, in a new directory."""
        root = Path(tempfile.mkdtemp(prefix=f"zkchaos-mutant-{self.name}-", dir=parent))
        try:
            copy_sources(root, repo)
            self.apply(root)
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
        return root
