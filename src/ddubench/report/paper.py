"""Numbers published in the DDU-Net journal paper (IEEE Access 13, 2025) that our tables sit beside.

Only values printed in the paper live here; each table builder puts them in ``*_paper`` columns and
never in ``*_ours``. Errata are noted where the paper's own code or arithmetic contradicts it.
"""

from __future__ import annotations

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
