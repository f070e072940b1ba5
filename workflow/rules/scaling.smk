"""DDU-Net over P ranks (torchrun): per-rank peak inference memory and time (journal Table 7's columns).

Each measurement job launches torchrun with P ranks: gloo on the CPU, or one GPU per rank with NCCL. Its
resources say what it occupies (GPUs per node, nodes, one task per node, CPUs per task: `Launch` in
common.smk), so the SLURM profile (profiles/slurm) requests exactly that. Locally a measurement job takes
every core, so no other job disturbs its timings; the ranks use `threads_per_rank` torch threads each.
"""


def scaling_config(wildcards):
    return run_config(wildcards.run)["scaling"]


def scaling_launch(wildcards):
    """P ranks on the configured device, `threads_per_rank` torch threads each."""
    cfg = scaling_config(wildcards)
    return Launch(wildcards.run, wildcards.ranks, cfg["device"], cfg["threads_per_rank"])


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
        launcher=lambda wildcards: scaling_launch(wildcards).torchrun(),
        cfg=scaling_config,
        bench=scaling_benchmark,
        resolutions=lambda wildcards: " ".join(scaling_benchmark(wildcards)["resolutions"]),
    threads: workflow.cores  # nothing runs beside a timing job; the ranks' own threads are set below
    resources:
        **launch_resources(scaling_launch),
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
        report_table("results/{run}/scaling_{device}.csv"),
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
        report_figure("figures/{run}/scaling_{device}.pdf"),
    log:
        "logs/{run}/scaling_{device}_figure.log",
    shell:
        "{DDUBENCH} figure scaling --csv {input} --out {output} > {log} 2>&1"
