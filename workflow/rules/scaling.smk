"""DDU-Net over P ranks (torchrun): per-rank peak inference memory and time (journal Table 7's columns).

Each measurement job launches torchrun with P ranks: gloo on the CPU, or one GPU per rank with NCCL. Its
resources say what it occupies (`gpu`, `nodes`, `tasks`, `cpus_per_task`), so the SLURM profile
(profiles/slurm) requests exactly that. Locally a measurement job takes every core, so no other job
disturbs its timings; the ranks use `threads_per_rank` torch threads each.
"""


def scaling_config(wildcards):
    return run_config(wildcards.run)["scaling"]


def scaling_nodes(wildcards):
    """Nodes a P-rank job spans (ranks_per_node ranks per node)."""
    cfg = scaling_config(wildcards)
    return -(-int(wildcards.ranks) // cfg["ranks_per_node"])


def scaling_gpus(wildcards):
    """GPUs per node the job needs (0 on the CPU)."""
    cfg = scaling_config(wildcards)
    return 0 if cfg["device"] == "cpu" else -(-int(wildcards.ranks) // scaling_nodes(wildcards))


def torchrun_command(wildcards):
    """torchrun for one node (--standalone), or one torchrun per node through srun under SLURM."""
    ranks, nodes = int(wildcards.ranks), scaling_nodes(wildcards)
    launcher = f"{sys.executable} -m torch.distributed.run"
    if nodes == 1:
        return f"{launcher} --standalone --nproc-per-node {ranks}"
    return (
        f"srun --ntasks-per-node 1 {launcher} --nnodes {nodes} --nproc-per-node {ranks // nodes}"
        " --rdzv-backend c10d --rdzv-endpoint $(scontrol show hostnames $SLURM_JOB_NODELIST | head -n 1):29500"
    )


def scaling_benchmark(wildcards):
    """The benchmark entry (subimage size, resolutions) of the job's model."""
    for entry in scaling_config(wildcards)["benchmarks"]:
        if canonical(entry["model"]) == wildcards.spec:
            return entry
    _fail(f"{config_file(wildcards.run)}: no scaling benchmark for model {wildcards.spec}")


def scaling_jsons(wildcards):
    cfg = scaling_config(wildcards)
    return [
        f"results/{wildcards.run}/scaling/{canonical(entry['model'])}_P{ranks}.json"
        for entry in cfg["benchmarks"]
        for ranks in cfg["ranks"]
    ]


rule scaling_measure:
    output:
        "results/{run}/scaling/{spec}_P{ranks}.json",
    params:
        launcher=torchrun_command,
        cfg=scaling_config,
        bench=scaling_benchmark,
        resolutions=lambda wildcards: " ".join(scaling_benchmark(wildcards)["resolutions"]),
    threads: workflow.cores  # nothing runs beside a timing job; the ranks' own threads are set below
    resources:
        gpu=scaling_gpus,
        nodes=scaling_nodes,
        tasks=scaling_nodes,
        cpus_per_task=lambda wildcards: int(wildcards.ranks) // scaling_nodes(wildcards)
        * scaling_config(wildcards)["threads_per_rank"],
    log:
        "logs/{run}/scaling/{spec}_P{ranks}.log",
    shell:
        "{params.launcher} -m ddubench scaling --model {wildcards.spec} --resolutions {params.resolutions}"
        " --subimage-size {params.bench[subimage_size]} --warmup {params.cfg[warmup]} --repeats {params.cfg[repeats]}"
        " --threads {params.cfg[threads_per_rank]} --device {params.cfg[device]} --out {output} > {log} 2>&1"


rule scaling_table:
    input:
        scaling_jsons,
    output:
        "results/{run}/scaling_{device}.csv",
        "results/{run}/scaling_{device}.meta.json",
    params:
        config=run_config_file,
    log:
        "logs/{run}/scaling_{device}_table.log",
    shell:
        "{DDUBENCH} table scaling --config {params.config} --evals {input} --out {output[0]} > {log} 2>&1"


rule scaling_figure:
    input:
        "results/{run}/scaling_{device}.csv",
    output:
        "figures/{run}/scaling_{device}.pdf",
    log:
        "logs/{run}/scaling_{device}_figure.log",
    shell:
        "{DDUBENCH} figure scaling --csv {input} --out {output} > {log} 2>&1"
