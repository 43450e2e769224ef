"""spml's OSC actuator. Importing this package is cheap: python-osc loads on use."""

__version__ = "0.1.0"
