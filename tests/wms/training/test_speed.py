"""The speed levers (wms.training.speed): bf16 only where the processor has it, torch.compile falling back to eager."""

from pathlib import Path

import pytest
import torch

from wms.training.speed import CompiledForward, cpu_feature_flags, cpu_model_name, resolve_precision

CPU = torch.device("cpu")
ZEN4_FLAGS = frozenset({"avx2", "avx512f", "avx512_bf16", "avx512_vnni"})
OLDER_FLAGS = frozenset({"avx2", "avx512f"})


def test_auto_is_bf16_on_a_cpu_that_reports_bf16_instructions_and_says_which():
    precision = resolve_precision("auto", CPU, ZEN4_FLAGS)
    assert precision.autocast and not precision.fell_back
    assert precision.reason == "bf16 autocast: the CPU reports avx512_bf16"


def test_auto_is_fp32_on_a_cpu_without_them():
    precision = resolve_precision("auto", CPU, OLDER_FLAGS)
    assert not precision.autocast and not precision.fell_back
    assert "avx512_bf16, amx_bf16 not reported" in precision.reason


def test_bf16_asked_for_where_the_cpu_lacks_it_falls_back_to_fp32_with_one_line():
    precision = resolve_precision("bf16", CPU, OLDER_FLAGS)
    assert (precision.name, precision.fell_back) == ("fp32", True)
    assert precision.reason.startswith("fp32: bf16 was asked for, but this CPU")


def test_fp32_asked_for_is_fp32_everywhere_and_an_unknown_precision_is_refused():
    assert resolve_precision("fp32", CPU, ZEN4_FLAGS).name == "fp32"
    with pytest.raises(ValueError, match="'fp16' is not one of auto, bf16, fp32"):
        resolve_precision("fp16", CPU, ZEN4_FLAGS)


def test_the_flags_are_read_from_the_kernels_cpuinfo(tmp_path: Path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu avx2 avx512_bf16\n\n")
    assert cpu_feature_flags(cpuinfo) == {"fpu", "avx2", "avx512_bf16"}
    assert cpu_feature_flags(tmp_path / "absent") == frozenset()


def test_the_processor_name_is_read_from_the_kernels_cpuinfo(tmp_path: Path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Processor @ 2.80GHz\nflags\t\t: fpu avx2\n\n")
    assert cpu_model_name(cpuinfo) == "Intel(R) Xeon(R) Processor @ 2.80GHz"
    assert cpu_model_name(tmp_path / "absent") == ""


@pytest.mark.skipif("avx512_bf16" not in cpu_feature_flags(), reason="this CPU reports no avx512_bf16")
def test_this_machine_trains_in_bf16_by_default():
    assert resolve_precision("auto", CPU).autocast


def test_a_compile_that_fails_runs_the_batch_eagerly_and_says_so_once(monkeypatch):
    """No C++ compiler for inductor's CPU kernels: a real compile failure, not a pretend one."""
    import torch._dynamo
    import torch._inductor.config

    monkeypatch.setattr(torch._inductor.config.cpp, "cxx", ("/nonexistent/c++",))
    torch._dynamo.reset()
    module = torch.nn.Conv2d(3, 4, 3)
    lines: list[str] = []
    forward = CompiledForward(module, on_fallback=lines.append)
    batch = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        first, second = forward(batch), forward(batch)
        expected = module(batch)
    torch.testing.assert_close(first, expected)
    torch.testing.assert_close(second, expected)
    assert len(lines) == 1 and lines[0].startswith("torch.compile failed (") and lines[0].endswith("training eagerly")
