"""Baseline methods (random patching, downsampling, GLNet, FCtL, CNN-DNN), one module each.

Each module registers its model(s) with :func:`ddubench.models.register_model` on import. They reach the
registry as plug-ins, like any other package's models: ``pyproject.toml`` declares each module as an
entry point of the group ``ddubench.models``, so the core package never imports this one. The plain U-Net
baseline is ``unet`` in :mod:`ddubench.models`.
"""
