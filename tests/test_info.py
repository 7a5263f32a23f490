"""`lamina info` without a model: versions, numpy's BLAS and the faster OpenBLAS kernel to try."""
from __future__ import annotations

import builtins
import json

import numpy as np
import pytest

import lamina
from lamina.app import system
from lamina.app.cli import main

AVX2 = {"sse4_2", "avx", "avx2", "fma"}
AVX512 = AVX2 | {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"}


@pytest.mark.parametrize(("flags", "core", "expected"), [
    (AVX512, "Zen", "SkylakeX"),             # an AVX-512 EPYC on OpenBLAS's Zen kernels
    (AVX512, "Haswell", "SkylakeX"),
    (AVX512, "Sandybridge", "SkylakeX"),
    (AVX512, "prescott", "SkylakeX"),        # core types compare case-insensitively
    (AVX512, "SkylakeX", None),              # already the AVX-512 kernels
    (AVX512, "Cooperlake", None),
    (AVX2, "Zen", None),                     # no AVX-512: Zen is right
    (AVX2, "Haswell", None),
    (AVX2, "Prescott", "Haswell"),           # a VM that hides the CPU's name
    (AVX2 - {"fma"}, "Prescott", None),
    (AVX512 - {"avx512bw"}, "Haswell", None),  # Knights Landing's AVX-512 lacks what SkylakeX needs
    (AVX512, None, None),                    # not OpenBLAS, or its core type unknown
    (AVX512, "", None),
    (set(), "Prescott", None),               # no flags (not Linux): no guess
])
def test_faster_kernel(flags, core, expected):
    assert system.faster_kernel(flags, core) == expected


def test_cpu_flags_reads_the_flags_line(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: fpu avx2 avx512f\n\nprocessor\t: 1\n")
    assert system.cpu_flags(cpuinfo) == {"fpu", "avx2", "avx512f"}
    assert system.cpu_flags(tmp_path / "missing") == set()


def test_info_without_a_model_shows_versions_and_blas(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"lamina {lamina.__version__}, numpy {np.__version__}"
    assert out[1].startswith("BLAS: ") and ", core type " in out[1] and out[1].endswith(" threads")
    assert out[2].startswith(f"lamina's threads: {lamina.parallel.threads()} (")


def test_info_says_how_many_threads_lamina_splits_over(monkeypatch, capsys):
    monkeypatch.setattr(lamina.parallel.workers, "_cores", lambda: 4)
    monkeypatch.setattr(lamina.parallel.blas, "available", lambda: True)
    monkeypatch.setenv("LAMINA_NUM_THREADS", "3")
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "lamina's threads: 3 (convolutions and pools split their batch" in out and "LAMINA_NUM_THREADS=3" in out
    monkeypatch.setenv("LAMINA_NUM_THREADS", "1")
    assert main(["info", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["threads"] == 1


def test_info_json_fields(capsys):
    assert main(["info", "--system", "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found["lamina"] == lamina.__version__ and found["numpy"] == np.__version__
    assert set(found["blas"]) == {"library", "version", "core_type", "threads", "source"}
    assert found["blas"]["library"] != ""


def test_info_suggests_the_coretype(monkeypatch, capsys):
    monkeypatch.setattr(system, "cpu_flags", lambda path="/proc/cpuinfo": AVX512)
    monkeypatch.setattr(system, "blas", lambda: {"library": "openblas", "version": "0.3.30", "core_type": "Zen",
                                                 "threads": 2, "source": "threadpoolctl"})
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "BLAS: openblas 0.3.30, core type Zen, 2 threads" in out
    assert "try OPENBLAS_CORETYPE=SkylakeX" in out


def test_info_suggests_nothing_for_another_blas(monkeypatch):
    monkeypatch.setattr(system, "blas", lambda: {"library": "mkl", "version": "2024", "core_type": "Haswell",
                                                 "threads": 2, "source": "threadpoolctl"})
    assert system.report(flags=AVX512)["try_coretype"] is None


def test_info_without_threadpoolctl(monkeypatch, capsys):
    real_import = builtins.__import__

    def no_threadpoolctl(name, *args, **kwargs):
        if name == "threadpoolctl":
            raise ImportError("No module named 'threadpoolctl'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_threadpoolctl)
    found = system.blas()
    assert found["source"] == "numpy config" and found["core_type"] is None
    assert found["library"] != ""
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert 'core type unknown (pip install "lamina[info]" to see it)' in out
    assert "try OPENBLAS_CORETYPE" not in out  # no core type, no guess (a "set:" line shows the environment)


def test_info_with_a_model_and_system(tmp_path, capsys):
    model = lamina.Model([lamina.layer("Linear", 2)])
    model.build(np.zeros((1, 3), dtype=np.float32))
    path = model.save(tmp_path / "m.lamina")
    assert main(["info", str(path)]) == 0
    alone = capsys.readouterr().out
    assert "BLAS:" not in alone
    assert main(["info", str(path), "--system"]) == 0
    both = capsys.readouterr().out
    assert both.startswith(alone.rstrip("\n")) and "\nBLAS: " in both
