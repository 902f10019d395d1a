"""iptables rules the network families add on nodes: each tagged with a comment naming its
family, remembered as added, deleted exactly, and swept by that comment when a crashed run left
some behind. Rules always leave SSH alone, so the harness keeps control of every node."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness.db import Node

log = logging.getLogger(__name__)


@dataclass
class Rules:
    """The rules one family has in place: (node name, rule spec) in the order added."""

    comment: str
    added: list[tuple[str, str]] = field(default_factory=list)

    def spec(self, match: str, chain: str = "INPUT") -> str:
        return f"{chain} {match} -j DROP -m comment --comment {self.comment}"

    def add(self, node: Node, rule: str) -> None:
        self.added.append((node.name, rule))  # listed first: a rule half-added is still removed
        node.remote.run(f"iptables -w -A {rule}", timeout=30)

    def remove(self, node_by_name) -> int:
        """Delete every rule added; those on nodes we cannot reach stay listed, and the failure
        is raised once the others are done. Returns how many went."""
        left, removed = [], 0
        for name, rule in self.added:
            try:
                node_by_name(name).remote.run(f"iptables -w -D {rule}", timeout=30, check=False)
                removed += 1
            except Exception as e:  # noqa: BLE001 - go on with the other nodes
                log.warning("could not remove a %s rule on %s: %s", self.comment, name, e)
                left.append((name, rule))
        self.added = left
        if left:
            raise RuntimeError(f"{self.comment} rules still in place on {', '.join(sorted({n for n, _ in left}))}")
        return removed

    def sweep(self, node: Node) -> None:
        """Delete every rule carrying our comment (ours, or what a crashed run left)."""
        sweep(node, self.comment)


def sweep(node: Node, comment: str, chains: tuple[str, ...] = ("INPUT", "OUTPUT")) -> None:
    try:
        for chain in chains:
            rules = node.remote.run(f"iptables -w -S {chain} | grep -- '{comment}' || true", timeout=30).stdout
            for line in rules.splitlines():
                if line.startswith("-A "):
                    node.remote.run(f"iptables -w -D {line[3:]}", timeout=30, check=False)
    except Exception as e:  # noqa: BLE001 - teardown must go on to the next node
        log.warning("could not sweep %s rules on %s: %s", comment, node.name, e)


def dropped(node: Node, comment: str) -> int:
    """Packets the rules carrying `comment` dropped on `node` so far (iptables' counters)."""
    out = node.remote.run("iptables -w -L INPUT -v -n -x", timeout=30).stdout
    return sum(int(line.split()[0]) for line in out.splitlines()
               if comment in line and re.match(r"\s*\d+\s", line))
