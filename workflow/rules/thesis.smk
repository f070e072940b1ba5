"""The thesis's own experiments (seed 001). Tables 6.4, 6.5, 7.5 and 7.6 need no data or training: they come
from the modules and the memory model (ddubench.report.thesis_tables), beside the thesis's values; where the
config has `thesis.table7_5`, Table 7.5 adds the per-rank training peak measured over N = 1, 2, 4 ranks."""

from ddubench.report.thesis_tables import INRIA_IO, TABLE7_5_SPECS, TABLE7_5_SPLITS

THESIS_EXACT = ["thesis_table6_4", "thesis_table6_5", "thesis_table7_5", "thesis_table7_6"]


def table7_5_config(wildcards):
    """`thesis.table7_5` of the run (None: Table 7.5 is built without the measured per-rank peaks)."""
    return run_config(wildcards.run).get("thesis", {}).get("table7_5")


def table7_5_measurements(wildcards):
    """Table 7.5's measurement records, one per device count, when the run measures them."""
    if wildcards.name != "thesis_table7_5" or not table7_5_config(wildcards):
        return []
    return [f"results/{wildcards.run}/thesis/table7_5_N{devices}.json" for devices in TABLE7_5_SPLITS]


rule thesis_exact_table:
    input:
        table7_5_measurements,
    output:
        report_table("results/{run}/{name}.csv"),
        "results/{run}/{name}.meta.json",
    wildcard_constraints:
        name="|".join(THESIS_EXACT),
    params:
        config=run_config_file,
        evals=lambda wildcards, input: f"--evals {' '.join(input)}" if input else "",
    log:
        "logs/{run}/{name}.log",
    shell:
        "{DDUBENCH} table {wildcards.name} --config {params.config} {params.evals} --out {output[0]} > {log} 2>&1"


def table7_5_launch(wildcards):
    """N ranks, one thread each, on the configured device."""
    return Launch(wildcards.run, wildcards.devices, table7_5_config(wildcards)["device"], 1)


def table7_5_layout(wildcards):
    """The grid, subimage and channels of the N-device split of Table 7.5's 512x512 RGB image."""
    subimage, grid = TABLE7_5_SPLITS[int(wildcards.devices)]
    return (f"--grid {grid[0]}x{grid[1]} --subimage {subimage[0]}x{subimage[1]}"
            f" --in-channels {INRIA_IO['in_channels']} --num-classes {INRIA_IO['num_classes']}")


rule thesis_table7_5_measure:
    output:
        "results/{run}/thesis/table7_5_N{devices}.json",
    wildcard_constraints:
        devices="|".join(str(devices) for devices in TABLE7_5_SPLITS),
    params:
        cfg=table7_5_config,
        launcher=lambda wildcards: table7_5_launch(wildcards).torchrun(),
        layout=table7_5_layout,
        spec=TABLE7_5_SPECS["DDU-Net"],
    threads: workflow.cores
    resources:
        **launch_resources(table7_5_launch),
    log:
        "logs/{run}/thesis/table7_5_N{devices}.log",
    shell:
        "{params.launcher} -m ddubench measure step-time --distributed --model {params.spec} {params.layout}"
        " --batch-size 1 --warmup {params.cfg[warmup]} --repeats {params.cfg[repeats]} --threads 1"
        " --device {params.cfg[device]} --out {output} > {log} 2>&1"


# The positional-encoding probe (thesis §6.1.3): one record per padding, Tables 6.2 and 6.3 and Fig. 6.4 from
# them, Fig. 6.5 from the modules.
PADDINGS = ["valid", "same", "full"]


def positional_config(wildcards):
    return run_config(wildcards.run)["thesis"]["positional"]


def positional_records(wildcards):
    return [f"results/{wildcards.run}/thesis/positional_{padding}.json" for padding in PADDINGS]


