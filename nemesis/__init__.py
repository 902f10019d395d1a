"""Fault families, one module each, and the one registry of them: the CLI's choices, the
schedule, fault windows in the analysis and the reports all ask here.

A family says which history `f`s it emits (`start_f` for a fault, `stop_f` for its heal), the
DB capabilities it uses (`requires`) and what it needs of every host (`needs`). Adding a family
is one module plus one line below.
"""

from __future__ import annotations

from harness.db.capabilities import missing

from .base import Nemesis
from .partition import PartitionNemesis
from .process import KillNemesis, PauseNemesis

FAMILIES: dict[str, type] = {cls.name: cls for cls in (PartitionNemesis, KillNemesis, PauseNemesis)}


class NemesisError(ValueError):
    """An unknown family, or one the DB under test cannot serve; one line naming the fix."""


def names() -> list[str]:
    return list(FAMILIES)


def check_names(requested: list[str]) -> list[str]:
    """The families asked for ("none" means none), or NemesisError naming the unknown ones."""
    wanted = [n for n in requested if n not in ("", "none")]
    unknown = [n for n in wanted if n not in FAMILIES]
    if unknown:
        raise NemesisError(f"unknown nemesis {', '.join(unknown)}; choose from {', '.join(FAMILIES)}, none")
    return list(dict.fromkeys(wanted))


def make(requested: list[str], db: object) -> list[Nemesis]:
    """One instance per family asked for; refused when the DB lacks a capability it needs."""
    out = []
    for name in check_names(requested):
        cls = FAMILIES[name]
        lacking = missing(db, cls.requires)
        if lacking:
            raise NemesisError(f"nemesis {name} needs a DB with {', '.join(lacking)}; "
                               f"{getattr(db, 'name', type(db).__name__)} has none")
        out.append(cls())
    return out


def fault_fs() -> dict[str, str]:
    """History f of each fault -> its family."""
    return {cls.start_f: name for name, cls in FAMILIES.items()}


def heal_fs() -> dict[str, str]:
    """History f of each heal -> its family."""
    return {cls.stop_f: name for name, cls in FAMILIES.items()}
