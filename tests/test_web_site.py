"""fastnst.web.site: the models the page offers, models.json read from the files' metadata, the static export."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest

from fastnst.atomic import current_umask
from fastnst.checkpoint import save_model
from fastnst.errors import FastNSTError
from fastnst.testing import styled_net
from fastnst.web import site
from fastnst.web.runtime import BUILDS


@pytest.fixture(scope="module")
def multi_pth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("trio") / "trio.pth"
    save_model(styled_net(seed=2, n_styles=3), path, {"style_image": "a.png", "style_names": ["ink", "sun", "moss"]})
    return path


@pytest.fixture(scope="module")
def multi_onnx(multi_pth: Path) -> Path:
    """The three-style model exported once (an export takes seconds)."""
    from fastnst.export import export_onnx

    return export_onnx(multi_pth, multi_pth.with_suffix(".onnx")).path


def test_onnx_files_are_offered_as_they_are_and_pth_files_exported_first(tmp_path: Path, styled_models, multi_pth: Path) -> None:
    models = site.load_models([("styled", styled_models["onnx"]), ("trio", multi_pth)], tmp_path / "work")
    assert [m.name for m in models] == ["styled", "trio"]
    assert models[0].path == styled_models["onnx"]
    assert models[1].path.parent == site.cache_dir() and models[1].path.suffix == ".onnx"
    assert models[1].info["styles"] == ["ink", "sun", "moss"]


def test_an_export_is_made_once_per_file_content_and_a_damaged_one_again(tmp_path: Path, styled_models, capsys) -> None:
    pth = tmp_path / "mine.pth"
    pth.write_bytes(styled_models["pth"].read_bytes())
    first = site.load_models([("mine", pth)], tmp_path)[0].path
    assert "exporting" in capsys.readouterr().err
    assert site.load_models([("mine", pth)], tmp_path)[0].path == first  # from the cache: no second export
    assert capsys.readouterr().err == ""
    first.write_bytes(b"damaged")
    again = site.load_models([("mine", pth)], tmp_path)[0].path
    assert again == first and "exporting" in capsys.readouterr().err
    save_model(styled_net(seed=9), pth)  # the file changed: a new export, the old one kept for the old content
    changed = site.load_models([("mine", pth)], tmp_path)[0].path
    assert changed != first and first.is_file()


def test_without_a_writable_cache_the_export_goes_to_the_work_folder(tmp_path: Path, styled_models, monkeypatch) -> None:
    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "file"))
    model = site.load_models([("styled", styled_models["pth"])], tmp_path / "work")[0]
    assert model.path.parent == tmp_path / "work"


def test_two_models_with_one_name_get_distinct_names_and_urls(tmp_path: Path, styled_models) -> None:
    models = site.load_models([("styled", styled_models["onnx"])] * 3, tmp_path)
    assert [m.name for m in models] == ["styled", "styled (2)", "styled (3)"]
    assert site.model_urls(models) == ["models/0-styled.onnx", "models/1-styled_2.onnx", "models/2-styled_3.onnx"]


def test_a_model_that_is_not_a_fastnst_onnx_file_is_refused_by_name(tmp_path: Path) -> None:
    bad = tmp_path / "net.onnx"
    bad.write_bytes(b"garbage")
    with pytest.raises(FastNSTError, match=r"^.*net\.onnx: "):
        site.load_models([("net", bad)], tmp_path)
    with pytest.raises(FastNSTError, match=r"missing\.onnx: model file not found$"):
        site.load_models([("missing", tmp_path / "missing.onnx")], tmp_path)


def test_models_json_carries_what_the_page_needs_from_the_files_metadata(tmp_path: Path, web_static, styled_models, multi_onnx) -> None:
    models = site.load_models([("styled", styled_models["onnx"]), ("trio", multi_onnx)], tmp_path)
    entries = site.manifest(models)["models"]
    assert entries[0] == {
        "name": "styled",
        "url": "models/0-styled.onnx",
        "bytes": styled_models["onnx"].stat().st_size,
        "input": "image",
        "output": "stylized",
        "style_input": None,
        "styles": ["stripes"],
        "value_range": [0.0, 1.0],
        "min_size": 16,
        "precision": "float32",
    }
    assert (entries[1]["style_input"], entries[1]["styles"]) == ("style_weights", ["ink", "sun", "moss"])


def test_the_manifest_follows_the_metadata_not_constants(tmp_path: Path, styled_models) -> None:
    proto = onnx.load(str(styled_models["onnx"]))
    props = {p.key: p for p in proto.metadata_props}
    props["value_range"].value, props["min_size"].value = "[-1.0, 1.0]", "32"
    changed = tmp_path / "changed.onnx"
    onnx.save(proto, str(changed))
    entry = site.manifest(site.load_models([("changed", changed)], tmp_path))["models"][0]
    assert (entry["value_range"], entry["min_size"]) == ([-1.0, 1.0], 32)


def test_files_exported_before_the_fields_existed_get_the_formats_convention(tmp_path: Path, styled_models) -> None:
    proto = onnx.load(str(styled_models["onnx"]))
    kept = [p for p in proto.metadata_props if p.key not in ("value_range", "min_size", "layout", "style_input_name")]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    old = tmp_path / "old.onnx"
    onnx.save(proto, str(old))
    entry = site.manifest(site.load_models([("old", old)], tmp_path))["models"][0]
    assert (entry["value_range"], entry["min_size"], entry["input"]) == ([0.0, 1.0], 16, "image")


def test_the_site_is_the_static_files_the_given_models_and_models_json_only(tmp_path: Path, web_static, styled_models) -> None:
    models = site.load_models([("styled", styled_models["onnx"])], tmp_path)
    files = site.site_files(models)
    assert sorted(files) == sorted(
        ["index.html", "app.js", "style.css", "ort/LICENSE", *(f"ort/{n}" for b in BUILDS.values() for n in b)]
        + ["models/0-styled.onnx", "models.json"]
    )  # no hidden files, no caches
    assert json.loads(files["models.json"])["models"][0]["url"] == "models/0-styled.onnx"


def test_a_missing_runtime_is_one_line_that_says_how_to_build_it(tmp_path: Path, web_static, styled_models) -> None:
    (web_static / "ort" / "ort-wasm-simd-threaded.wasm").unlink()
    with pytest.raises(FastNSTError, match=r"the ONNX Runtime Web files are missing .*python -m fastnst\.web\.runtime"):
        site.site_files(site.load_models([("styled", styled_models["onnx"])], tmp_path))


def test_an_export_writes_the_site_with_a_readme_and_headers(tmp_path: Path, web_static, styled_models) -> None:
    models = site.load_models([("styled", styled_models["onnx"])], tmp_path)
    out = tmp_path / "public"
    site.write_site(out, models)
    assert (out / "models" / "0-styled.onnx").read_bytes() == styled_models["onnx"].read_bytes()
    assert (out / "index.html").read_text() == "/* index.html */"
    assert "Cross-Origin-Embedder-Policy: require-corp" in (out / "_headers").read_text()
    assert "styled" in (out / "README.md").read_text()
    assert oct(out.stat().st_mode & 0o777) == oct(0o777 & ~current_umask())  # readable by a web server, not mkdtemp's 0700
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging folder left


def test_an_export_refuses_a_folder_with_other_files_even_with_overwrite(tmp_path: Path, web_static, styled_models) -> None:
    models = site.load_models([("styled", styled_models["onnx"])], tmp_path)
    out = tmp_path / "photos"
    out.mkdir()
    (out / "holiday.jpg").write_bytes(b"keep me")
    with pytest.raises(FastNSTError, match=r"photos: not empty; choose a new folder, or pass --overwrite"):
        site.write_site(out, models)
    with pytest.raises(FastNSTError, match=r"photos: not a page exported by fastnst web; --overwrite replaces only those"):
        site.write_site(out, models, overwrite=True)
    assert (out / "holiday.jpg").read_bytes() == b"keep me"
    (tmp_path / "file").write_text("x")
    with pytest.raises(FastNSTError, match=r"file: is a regular file.*; --export needs a folder name"):
        site.write_site(tmp_path / "file", models)


def test_overwrite_replaces_an_earlier_export_whole(tmp_path: Path, web_static, styled_models, multi_onnx) -> None:
    out = tmp_path / "public"
    site.write_site(out, site.load_models([("styled", styled_models["onnx"])], tmp_path))
    site.write_site(out, site.load_models([("trio", multi_onnx)], tmp_path), overwrite=True)
    assert sorted(p.name for p in (out / "models").iterdir()) == ["0-trio.onnx"]  # the old model is gone
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_an_export_that_fails_midway_leaves_the_earlier_one_untouched(tmp_path: Path, web_static, styled_models, monkeypatch) -> None:
    out = tmp_path / "public"
    models = site.load_models([("styled", styled_models["onnx"])], tmp_path)
    site.write_site(out, models)
    before = sorted(p.relative_to(out) for p in out.rglob("*"))

    def broken_copy(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(site.shutil, "copyfile", broken_copy)
    with pytest.raises(OSError, match="No space left"):
        site.write_site(out, models, overwrite=True)
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_an_export_that_cannot_take_the_folders_place_puts_the_earlier_one_back(
    tmp_path: Path, web_static, styled_models, monkeypatch
) -> None:
    out = tmp_path / "public"
    models = site.load_models([("styled", styled_models["onnx"])], tmp_path)
    site.write_site(out, models)
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    real_rename = Path.rename
    interrupted = []

    def rename(self, target):
        if Path(target) == out and not interrupted:  # the new site moving in, after the old one moved aside
            interrupted.append(self)
            raise KeyboardInterrupt
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", rename)
    with pytest.raises(KeyboardInterrupt):
        site.write_site(out, models, overwrite=True)
    assert interrupted and interrupted[0] != out
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_overwrite_refuses_an_export_that_holds_files_of_the_users(tmp_path: Path, web_static, styled_models) -> None:
    out = tmp_path / "public"
    models = site.load_models([("styled", styled_models["onnx"])], tmp_path)
    site.write_site(out, models)
    (out / "CNAME").write_text("styles.example.org")
    (out / ".git").mkdir()
    (out / "models" / "notes.txt").write_text("mine")
    with pytest.raises(
        FastNSTError, match=r"public: holds files an export does not write \(\.git, CNAME, models/notes\.txt\), which --overwrite"
    ):
        site.write_site(out, models, overwrite=True)
    assert (out / "CNAME").read_text() == "styles.example.org"


@pytest.mark.parametrize(
    ("key", "value"),
    [("value_range", "[1.0, 1.0]"), ("value_range", '"5"'), ("value_range", "[0, 1e999]"), ("min_size", "0"), ("min_size", "true")],
)
def test_a_damaged_value_range_or_min_size_is_refused_by_file(tmp_path: Path, styled_models, key: str, value: str) -> None:
    proto = onnx.load(str(styled_models["onnx"]))
    next(p for p in proto.metadata_props if p.key == key).value = value
    bad = tmp_path / "crafted.onnx"
    onnx.save(proto, str(bad))
    with pytest.raises(FastNSTError, match=r"crafted\.onnx: the fastnst metadata 'value_range' or 'min_size' is damaged; re-export"):
        site.load_models([("crafted", bad)], tmp_path)
