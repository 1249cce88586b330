"""The monitor: hot-loads job changes into dispatchers, watches executor health."""
