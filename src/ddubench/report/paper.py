"""Numbers published in the DDU-Net journal paper (IEEE Access 13, 2025) and in the thesis behind it (Verburg,
TU Delft, 2024; names ``THESIS_*``) that our tables sit beside.

Only values printed in the paper live here; each table builder puts them in ``*_paper`` columns and
never in ``*_ours``. Errata are noted where the paper's own code or arithmetic contradicts it. The one
exception is marked where it occurs: thesis Tables 7.7 and 7.10 print "-" for settings that never act, which
are held here as our trainer's equivalent (the epoch count) and reported as "-".
"""

from __future__ import annotations

# The journal prints line IoU to two decimals: a printed value stands for anything within half a unit of it.
PRINTED_ROUNDING = 0.005


def above_ceiling(printed, ceiling):
    """Whether a line IoU the journal printed lies above a receptive-field ceiling for certain: even half a
    printed unit lower it exceeds the ceiling (False where the ceiling is missing, NaN). Floats or pandas objects."""
    return printed - PRINTED_ROUNDING > ceiling


FIG9_DEPTH = 3
FIG9_FEATURES = (0, 1, 2, 4, 8, 16, 32)

# Journal Fig. 9: line-class IoU, DDU-Net(3, F, Y) per F and U-Net(3); trained and tested on k subimages.
FIG9_LINE_IOU: dict[int, tuple[float, ...]] = {
    2: (0.14, 0.55, 0.57, 0.87, 0.91, 0.92, 0.93, 0.95),
    3: (0.14, 0.44, 0.66, 0.77, 0.84, 0.90, 0.92, 0.81),
    4: (0.14, 0.58, 0.61, 0.77, 0.84, 0.88, 0.90, 0.74),
    6: (0.14, 0.23, 0.54, 0.67, 0.72, 0.82, 0.87, 0.68),
    8: (0.14, 0.18, 0.40, 0.50, 0.63, 0.70, 0.69, 0.39),
    16: (0.08, 0.18, 0.18, 0.18, 0.18, 0.18, 0.20, 0.19),
}

# Journal Fig. 11: the same models trained on k subimages, tested on the 6-subimage test set.
FIG11_TEST_K = 6
FIG11_LINE_IOU: dict[int, tuple[float, ...]] = {
    2: (0.13, 0.20, 0.20, 0.29, 0.28, 0.30, 0.40, 0.53),
    3: (0.14, 0.39, 0.65, 0.75, 0.79, 0.88, 0.92, 0.76),
    4: (0.14, 0.59, 0.55, 0.77, 0.78, 0.83, 0.73, 0.75),
    6: (0.14, 0.23, 0.54, 0.67, 0.72, 0.82, 0.87, 0.68),
    8: (0.13, 0.18, 0.39, 0.49, 0.64, 0.71, 0.70, 0.42),
    16: (0.13, 0.14, 0.14, 0.16, 0.18, 0.16, 0.26, 0.26),
}

# Journal Table 8: encoder-decoder parameters per depth (base width 4, 1 input channel, 3 classes) and
# coarse-network parameters per F (3 x 5x5 conv with bias + BN).
TABLE8_UNET_PARAMS = {2: 7487, 3: 30470, 4: 122031}
TABLE8_UNET_CHANNELS = {2: "1-4-8-16-16-8-4-3", 3: "1-4-8-16-32-32-16-8-4-3", 4: "1-4-8-16-32-64-64-32-16-8-4-3"}
TABLE8_UNET_BOTTLENECK = {2: "8x8", 3: "4x4", 4: "2x2"}
TABLE8_COARSE_PARAMS = {1: 84, 2: 318, 4: 1236, 8: 4872, 16: 19344, 32: 77088, 64: 307776}
TABLE8_ERRATA = {
    ("U-Net", 3): "paper erratum: the paper prints 30,470; the authors' block definitions and the D = 2 and "
    "D = 4 rows (which match exactly) give 30,479",
}

