"""Every example in the docs runs (STYLE 18): each ```python block of ``README.md`` and ``docs/*.md``, each script
under ``examples/``, the example plugin's own tests and the example stack configs.

A docs block runs in a subprocess, in a fresh temporary directory as its working directory, after a prelude that
provides what the pages' text says exists:

- ``churn.onnx``: the quickstart's 20-feature churn model (``examples/quickstart/build_model.py``);
- ``features``: a float32 array of shape (1, 20), one row for that model;
- ``modelyard.toml``: present but empty, so every section takes its embedded default and ``data_dir`` is
  ``./.modelyard`` inside the temporary directory; no ``MODELYARD_*`` variable leaks in from the caller.

The block is compiled with its own line numbers in its markdown file, so a failure's traceback points at the page.
A block that talks to a server is marked on the line right before its fence::

    <!-- docs-test: server -->

and runs while ``modelyard serve --dev --port 0`` serves the same directory; the address the docs use,
``127.0.0.1:8000`` (with or without ``http://``), is replaced in the block by the one the server actually
bound. A block that cannot run on its own (a skeleton with ``…``) is excluded by a visible marker in the same
place, and the reason is mandatory::

    <!-- docs-test: skip (a skeleton: MyRegistry is your provider's class) -->

All subprocesses start together when the first test of this module runs (the machine's cores do the waiting, not
the tests one after another); each test then checks its own result.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import unicodedata
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import attrs
import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC_FILES = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))
LINKED_FILES = (*DOC_FILES, *sorted((ROOT / "docs" / "reference").glob("*.md")),
                *sorted((ROOT / "examples").glob("*/README.md")))
QUICKSTART = ROOT / "examples" / "quickstart"
#: Per subprocess; generous because two cores are shared with the rest of the suite (torch imports are slow).
JOB_TIMEOUT_S = 180
WORKERS = 4

_FENCE = re.compile(r"^```python\s*$")
_MARKER = re.compile(r"^<!-- docs-test: (?:skip \((?P<reason>.*)\)|(?P<server>server)) -->$")
#: The server address the docs use; server blocks get the real one instead.
DOCS_SERVER_ADDRESS = "127.0.0.1:8000"
SERVER_START_TIMEOUT_S = 60

#: Runs one block: argv = markdown file, first line, last line (1-based, inclusive). The prelude's own names are
#: private; the block sees only ``features`` and what it defines itself.
RUNNER = """
import os
import sys
from pathlib import Path

import numpy as np

path, first, last = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
lines = Path(path).read_text(encoding="utf-8").splitlines(keepends=True)
# Blank lines in front keep the block's line numbers those of the page, for tracebacks.
source = "\\n" * (first - 1) + "".join(lines[first - 1:last])
if os.environ.get("DOCS_TEST_SERVER"):
    source = source.replace(__DOCS_SERVER_ADDRESS__, os.environ["DOCS_TEST_SERVER"])
namespace = {"__name__": "__main__",
             "features": np.random.default_rng(0).normal(size=(1, 20)).astype(np.float32)}
