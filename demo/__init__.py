"""The living demo: Providore with twelve simulated devices, set up over Home Assistant's REST API."""