# Journal Table 10: hyperparameters of the synthetic experiments (same as thesis Table 7.3).
TABLE10 = {
    "lr": 0.008,
    "max_epochs": 40,
    "early_stopping_patience": 8,
    "lr_patience": 3,
    "min_epochs": 20,
    "dropout": 0.1,
    "batch_size": 16,
    "loss": "dice",
}
# Journal Sec. III-D1: images per k.
SYNTHETIC_COUNTS = {"train": 4000, "val": 1000, "test": 1000}

# Journal Table 3 (thesis Table 5.2, from the DeepGlobe paper): class pixel counts in millions and shares in %
# (about 6.87 G pixels, i.e. 1146 tiles: the challenge's train + validation + test, not only the 803 labelled).
TABLE3_PIXELS_MILLIONS = {"urban": 642.4, "agriculture": 3898.0, "rangeland": 701.1, "forest": 944.4, "water": 256.9,
                          "barren": 421.8, "unknown": 3.0}
TABLE3_PROPORTION_PCT = {"urban": 9.35, "agriculture": 56.76, "rangeland": 10.21, "forest": 13.75, "water": 3.74,
                         "barren": 6.14, "unknown": 0.04}

# Journal Table 9 (thesis Table 7.9): ResNet18 DDU-Net modules for 256x256 subimages:
# component -> (channel distribution, output feature map, parameters).
TABLE9_RESNET18 = {
    "block1": ("3-64", "128x128", 9536),
    "block2": ("64-64-64-64-64", "64x64", 147968),
    "block3": ("64-128-128-128-128", "32x32", 525568),
    "block4": ("128-256", "16x16", 2099712),
    "inter-conv": ("256-256-256", "16x16", 1180672),
    "up path": ("256-128-64-32-7", "256x256", 845415),
}
# Journal Table 9 coarse-network rows as printed (5x5 kernels): F -> parameters. The F = 1 and F = 4 values
# are shifted by one row: 84 belongs to F = 1, and F = 4 has 1,236 (3 (F^2 k^2 + F) + 6 F).
TABLE9_COARSE_PARAMS = {1: 0, 4: 84, 16: 19344, 64: 307776, 256: 4917504}
TABLE9_ERRATA = {
    1: "paper erratum: the printed coarse rows are shifted by one; 0 is printed for F = 1, whose count is 84",
    4: "paper erratum: the printed coarse rows are shifted by one; 84 (the F = 1 count) is printed for F = 4, "
       "whose count is 1,236",
}
# Journal Table 7: total parameters of the DDU-Net with F = 256 as printed (rounded): "9.7M" and "44M".
TABLE7_RESNET_TOTAL_PARAMS = {18: 9_700_000, 50: 44_000_000}

# Thesis Table 6.4: parameters of a 3-layer communication network with C_in = C_out = C maps of S x S px:
# CNN of 5x5 convs with bias and no BatchNorm (the same for every S), and fully connected, per (C, S).
THESIS_TABLE6_4_CNN_PARAMS = {1: 78, 2: 306, 4: 1212, 8: 4824}
THESIS_TABLE6_4_FC_PARAMS = {
    (1, 2): 60, (1, 4): 816, (1, 8): 12480,
    (2, 2): 216, (2, 4): 3168, (2, 8): 49536,
    (4, 2): 816, (4, 4): 12480, (4, 8): 197376,
    (8, 2): 3168, (8, 4): 49436, (8, 8): 787968,
}
THESIS_TABLE6_4_ERRATA = {
    (8, 4): "thesis erratum: 49,436 is printed; its Eq. (6.4) gives 3 x (8^2 x 4^4 + 8 x 4^2) = 49,536, the value "
            "it prints for C = 2 on 8x8, which has the same C S^2 = 128",
}