rule positional_train:
    output:
        "results/{run}/thesis/positional_{padding}.json",
    wildcard_constraints:
        padding="|".join(PADDINGS),
    params:
        cfg=positional_config,
    threads: 1
    log:
        "logs/{run}/thesis/positional_{padding}.log",
    shell:
        "{DDUBENCH} positional-encoding --padding {wildcards.padding} --epochs {params.cfg[epochs]}"
        " --lr {params.cfg[lr]} --batch-size {params.cfg[batch_size]} --train {params.cfg[train]}"
        " --val {params.cfg[val]} --seed {params.cfg[seed]} --data-seed {params.cfg[data_seed]}"
        " --threads {threads} --out {output} --no-progress > {log} 2>&1"


rule thesis_positional_table:
    input:
        positional_records,
    output:
        report_table("results/{run}/{name}.csv"),
        "results/{run}/{name}.meta.json",
    wildcard_constraints:
        name="thesis_table6_2|thesis_table6_3",
    params:
        config=run_config_file,
    log:
        "logs/{run}/{name}.log",
    shell:
        "{DDUBENCH} table {wildcards.name} --config {params.config} --evals {input} --out {output[0]} > {log} 2>&1"


rule thesis_fig6_4:
    input:
        positional_records,
    output:
        report_figure("figures/{run}/thesis_fig6_4.pdf", "thesis_table6_3"),
    log:
        "logs/{run}/thesis_fig6_4.log",
    shell:
        "{DDUBENCH} figure thesis_fig6_4 --evals {input} --out {output} > {log} 2>&1"


rule thesis_fig6_5:
    output:
        report_figure("figures/{run}/thesis_fig6_5.pdf", "thesis_table6_2"),
    log:
        "logs/{run}/thesis_fig6_5.log",
    shell:
        "{DDUBENCH} figure thesis_fig6_5 --out {output} > {log} 2>&1"


# The thesis's synthetic experiments (§7.2) train in the derived run <run>-thesis (config thesis.synthetic:
# thesis placement rule and image counts) through the ordinary generate_synthetic, train and evaluate rules.
def thesis_models(wildcards, item):
    """(derived run, k, spec, seed) of every model of one thesis item: `table7_4` (DDU-Net with communication,
    without (F = 0) and the U-Net), `fig7_6` (DDU-Net(D, F, Y) for F <= 4 x 2^D and U-Net(D) per depth), `fig7_7`
    (the largest F of depth 2 and U-Net(2)) or `fig7_8` (table7_4's three kinds at fig7_8's depth, on every k)."""
    section = run_config(wildcards.run)["thesis"]["synthetic"]
    run = f"{wildcards.run}-thesis"
    if item in ("table7_4", "fig7_8"):
        depth, features = section[item]["depth"], section[item]["features"]
        specs = [f"ddunet_D{depth}_F{features}_CY", f"ddunet_D{depth}_F0_CY", f"unet_D{depth}"]
        ks = section["fig7_8"]["ks"] if item == "fig7_8" else [section["table7_4"]["k"]]
    else:
        sweep = section["fig7_6"]
        depths = [2] if item == "fig7_7" else sweep["depths"]
        specs = []
        for depth in depths:
            features = [f for f in sweep["features"] if f <= 4 * 2**depth]
            specs += [f"ddunet_D{depth}_F{f}_CY" for f in ([max(features)] if item == "fig7_7" else features)]
            specs.append(f"unet_D{depth}")
        ks = [sweep["k"]]
    return [(run, k, canonical(spec), seed) for k in ks for spec in specs for seed in section["seeds"]]


def thesis_files(item, name, first_seed_only=False):
    """Input function: one file per model of a thesis item (`eval_k{k}.json`, `train.json`, `best.pt`; fig7_8:
    `eval_k{test_k}.json` on every k' of fig7_8.test_ks)."""

    def files(wildcards):
        models = thesis_models(wildcards, item)
        test_ks = run_config(wildcards.run)["thesis"]["synthetic"]["fig7_8"]["test_ks"]
        first = models[0][3]
        return [f"{run_dir(run, k, spec, seed)}/{name.format(k=k, test_k=test_k)}"
                for run, k, spec, seed in models if not first_seed_only or seed == first
                for test_k in (test_ks if "{test_k}" in name else [k])]

    return files


def thesis_test_data(item):
    """Input function: the test split a thesis prediction figure draws its examples from."""

    def data(wildcards):
        run, k = thesis_models(wildcards, item)[0][:2]
        return {"data": f"{data_dir(run, k)}/test.npz", "manifest": f"{data_dir(run, k)}/manifest.json"}

    return data


