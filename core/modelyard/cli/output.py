"""What the CLI prints: JSON (records through :func:`modelyard.converter.to_json`) or rich tables built from the
same JSON.

Commands get the same records from an embedded platform and from a server (:class:`modelyard.api.PlatformAPI`)
and renderers take their one JSON form, so a command prints the same thing whichever it talked to.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Mapping
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table


def stdout_console() -> Console:
    """A console on the current ``sys.stdout``; wide when not a terminal so that piped tables do not wrap."""
    tty = sys.stdout.isatty()
    width = None if tty else int(os.environ.get("COLUMNS") or 160)
    return Console(file=sys.stdout, width=width, soft_wrap=False, highlight=False)


def print_json(data: Any) -> None:
    """Machine-readable output: indented JSON on stdout, one document per command."""
    text = json.dumps(data, indent=2, default=str, ensure_ascii=False)
    try:
        text.encode(sys.stdout.encoding or "utf-8")
    except (UnicodeEncodeError, LookupError):
        # Text stdout cannot carry (a lone surrogate from a non-UTF-8 argument, an ASCII-only terminal):
        # \u escapes are the same JSON.
        text = json.dumps(data, indent=2, default=str, ensure_ascii=True)
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def print_table(table: Table) -> None:
    """Print one rich table on stdout."""
    stdout_console().print(table)


def print_line(text: str) -> None:
    """Print one line of (rich-markup) text on stdout."""
    stdout_console().print(text)


def _row(table: Table, *cells: Any) -> None:
    # User-given text (tags, descriptions, shapes like "[-1, 4]") must not be read as rich markup.
    table.add_row(*(escape(str(c)) for c in cells))


def _fmt_map(data: Mapping[str, Any] | None) -> str:
    def value(v: Any) -> str:
        return "|".join(map(str, v)) if isinstance(v, list | tuple) else str(v)

    return ", ".join(f"{k}={value(v)}" for k, v in (data or {}).items())


def _short_digest(digest: str | None) -> str:
    return (digest or "")[:12]


def _ts(value: str | None) -> str:
    # ISO timestamps without sub-second noise: enough for a table.
    return (value or "")[:19].replace("T", " ")


def _size(n: int | None) -> str:
    if n is None:
        return ""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(n)


def _tensors(specs: Iterable[Mapping[str, Any]]) -> str:
    return ", ".join(f"{s['name']}: {s['datatype']}{list(s['shape'])}" for s in specs)


def kv_table(title: str, rows: Iterable[tuple[str, Any]]) -> Table:
    """A two-column field/value table, leaving out empty values."""
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value")
    for key, value in rows:
        if value not in (None, "", [], {}):
            _row(table, key, value)
    return table


def version_table(v: Mapping[str, Any]) -> Table:
    """One version's details."""
    sig = v.get("signature") or {}
    artifact = v.get("artifact") or {}
    return kv_table(f"{v['model']}:{v['version']}", [
        ("model", v["model"]), ("version", v["version"]), ("flavor", v["flavor"]),
        ("aliases", ", ".join(v.get("aliases") or ())), ("tags", _fmt_map(v.get("tags"))),
        ("description", v.get("description")),
        ("artifact", f"{artifact.get('uri', '')} ({_size(artifact.get('size'))})" if artifact else ""),
        ("inputs", _tensors(sig.get("inputs", ()))), ("outputs", _tensors(sig.get("outputs", ()))),
        ("requirements", ", ".join(v.get("requirements") or ())), ("lineage", _fmt_map(v.get("lineage"))),
        ("created", _ts(v.get("created_at"))),
    ])  # fmt: skip


def model_table(m: Mapping[str, Any]) -> Table:
    """One model's summary."""
    return kv_table(m["name"], [
        ("name", m["name"]), ("description", m.get("description")), ("latest version", m.get("latest_version")),
        ("aliases", _fmt_map(m.get("aliases"))), ("tags", _fmt_map(m.get("tags"))),
        ("created", _ts(m.get("created_at"))), ("updated", _ts(m.get("updated_at"))),
    ])  # fmt: skip


def _caption(page: Mapping[str, Any], noun: str) -> str:
    items = page.get("items") or []
    if not items:
        return f"no {noun}"
    offset = page.get("offset") or 0
    more = f"; next: --offset {page['next_offset']}" if page.get("next_offset") is not None else ""
    return f"{offset + 1}-{offset + len(items)} of {page.get('total', len(items))} {noun}{more}"


