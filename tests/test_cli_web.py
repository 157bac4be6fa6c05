"""``fastnst web``'s command line: which models, which mode, and one-line errors (the page itself: test_web_browser)."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from fastnst.cli.main import main


def test_export_writes_the_page_and_models_from_onnx_and_pth_files(tmp_path: Path, web_static, styled_models, capsys) -> None:
    out = tmp_path / "public"
    assert main(["web", "--model", str(styled_models["onnx"]), "--model", str(styled_models["pth"]), "--export", str(out)]) == 0
    manifest = json.loads((out / "models.json").read_text())
    assert [m["name"] for m in manifest["models"]] == ["styled", "styled (2)"]
    assert all((out / m["url"]).is_file() for m in manifest["models"])
    err = capsys.readouterr().err
    assert "exporting " in err and "styled.pth to ONNX for the browser" in err
    assert f"wrote {out}: the page and 2 model(s)" in err


def test_export_twice_needs_overwrite(tmp_path: Path, web_static, styled_models, capsys) -> None:
    args = ["web", "--model", str(styled_models["onnx"]), "--export", str(tmp_path / "public")]
    assert main(args) == 0
    assert main(args) == 2
    assert "public: not empty; choose a new folder, or pass --overwrite" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--export", "site", "--port", "9000"], "--port: only for serving the page (not with --export)"),
        (["--export", "site", "--open"], "--open: only for serving the page (not with --export)"),
        (["--overwrite"], "--overwrite: only for --export"),
    ],
)
def test_flags_of_the_other_mode_are_refused(tmp_path: Path, web_static, styled_models, capsys, extra, message) -> None:
    assert main(["web", "--model", str(styled_models["onnx"]), *extra]) == 2
    assert capsys.readouterr().err == f"fastnst: error: {message}\n"


def test_no_model_and_no_shipped_style_is_one_line(web_static, monkeypatch, capsys) -> None:
    monkeypatch.setattr("fastnst.styles.shipped_styles", dict)
    assert main(["web", "--export", "site"]) == 2
    assert capsys.readouterr().err == (
        "fastnst: error: no model to offer: give --model M.onnx (or a .pth); no style ships with this fastnst yet\n"
    )


def test_an_unknown_style_or_missing_model_is_one_line(tmp_path: Path, web_static, capsys) -> None:
    assert main(["web", "--style", "nope", "--export", str(tmp_path / "s")]) == 2
    assert "fastnst: error: --style nope: no such shipped style" in capsys.readouterr().err
    assert main(["web", "--model", str(tmp_path / "gone.onnx"), "--export", str(tmp_path / "s")]) == 2
    assert capsys.readouterr().err == f"fastnst: error: {tmp_path / 'gone.onnx'}: model file not found\n"


def test_a_missing_runtime_is_reported_before_any_work(tmp_path: Path, web_static, styled_models, capsys) -> None:
    (web_static / "ort" / "ort.wasm.min.mjs").unlink()
    assert main(["web", "--model", str(styled_models["pth"]), "--export", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert "the ONNX Runtime Web files are missing (ort.wasm.min.mjs" in err and "python -m fastnst.web.runtime" in err
    assert "exporting" not in err  # the .pth was not exported for nothing


@pytest.mark.parametrize("port", ["http", "-1", "65536"])
def test_a_bad_port_is_refused_by_the_parser(port: str, capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["web", "--port", port])
    assert stop.value.code == 2
    assert f"argument --port: expected a whole number >= 0 and <= 65535, got '{port}'" in capsys.readouterr().err


@pytest.mark.slow
def test_serving_prints_the_url_serves_the_models_and_stops_on_ctrl_c(styled_models) -> None:
    """The real process: the URL on standard output, models.json and the model behind it, a clean stop."""
    from fastnst.web.runtime import missing_runtime

    if missing_runtime():
        pytest.skip("no ONNX Runtime Web files (python -m fastnst.web.runtime)")
    cmd = [sys.executable, "-m", "fastnst", "web", "--model", str(styled_models["onnx"]), "--port", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("serving 1 model at http://localhost:") and line.rstrip().endswith("(Ctrl-C to stop)")
        url = line.split(" at ", 1)[1].split()[0]
        manifest = json.loads(urllib.request.urlopen(url + "models.json", timeout=10).read())
        model = urllib.request.urlopen(url + manifest["models"][0]["url"], timeout=10).read()
        assert model == styled_models["onnx"].read_bytes()
    finally:
        proc.send_signal(subprocess.signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert err.strip().splitlines()[-1] == "fastnst: interrupted"  # no traceback
