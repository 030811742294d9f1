"""LIMIS: language-prompted, interactive medical image segmentation."""

from limis.privacy import silence_dependency_telemetry

silence_dependency_telemetry()

__version__ = "0.1.0"