def models_table(page: Mapping[str, Any]) -> Table:
    """A page of models."""
    table = Table(title="models", caption=_caption(page, "models"), title_justify="left")
    for col in ("name", "latest", "aliases", "tags", "description", "updated"):
        table.add_column(col, justify="right" if col == "latest" else "left")
    for m in page.get("items") or ():
        _row(table, m["name"], str(m.get("latest_version", "")), _fmt_map(m.get("aliases")),
                      _fmt_map(m.get("tags")), m.get("description") or "", _ts(m.get("updated_at")))
    return table


def versions_table(page: Mapping[str, Any], *, title: str = "versions", with_model: bool = False) -> Table:
    """A page of versions (``with_model``: of several models, so a model column comes first)."""
    table = Table(title=title, caption=_caption(page, "versions"), title_justify="left")
    for col in ("model", "version", "flavor", "aliases", "tags", "digest", "size", "created")[0 if with_model else 1:]:
        table.add_column(col, justify="right" if col in ("version", "size") else "left")
    for v in page.get("items") or ():
        artifact = v.get("artifact") or {}
        _row(table, *((v["model"],) if with_model else ()), str(v["version"]), v["flavor"], ", ".join(v.get("aliases") or ()), _fmt_map(v.get("tags")),
                      _short_digest(artifact.get("digest")), _size(artifact.get("size")), _ts(v.get("created_at")))
    return table


def _batching(d: Mapping[str, Any]) -> str:
    b = d.get("batching")
    return f"≤{b['max_batch_size']} rows / {b['max_wait_ms']} ms" if b else "off"


def deployment_table(d: Mapping[str, Any]) -> Table:
    """One deployment."""
    return kv_table(f"deployment {d['name']}", [
        ("name", d["name"]), ("model", d["model"]), ("version", d["version"]), ("runtime", d.get("runtime")),
        ("requested", d.get("requested_ref")), ("state", d.get("state")), ("message", d.get("message")),
        ("replicas", d.get("replicas")), ("batching", _batching(d)), ("options", _fmt_map(d.get("options"))),
        ("updated", _ts(d.get("updated_at"))),
    ])  # fmt: skip


def deployments_table(items: Iterable[Mapping[str, Any]]) -> Table:
    """Every deployment."""
    items = list(items)
    table = Table(title="deployments", caption=None if items else "no deployments", title_justify="left")
    for col in ("name", "model", "version", "runtime", "state", "replicas", "batching", "updated"):
        table.add_column(col, justify="right" if col in ("version", "replicas") else "left")
    for d in items:
        _row(table, d["name"], d["model"], str(d["version"]), d.get("runtime") or "", d.get("state") or "",
                      str(d.get("replicas", "")), _batching(d), _ts(d.get("updated_at")))
    return table


def slots_table(slots: Mapping[str, Iterable[str]], *, title: str = "slots") -> Table:
    """Slot → chosen provider(s), as ``check`` prints it."""
    table = Table(title=title, title_justify="left")
    table.add_column("slot", style="bold")
    table.add_column("provider")
    for slot, names in slots.items():
        _row(table, slot, ", ".join(names) or "—")
    return table


def providers_table(report: Mapping[str, Any]) -> Table:
    """Every installed provider, by slot."""
    table = Table(title="providers", title_justify="left")
    for col in ("slot", "provider", "plugin", "distribution", "description", "needs"):
        table.add_column(col)
    for slot, providers in report.get("slots", {}).items():
        if not providers:
            _row(table, slot, "—", "", "", "", "")
        for p in providers:
            _row(table, slot, p["name"], p["plugin"], p.get("distribution") or "", p.get("description") or "",
                          p.get("install_hint") or "")
    return table


def plugins_table(report: Mapping[str, Any]) -> Table:
    """Every loaded plugin with its distribution, version and hooks; broken and disabled ones last."""
    table = Table(title="plugins", title_justify="left")
    for col in ("plugin", "distribution", "version", "hooks"):
        table.add_column(col)
    for p in report.get("plugins", ()):
        _row(table, p["name"], p.get("distribution") or "", p.get("version") or "", ", ".join(p.get("hooks") or ()))
    for name, reason in (report.get("broken") or {}).items():
        table.add_row(escape(name), "", "", f"[red]failed to load: {escape(reason)}[/red]")
    for name in report.get("disabled") or ():
        table.add_row(escape(name), "", "", "[dim]disabled[/dim]")
    return table