rule thesis_table7_4:
    input:
        thesis_files("table7_4", "eval_k{k}.json"),
    output:
        report_table("results/{run}/thesis_table7_4.csv"),
        "results/{run}/thesis_table7_4.meta.json",
    params:
        config=run_config_file,
    log:
        "logs/{run}/thesis_table7_4.log",
    shell:
        "{DDUBENCH} table thesis_table7_4 --config {params.config} --evals {input} --out {output[0]} > {log} 2>&1"


rule thesis_fig7_3:
    input:
        thesis_files("table7_4", "train.json", first_seed_only=True),
    output:
        report_figure("figures/{run}/thesis_fig7_3.pdf", "thesis_table7_4"),
    log:
        "logs/{run}/thesis_fig7_3.log",
    shell:
        "{DDUBENCH} figure thesis_fig7_3 --evals {input} --out {output} > {log} 2>&1"


rule thesis_fig7_4:
    input:
        thesis_files("table7_4", "eval_k{k}.json", first_seed_only=True),
    output:
        report_figure("figures/{run}/thesis_fig7_4.pdf", "thesis_table7_4"),
    log:
        "logs/{run}/thesis_fig7_4.log",
    shell:
        "{DDUBENCH} figure thesis_fig7_4 --evals {input} --out {output} > {log} 2>&1"


rule thesis_sweep_table:
    input:
        lambda wildcards: thesis_files(wildcards.item, "eval_k{test_k}.json" if wildcards.item == "fig7_8"
                                       else "eval_k{k}.json")(wildcards),
    output:
        report_table("results/{run}/thesis_{item}.csv"),
        "results/{run}/thesis_{item}.meta.json",
    wildcard_constraints:
        item="fig7_6|fig7_8",
    params:
        config=run_config_file,
    log:
        "logs/{run}/thesis_{item}.log",
    shell:
        "{DDUBENCH} table thesis_{wildcards.item} --config {params.config} --evals {input} --out {output[0]}"
        " > {log} 2>&1"


rule thesis_sweep_figure:
    input:
        "results/{run}/thesis_{item}.csv",
    output:
        report_figure("figures/{run}/thesis_{item}.pdf", "thesis_{item}"),
    wildcard_constraints:
        item="fig7_6|fig7_8",
    log:
        "logs/{run}/thesis_{item}_figure.log",
    shell:
        "{DDUBENCH} figure thesis_{wildcards.item} --csv {input} --out {output} > {log} 2>&1"


# Figs. 7.5 and 7.7: test images, true masks and the predictions of Table 7.4's models (7.5) or of depth 2's (7.7);
# figure number -> (the item whose models are drawn, the config section with `examples`).
THESIS_PREDICTIONS = {"5": ("table7_4", "table7_4"), "7": ("fig7_7", "fig7_6")}


rule thesis_predictions:
    input:
        unpack(lambda wildcards: thesis_test_data(THESIS_PREDICTIONS[wildcards.n][0])(wildcards)),
        checkpoints=lambda wildcards: thesis_files(THESIS_PREDICTIONS[wildcards.n][0], "best.pt",
                                                   first_seed_only=True)(wildcards),
    output:
        csv=report_table("results/{run}/thesis_fig7_{n}.csv"),
        meta="results/{run}/thesis_fig7_{n}.meta.json",
        pdf=report_figure("figures/{run}/thesis_fig7_{n}.pdf"),
    wildcard_constraints:
        n="|".join(THESIS_PREDICTIONS),
    params:
        examples=lambda wildcards: run_config(wildcards.run)["thesis"]["synthetic"][
            THESIS_PREDICTIONS[wildcards.n][1]]["examples"],
    threads: 1
    log:
        "logs/{run}/thesis_fig7_{n}.log",
    shell:
        "{DDUBENCH} predictions --checkpoints {input.checkpoints} --data {input.data}"
        " --examples {params.examples} --pdf {output.pdf} --csv {output.csv} --threads {threads} > {log} 2>&1"


