"""fastnst.__main__: what ``python -m fastnst`` (and the console script) checks before PyTorch loads.

Process-level behaviour, so each test runs a real interpreter: closed standard streams, pipes
whose reader went away, a deleted working folder, a Ctrl-C during the imports. None of these
commands loads PyTorch (argparse answers them), so each takes well under a second.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fastnst import __version__
from fastnst.__main__ import EXIT_INTERRUPTED

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}
ENV.pop("TORCH_CPP_LOG_LEVEL", None)


def _python(*args: str, **kwargs) -> subprocess.CompletedProcess:
    kwargs.setdefault("capture_output", True)
    return subprocess.run([sys.executable, *args], text=True, timeout=120, check=False, env=kwargs.pop("env", ENV), cwd=REPO, **kwargs)


def _shell(cmd: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", cmd], text=True, timeout=120, check=False, env=ENV, cwd=cwd, capture_output=True)


def test_exit_interrupted_is_the_shells_status_for_ctrl_c() -> None:
    assert EXIT_INTERRUPTED == 128 + 2  # 128 + SIGINT, as the command line reports an interrupted run


def test_python_dash_m_runs_the_command_line() -> None:
    done = _python("-m", "fastnst", "--version")
    assert (done.returncode, done.stdout.strip(), done.stderr) == (0, f"fastnst {__version__}", "")
    wrong = _python("-m", "fastnst", "nonsense")
    assert wrong.returncode == 2 and "invalid choice: 'nonsense'" in wrong.stderr and "Traceback" not in wrong.stderr


def test_run_puts_the_subcommand_before_the_arguments() -> None:
    """train.py and stylize.py call run('train') / run('stylize'): their arguments follow the subcommand."""
    code = "import sys; from fastnst.__main__ import run; sys.argv = ['prog', '--help']; run('export')"
    done = _python("-c", code)
    assert done.returncode == 0 and done.stdout.startswith("usage: fastnst export "), done
    assert "--fp16" in done.stdout


@pytest.mark.parametrize("stream", ["1", "2"])
def test_a_closed_standard_stream_becomes_the_null_device(stream: str) -> None:
    """``>&-`` / ``2>&-``: Python starts with sys.stdout or sys.stderr None; printing must not crash the command."""
    done = _shell(f"{sys.executable} -m fastnst --version {stream}>&-")
    assert done.returncode == 0, done
    assert done.stdout == ("" if stream == "1" else f"fastnst {__version__}\n")
    errors = _shell(f"{sys.executable} -m fastnst nonsense {stream}>&-")
    assert errors.returncode == 2, errors  # argparse's own status: its message had nowhere to go, nothing else failed
    assert "Traceback" not in errors.stderr


def _with_a_gone_reader(fd: int, *args: str) -> subprocess.CompletedProcess:
    """Run ``python -m fastnst ARGS`` with stdout (fd 1) or stderr (fd 2) a pipe whose read end is already closed."""
    read, write = os.pipe()
    os.close(read)
    try:
        streams = {"stdout": write, "stderr": subprocess.PIPE} if fd == 1 else {"stdout": subprocess.PIPE, "stderr": write}
        return _python("-m", "fastnst", *args, capture_output=False, **streams)
    finally:
        os.close(write)


def test_stdout_whose_reader_went_away_is_not_an_error() -> None:
    """``fastnst --help | head -0``: the long help hits a broken pipe; the command still succeeds quietly."""
    done = _with_a_gone_reader(1, "stylize", "--help")
    assert done.returncode == 0 and done.stderr == "", done


def test_stderr_whose_reader_went_away_keeps_the_exit_status() -> None:
    """``fastnst nonsense 2>&1 | head -0``: the error message is lost with the reader, the status (2) is not."""
    done = _with_a_gone_reader(2, "nonsense")
    assert done.returncode == 2 and done.stdout == "", done


def test_a_deleted_working_folder_is_one_line_before_anything_runs(tmp_path: Path) -> None:
    done = _shell(f"mkdir gone && cd gone && rmdir ../gone && {sys.executable} -m fastnst --version", cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == "", done  # --version is not answered: the check comes first
    assert done.stderr == "fastnst: error: the current folder no longer exists (it was deleted or moved); cd to an existing folder\n"


_INTERRUPT_IMPORT = """if True:
    import sys

    class CtrlC:  # a Ctrl-C that lands while the command line (and PyTorch) is being imported
        def find_spec(self, name, path=None, target=None):
            if name == "fastnst.cli":
                raise KeyboardInterrupt
            return None

    sys.meta_path.insert(0, CtrlC())
    from fastnst.__main__ import run
    sys.argv = ["fastnst", "stylize", "x.png", "-o", "y.png"]
    run()
"""


def test_ctrl_c_during_the_imports_is_quiet() -> None:
    done = _python("-c", _INTERRUPT_IMPORT)
    assert (done.returncode, done.stdout, done.stderr) == (EXIT_INTERRUPTED, "", "fastnst: interrupted\n")


_SHOW_LOG_LEVEL = """if True:
    import os, sys
    from fastnst.__main__ import run
    sys.argv = ["fastnst", "--version"]
    try:
        run()
    except SystemExit as e:
        print("exit", e.code, os.environ.get("TORCH_CPP_LOG_LEVEL"))
"""


@pytest.mark.parametrize("preset, expected", [(None, "FATAL"), ("WARNING", "WARNING"), ("INFO", "INFO")])
def test_pytorch_cpp_warnings_are_muted_unless_asked_for(preset: str | None, expected: str) -> None:
    env = dict(ENV) if preset is None else {**ENV, "TORCH_CPP_LOG_LEVEL": preset}
    done = _python("-c", _SHOW_LOG_LEVEL, env=env)
    assert done.returncode == 0, done
    assert done.stdout.splitlines() == [f"fastnst {__version__}", f"exit 0 {expected}"]