# Thesis Table 6.5: training memory of U-Net(4) with base width 64 and the coarse network (F = 256, 5x5, 4
# subdomains) on a 1024x1024 RGB image, 3 classes, Adam. block -> (size px, in channels, out channels,
# feature-map values in millions, feature-map MB, weights, weights MB) as printed (None: "-").
THESIS_TABLE6_5: dict[str, tuple[int | None, int | None, int | None, float | None, float | None, int | None,
                                 float | None]] = {
    "input": (1024, 3, 3, 3.2, 12.0, None, None),
    "input block": (1024, 3, 64, 268, 1024.0, 38848, 0.148),
    "encoder block 1": (512, 64, 128, 167, 704.0, 221696, 0.846),
    "encoder block 2": (256, 128, 256, 84, 352.0, 885760, 3.379),
    "encoder block 3": (128, 256, 512, 42, 176.0, 3540992, 13.508),
    "encoder block 4": (64, 512, 1024, 21, 88.0, 14159872, 54.016),
    "communication network": (64, 256, 1024, 30, 116.0, 4917504, 18.750),
    "decoder block 1": (64, 1024, 512, 50, 192.0, 9177088, 35.008),
    "decoder block 2": (128, 512, 256, 101, 384.0, 2294784, 8.754),
    "decoder block 3": (256, 256, 128, 201, 768.0, 573952, 2.189),
    "decoder block 4": (512, 128, 64, 402, 1536.0, 143616, 0.548),
    "output block": (1024, 64, 3, 3.1, 12.0, 195, 0.001),
    "labels": (1024, 3, 3, 1.0, 8.0, None, None),
}
# Thesis Table 6.5, Adam state rows: part -> (values, MB) as printed.
THESIS_TABLE6_5_OPTIMIZER = {"encoder": (37694336, 143.792), "decoder": (24379270, 93.000), "comm.": (9835008, 18.759)}
THESIS_TABLE6_5_ERRATA = {
    "communication network": "thesis erratum: the weights' MB is printed 18,750 (read 18.750); 4,917,504 x 4 B = "
                             "18.759 MB. The out-channel column prints 1,024 (the bottleneck width); the network "
                             "outputs its F = 256 maps, which replace the last 256 of the 1,024",
    "comm.": "thesis erratum: 18.759 MB is the weights' size (4,917,504 x 4 B); the 9,835,008 Adam values printed "
             "beside it are 37.518 MB",
}

# Thesis Table 7.5: per-device memory from torch-summary for a 512x512 RGB input: the U-Net (one device) and
# "our approach split on N GPUs". Parameters as printed; MB as (a, b) for a / N + b.
THESIS_TABLE7_5_PARAMS = {"U-Net": 1927042, "DDU-Net": 1954978}
THESIS_TABLE7_5_MB: dict[str, dict[str, tuple[float, float]]] = {
    "U-Net": {"input": (3.00, 0.0), "fwd_bwd": (2404.00, 0.0), "params": (0.0, 7.35), "total": (2414.0, 0.0)},
    "DDU-Net": {"input": (3.00, 0.0), "fwd_bwd": (2404.0, 4.25), "params": (0.0, 7.5), "total": (2407.0, 11.75)},
}

# Thesis Table 7.6 (Inria, 128x128 subdomains): module -> (channel distribution, bottleneck, kernel, parameters).
THESIS_TABLE7_6 = {
    "down-sampling path": ("3-32-64-128", "16x16", "3x3", 1163008),
    "up-sampling path": ("128-64-32-2", "16x16", "3x3", 753760),
    "communication network": ("64-64-64-64", None, "3x3", 111168),
}

# Thesis Tables 6.2 and 6.3 (§6.1.3): the positional-encoding probe's validation MSE (px^2) and average distance
# between true and predicted pixel (px; the printed values are sqrt(2 MSE)) per padding.
THESIS_TABLE6_2_MSE = {"valid": 110.9, "same": 33.6, "full": 14.0}
THESIS_TABLE6_3_DISTANCE = {"valid": 14.9, "same": 8.2, "full": 5.3}
THESIS_NO_INFORMATION_PX = 19.17
THESIS_NO_INFORMATION_ERRATUM = (
    "thesis erratum: the no-information reference is printed as 19.17 px, but its own formula "
    "L/6 (sqrt 2 + ln(1 + sqrt 2)) with L = 64 gives 24.49 px (the mean distance from the centre to a uniform point)"
)

