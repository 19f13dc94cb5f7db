"""Scan files: X3P (ISO 25178-72) and 2D image readers and writers. Only this package converts units."""
