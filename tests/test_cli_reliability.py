"""Every bad input and fault ``hf-metaopt analyze`` was tried with, through the real CLI entry point.

:data:`CASES` is the table README.md shows under "What a bad input gets": :func:`render_table`
renders it and a test checks README.md holds exactly that table (print it with
``python tests/test_cli_reliability.py``). Each case runs ``cli.main`` in a folder holding the
files its command names and checks the exit code, that stderr holds the message on one
line without a traceback, whether the model's weights were loaded, and that the folder is
left exactly as it was: no run folder, lock, temporary folder or parent folder (the push
failures keep the run they saved first). Faults that cannot be produced on demand (a full
disk, Ctrl-C, SIGTERM, non-finite scores) are injected.
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import sysconfig
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from hf_metaopt import cli

ROOT = Path(__file__).resolve().parents[1]


# A run that succeeds; each case changes some of its flags.
VALID = (
    "--model", "tiny-model", "--data-file", "reviews.csv", "--template", "Review: {text} Sentiment:",
    "--label-words", "Negative,Positive", "--n-demonstrations", "2", "--n-queries", "3", "--output-dir", "runs/x",
)


@dataclass(frozen=True)
class Case:
    """One row of the table: what was tried, the flags changed from :data:`VALID`, and what the user gets."""

    name: str
    what: str
    flags: tuple[str, ...]  # replace the same flags of VALID, or are added
    code: int
    message: str  # a fragment of the error line on stderr
    loads_model: bool = False  # whether the weights are loaded before it stops
    fault: str | None = None  # injected by _inject
    writes_run: bool = False  # runs/x is written (the failure comes after the run is saved)

    @property
    def argv(self) -> list[str]:
        """The command after ``hf-metaopt analyze``: :data:`VALID` with ``flags`` applied."""
        merged = _flag_values(VALID)
        merged.update(_flag_values(self.flags))
        return [token for flag, value in merged.items() for token in (flag, value) if token is not None]


def _flag_values(argv: tuple[str, ...]) -> dict[str, str | None]:
    values, i = {}, 0
    while i < len(argv):
        has_value = i + 1 < len(argv) and not argv[i + 1].startswith("--")
        values[argv[i]] = argv[i + 1] if has_value else None
        i += 2 if has_value else 1
    return values


PUSH = ("--push-to-hub", "--repo-id", "me/analyses")
NON_FINITE = "the FT route's label-word scores are not finite (float16 overflow?); rerun with --dtype float32 or bfloat16"

CASES = [
    Case("proc", "output folder that cannot be created (reported: the run finished, then lost its results)", ("--output-dir", "/proc/x"), 2,
         "cannot create files in /proc (No such file or directory); choose a writable --output-dir"),
    Case("under-file", "output folder below a file", ("--output-dir", "reviews.csv/x"), 2, "reviews.csv is not a folder; choose another --output-dir"),
    Case("existing", "output folder that holds a finished run", ("--output-dir", "existing-run"), 2,
         "run folder existing-run already exists (runs are never overwritten); choose another --output-dir"),
    Case("locked", "another run is writing the same output folder", (), 2,
         "is writing runs/x (lock runs/.x.lock); wait for it or choose another --output-dir", fault="locked"),
    Case("no-folder", "model folder that does not exist (reported: a traceback)", ("--model", "/nonexistent"), 2,
         "--model /nonexistent: no such folder. Pass a model folder, a Hub id such as 'google/gemma-3-270m'"),
    Case("bad-id", "model name that is neither a folder nor a Hub id", ("--model", "my model!"), 2, "is neither a folder nor a valid Hub id"),
    Case("no-weights", "model folder with a config.json but no weights", ("--model", "config-only-model"), 2,
         "the folder holds no weights (*.safetensors or *.bin)"),
    Case("bad-config", "a config.json with an out-of-range value (reported: 'could not load the tokenizer')", ("--model", "momentum-1.5-model"), 2,
         "--model momentum-1.5-model: its config.json holds an invalid value (Validation error for field 'momentum': ValueError: "
         "Value must be greater or equal to 0.0 and smaller than 1.0, got 1.5.); fix that field in config.json"),
    Case("hub-offline", "Hub id that cannot be fetched (offline, not in the cache)", ("--model", "some-org/some-model"), 2,
         "could not load the tokenizer of --model some-org/some-model"),
    Case("empty", "data file with a header only (reported)", ("--data-file", "empty.csv"), 2,
         "could not read data file 'empty.csv': it has no data rows (only a header?); add labelled rows."),
    Case("binary", "data file with binary content (reported)", ("--data-file", "binary.csv"), 2,
         "it is not a valid CSV file: it holds binary data (a NUL byte at offset 0"),
    Case("missing", "data file that does not exist", ("--data-file", "missing.csv"), 2, "data file 'missing.csv' does not exist."),
    Case("labels", "labels that are none of the label words", ("--label-words", "bad,good"), 2,
         "label 'Positive' in column 'label' matches none of the label words [' bad', ' good']"),
    Case("numeric-labels", "numeric label words and labels that read both as words and as indices (reported: every label shifted)",
         ("--data-file", "reviews-numbered.csv", "--label-words", "1,2,3"), 2,
         "the labels [1, 2] in column 'label' are both label words and 0-based indices into the label words [' 1', ' 2', ' 3'], "
         "and the two readings differ; pass --label-values words (the labels are the words) or --label-values indices."),
    Case("template", "template field that is not a column", ("--template", "Review: {review}"), 2, "lacks the columns ['review'] that the template"),
    Case("too-few", "more demonstrations than labelled train rows", ("--n-demonstrations", "100"), 2,
         "fewer than the 100 demonstrations asked for; pass --n-demonstrations"),
    Case("n-queries", "a count that is not positive", ("--n-queries", "0"), 2, "--n-queries must be a positive integer"),
    Case("lr-inf", "an infinite learning rate (reported: it failed after the weights loaded)", ("--learning-rate", "inf"), 2,
         "--learning-rate must be a number > 0 and <= 10000, finite (e.g. 1e-3); got inf."),
    Case("lr-huge", "a learning rate that overflows SGD's update (reported: a traceback from torch)", ("--learning-rate", "1e308"), 2,
         "--learning-rate must be a number > 0 and <= 10000, finite (e.g. 1e-3); got 1e+308."),
    Case("no-repo", "--push-to-hub without --repo-id", ("--push-to-hub",), 2, "--push-to-hub needs --repo-id (e.g. your-name/icl-analysis)."),
    Case("bad-repo", "malformed Hub repo id", ("--push-to-hub", "--repo-id", "me//analyses"), 2, "--repo-id 'me//analyses' is not a valid Hub repo id"),
    Case("no-token", "--push-to-hub without a Hub token", PUSH, 2,
         "--push-to-hub needs a Hub token: pass --token, set HF_TOKEN, or run `hf auth login` first."),
    Case("same-token", "label words that start with the same token", ("--data-file", "reviews-indexed.csv", "--label-words", "bad,badly"), 2,
         "`label_words` ' bad' and ' badly' start with the same token"),
    Case("no-pad", "tokenizer with neither a pad nor an EOS token", ("--model", "no-pad-model"), 2,
         "the tokenizer has neither a pad token nor an EOS token, so batches cannot be padded"),
    Case("short", "model whose context holds no demonstration", ("--model", "short-context-model"), 2,
         "not even one demonstration fits the model's context of 12 tokens"),
    Case("non-finite", "non-finite scores in the analysis (injected)", (), 2, NON_FINITE, loads_model=True, fault="non-finite"),
    Case("ctrl-c", "Ctrl-C during the analysis (injected)", (), 130, "interrupted; nothing was written.", loads_model=True, fault="ctrl-c"),
    Case("sigterm", "SIGTERM during the analysis, e.g. a scheduler's time limit (injected)", (), 143,
         "terminated (SIGTERM); nothing was written.", loads_model=True, fault="sigterm"),
    Case("ctrl-c-save", "Ctrl-C while the report is being written (injected)", (), 130, "interrupted; nothing was written.",
         loads_model=True, fault="ctrl-c-save"),
    Case("disk-full", "disk full as the report is written (injected)", (), 1,
         "could not write the run folder runs/x (No space left on device); the report is saved in", loads_model=True, fault="disk-full"),
    Case("nan", "a report holding NaN, which strict JSON refuses (injected)", (), 1,
         "could not write the run folder runs/x (Out of range float values are not JSON compliant: nan); the report's numbers are saved in",
         loads_model=True, fault="nan"),
    Case("nowhere", "disk full and no usable temporary folder (injected)", (), 1, "the report follows as JSON on stdout",
         loads_model=True, fault="nowhere"),
    Case("push-down", "Hub unreachable when pushing (injected)", PUSH, 1,
         "the run is saved in runs/x; push it later with: hf-metaopt push runs/x --repo-id me/analyses",
         loads_model=True, fault="push-down", writes_run=True),
    Case("push-ctrl-c", "Ctrl-C while pushing (injected)", PUSH, 130,
         "interrupted while pushing; the run is saved in runs/x; push it later with: hf-metaopt push runs/x --repo-id me/analyses",
         loads_model=True, fault="push-ctrl-c", writes_run=True),
]
RUN = VALID


def _code(text: str) -> str:
    """``text`` as a Markdown code span inside a table cell."""
    text = text.replace("|", "\\|")
    return f"`` {text} ``" if "`" in text else f"`{text}`"


def render_table(cases: list[Case] = CASES) -> str:
    """The Markdown table of ``cases`` that README.md shows."""
    lines = [
        "| What was tried | Flags changed | Weights loaded | Exit | stderr says (one line) |",
        "|---|---|---|---|---|",
    ]
    for case in cases:
        flags = _code(shlex.join(case.flags)) if case.flags else "none"
        lines.append(f"| {case.what} | {flags} | {'yes' if case.loads_model else 'no'} | {case.code} | {_code(case.message)} |")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- fixtures

def _llama(path: Path, tokenizer, **config) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    settings = dict(
        vocab_size=400, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=1024, bos_token_id=0, eos_token_id=0, pad_token_id=0,
    )
    LlamaForCausalLM(LlamaConfig(**{**settings, **config})).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory, tiny_tokenizer_dir):
    """The model folders the cases name, built once."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    root = tmp_path_factory.mktemp("models")
    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    no_pad = PreTrainedTokenizerFast(tokenizer_object=tokenizer.backend_tokenizer, unk_token="<|endoftext|>")
    config_only = root / "config-only-model"
    config_only.mkdir()
    shutil.copy(_llama(root / "tiny-model", tokenizer) / "config.json", config_only)
    _llama(root / "short-context-model", tokenizer, max_position_embeddings=12)
    _llama(root / "no-pad-model", no_pad)
    from hf_metaopt import MomentumGPTConfig, MomentumGPTForCausalLM

    bad = root / "momentum-1.5-model"
    MomentumGPTForCausalLM(MomentumGPTConfig(vocab_size=400, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                             max_position_embeddings=64)).save_pretrained(bad)
    tokenizer.save_pretrained(bad)
    config = json.loads((bad / "config.json").read_text())
    (bad / "config.json").write_text(json.dumps({**config, "momentum": 1.5}))  # as a hand edit would
    return root


