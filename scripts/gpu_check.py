"""`make gpu-check`: the GPU acceptance check, with the Python and PyTorch already on the machine.

1. pytest on the tests marked ``float16`` (CPU-emulated float16/autocast dtype paths) and, with a GPU,
   ``cuda`` (AMP epoch, --compile, resume, sync BatchNorm on one NCCL rank, CUDA memory vs the memory model;
   tests needing several NCCL ranks skip below two GPUs).
2. With a GPU: journal Table 7's single-device rows of ``config/paper.yaml`` measured on GPU 0 by the
   suite's own harness (``ddubench inference``: warm-up, repeats, synchronised timing,
   ``max_memory_allocated``) into ``results/gpu/table7_single.csv`` (+ ``.meta.json`` naming the GPU, driver,
   torch and TF32 settings), the paper's V100S values beside ours; with four GPUs also the 2x2 rows over four
   NCCL ranks (``results/gpu/table7_2x2.csv``).

Without a GPU it runs step 1's CPU part, says in one line that there is no GPU, and exits 0.
Nothing is downloaded and no environment is created; ``src/`` and the repository root are put on PYTHONPATH.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]
os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH", "")])
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

OUT = ROOT / "results" / "gpu"
CONFIG = "config/paper.yaml"
TEST_FILES = ["tests/test_cuda.py", "tests/test_distributed.py"]
RANKS_2X2 = 4


def say(message: str) -> None:
    print(f"gpu-check: {message}", flush=True)


def run(command: list[str], log: Path | None = None) -> int:
    """Run ``command`` in the repository root (output to ``log`` when given); its exit status."""
    if log is None:
        return subprocess.run(command, cwd=ROOT).returncode
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as handle:
        return subprocess.run(command, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT).returncode


def pytest(markers: str) -> int:
    return run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", markers, *TEST_FILES])


def gpu_description() -> dict[str, Any]:
    """GPU names, driver, CUDA/cuDNN and the TF32 settings the measurements ran with (torch's defaults)."""
    try:
        driver = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                capture_output=True, text=True, timeout=30).stdout.split()
    except (OSError, subprocess.SubprocessError):
        driver = []
    return {
        "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
        "driver": driver[0] if driver else None,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
        "tf32_cudnn": torch.backends.cudnn.allow_tf32,
    }


def measure_rows(rows: list[dict], cfg: dict, multi: bool) -> dict[str, list[dict]]:
    """Each row's records from `ddubench inference` (one GPU) or torchrun + `ddubench scaling` (2x2 rows)."""
    from ddubench.io import read_json
    from ddubench.models import ModelSpec

    records = {}
    for row in rows:
        out = OUT / "table7" / f"{row['id']}.json"
        common = ["--model", str(ModelSpec.parse(row["model"])), "--warmup", str(cfg["warmup"]),
                  "--repeats", str(cfg["repeats"]), "--threads", str(cfg["threads"]), "--device", "cuda",
                  "--out", str(out.relative_to(ROOT))]
        if "subimage_size" in row:
            common += ["--subimage-size", str(row["subimage_size"])]
        side = f"{cfg['resolution']}x{cfg['resolution']}"
        if multi:
            command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
                       str(row["ranks"]), "-m", "ddubench", "scaling", *common, "--resolutions", side]
        else:
            command = [sys.executable, "-m", "ddubench", "inference", *common, "--resolution", side]
        start = time.perf_counter()
        status = run(command, OUT / "logs" / f"{row['id']}.log")
        if status:
            raise SystemExit(f"gpu-check: Table 7 row {row['id']} failed (exit {status}); see "
                             f"{(OUT / 'logs' / row['id']).relative_to(ROOT)}.log")
        records[row["id"]] = read_json(out)["records"]
        say(f"Table 7 row {row['id']}: measured in {time.perf_counter() - start:.0f} s")
    return records


def table7_gpu(rows: list[dict], cfg: dict, name: str, multi: bool) -> None:
    """Measure ``rows`` and write ``results/gpu/<name>.csv`` with its sidecar."""
    from ddubench.io import atomic_path
    from ddubench.provenance import provenance, utc_now, write_sidecar
    from ddubench.report.table7 import table7

    started, clock = utc_now(), time.perf_counter()
    records = measure_rows(rows, cfg, multi)
    gpu = gpu_description()
    setting = (f"ours: random weights, batch 1, {cfg['resolution']}x{cfg['resolution']} image, inference mode, "
               f"on {gpu['gpus'][0]} (`make gpu-check`), mean and std of {cfg['repeats']} passes after "
               f"{cfg['warmup']} warm-up; paper: V100S GPUs")
    frame = table7(rows, records, [], "make gpu-check measures random weights; no model is trained", setting)
    out = OUT / f"{name}.csv"
    with atomic_path(out) as tmp:
        frame.to_csv(tmp, index=False)
    first = next(iter(records.values()))[0]
    write_sidecar(out, provenance(config={"table7": cfg}, config_file=CONFIG, started=started,
                                  wall_time_s=time.perf_counter() - clock, world_size=first["world_size"],
                                  method=first["memory_method"], extra={"gpu": gpu},
                                  inputs=[f"results/gpu/table7/{row['id']}.json" for row in rows]))
    say(f"wrote {out.relative_to(ROOT)}")


def main() -> int:
    start = time.perf_counter()
    if not torch.cuda.is_available():
        status = pytest("float16")
        if status:
            return status
        say(f"no CUDA GPU visible (torch {torch.__version__}): ran the CPU-emulated float16 checks only; "
            "run `make gpu-check` on a GPU machine for the rest")
        return 0
    import yaml  # the config's table7 section as written (the schema check needs snakemake, not required here)

    gpus = torch.cuda.device_count()
    say(f"{gpus} GPU(s): {', '.join(torch.cuda.get_device_name(i) for i in range(gpus))}; torch {torch.__version__}")
    if gpus < 2:
        say("a single GPU cannot host several NCCL ranks: the multi-rank checks and the 2x2 rows are skipped")
    status = pytest("cuda or float16")
    if status:
        return status
    cfg = yaml.safe_load((ROOT / CONFIG).read_text())["table7"]
    table7_gpu([row for row in cfg["rows"] if row.get("ranks", 1) == 1], cfg, "table7_single", multi=False)
    multi = [row for row in cfg["rows"] if row.get("ranks", 1) > 1]
    if gpus >= RANKS_2X2:
        table7_gpu(multi, cfg, "table7_2x2", multi=True)
    elif gpus >= 2:
        say(f"the 2x2 rows need {RANKS_2X2} GPUs (one NCCL rank per subimage), {gpus} visible: skipped")
    say(f"done in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
