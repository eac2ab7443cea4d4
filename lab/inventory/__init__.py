"""The inventory lab: an existing PVE cluster listed in a YAML file."""
