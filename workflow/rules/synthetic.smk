"""The synthetic circles-and-line datasets (journal Sec. III-D1), one per k; regenerated on demand."""


rule generate_synthetic:
    output:
        temp(multiext("data/{run}/synthetic/k{k}/", "train.npz", "val.npz", "test.npz", "manifest.json")),
    params:
        args=synthetic_args,
        out=lambda wildcards: data_dir(wildcards.run, wildcards.k),
    log:
        "logs/{run}/generate_synthetic_k{k}.log",
    shell:
        "{DDUBENCH} generate-synthetic --k {wildcards.k} {params.args} --out {params.out} > {log} 2>&1"
