"""The workload registry: name -> the module that builds its `Workload` (as WORKLOAD).

Modules are imported when a workload is asked for, so `zkchaos analyze` pays only for the one
it checks. Adding a workload is one module plus one line here.
"""

from __future__ import annotations

import importlib

from harness.workload import Workload

REGISTRY = {
    "register": "workloads.register",
    "counter": "workloads.counter",
    "queue": "workloads.queue",
    "bank": "workloads.bank",
    "set": "workloads.set",
    "unique-ids": "workloads.unique_ids",
    "ephemeral": "workloads.ephemeral",
    "lock": "workloads.lock",
    "watch": "workloads.watch",
}


class UnknownWorkload(ValueError):
    pass


def names() -> list[str]:
    return list(REGISTRY)


def get(name: str) -> Workload:
    module = REGISTRY.get(name)
    if module is None:
        raise UnknownWorkload(f"unknown workload {name!r}; choose from {', '.join(REGISTRY)}")
    return importlib.import_module(module).WORKLOAD


def all_workloads() -> list[Workload]:
    return [get(name) for name in REGISTRY]
