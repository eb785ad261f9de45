"""Shared layers of mlprojects: specs, registry, data, splits, evaluation, tracking, training, CLI."""