@pytest.fixture
def workdir(tmp_path, models, monkeypatch):
    """The folder a case runs in: its data files, links to the model folders, a finished run."""
    work = tmp_path / "work"
    work.mkdir()
    for model in models.iterdir():
        (work / model.name).symlink_to(model, target_is_directory=True)
    good = ["a gripping film", "beautifully acted", "the cast is great", "clever plot", "I loved it", "a joy"]
    bad = ["dull and overlong", "badly written", "a tedious mess", "nothing to say", "boring", "a waste"]
    rows = [(t, 1) for t in good] + [(t, 0) for t in bad]
    (work / "reviews.csv").write_text("text,label\n" + "".join(f"{t} {i},{['Negative', 'Positive'][y]}\n" for i in range(3) for t, y in rows))
    (work / "reviews-indexed.csv").write_text("text,label\n" + "".join(f"{t} {i},{y}\n" for i in range(3) for t, y in rows))
    (work / "reviews-numbered.csv").write_text("text,label\n" + "".join(f"{t} {i},{y + 1}\n" for i in range(3) for t, y in rows))
    (work / "empty.csv").write_text("text,label\n")
    (work / "binary.csv").write_bytes(bytes(range(256)) * 4)
    (work / "existing-run").mkdir()
    (work / "existing-run" / "report.json").write_text('{"accuracy": {}}\n')
    system_tmp = tmp_path / "system-tmp"
    system_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(system_tmp))
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(work)
    return work


