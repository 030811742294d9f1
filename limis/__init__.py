"""LIMIS: language-prompted, interactive medical image segmentation."""

__version__ = "0.1.0"