# Thesis Figs. 6.8-6.10 (§6.3): memory timelines of a few training iterations (the U-Net in one process, DDU-Net
# on two ranks) and the training peak against the resolution.
def memory_config(wildcards):
    return run_config(wildcards.run)["thesis"]["memory"]


def memory_launch(wildcards):
    """One process for the U-Net, two ranks for DDU-Net, one thread each, on the configured device."""
    return Launch(wildcards.run, 2 if wildcards.model == "ddunet" else 1, memory_config(wildcards)["device"], 1)


def memory_layout(wildcards):
    """The model and the split of the square timeline image: whole for the U-Net, two halves for DDU-Net."""
    cfg = memory_config(wildcards)
    side = cfg["timeline_resolution"]
    if wildcards.model == "unet":
        return f"--model {cfg['unet']} --grid 1x1 --subimage {side}x{side}"
    return f"--distributed --model {cfg['ddunet']} --grid 1x2 --subimage {side}x{side // 2}"


rule thesis_memory_timeline:
    output:
        "results/{run}/thesis/memory_timeline_{model}.json",
    wildcard_constraints:
        model="unet|ddunet",
    params:
        launcher=lambda wildcards: DDUBENCH if wildcards.model == "unet" else f"{memory_launch(wildcards).torchrun()} -m ddubench",
        layout=memory_layout,
        cfg=memory_config,
    threads: lambda wildcards: 2 if wildcards.model == "ddunet" else 1
    resources:
        **launch_resources(memory_launch),
    log:
        "logs/{run}/thesis/memory_timeline_{model}.log",
    shell:
        "{params.launcher} memory-timeline {params.layout} --in-channels 3 --num-classes 3"
        " --iterations {params.cfg[iterations]} --device {params.cfg[device]} --threads 1 --out {output} > {log} 2>&1"


rule thesis_fig6_8_table:
    input:
        expand("results/{{run}}/thesis/memory_timeline_{model}.json", model=["unet", "ddunet"]),
    output:
        report_table("results/{run}/thesis_fig6_8.csv"),
        "results/{run}/thesis_fig6_8.meta.json",
    params:
        config=run_config_file,
    log:
        "logs/{run}/thesis_fig6_8.log",
    shell:
        "{DDUBENCH} table thesis_fig6_8 --config {params.config} --evals {input} --out {output[0]} > {log} 2>&1"


rule thesis_timeline_figure:
    input:
        lambda wildcards: f"results/{wildcards.run}/thesis/memory_timeline_{'unet' if wildcards.n == '8' else 'ddunet'}.json",
    output:
        report_figure("figures/{run}/thesis_fig6_{n}.pdf", "thesis_fig6_8"),
    wildcard_constraints:
        n="8|9",
    log:
        "logs/{run}/thesis_fig6_{n}.log",
    shell:
        "{DDUBENCH} figure thesis_fig6_{wildcards.n} --evals {input} --out {output} > {log} 2>&1"


rule thesis_fig6_10_table:
    output:
        report_table("results/{run}/thesis_fig6_10.csv"),
        "results/{run}/thesis_fig6_10.meta.json",
    params:
        config=run_config_file,
        device=lambda wildcards: memory_config(wildcards)["device"],
    threads: 1
    resources:
        **gpu_resources(lambda wildcards: memory_config(wildcards)["device"]),
    log:
        "logs/{run}/thesis_fig6_10.log",
    shell:
        "{DDUBENCH} table thesis_fig6_10 --config {params.config} --device {params.device} --threads {threads}"
        " --out {output[0]} > {log} 2>&1"


rule thesis_fig6_10_figure:
    input:
        "results/{run}/thesis_fig6_10.csv",
    output:
        report_figure("figures/{run}/thesis_fig6_10.pdf"),
    log:
        "logs/{run}/thesis_fig6_10_figure.log",
    shell:
        "{DDUBENCH} figure thesis_fig6_10 --csv {input} --out {output} > {log} 2>&1"


