"""ocrtune: train and tune DBNet text detectors for scanned receipts."""

__version__ = "0.1.0"
__all__ = ["__version__"]
