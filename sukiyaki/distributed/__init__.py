"""Distributed training: coordinator, workers, protocol, codecs."""
