"""Charter rules and the alert lifecycle: pure Python, no Kafka."""
