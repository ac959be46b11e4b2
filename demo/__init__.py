"""The living demo: Providore with three simulated devices, set up over Home Assistant's REST API."""
