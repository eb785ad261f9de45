"""Errors a user can act on. The CLI prints their message and exits non-zero, without a traceback."""

from __future__ import annotations


class MLProjectsError(Exception):
    """Base class: the message is written for the user and says what to do next."""

    exit_code = 2


class ProjectNotFoundError(MLProjectsError):
    """No project of that name is registered."""


class ProjectDefinitionError(MLProjectsError):
    """A folder under projects/ does not follow the project convention."""


class ParameterError(MLProjectsError):
    """A --param was unknown or could not be converted to the right type."""


class DataError(MLProjectsError):
    """Data is missing, corrupt, or does not have the expected schema."""


class DownloadError(DataError):
    """A download failed (network, server, interrupted transfer or checksum)."""


class InputError(MLProjectsError):
    """Input given to a trained pipeline has the wrong type or shape."""


class ModelNotFoundError(MLProjectsError):
    """No registered model (or no champion) exists for a project yet."""


class ServerError(MLProjectsError):
    """The team stack (PostgreSQL + MLflow server) could not be started, stopped or found."""


class ModelLoadError(MLProjectsError):
    """A model version is registered but cannot be loaded: its artifact folder is missing, its MLmodel file or
    serialized model is damaged, or loading serialized models is disabled."""


class ModelIntegrityError(ModelLoadError):
    """A model file's sha256 differs from the digest recorded when it was logged (tag ``model_sha256``)."""


class StoreError(MLProjectsError):
    """The tracking store is missing, is not an MLflow store, or stays locked by another process."""
