"""Batch output when things go wrong (issue 14, family 8) and the output folder.

Every failure to write ends as one line, ``m7onnx score: error: ...`` with status 2, never a
traceback; nothing is left under the final name or as a temporary file. Each case is made
for real: a file-size limit (``RLIMIT_FSIZE``) and, where user namespaces allow it, a full
tmpfs for "disk full"; a folder the writing user may not write to and a read-only mount for
"read-only"; a path under a regular file for "cannot create the folder". A run killed with
SIGKILL leaves its temporary file behind; the next run removes it.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import ONNX, import_make_models
from m7_runtime.market7 import RECOVERY, SPEND
from m7_runtime.scoring import score_file
from m7_runtime.scoring.output import TMP_MARK, _host_tag

ROWS = 6000


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    df = import_make_models().generate_snapshots(ROWS, seed=77)
    df.insert(0, "row_id", np.arange(ROWS))
    return df


def _input(frame: pd.DataFrame, folder: Path) -> Path:
    src = folder / "in.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), src, row_group_size=1000)
    return src


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("M7_")}
    return env | {"M7_CONFIG": "/nonexistent/config.json", "HOME": "/nonexistent"}


def _score_cli(
    src: Path, out: Path, *extra: str, prefix: tuple[str, ...] = (), **kwargs
) -> subprocess.CompletedProcess:
    cmd = [*prefix, sys.executable, "-m", "m7_runtime.cli", "score", RECOVERY, SPEND, "-i", str(src), "-o", str(out)]
    return subprocess.run(
        [*cmd, "--model-dir", str(ONNX), "--quiet", "--batch-size", "500", *extra],
        capture_output=True,
        text=True,
        timeout=300,
        env=_env(),
        **kwargs,
    )


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if TMP_MARK in p.name)


def _assert_one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("m7onnx score: error: "), proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    for fragment in fragments:
        assert fragment in proc.stderr, proc.stderr


# ---- the output folder ----------------------------------------------------------------------


def test_a_missing_output_folder_is_created_and_said(frame, tmp_path):
    src = _input(frame, tmp_path)
    out = tmp_path / "backtest" / "2026" / "scored.parquet"
    result = score_file([RECOVERY], input=src, output=out, model_dir=ONNX, progress=False)
    assert pq.read_table(out).num_rows == ROWS
    assert f"created the output folder {tmp_path / 'backtest'}" in result.notes
    proc = _score_cli(src, tmp_path / "again" / "o.csv", "--json")
    assert proc.returncode == 0, proc.stderr
    assert '"created the output folder' in proc.stdout


def test_a_failed_run_removes_the_folder_it_created(frame, tmp_path):
    src = tmp_path / "late_error.csv"
    rows = frame.astype({"rsi": object})
    rows.loc[ROWS - 5, "rsi"] = "oops"
    rows.to_csv(src, index=False)
    proc = _score_cli(src, tmp_path / "new" / "deeper" / "o.parquet")
    _assert_one_line_error(proc, "CSV column 'rsi'")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["late_error.csv"]


def test_an_uncreatable_output_folder_is_one_line(frame, tmp_path):
    src = _input(frame, tmp_path)
    (tmp_path / "a_file").write_text("not a folder")
    proc = _score_cli(src, tmp_path / "a_file" / "sub" / "o.parquet")
    _assert_one_line_error(proc, "cannot create the output folder", f"{tmp_path / 'a_file'} is not a folder")


# ---- disk full ---------------------------------------------------------------------------------


def _limit_file_size() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 << 10, 64 << 10))  # writes past 64 KB fail with EFBIG


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
def test_a_full_disk_is_one_line_and_leaves_nothing(fmt, frame, tmp_path):
    src = _input(frame, tmp_path)
    out = tmp_path / f"o.{fmt}"
    out.write_text("previous results\n")
    proc = _score_cli(src, out, preexec_fn=_limit_file_size)
    _assert_one_line_error(proc, f"cannot write the output {out}", "File too large")
    assert out.read_text() == "previous results\n"
    assert _leftovers(tmp_path) == []


# ---- read-only -----------------------------------------------------------------------------------


#: root writes anywhere: as root, the run drops the capabilities that let it ignore permissions
_NO_OVERRIDE = ("--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-dac_override,-dac_read_search")


def test_a_folder_without_write_permission_is_one_line(frame, tmp_path):
    src = _input(frame, tmp_path)
    folder = tmp_path / "read_only"
    folder.mkdir()
    folder.chmod(0o555)
    prefix: tuple[str, ...] = ()
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: a folder's permissions do not stop root")
        prefix = ("setpriv", *_NO_OVERRIDE)
    proc = _score_cli(src, folder / "o.csv", prefix=prefix)
    _assert_one_line_error(proc, f"cannot write the output {folder / 'o.csv'}", "Permission denied")
    assert list(folder.iterdir()) == []


def _user_namespaces() -> bool:
    unshare = shutil.which("unshare")
    if unshare is None:
        return False
    return subprocess.run([unshare, "-rm", "true"], capture_output=True).returncode == 0


needs_userns = pytest.mark.skipif(
    not _user_namespaces(), reason="needs unprivileged user namespaces (unshare -rm) to mount a tmpfs"
)
_ON_TMPFS = 'mount -t tmpfs -o "size=$1" tmpfs "$2" && if [ "$3" = ro ]; then mount -o remount,ro "$2"; fi && shift 3'


def _score_on_tmpfs(src: Path, mount: Path, size: str, mode: str) -> subprocess.CompletedProcess:
    script = f'{_ON_TMPFS} && exec "$@"'
    return _score_cli(src, mount / "o.csv", prefix=("unshare", "-rm", "sh", "-c", script, "sh", size, str(mount), mode))


@needs_userns
def test_a_read_only_file_system_is_one_line_naming_the_cause(frame, tmp_path):
    """On a read-only mount even deleting the (never created) temp file fails: that must not hide the cause."""
    src = _input(frame, tmp_path)
    mount = tmp_path / "mnt"
    mount.mkdir()
    proc = _score_on_tmpfs(src, mount, "1m", "ro")
    _assert_one_line_error(proc, "cannot write the output", "Read-only file system")


@needs_userns
def test_a_really_full_disk_is_one_line(frame, tmp_path):
    src = _input(frame, tmp_path)
    mount = tmp_path / "mnt"
    mount.mkdir()
    proc = _score_on_tmpfs(src, mount, "64k", "rw")
    _assert_one_line_error(proc, "cannot write the output", "No space left on device")


# ---- temporary files left by killed runs -----------------------------------------------------------


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_stale_temp_files_of_dead_runs_are_removed_and_only_those(frame, tmp_path):
    src = _input(frame, tmp_path)
    out = tmp_path / "o.parquet"
    host, dead = _host_tag(), _dead_pid()
    with subprocess.Popen(["sleep", "60"]) as alive:
        names = {
            "dead": f".o.parquet{TMP_MARK}{dead}-{host}-0badcafe",
            "dead_folder": f".o.parquet{TMP_MARK}{dead}-{host}-0badf00d",
            "alive": f".o.parquet{TMP_MARK}{alive.pid}-{host}-0000beef",
            "other_host": f".o.parquet{TMP_MARK}{dead}-{int(host, 16) ^ 1:08x}-0000beef",
            "other_output": f".p.parquet{TMP_MARK}{dead}-{host}-0000beef",
            "not_ours": f".o.parquet{TMP_MARK}notes.txt",
        }
        for key, name in names.items():
            if key == "dead_folder":
                (tmp_path / name).mkdir()
                (tmp_path / name / "part.000000.parquet").write_bytes(b"x" * 1000)
            else:
                (tmp_path / name).write_bytes(b"x" * 100_000)
        result = score_file([RECOVERY], input=src, output=out, model_dir=ONNX, progress=False)
        alive.kill()
    left = set(_leftovers(tmp_path))
    assert left == {names[k] for k in ("alive", "other_host", "other_output", "not_ours")}
    removed = [n for n in result.notes if n.startswith("removed ")]
    assert sorted(removed) == sorted(
        f"removed {names[k]}, a temporary file left by an interrupted run" for k in ("dead", "dead_folder")
    )
    assert pq.read_table(out).num_rows == ROWS


_SLOW_RUN = """
import sys
from m7_runtime.scoring import score_file
score_file(["xgb_recovery_model"], input=sys.argv[1], output=sys.argv[2], model_dir=sys.argv[3],
           batch_size=200, progress=False)
