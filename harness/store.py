"""The store: one directory per test run.

`store/<test-name>/<timestamp>/` holds test.json (options), history.jsonl, results.json,
harness.log, nodes/<node>/ (server logs, configs) and report files; `store/latest` points at
the newest run.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any


class RunDir:
    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def create(cls, store: Path, test_name: str) -> RunDir:
        stamp = time.strftime("%Y%m%dT%H%M%S")
        path = store / test_name / stamp
        n = 1
        while path.exists():  # two runs in one second
            n += 1
            path = store / test_name / f"{stamp}-{n}"
        path.mkdir(parents=True)
        latest = store / "latest"
        try:
            if latest.is_symlink() or latest.exists():
                latest.unlink()
            latest.symlink_to(path.relative_to(store))
        except OSError:
            pass  # a store on a filesystem without symlinks still works
        return cls(path)

    @property
    def history(self) -> Path:
        return self.path / "history.jsonl"

    @property
    def results(self) -> Path:
        return self.path / "results.json"

    @property
    def test_json(self) -> Path:
        return self.path / "test.json"

    def node_dir(self, node: str) -> Path:
        d = self.path / "nodes" / node
        d.mkdir(parents=True, exist_ok=True)
        return d

    def write_json(self, path: Path, data: Any) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2, default=str, sort_keys=False) + "\n")
        os.replace(tmp, path)

    def read_json(self, path: Path) -> Any:
        return json.loads(path.read_text())

    def attach_log(self) -> logging.Handler:
        """harness.log: everything the harness logs during the run."""
        handler = logging.FileHandler(self.path / "harness.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        for noisy in ("paramiko", "kazoo"):  # their INFO is per-connection chatter
            logging.getLogger(noisy).setLevel(logging.WARNING)
        return handler


def test_record(options: dict[str, Any], name: str, start_time: str) -> dict[str, Any]:
    """test.json: the options as a flat object (CLI names with underscores), plus name and start_time."""
    record = {k.replace("-", "_"): v for k, v in options.items()}
    if record.get("ssh_password"):
        record["ssh_password"] = "***"  # test.json is archived and shared
    record["name"] = name
    record["start_time"] = start_time
    return record
