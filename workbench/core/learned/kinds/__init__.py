"""The registered model kinds, one module per family (`base.py` says what a kind owns). Importing
this package fills `MODELS`."""

from workbench.core.learned.kinds import (compressai, dct, dct_checkerboard, dct_context, factorized,  # noqa: F401
                                          hyperprior, shvq)
from workbench.core.learned.kinds.base import (CODEC_ID, MODELS, MSE_LAMBDAS, MSSSIM_LAMBDAS, Encoded,  # noqa: F401
                                               ModelKind, TransformCodingModel, interpolate_levels)


def build_model(name: str, **config) -> ModelKind:
    return MODELS.get(name)(**config)
