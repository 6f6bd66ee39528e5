"""Indicator arithmetic and windows: pure Python, no Kafka, no Prometheus."""