def _snapshot(folder: Path) -> dict[str, tuple]:
    """Every entry under ``folder`` (links not followed) with its type, size and modification time."""
    found = {}
    for top, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = Path(top, name)
            info = path.lstat()
            found[str(path.relative_to(folder))] = (stat.S_IFMT(info.st_mode), info.st_size if name in files else 0, info.st_mtime_ns)
    return found


# --------------------------------------------------------------------------- injected faults

def _fail_first_save(monkeypatch, error: BaseException, then=None):
    from hf_metaopt.analysis.report import ICLAnalysisReport

    original, calls = ICLAnalysisReport.save_pretrained, []

    def save_pretrained(self, run_dir):
        calls.append(run_dir)
        if len(calls) == 1:
            if then:
                then()
            raise error
        return original(self, run_dir)

    monkeypatch.setattr(ICLAnalysisReport, "save_pretrained", save_pretrained)


def _raise_in(monkeypatch, owner, name: str, error: BaseException):
    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(owner, name, fail)


def _nan_summary(monkeypatch):
    from hf_metaopt.analysis.scores import ScoreCollector

    original = ScoreCollector.summary

    def summary(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        out["simaou"]["mean"] = float("nan")
        return out

    monkeypatch.setattr(ScoreCollector, "summary", summary)


def _inject(fault: str | None, monkeypatch, work: Path):
    """Set up ``fault``; returns what to undo after the run (or ``None``)."""
    from hf_metaopt import hub
    from hf_metaopt.analysis.report import ICLAnalysisReport
    from hf_metaopt.analysis.routes import RouteRunner
    from hf_metaopt.analysis.scores import ScoreCollector
    from hf_metaopt.runs import RunFolder

    if fault == "locked":
        holder = RunFolder(work / "runs" / "x")
        holder.reserve()
        return holder.release
    if fault == "non-finite":
        _raise_in(monkeypatch, RouteRunner, "run", FloatingPointError(NON_FINITE))
    elif fault == "ctrl-c":
        _raise_in(monkeypatch, ScoreCollector, "add", KeyboardInterrupt())
    elif fault == "sigterm":
        monkeypatch.setattr(ScoreCollector, "add", lambda *a, **k: os.kill(os.getpid(), signal.SIGTERM))
    elif fault == "ctrl-c-save":  # report.json and report.md are written by then, the plots not
        _raise_in(monkeypatch, ICLAnalysisReport, "plot", KeyboardInterrupt())
    elif fault == "disk-full":
        _fail_first_save(monkeypatch, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
    elif fault == "nan":
        _nan_summary(monkeypatch)
    elif fault == "nowhere":
        _fail_first_save(monkeypatch, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)),
                         then=lambda: monkeypatch.setattr(tempfile, "tempdir", "/proc/no-temp-dir"))
    elif fault in ("push-down", "push-ctrl-c"):
        monkeypatch.setenv("HF_TOKEN", "hf_test_token")
        _raise_in(monkeypatch, hub, "push_report", ConnectionError("Hub unreachable") if fault == "push-down" else KeyboardInterrupt())
    return None


