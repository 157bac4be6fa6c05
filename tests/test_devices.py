"""fastnst.devices: one reading of --device for both backends, and why there is no GPU, said for the build the user has."""

from __future__ import annotations

import pytest
import torch

from fastnst.devices import autotune_convolutions, autotuning, bf16_is_native, no_gpu_reason, parse_device, resolve_device
from fastnst.errors import FastNSTError


def test_a_cpu_only_pytorch_is_told_to_install_a_cuda_build(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.version, "cuda", None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert "CPU-only build" in no_gpu_reason()
    with pytest.raises(FastNSTError, match=r"--device cuda: this PyTorch .* is a CPU-only build; .* use --device cpu"):
        resolve_device("cuda")


def test_a_cuda_build_without_a_gpu_is_told_no_gpu_was_found(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    reason = no_gpu_reason()
    assert "no CUDA GPU was found" in reason and "built for CUDA 12.8" in reason and "install" not in reason
    with pytest.raises(FastNSTError, match="--device cuda:0: no CUDA GPU was found"):
        resolve_device("cuda:0")
    assert resolve_device("auto") == torch.device("cpu")


@pytest.mark.parametrize(
    "text, parsed",
    [
        ("auto", ("auto", None)),
        ("CPU", ("cpu", None)),
        (" cuda ", ("cuda", None)),
        ("cuda:1", ("cuda", 1)),
        ("Cuda:0", ("cuda", 0)),
        ("", ("auto", None)),
        (None, ("auto", None)),
    ],
)
def test_device_choices_parse(text: str | None, parsed: tuple[str, int | None]) -> None:
    assert parse_device(text) == parsed


# "cuda:\uff15" is cuda: and a fullwidth five, which str.isdigit() and int() accept.
BAD_DEVICES = ["cudax", "cuda:\uff15", "cuda:-1", "cuda:", "cuda:1.5", "auto:1", "cpu:0", "mps:0", "gpu", "cuda:0:1", "cu\nda\x1b[31m"]


@pytest.mark.parametrize("text", BAD_DEVICES)
def test_other_device_choices_are_refused_in_one_line(text: str) -> None:
    with pytest.raises(FastNSTError) as e:
        parse_device(text)
    message = str(e.value)
    assert message.startswith("--device must be auto, cpu, mps or cuda[:N], not '") and "\n" not in message and "\x1b" not in message


def test_the_refusal_quotes_the_choice_as_given() -> None:
    with pytest.raises(FastNSTError) as e:
        parse_device("cuda:\uff15")
    assert str(e.value) == "--device must be auto, cpu, mps or cuda[:N], not 'cuda:\uff15'"
    with pytest.raises(FastNSTError) as e:
        parse_device("cu\nda\x1b[31m")
    assert str(e.value) == "--device must be auto, cpu, mps or cuda[:N], not 'cu\\nda\\x1b[31m'"


@pytest.mark.parametrize("text", BAD_DEVICES)
def test_resolve_device_refuses_them_too(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a fullwidth digit must not reach torch.device
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 8)
    with pytest.raises(FastNSTError, match="^--device must be auto, cpu, mps or cuda"):
        resolve_device(text)
    assert resolve_device(" CPU ") == torch.device("cpu")


@pytest.mark.parametrize("text", ["cudax", "cuda:\uff15", "auto:1"])
def test_onnx_runtime_providers_read_device_the_same_way(text: str) -> None:
    pytest.importorskip("onnxruntime")
    from fastnst.providers import CPU, choose_providers

    with pytest.raises(FastNSTError, match="^--device must be auto, cpu, mps or cuda"):
        choose_providers(device=text)
    assert choose_providers(device=" CPU ") == [CPU]


# ---- Apple GPUs (MPS): the logic, with PyTorch's answers replaced (no Mac here) ----------------


def _machine(monkeypatch: pytest.MonkeyPatch, cuda: bool, mps: bool, mps_built: bool = True) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    monkeypatch.setattr(torch.backends.mps, "is_built", lambda: mps_built)


@pytest.mark.parametrize(("cuda", "mps", "auto"), [(True, True, "cuda"), (False, True, "mps"), (False, False, "cpu")])
def test_auto_prefers_cuda_then_mps_then_the_cpu(cuda: bool, mps: bool, auto: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _machine(monkeypatch, cuda, mps)
    assert resolve_device("auto").type == auto
    assert resolve_device("auto", allow_mps=False).type == ("cuda" if cuda else "cpu")  # under torchrun


def test_mps_is_used_when_there(monkeypatch: pytest.MonkeyPatch) -> None:
    _machine(monkeypatch, cuda=False, mps=True)
    assert parse_device(" MPS ") == ("mps", None)
    assert resolve_device("mps") == torch.device("mps")


@pytest.mark.parametrize(("built", "why"), [(False, "built without MPS"), (True, "found no usable Apple GPU")])
def test_mps_missing_is_one_line_with_the_reason(built: bool, why: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _machine(monkeypatch, cuda=False, mps=False, mps_built=built)
    with pytest.raises(FastNSTError) as e:
        resolve_device("mps")
    assert str(e.value).startswith("--device mps: ") and why in str(e.value) and "--device cpu" in str(e.value)
    assert "\n" not in str(e.value)


def test_mps_under_torchrun_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    _machine(monkeypatch, cuda=False, mps=True)
    with pytest.raises(FastNSTError, match="one process per Mac"):
        resolve_device("mps", allow_mps=False)


def test_onnx_models_run_on_the_cpu_provider_with_mps() -> None:
    from fastnst.providers import CPU, choose_providers

    assert choose_providers("mps") == [CPU]


def test_convolutions_are_autotuned_on_a_cuda_device_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    autotune_convolutions(torch.device("cpu"))
    assert torch.backends.cudnn.benchmark is False
    autotune_convolutions(torch.device("cuda", 1))
    assert torch.backends.cudnn.benchmark is True


def test_autotuning_for_a_block_restores_the_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    with pytest.raises(KeyboardInterrupt), autotuning(torch.device("cuda")):
        assert torch.backends.cudnn.benchmark is True
        raise KeyboardInterrupt
    assert torch.backends.cudnn.benchmark is False, "a later stylizer of many sizes is not left autotuning"


@pytest.mark.parametrize(("avx512_bf16", "amx", "native"), [(True, False, True), (False, True, True), (False, False, False)])
def test_bf16_is_native_on_cpus_with_bf16_instructions(avx512_bf16: bool, amx: bool, native: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)
    assert bf16_is_native(torch.device("cpu")) is native
    assert bf16_is_native(torch.device("mps")) is False


@pytest.mark.parametrize("ampere", [True, False])
def test_bf16_is_native_on_gpus_from_ampere_on(ampere: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[bool] = []
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: asked.append(including_emulation) or ampere)
    assert bf16_is_native(torch.device("cuda")) is ampere and asked == [False], "emulated bf16 is not native"
