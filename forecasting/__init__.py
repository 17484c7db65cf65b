"""Recurrent's forecasting library: load, validate, window, train, evaluate, select, publish.

Importing it is cheap: nothing here imports TensorFlow or Prefect until a model is built.
"""

from forecasting.config import DataConfig, EvaluationConfig, ModelConfig, PipelineConfig
from forecasting.errors import (
    ConfigError,
    DataValidationError,
    ForecastingError,
    InsufficientHistoryError,
    ModelLoadError,
    PublishError,
    TrainingError,
)
from forecasting.fleet import read_fleet
from forecasting.store.model_files import load_latest_model, load_published_model
from forecasting.store.reader import PublishedRun, read_latest, read_run

__all__ = [
    "ConfigError",
    "DataConfig",
    "DataValidationError",
    "EvaluationConfig",
    "ForecastingError",
    "InsufficientHistoryError",
    "ModelConfig",
    "ModelLoadError",
    "PipelineConfig",
    "PublishError",
    "PublishedRun",
    "TrainingError",
    "load_latest_model",
    "load_published_model",
    "read_fleet",
    "read_latest",
    "read_run",
]