# --------------------------------------------------------------------------- checks after the run

def _fallback_from(err: str, pattern: str) -> Path:
    found = re.search(pattern, err)
    assert found, err
    path = Path(found.group(1))
    assert path.is_relative_to(tempfile.gettempdir())
    return path


def _expected_modes() -> tuple[int, int]:
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o777 & ~mask, 0o666 & ~mask


def _assert_run_folder(folder: Path) -> None:
    """A complete run folder whose folder and files have the umask's modes."""
    folder_mode, file_mode = _expected_modes()
    assert {"report.json", "report.md", "report.html", "accuracy.png", "simaou.png", "simam.png", "kendall.png",
            "scores.safetensors"} == {p.name for p in folder.iterdir()}
    assert stat.S_IMODE(folder.stat().st_mode) == folder_mode
    assert {stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()} == {file_mode}
    assert json.loads((folder / "report.json").read_text())["config"]["task"] == "reviews"


def _check_outcome(case: Case, out: str, err: str) -> None:
    """What each case leaves beyond the error line: fallback copies, the report on stdout, the pushed run."""
    if case.fault == "disk-full":
        fallback = _fallback_from(err, r"the report is saved in (\S+)\. ")
        _assert_run_folder(fallback)
        assert f"mv {fallback} runs/x, or push it with: hf-metaopt push {fallback} --repo-id" in err
    elif case.fault == "nan":
        saved = _fallback_from(err, r"the report's numbers are saved in (\S+report\.json) ")
        assert math.isnan(json.loads(saved.read_text())["simaou"]["mean"])
        assert f"mv {saved} runs/x/" in err
    elif case.fault == "nowhere":
        report = json.loads(out[out.index("\n{") + 1:])
        assert report["config"]["task"] == "reviews" and len(report["labels"]) == 3
    else:
        assert not any(Path(tempfile.gettempdir()).iterdir()), "no fallback copy unless the run folder cannot be written"
    if case.code in (0, 1) and case.fault:
        assert out.startswith("accuracy ZSL "), "the numbers are printed before the report is saved"


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_or_fault(case, workdir, monkeypatch, capsys):
    from hf_metaopt import loading

    loads = []
    real_load = loading.load_model
    monkeypatch.setattr(loading, "load_model", lambda *a, **k: loads.append(1) or real_load(*a, **k))
    undo = _inject(case.fault, monkeypatch, workdir)
    try:
        before = _snapshot(workdir)
        code = cli.main(["analyze", *case.argv, "--no-progress"])
        after = _snapshot(workdir)
    finally:
        if undo:
            undo()
    out, err = capsys.readouterr()
    assert code == case.code, err
    assert case.message in err
    assert "Traceback" not in err
    assert len([line for line in err.splitlines() if line.startswith("hf-metaopt analyze:")]) == 1, err
    assert bool(loads) == case.loads_model
    if case.writes_run:
        _assert_run_folder(workdir / "runs" / "x")
        after = {k: v for k, v in after.items() if not k.startswith("runs")}
    assert after == before, "a failed run leaves nothing behind: no run folder, lock, temporary or parent folder"
    _check_outcome(case, out, err)