# Thesis §7.2: the synthetic experiments' images per k (thesis placement rule, line width 2).
THESIS_SYNTHETIC_COUNTS = {"train": 8000, "val": 2000, "test": 2000}
# Thesis Table 7.4 (§7.2.3; k = 2, depth 3, F = 16): (mean IoU, precision, recall, accuracy). The "mean IoU" column
# is the mean over the three classes: the line-class IoU its precision and recall imply, 1 / (1/P + 1/R - 1), is
# 0.86 / 0.14 / 0.92, and those with background and circle IoUs near 1 average to the printed values.
THESIS_TABLE7_4 = {
    "ours w/ communication": (0.952, 0.908, 0.942, 0.996),
    "ours w/o communication": (0.692, 0.190, 0.371, 0.939),
    "baseline U-Net": (0.973, 0.958, 0.961, 0.998),
}

# Thesis Table 7.10: DeepGlobe hyperparameters of the bottleneck-convolution ablation (no early stopping, no minimum
# stopping epoch: every model trains its 50 epochs).
THESIS_TABLE7_10 = {"lr": 0.001, "max_epochs": 50, "min_epochs": 50, "early_stopping_patience": 50, "lr_patience": 5,
                    "dropout": 0.1, "batch_size": 8}
# Thesis Table 7.7 (Inria): lr 0.001, 40 epochs, no early stopping, no LR decay, no dropout, batch 16; as our
# trainer's settings ("-" in the thesis: early stopping and LR decay never act within the 40 epochs).
THESIS_TABLE7_7 = {"lr": 0.001, "max_epochs": 40, "min_epochs": 40, "early_stopping_patience": 40, "lr_patience": 40,
                   "dropout": 0.0, "batch_size": 16}
# Thesis Table 7.8 (Inria): IoU of (background, building) on (train, val, test) per model.
THESIS_INRIA_MODELS = ("baseline U-Net", "proposed w/ communication", "proposed w/o communication")
THESIS_TABLE7_8 = {
    "baseline U-Net": {"background": (0.951, 0.951, 0.946), "building": (0.774, 0.735, 0.734)},
    "proposed w/ communication": {"background": (0.952, 0.952, 0.949), "building": (0.786, 0.748, 0.751)},
    "proposed w/o communication": {"background": (0.946, 0.948, 0.944), "building": (0.761, 0.723, 0.731)},
}
# Thesis Tables 7.11 (without the extra bottleneck convolutions) and 7.12 (with): test IoU per class of
# (proposed w/ communication, proposed w/o communication, baseline U-Net); "unknown" excluded.
THESIS_ABLATION_MODELS = ("proposed w/ communication", "proposed w/o communication", "baseline U-Net")
THESIS_TABLE7_11 = {"urban": (0.7453, 0.7269, 0.7543), "agriculture": (0.8337, 0.8149, 0.8255),
                    "rangeland": (0.3245, 0.3369, 0.3434), "forest": (0.6703, 0.6538, 0.6649),
                    "water": (0.7274, 0.7036, 0.7298), "barren": (0.4835, 0.4915, 0.4798)}
THESIS_TABLE7_12 = {"urban": (0.7594, 0.7638, 0.7732), "agriculture": (0.8505, 0.8406, 0.8484),
                    "rangeland": (0.3774, 0.3371, 0.3825), "forest": (0.7156, 0.6727, 0.6982),
                    "water": (0.7686, 0.7412, 0.7729), "barren": (0.5365, 0.5291, 0.5587)}
# Thesis Table 7.13: mean IoU (train, test, val) per model, with and without the extra bottleneck convolutions.
THESIS_TABLE7_13 = {
    "baseline U-Net": {"with": (0.7239, 0.6723, 0.6858), "without": (0.6742, 0.6339, 0.6457)},
    "proposed w/ communication": {"with": (0.7229, 0.6680, 0.6907), "without": (0.6829, 0.6308, 0.6562)},
    "proposed w/o communication": {"with": (0.7025, 0.6474, 0.6631), "without": (0.6614, 0.6213, 0.6359)},
}
THESIS_TABLE7_13_ERRATA = {
    "baseline U-Net": "Table 7.13 gives 0.6339 for the test mIoU without the extra convolutions; the mean of its "
                      "Table 7.11 column is 0.6330",
}
