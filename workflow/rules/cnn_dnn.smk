"""CNN-DNN image classification (seed 004 Tables 1-2): results/<run>/cnn_dnn_classification.csv.

One job trains every method of the comparison on the data of the config's `cnn_dnn` section (generated
ring-counting images, or CIFAR-10 from a local folder) on one thread.
"""


rule cnn_dnn_classification:
    output:
        report_table("results/{run}/cnn_dnn_classification.csv"),
        "results/{run}/cnn_dnn_classification.meta.json",
    params:
        config=run_config_file,
    threads: 1
    log:
        "logs/{run}/cnn_dnn_classification.log",
    shell:
        "{DDUBENCH} cnn-dnn-classification --config {params.config} --out {output[0]} --threads {threads}"
        " > {log} 2>&1"