"""


def test_a_run_killed_with_sigkill_is_cleaned_up_by_the_next(frame, tmp_path):
    big = pd.concat([frame] * 20, ignore_index=True)  # 120,000 rows in batches of 200: seconds of writing
    src = tmp_path / "in.csv"
    big.to_csv(src, index=False)
    out = tmp_path / "o.csv"
    run = subprocess.Popen([sys.executable, "-c", _SLOW_RUN, str(src), str(out), str(ONNX)], env=_env())
    deadline = time.monotonic() + 120
    while not any(p.stat().st_size > 0 for p in tmp_path.glob(f".o.csv{TMP_MARK}*")):
        assert run.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.01)
    run.send_signal(signal.SIGKILL)
    run.wait()
    assert len(_leftovers(tmp_path)) == 1 and not out.exists()
    result = score_file([RECOVERY], input=src, output=out, model_dir=ONNX, progress=False)
    assert _leftovers(tmp_path) == []
    assert any(n.startswith(f"removed .o.csv{TMP_MARK}{run.pid}-") for n in result.notes)
    assert result.rows == len(big)


# ---- Ctrl-C under Dask ---------------------------------------------------------------------------------


def test_ctrl_c_under_dask_prints_one_line(frame, tmp_path):
    """SIGINT to the whole process group, as a terminal sends it, while the workers are scoring."""
    pytest.importorskip("distributed")
    big = pd.concat([frame] * 30, ignore_index=True)  # 180,000 rows: several seconds on two workers
    src = tmp_path / "in.parquet"
    pq.write_table(pa.Table.from_pandas(big, preserve_index=False), src, row_group_size=5000)
    out = tmp_path / "o.parquet"
    cmd = [sys.executable, "-m", "m7_runtime.cli", "score", RECOVERY, SPEND, "-i", str(src), "-o", str(out)]
    cmd += ["--model-dir", str(ONNX), "--engine", "dask", "--workers", "2", "--batch-size", "5000", "--quiet"]
    run = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), start_new_session=True
    )
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(f".o.parquet{TMP_MARK}*/part.*.parquet")):  # the workers are writing parts
        assert run.poll() is None, run.stderr.read()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(run.pid, signal.SIGINT)
    stdout, stderr = run.communicate(timeout=120)
    assert run.returncode == 130
    assert stderr == "m7onnx score: interrupted\n"
    assert stdout == ""
    assert _leftovers(tmp_path) == [] and not out.exists()
