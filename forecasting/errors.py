"""The exceptions Recurrent raises for problems a user can fix."""

from __future__ import annotations


class ForecastingError(Exception):
    """Base class: a problem with the user's data, configuration or outputs, not a bug."""


class ConfigError(ForecastingError, ValueError):
    """A configuration value or file is invalid."""


class DataValidationError(ForecastingError, ValueError):
    """The input data break one of the guarantees `validate` promises."""


class InsufficientHistoryError(DataValidationError):
    """A series is too short for input_size + horizon + evaluation."""


class PublishError(ForecastingError):
    """Outputs could not be written or read back intact."""


class ModelLoadError(ForecastingError):
    """A published model file is missing, tampered with or unsafe to load."""


class TrainingError(ForecastingError):
    """Every candidate failed, so there is nothing to publish."""