exec(compile(source, path, "exec"), namespace)
""".replace("__DOCS_SERVER_ADDRESS__", repr(DOCS_SERVER_ADDRESS))


# --------------------------------------------------------------------------------------------- docs blocks
@attrs.frozen
class DocBlock:
    """One ```python block: where it is, the reason it is skipped (None: it runs), whether it needs a server."""

    file: Path
    first: int  # first code line, 1-based
    last: int  # last code line
    skip: str | None
    server: bool = False

    @property
    def id(self) -> str:
        """``docs/registry.md:28``, the fence's line."""
        return f"{self.file.relative_to(ROOT)}:{self.first - 1}"


@attrs.frozen
class MarkdownProblem:
    """A misused marker or fence, reported by :func:`test_markers_are_well_formed_and_blocks_run`."""

    where: str
    message: str


def parse_blocks(file: Path, root: Path = ROOT) -> tuple[list[DocBlock], list[MarkdownProblem]]:
    """The python blocks of a markdown file and any misuse of the docs-test marker (named relative to ``root``)."""
    lines = file.read_text(encoding="utf-8").splitlines()
    blocks: list[DocBlock] = []
    problems: list[MarkdownProblem] = []
    rel = file.relative_to(root)
    in_fence = False
    for i, line in enumerate(lines):
        no = i + 1
        if in_fence:
            if line.strip() == "```":
                in_fence = False
            continue
        if "docs-test" in line:
            m = _MARKER.match(line)
            if m is None:
                problems.append(MarkdownProblem(f"{rel}:{no}", "malformed marker; write "
                                                "<!-- docs-test: skip (reason) --> or <!-- docs-test: server -->"))
            elif not m["server"] and not m["reason"].strip():
                problems.append(MarkdownProblem(f"{rel}:{no}", "a skip marker needs a reason"))
            elif i + 1 >= len(lines) or not _FENCE.match(lines[i + 1]):
                problems.append(MarkdownProblem(f"{rel}:{no}", "a docs-test marker must be on the line right "
                                                "before a ```python fence"))
            continue
        if line.lstrip().startswith("```"):
            if line.lstrip().startswith("```python") and line != line.lstrip():
                problems.append(MarkdownProblem(f"{rel}:{no}", "indented ```python fence: this test only "
                                                "runs fences at the start of a line"))
            in_fence = True
            if _FENCE.match(line):
                end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == "```"), None)
                if end is None:
                    problems.append(MarkdownProblem(f"{rel}:{no}", "unclosed ```python fence"))
                    break
                m = _MARKER.match(lines[i - 1]) if i else None
                reason = m["reason"].strip() if m and m["reason"] and m["reason"].strip() else None
                blocks.append(DocBlock(file=file, first=no + 1, last=end, skip=reason,
                                       server=bool(m and m["server"])))
    return blocks, problems


def all_blocks() -> list[DocBlock]:
    """Every python block of the docs, in page order."""
    return [b for f in DOC_FILES for b in parse_blocks(f)[0]]


# --------------------------------------------------------------------------------------------- jobs
@attrs.frozen
class Job:
    """A subprocess to run: its command, where, and why it may not run here (``skip``)."""

    id: str
    kind: str  # "doc" (a docs block) or "example"
    argv: tuple[str, ...]
    cwd: Path | None = None  # None: a fresh directory with the prelude's files
    skip: str | None = None
    env: tuple[tuple[str, str], ...] = ()
    ok_codes: tuple[int, ...] = (0,)
    server: bool = False  # run while `modelyard serve --dev` serves the job's directory


def _missing(*modules: str) -> str | None:
    absent = [m for m in modules if importlib.util.find_spec(m) is None]
    return f"{', '.join(absent)} not installed" if absent else None


def doc_job(block: DocBlock) -> Job:
    """The subprocess that runs one docs block."""
    argv = (sys.executable, "-c", RUNNER, str(block.file), str(block.first), str(block.last))
    return Job(id=block.id, kind="doc", argv=argv, skip=block.skip, server=block.server)


def _script(path: str, skip: str | None = None) -> Job:
    return Job(id=path, kind="example", argv=(sys.executable, str(ROOT / path)), skip=skip)