# Thesis Tables 7.11-7.13 and Fig. 7.15 (§7.4): the DeepGlobe ablation of the extra bottleneck convolutions, trained
# in the derived run <run>-thesis (thesis Table 7.10's hyperparameters) by the ordinary deepglobe rules.
def ablation_cells(run):
    """(P, spec) of the six ablation models: with communication and without (P x P subimages) and the U-Net
    (P = 1), each with (spec as is) and without (`_XN`) the extra bottleneck convolutions."""
    ablation = run_config(run)["thesis"]["deepglobe_ablation"]
    resnet, features, partition = ablation["resnet"], ablation["features"], ablation["partition"]
    return [(p, canonical(f"resnetddunet_R{resnet}_F{f}_C{c}{extra}"))
            for extra in ("", "_XN") for p, f, c in ((partition, features, "Y"), (partition, 0, "N"), (1, 0, "N"))]


def ablation_eval(run, partition, spec, seed, split):
    """An ablation model's evaluation on ``split``: DDU-Nets at their own subimage side, the U-Net on whole crops."""
    directory = fig13_model_dir(run, partition, spec, seed)
    if partition == 1 and split != "train":
        return f"{directory}/eval_{split}_S{run_config(run)['deepglobe']['crop']['test']}.json"
    return f"{directory}/eval_{split}.json"


def ablation_evals(wildcards):
    run = f"{wildcards.run}-thesis"
    seeds = run_config(run)["deepglobe"]["training"]["seeds"]
    return [ablation_eval(run, partition, spec, seed, split) for partition, spec in ablation_cells(wildcards.run)
            for seed in seeds for split in ("train", "val", "test")]


def ablation_checkpoints(wildcards):
    """Best checkpoints of the six models (first seed), with and without the extra convolutions alternating."""
    run = f"{wildcards.run}-thesis"
    seed = run_config(run)["deepglobe"]["training"]["seeds"][0]
    return [f"{fig13_model_dir(run, partition, spec, seed)}/best.pt" for partition, spec in ablation_cells(wildcards.run)]


rule thesis_ablation_table:
    input:
        ablation_evals,
    output:
        report_table("results/{run}/thesis_table7_{n}.csv"),
        "results/{run}/thesis_table7_{n}.meta.json",
    wildcard_constraints:
        n="11|12|13",
    params:
        config=run_config_file,
    log:
        "logs/{run}/thesis_table7_{n}.log",
    shell:
        "{DDUBENCH} table thesis_table7_{wildcards.n} --config {params.config} --evals {input} --out {output[0]}"
        " > {log} 2>&1"


rule thesis_fig7_15:
    input:
        lambda wildcards: [f"{deepglobe_dir(wildcards.run + '-thesis')}/{name}"
                           for name in ("manifest.json", "test/images.npy", "test/masks.npy")],
        checkpoints=ablation_checkpoints,
    output:
        pdf=report_figure("figures/{run}/thesis_fig7_15.pdf"),
        csv=report_table("results/{run}/thesis_fig7_15.csv"),
        meta="results/{run}/thesis_fig7_15.meta.json",
        errors_pdf=report_figure("figures/{run}/thesis_fig7_15_errors.pdf"),
        errors_csv=report_table("results/{run}/thesis_fig7_15_errors.csv"),
        errors_meta="results/{run}/thesis_fig7_15_errors.meta.json",
    params:
        subimages=lambda wildcards: " ".join("whole" if partition == 1 else "own"
                                             for partition, _ in ablation_cells(wildcards.run)),
        data=lambda wildcards: f"{deepglobe_dir(wildcards.run + '-thesis')}/test",
        examples=lambda wildcards: run_config(wildcards.run)["thesis"]["deepglobe_ablation"]["examples"],
        device=lambda wildcards: run_config(wildcards.run + "-thesis")["deepglobe"]["training"]["device"],
    threads: 1
    log:
        "logs/{run}/thesis_fig7_15.log",
    shell:
        "{DDUBENCH} deepglobe-predictions --checkpoints {input.checkpoints} --subimages {params.subimages}"
        " --data {params.data} --examples {params.examples} --pdf14 {output.pdf} --csv14 {output.csv}"
        " --pdf15 {output.errors_pdf} --csv15 {output.errors_csv} --device {params.device} --threads {threads}"
        " --no-progress > {log} 2>&1"
