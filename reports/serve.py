"""`zkchaos serve`: browse a store over HTTP: an index of every run (newest first, filterable by
verdict), each run's report, logs and raw files. Standard library only, no scripts from the
network (the pages work offline); only files inside the store are ever served."""

from __future__ import annotations

import html
import mimetypes
import urllib.parse
from functools import partial
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from harness import storeindex

VERDICTS = {True: "valid", False: "invalid", "unknown": "unknown", None: "no verdict"}
TEXT = {".jsonl", ".log", ".cfg", ".json", ".txt", ".properties", ".xml"}

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; } td, th { border-bottom: 1px solid #ddd; padding: .3em .7em; text-align: left; }
th { background: #f4f4f4; } a { color: #1a55a3; }
.valid { color: #0a7d28; font-weight: bold; } .invalid { color: #b3261e; font-weight: bold; }
.unknown, .no.verdict { color: #a15c00; font-weight: bold; } .broken { color: #7a1fa2; font-weight: bold; }
nav a { margin-right: 1em; }
"""


def verdict_of(entry: dict[str, Any]) -> str:
    return "broken" if entry.get("broken") else VERDICTS.get(entry.get("valid"), "unknown")


def index_page(store: Path, only: str | None) -> str:
    entries = sorted(storeindex.scan(store), key=lambda e: (e.get("start_time") or "", e["path"]), reverse=True)
    if only:
        entries = [e for e in entries if verdict_of(e) == only]
    rows = []
    for e in entries:
        v = verdict_of(e)
        link = f"runs/{urllib.parse.quote(e['path'])}/"
        report = f" (<a href='{link}report.html'>report</a>)" if e.get("report") else ""
        nemeses = ", ".join(e.get("nemesis") or []) if isinstance(e.get("nemesis"), list) else e.get("nemesis")
        duration = f"{e['duration_s']:.0f} s" if isinstance(e.get("duration_s"), (int, float)) else ""
        rows.append(
            f"<tr><td><a href='{link}'>{_h(e.get('name') or e['path'])}</a>{report}</td>"
            f"<td class='{v}'>{v.upper()}</td><td>{_h(e.get('workload'))}</td><td>{_h(nemeses)}</td>"
            f"<td>{_h(e.get('db'))}</td><td>{_h(e.get('start_time'))}</td><td>{duration}</td>"
            f"<td>{_h(e.get('anomaly_count'))}</td><td>{_h(e.get('broken') or e.get('explanation') or '')}</td></tr>")
    nav = " ".join(f"<a href='?verdict={v}'>{v}</a>" for v in ("valid", "invalid", "unknown", "broken"))
    body = ("<table><tr><th>test</th><th>verdict</th><th>workload</th><th>nemeses</th><th>db</th>"
            "<th>started</th><th>duration</th><th>anomalies</th><th>why</th></tr>" + "".join(rows) + "</table>"
            if rows else "<p>No runs here yet.</p>")
    return _page(f"zkchaos store {store}", f"<nav>show: <a href='/'>all</a> {nav}</nav>{body}")


def listing_page(store: Path, run: Path) -> str:
    items = []
    for p in sorted(run.rglob("*")):
        if p.is_file():
            rel = p.relative_to(run)
            items.append(f"<li><a href='{urllib.parse.quote(str(rel))}'>{_h(str(rel))}</a> ({p.stat().st_size} bytes)</li>")
    return _page(f"run {run.relative_to(store)}", f"<p><a href='/'>all runs</a></p><ul>{''.join(items)}</ul>")


def _page(title: str, body: str) -> str:
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{_h(title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{_h(title)}</h1>{body}</body></html>")


def _h(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def inside(store: Path, rel: str) -> Path | None:
    """The file or directory `rel` names in the store, or None when it is outside or missing
    (`..`, absolute paths and symlinks out of the store are all refused)."""
    root = store.resolve()
    target = (root / rel).resolve()
    if target != root and root not in target.parents:
        return None
    return target if target.exists() else None


class Handler(BaseHTTPRequestHandler):
    def __init__(self, *args, store: Path, **kwargs) -> None:
        self.store = store
        super().__init__(*args, **kwargs)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass  # no per-request lines on the terminal

    def do_GET(self) -> None:  # noqa: N802 - the base class's name
        url = urllib.parse.urlsplit(self.path)
        path = urllib.parse.unquote(url.path)
        if path in ("/", "/index.html"):
            only = urllib.parse.parse_qs(url.query).get("verdict", [None])[0]
            return self._send(index_page(self.store, only).encode(), "text/html; charset=utf-8")
        if not path.startswith("/runs/"):
            return self.send_error(HTTPStatus.NOT_FOUND)
        target = inside(self.store, path[len("/runs/"):])
        if target is None:
            return self.send_error(HTTPStatus.NOT_FOUND)
        if target.is_dir():
            return self._send(listing_page(self.store, target).encode(), "text/html; charset=utf-8")
        kind = "text/plain; charset=utf-8" if target.suffix in TEXT else (
            mimetypes.guess_type(target.name)[0] or "application/octet-stream")
        self._send(target.read_bytes(), kind)

    def _send(self, body: bytes, kind: str) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def make_server(store: Path, host: str = "127.0.0.1", port: int = 8080) -> ThreadingHTTPServer:
    return ThreadingHTTPServer((host, port), partial(Handler, store=store))


def serve_command_impl(store: Path, host: str, port: int) -> None:
    import click

    if not store.is_dir():
        raise click.ClickException(f"{store}: no such store directory (runs go to ./store by default)")
    try:
        server = make_server(store, host, port)
    except OSError as e:
        raise click.ClickException(f"cannot listen on {host}:{port}: {e.strerror}") from None
    click.echo(f"serving {store} on http://{host}:{server.server_address[1]}/ (Ctrl-C stops)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
