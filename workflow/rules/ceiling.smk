"""Receptive-field ceilings of the synthetic grid (`ddubench ceiling`), one per dependency-region class and k."""


def ceiling_args(wildcards):
    """Data and sampling settings of a run's ceiling as `ddubench ceiling` flags."""
    cfg = run_config(wildcards.run)
    synthetic, ceiling = cfg["synthetic"], cfg["ceiling"]
    return (f"--rule {synthetic['rule']} --subimage-size {synthetic['subimage_size']} --seed {synthetic['data_seed']}"
            f" --images {ceiling['images']} --background-samples {ceiling['background_samples']}"
            f"{line_width_arg(synthetic)}")


rule line_ceiling:
    output:
        "results/{run}/ceilings/k{k}/{spec}.json",
    params:
        args=ceiling_args,
    threads: 1
    log:
        "logs/{run}/ceiling/k{k}_{spec}.log",
    shell:
        "{DDUBENCH} ceiling --model {wildcards.spec} --k {wildcards.k} {params.args} --threads {threads}"
        " --out {output} > {log} 2>&1"
