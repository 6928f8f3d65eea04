"""Image codecs. Importing this package registers every built-in adapter."""

from workbench.core.codecs.base import (  # noqa: F401
    CODECS, CodecInfo, codec_class, ImageCodec, all_codecs, codec_for_bytes, decode_any, describe_codecs, get_codec,
    register_codec,
)

# Importing an adapter module registers its codecs; the order here is the order they are listed in.
from workbench.core.codecs import pillow_codecs, heif, jxl, bpg, learned  # noqa: E402,F401