SCRIPTS: tuple[Job, ...] = (
    _script("examples/embedding/embed.py"),
    _script("examples/flavors/sklearn_model.py", skip=_missing("sklearn", "skl2onnx")),
    _script("examples/flavors/torch_model.py", skip=_missing("torch")),
    _script("examples/flavors/tensorflow_model.py", skip=_missing("tensorflow")),
    # The plugin distribution's own test suite: the secrets conformance kit plus the plugin inside a Platform.
    Job(id="examples/plugin", kind="example", cwd=ROOT / "examples" / "plugin", skip=_missing("hypothesis"),
        argv=(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider")),
    Job(id="examples/stacks/embedded.toml", kind="example",
        argv=(sys.executable, "-m", "modelyard", "-c", str(ROOT / "examples/stacks/embedded.toml"), "check")),
    # Its providers arrive with later releases: until then `check` must fail only on those (exit 2).
    Job(id="examples/stacks/ray-postgres-s3-vault.toml", kind="example",
        argv=(sys.executable, "-m", "modelyard", "-c", str(ROOT / "examples/stacks/ray-postgres-s3-vault.toml"),
              "check"),
        env=(("VAULT_ROLE_ID", "role"), ("VAULT_SECRET_ID", "secret"), ("S3_ENDPOINT", "http://127.0.0.1:9")),
        ok_codes=(0, 2)),
)


def all_jobs() -> list[Job]:
    """Docs blocks first, then the example scripts."""
    return [*(doc_job(b) for b in all_blocks()), *SCRIPTS]


def _env(job: Job) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}
    env.pop("PYTHONPATH", None)
    env.update({"PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2"})
    env.update(dict(job.env))
    return env


def run_job(job: Job, workdir: Path, churn: Path) -> subprocess.CompletedProcess[str]:
    """Run a job in ``workdir`` (given the prelude's files) or its own ``cwd``."""
    if job.cwd is None:
        workdir.mkdir(parents=True)
        shutil.copyfile(churn, workdir / "churn.onnx")
        (workdir / "modelyard.toml").write_text("# empty: every section takes its embedded default\n")
    env = _env(job)
    with contextlib.ExitStack() as stack:
        if job.server:
            try:
                env["DOCS_TEST_SERVER"] = stack.enter_context(running_server(workdir, env))
            except RuntimeError as exc:
                return subprocess.CompletedProcess(job.argv, -1, "", str(exc))
        try:
            return subprocess.run(job.argv, cwd=job.cwd or workdir, env=env, capture_output=True, text=True,
                                  timeout=JOB_TIMEOUT_S)
        except subprocess.TimeoutExpired as exc:
            out = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
            err = (exc.stderr or b"").decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
            return subprocess.CompletedProcess(job.argv, -1, out, err + f"\n[timed out after {JOB_TIMEOUT_S} s]")
    raise AssertionError("unreachable")  # pragma: no cover


@contextlib.contextmanager
def running_server(workdir: Path, env: dict[str, str]) -> Iterator[str]:
    """``modelyard serve --dev --port 0`` in ``workdir`` (its empty modelyard.toml) until the block is done;
    yields the ``host:port`` it announced. Its whole process group is stopped afterwards, whatever happens."""
    log = workdir / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "modelyard", "serve", "--dev", "--port", "0"], cwd=workdir,
                                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while (m := re.search(r"modelyard serving on http://(\S+)", log.read_text(errors="replace"))) is None:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start (exit {proc.poll()}):\n"
                                   + log.read_text(errors="replace")[-4000:])
            time.sleep(0.05)
        yield m[1]
    finally:
        for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 15)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue


JOBS = all_jobs()


@pytest.fixture(scope="module")
def results(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[dict[str, Future[subprocess.CompletedProcess[str]]]]:
    """Start every selected, runnable job at once; maps job id to its future result."""
    wanted = {item.callspec.params["job"].id for item in request.session.items
              if item.module is request.module and "job" in getattr(getattr(item, "callspec", None), "params", {})}
    base = tmp_path_factory.mktemp("docs-examples")
    sys.path.insert(0, str(QUICKSTART))
    try:
        from build_model import build
    finally:
        sys.path.remove(str(QUICKSTART))
    churn = build(base / "churn.onnx")
    pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="docs-example")
    futures = {job.id: pool.submit(run_job, job, base / f"job{i}", churn)
               for i, job in enumerate(JOBS) if job.id in wanted and job.skip is None}
    yield futures
    pool.shutdown(wait=True, cancel_futures=True)


def _report(job: Job, proc: subprocess.CompletedProcess[str]) -> str:
    tail = (proc.stdout[-4000:] + "\n--- stderr ---\n" + proc.stderr[-8000:]).strip()
    return f"{job.id} exited {proc.returncode}\n{tail}"


# --------------------------------------------------------------------------------------------- tests
@pytest.mark.parametrize("job", [j for j in JOBS if j.kind == "doc"], ids=lambda j: j.id)
def test_docs_example_runs(job: Job, results: dict[str, Future[subprocess.CompletedProcess[str]]]) -> None:
    """The block runs to completion with the prelude, or is skipped with the reason its marker gives."""
    if job.skip is not None:
        pytest.skip(f"docs-test marker: {job.skip}")
    proc = results[job.id].result()
    assert proc.returncode == 0, _report(job, proc)


