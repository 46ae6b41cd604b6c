"""The one exception type every conversion raises on bad input."""


class ConversionError(ValueError):
    """A message or array cannot be converted: wrong encoding, size, dtype or content."""
