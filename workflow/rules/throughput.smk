"""Training-step time and throughput (results/<run>/train_throughput.csv).

A timing job asks for every core, so Snakemake runs nothing beside it and the times are not disturbed.
Mode `authors_scheme` times the authors' training scheme (k cloned encoder-decoders) for the same DDU-Net in
the same run, the reference that "ours" is compared with; mode `stackedS` times S seeds trained in one process
(issue 13: more models per hour than separate jobs?). `throughput.distributed` adds the spatially
parallel step of `train --distributed` over P torchrun ranks
(`measure step-time --distributed`), with each rank's peak memory.
"""


def throughput_config(wildcards):
    return run_config(wildcards.run)["throughput"]


def throughput_jsons(wildcards):
    """Every timing of the table; the authors' clone scheme only for DDU-Nets (a U-Net has nothing to clone)."""
    cfg = throughput_config(wildcards)
    return [
        f"results/{wildcards.run}/throughput/{canonical(spec)}_k{k}_{mode}.json"
        for spec in cfg["models"]
        for k in cfg["ks"]
        for mode in cfg["modes"]
        if mode != "authors_scheme" or canonical(spec).startswith("ddunet_")
    ] + [
        f"results/{wildcards.run}/throughput/{canonical(cfg['distributed']['model'])}_k{cfg['distributed']['k']}"
        f"_P{ranks}.json"
        for ranks in (cfg["distributed"]["ranks"] if "distributed" in cfg else [])
    ]


def throughput_launch(wildcards):
    """P ranks on the CPU (gloo), `threads_per_rank` torch threads each."""
    cfg = throughput_config(wildcards)["distributed"]
    return Launch(wildcards.run, wildcards.ranks, "cpu", cfg["threads_per_rank"])


rule throughput_measure:
    output:
        "results/{run}/throughput/{spec}_k{k}_{mode}.json",
    params:
        cfg=throughput_config,
        mode=lambda wildcards: {"compiled": "--compile", "authors_scheme": "--authors-scheme"}.get(
            wildcards.mode, f"--stacked-seeds {wildcards.mode[len('stacked'):]}" if wildcards.mode.startswith("stacked")
            else ""),
    threads: workflow.cores
    log:
        "logs/{run}/throughput/{spec}_k{k}_{mode}.log",
    shell:
        "{DDUBENCH} measure step-time --model {wildcards.spec} --k {wildcards.k} --batch-size {params.cfg[batch_size]}"
        " --warmup {params.cfg[warmup]} --repeats {params.cfg[repeats]} --threads {params.cfg[threads]}"
        " {params.mode} --out {output} > {log} 2>&1"


rule throughput_ranks_measure:
    output:
        "results/{run}/throughput/{spec}_k{k}_P{ranks}.json",
    wildcard_constraints:
        ranks=r"\d+",
    params:
        cfg=throughput_config,
        launcher=lambda wildcards: throughput_launch(wildcards).torchrun(),
        threads=lambda wildcards: throughput_config(wildcards)["distributed"]["threads_per_rank"],
    threads: workflow.cores
    resources:
        **launch_resources(throughput_launch),
    log:
        "logs/{run}/throughput/{spec}_k{k}_P{ranks}.log",
    shell:
        "{params.launcher} -m ddubench measure step-time --distributed --model {wildcards.spec} --k {wildcards.k}"
        " --batch-size {params.cfg[batch_size]} --warmup {params.cfg[warmup]} --repeats {params.cfg[repeats]}"
        " --threads {params.threads} --out {output} > {log} 2>&1"


rule throughput_table:
    input:
        throughput_jsons,
    output:
        report_table("results/{run}/train_throughput.csv"),
        "results/{run}/train_throughput.meta.json",
    params:
        config=run_config_file,
    log:
        "logs/{run}/train_throughput.log",
    shell:
        "{DDUBENCH} table throughput --config {params.config} --evals {input} --out {output[0]} > {log} 2>&1"