@pytest.mark.parametrize("job", [j for j in JOBS if j.kind == "example"], ids=lambda j: j.id)
def test_example_runs(job: Job, results: dict[str, Future[subprocess.CompletedProcess[str]]]) -> None:
    """Each example script, the example plugin's tests and the stack configs do what their READMEs say."""
    if job.skip is not None:
        pytest.skip(job.skip)
    proc = results[job.id].result()
    assert proc.returncode in job.ok_codes, _report(job, proc)
    if job.id.startswith("examples/flavors/"):
        assert "served output matches" in proc.stdout, _report(job, proc)
    if job.id == "examples/stacks/ray-postgres-s3-vault.toml" and proc.returncode == 2:
        # The only errors allowed are providers (or a storage protocol's package) not yet installed and the
        # secret reference that depends on one.
        errors = [line for line in proc.stderr.splitlines() if line.startswith("  ")]
        assert errors, _report(job, proc)
        allowed = ("is not an installed", "cannot resolve ${secret:", "which is not installed: pip install")
        for line in errors:
            assert any(a in line for a in allowed), _report(job, proc)


def test_markers_are_well_formed_and_blocks_run() -> None:
    """Every skip has a reason and sits right before a fence; most blocks run (a test that skips all proves
    nothing)."""
    problems = [p for f in DOC_FILES for p in parse_blocks(f)[1]]
    assert not problems, "\n".join(f"{p.where}: {p.message}" for p in problems)
    blocks = all_blocks()
    executed = [b for b in blocks if b.skip is None]
    assert len(executed) > 0
    assert len(executed) >= len(blocks) // 2, "more docs blocks are skipped than run: " + ", ".join(
        f"{b.id} ({b.skip})" for b in blocks if b.skip)


def test_parser_finds_blocks_and_markers(tmp_path: Path) -> None:
    """The extraction this module relies on: fences, skip reasons, and misuse reported."""
    page = tmp_path / "page.md"
    page.write_text("text\n```python\na = 1\n```\n<!-- docs-test: skip (needs a server) -->\n```python\nb\n```\n"
                    "```bash\necho\n```\n<!-- docs-test: skip () -->\n```python\nc\n```\n"
                    "<!-- docs-test: skip (orphan) -->\ntext\n", encoding="utf-8")
    blocks, problems = parse_blocks(page, root=tmp_path)
    assert [(b.first, b.last, b.skip) for b in blocks] == [(3, 3, None), (7, 7, "needs a server"), (14, 14, None)]
    assert [(p.where, p.message.split(";")[0]) for p in problems] == [
        ("page.md:12", "a skip marker needs a reason"),
        ("page.md:16", "a docs-test marker must be on the line right before a ```python fence")]


# --------------------------------------------------------------------------------------------- links
_LINK = re.compile(r"\[[^\]]*\]\((?P<target>[^)\s]+)\)")


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lowercase, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`", "", heading.strip().lower())
    text = "".join(ch for ch in text if ch in " -_" or unicodedata.category(ch)[0] in "LN")
    return text.replace(" ", "-")


def anchors(file: Path) -> set[str]:
    """Every heading anchor of a markdown file (code fences excluded)."""
    out, in_fence = set(), False
    for line in file.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_fence = not in_fence
        elif not in_fence and line.startswith("#"):
            out.add(github_slug(line.lstrip("#")))
    return out


@pytest.mark.parametrize("file", LINKED_FILES, ids=lambda f: str(f.relative_to(ROOT)))
def test_relative_links_resolve(file: Path) -> None:
    """Every relative link (README feature links included) names a file that exists, and an anchor it has."""
    broken = []
    in_fence = False
    for no, line in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
        if line.startswith("```"):
            in_fence = not in_fence
        if in_fence:
            continue
        for m in _LINK.finditer(line):
            target = m["target"]
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            dest = (file.parent / path).resolve() if path else file
            if not dest.exists():
                broken.append(f"line {no}: {target} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                broken.append(f"line {no}: {target} (no heading #{anchor})")
    assert not broken, f"{file.relative_to(ROOT)}:\n" + "\n".join(broken)


def test_slug_matches_github() -> None:
    """Anchors as GitHub renders them, for the headings the docs link to."""
    assert github_slug(" Over HTTP: the client SDK") == "over-http-the-client-sdk"
    assert github_slug("Configuration: `[registry] use = \"sql\"`") == "configuration-registry-use--sql"
    assert github_slug("Errors you will meet") == "errors-you-will-meet"
