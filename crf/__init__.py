"""eCRF toolkit: study definitions as JSON Schema -> study model -> PDF / Excel forms -> validation."""
__version__ = "0.1.0"
