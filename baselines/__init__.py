"""Baseline methods (random patching, downsampling, GLNet, FCtL, CNN-DNN), one module each.

Each module registers its model(s) with :func:`ddubench.models.register_model` on import; the registry
imports this package lazily, so ``ModelSpec.parse("<name>_...")`` finds every baseline without the core
package importing any of them. The plain U-Net baseline is ``unet`` in :mod:`ddubench.models`.
"""

from . import cnn_dnn, downsampling, fctl, glnet, patching  # noqa: F401  (each registers its models on import)