def test_readme_shows_the_table():
    readme = (ROOT / "README.md").read_text()
    heading = "### What a bad input gets\n"
    assert heading in readme
    section = readme.split(heading, 1)[1].split("\n#", 1)[0]
    first = section[section.index("\n|") + 1:].split("\n\n", 1)[0]  # the section's first table (the second: other commands)
    table = "\n".join(line for line in first.splitlines() if line.startswith("|")) + "\n"
    assert table == render_table()
    command = section.split("```bash\n", 1)[1].split("```", 1)[0]
    assert shlex.split(command.replace("\\\n", " ")) == ["hf-metaopt", "analyze", *VALID]


# --------------------------------------------------------------------------- the console script, two processes

def _console_script() -> str:
    script = Path(sysconfig.get_path("scripts")) / "hf-metaopt"
    assert script.exists(), f"the hf-metaopt console script is not installed in {script.parent}; pip install -e ."
    return str(script)


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


def _popen(argv: list[str], cwd: Path, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(argv, cwd=cwd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def test_console_script_two_runs_at_once_and_an_unwritable_folder(workdir):
    """Three real processes started together: two with the same --output-dir, one with --output-dir /proc/x."""
    script = _console_script()
    proc = next(case for case in CASES if case.name == "proc")
    same = [_popen([script, "analyze", *RUN, "--no-progress"], workdir) for _ in range(2)]
    unwritable = _popen([script, "analyze", *proc.argv, "--no-progress"], workdir)

    code, err = unwritable.wait(timeout=300), unwritable.stderr.read()
    assert code == 2 and err.count("\n") == 1 and err.startswith("hf-metaopt analyze: error: ") and proc.message in err, err
    results = [(p.wait(timeout=300), p.stderr.read()) for p in same]
    assert sorted(code for code, _ in results) == [0, 2], results
    loser = next(err for code, err in results if code == 2)
    # Started together the lock refuses the loser; had one started after the other finished, the finished run would.
    assert "is writing runs/x (lock runs/.x.lock)" in loser or "run folder runs/x already exists" in loser, loser
    assert loser.count("\n") == 1
    _assert_run_folder(workdir / "runs" / "x")
    assert sorted(p.name for p in (workdir / "runs").iterdir()) == ["x"]  # no lock, no temporary folder


_HOLD_LOCK = """
import sys
from hf_metaopt.runs import RunFolder
RunFolder(sys.argv[1]).reserve()
print("held", flush=True)
sys.stdin.read()
"""


def test_a_live_runs_lock_refuses_and_a_dead_runs_lock_is_taken_over(workdir, capsys):
    holder = _popen([sys.executable, "-c", _HOLD_LOCK, "runs/x"], workdir, stdin=subprocess.PIPE)
    try:
        assert holder.stdout.readline() == "held\n", holder.stderr.read()
        assert cli.main(["analyze", *RUN, "--no-progress"]) == 2
        assert f"another run (pid {holder.pid} on " in capsys.readouterr().err
    finally:
        holder.send_signal(signal.SIGKILL)  # dies without cleaning up: its lock file stays
        holder.wait(timeout=60)
    assert (workdir / "runs" / ".x.lock").read_text().split()[0] == str(holder.pid)
    assert cli.main(["analyze", *RUN, "--no-progress"]) == 0
    _assert_run_folder(workdir / "runs" / "x")
    assert not (workdir / "runs" / ".x.lock").exists()


def test_run_folder_modes_follow_the_umask(workdir):
    old = os.umask(0o027)
    try:
        assert cli.main(["analyze", *RUN, "--no-progress"]) == 0
        _assert_run_folder(workdir / "runs" / "x")
        assert stat.S_IMODE((workdir / "runs" / "x").stat().st_mode) == 0o750
    finally:
        os.umask(old)


def test_temporaries_of_runs_killed_while_saving_are_cleaned_and_a_finished_report_is_kept(workdir, caplog):
    """``kill -9`` while saving leaves ``runs/.x.<random>.tmp`` (reported: never removed nor mentioned)."""
    from hf_metaopt.runs import RunFolder

    runs = workdir / "runs"
    runs.mkdir()
    finished = runs / ".x.k9abcdef.tmp"  # this run's own name, killed after report.json was written
    finished.mkdir(mode=0o700)
    (finished / "report.json").write_text('{"accuracy": {"zsl": 0.5}}\n')
    (runs / ".x.lock").write_text("999999 somehost\n")  # the dead run's lock file stays, unlocked
    half = runs / ".y.k9ghijkl.tmp"  # another run's, killed before its report.json was complete; no lock left
    half.mkdir()
    (half / "report.json").write_text('{"accuracy": {"zs')
    live = RunFolder(runs / "z")  # a run saving right now: its temporary stays
    live.reserve()
    (runs / ".z.k9mnopqr.tmp").mkdir()
    try:
        assert cli.main(["analyze", *RUN, "--no-progress"]) == 0
    finally:
        live.release()
    x, kept = (runs / "x").resolve(), (runs / "x.unsaved").resolve()
    assert caplog.messages == [  # on stderr, outside pytest
        f"hf-metaopt: a run of {x} was killed while saving its finished report; the report is kept in {kept} "
        f"(move it into place with: mv {kept} {x}, if no run folder is there; or delete it)"]
    assert json.loads((runs / "x.unsaved" / "report.json").read_text()) == {"accuracy": {"zsl": 0.5}}
    assert stat.S_IMODE((runs / "x.unsaved").stat().st_mode) == _expected_modes()[0]
    _assert_run_folder(runs / "x")
    assert sorted(p.name for p in runs.iterdir()) == [".z.k9mnopqr.tmp", "x", "x.unsaved"]


if __name__ == "__main__":
    sys.stdout.write(render_table())
