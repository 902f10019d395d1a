"""Fault families, one module each, and the one registry of them: the CLI's choices and options,
the schedule, fault windows in the analysis and the reports all ask here.

A family says which history `f`s it emits (`faults`, and `heal_f` for its heal), the DB
capabilities it uses (`requires`), what it needs of every host (`needs`), the target specs it
draws from and its own options. Adding a family is one module plus one line below.
"""

from __future__ import annotations

from harness.db.capabilities import missing

from . import targets
from .base import Family
from .clock import ClockFamily
from .disk import DiskFamily
from .lazyfs import LazyfsFamily
from .packet import PacketFamily
from .partition import PartitionFamily
from .process import KillFamily, PauseFamily
from .sessions import SessionMoveFamily

FAMILIES: dict[str, type[Family]] = {cls.name: cls for cls in (PartitionFamily, KillFamily, PauseFamily, PacketFamily,
                                                            SessionMoveFamily, ClockFamily, DiskFamily,
                                                            LazyfsFamily)}


class NemesisError(ValueError):
    """An unknown family, or one this run cannot use; one line naming the fix."""


def names() -> list[str]:
    return list(FAMILIES)


def check_names(requested: list[str]) -> list[str]:
    """The families asked for ("all": every one, "none": none), or NemesisError naming the
    unknown ones."""
    wanted = [n for n in requested if n not in ("", "none")]
    if "all" in wanted:
        wanted = [n for n in wanted if n != "all"] + names()
    unknown = [n for n in wanted if n not in FAMILIES]
    if unknown:
        raise NemesisError(f"unknown nemesis {', '.join(unknown)}; choose from {', '.join(FAMILIES)}, all, none")
    return list(dict.fromkeys(wanted))


def make(requested: list[str], db: object, nodes: int = 5, target_specs: list[str] | None = None) -> list[Family]:
    """One instance per family asked for, with the target specs this run allows it. Refused
    when the DB lacks a capability a family needs or no target fits the cluster."""
    out = []
    for name in check_names(requested):
        cls = FAMILIES[name]
        lacking = missing(db, cls.requires)
        if lacking:
            raise NemesisError(f"nemesis {name} needs a DB with {', '.join(lacking)}; "
                               f"{getattr(db, 'name', type(db).__name__)} has none")
        family = cls()
        try:
            specs = targets.allowed(cls.target_specs, target_specs, nodes)
        except targets.TargetError as e:
            raise NemesisError(f"--nemesis-targets: {e}") from None
        if cls.target_specs and cls.needs_targets and not specs:
            raise NemesisError(f"nemesis {name} has no target it can use here "
                               f"(it uses {', '.join(cls.target_specs)}; {nodes} node(s))")
        family.configure(specs)
        out.append(family)
    return out


def options() -> list:
    """Every family's own command-line options."""
    return [o for cls in FAMILIES.values() for o in cls.options]


def fault_fs() -> dict[str, str]:
    """History f of each fault -> its family."""
    return {f: name for name, cls in FAMILIES.items() for f in cls.faults}


def heal_fs() -> dict[str, str]:
    """History f of each heal -> its family."""
    return {cls.heal_f: name for name, cls in FAMILIES.items()}
