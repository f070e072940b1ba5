"""Training and evaluation of one model per (run, k, spec, seed).

Checkpoints and datasets are temporary: once every table that needs them is built they are removed
(`--notemp` keeps them), and committed results never force a retrain on a fresh clone. A killed training
job resumes from its last epoch when rerun.
"""


rule train:
    input:
        multiext("data/{run}/synthetic/k{k}/", "train.npz", "val.npz", "manifest.json"),
    output:
        summary="results/{run}/runs/k{k}/{spec}/seed{seed}/train.json",
        checkpoint=temp("results/{run}/runs/k{k}/{spec}/seed{seed}/best.pt"),
    params:
        launcher=synthetic_launcher,
        hyper=training_args,
        data=lambda wildcards: data_dir(wildcards.run, wildcards.k),
        run_dir=lambda wildcards: run_dir(wildcards.run, wildcards.k, wildcards.spec, wildcards.seed),
    threads: lambda wildcards: synthetic_train_ranks(wildcards)  # one torch thread per rank
    resources:
        **launch_resources(synthetic_launch),
    log:
        "logs/{run}/train/k{k}_{spec}_seed{seed}.log",
    shell:
        "{params.launcher} train --model {wildcards.spec} --data {params.data} --run-dir {params.run_dir}"
        " --summary {output.summary} {params.hyper} --seed {wildcards.seed} --threads 1"
        " --no-progress > {log} 2>&1"


rule evaluate:
    input:
        checkpoint="results/{run}/runs/k{k}/{spec}/seed{seed}/best.pt",
        data="data/{run}/synthetic/k{test_k}/test.npz",
        manifest="data/{run}/synthetic/k{test_k}/manifest.json",
    output:
        "results/{run}/runs/k{k}/{spec}/seed{seed}/eval_k{test_k}.json",
    threads: 1
    log:
        "logs/{run}/evaluate/k{k}_{spec}_seed{seed}_on_k{test_k}.log",
    shell:
        "{DDUBENCH} evaluate --checkpoint {input.checkpoint} --data {input.data} --out {output}"
        " --threads {threads} --no-progress > {log} 2>&1"
