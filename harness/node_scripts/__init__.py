"""Self-contained scripts run ON a node (fed to its interpreter over SSH): standard library
only, no import from this project, so a real PVE node needs nothing installed."""
