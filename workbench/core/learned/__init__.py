"""Learned image codecs: models, training surrogates, training, coding. Importing this package is
cheap; the torch-heavy modules are imported by whoever needs them."""
