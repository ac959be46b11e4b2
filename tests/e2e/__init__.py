"""Browser end-to-end tests: a real Home Assistant driven through its own frontend."""
