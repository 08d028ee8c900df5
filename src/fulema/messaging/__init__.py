"""Message center: events into messages (cloud speakers over MQTT, notices); docs/messaging.md."""
